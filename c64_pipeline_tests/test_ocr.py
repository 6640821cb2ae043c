"""OCR engines on image-only renderings of the synthetic pages from test_layout."""

from __future__ import annotations

import pickle
from pathlib import Path

import pymupdf
import pytest

from c64_pipeline.ingest.layout import layout_text, strip_running_heads
from c64_pipeline.ingest.ocr import (
    EasyOcrEngine,
    OcrError,
    TesseractEngine,
    find_tessdata,
    make_ocr_engine,
    ocr_pages,
    repair_hex_tokens,
)
from c64_pipeline_tests.test_layout import (
    CLOSING,
    HEADER,
    LEFT,
    RIGHT,
    TABLE_NOTE,
    TABLE_ROWS,
    TABLE_TITLE,
    TITLE,
    add_table_page,
    add_two_column_page,
    body_lines,
    make_running_head_doc,
    normalise,
)


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        cur = [i]
        for j, cb in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate, whitespace runs counted as one space."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    return edit_distance(ref, hyp) / max(len(ref), 1)


def image_only(doc: pymupdf.Document, path: Path, dpi: int = 200) -> Path:
    """A scan-like copy of ``doc``: every page is just a grey image, no text layer."""
    out = pymupdf.open()
    for page in doc:
        pix = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY)
        new = out.new_page(width=page.rect.width, height=page.rect.height)
        new.insert_image(new.rect, pixmap=pix)
    out.save(path)
    assert all(not p.get_text().strip() for p in pymupdf.open(path))
    return path


@pytest.fixture(scope="module")
def scanned(tmp_path_factory) -> Path:
    """Page 0: two-column prose, page 1: register table (image only)."""
    doc = pymupdf.open()
    add_two_column_page(doc)
    add_table_page(doc)
    return image_only(doc, tmp_path_factory.mktemp("scan") / "scan.pdf")


def ocr_text(path: Path, n: int, engine) -> str:
    page = pymupdf.open(path)[n]
    return layout_text(engine.page_blocks(page), page.rect.width, page.rect.height)


# --------------------------------------------------------------------------------------------
# Tesseract
# --------------------------------------------------------------------------------------------


def test_tesseract_two_columns(scanned):
    text = ocr_text(scanned, 0, TesseractEngine())
    expected = "\n\n".join([TITLE, *LEFT, *RIGHT, CLOSING])
    assert cer(expected, text) < 0.05, text  # interleaved columns would be far above this
    flat = normalise(text)
    positions = [flat.find(w) for w in ("CHAPTER", "VIC-II chip", "Sprites are", "SID chip", "Each voice", "full width")]
    assert -1 not in positions and positions == sorted(positions), text
    assert "$D020" in text and "POKE 53280,0" in text


def test_tesseract_register_table(scanned):
    text = ocr_text(scanned, 1, TesseractEngine())
    rows = [" | ".join(r) for r in TABLE_ROWS]
    expected = "\n\n".join([TABLE_TITLE, "\n".join(rows), TABLE_NOTE])
    assert cer(expected, text) < 0.05, text
    lines = text.splitlines()
    # Each register row comes out as one line with its three cells in order.
    for row in rows:
        best = min(lines, key=lambda l: cer(row, l))
        assert cer(row, best) < 0.15, (row, text)
        assert best.count(" | ") == 2, (row, text)
    found = [min(range(len(lines)), key=lambda i: cer(row, lines[i])) for row in rows]
    assert found == sorted(found) and len(set(found)) == len(rows), text
    assert sum(row in lines for row in rows) >= len(rows) - 1, text


def test_tesseract_running_heads(tmp_path):
    path = image_only(make_running_head_doc(4), tmp_path / "heads.pdf")
    blocks = ocr_pages(path, [0, 1, 2, 3], "tesseract", {})
    doc = pymupdf.open(path)
    stripped = strip_running_heads([blocks[n] for n in range(4)], [p.rect.height for p in doc])
    for n, page_blocks in enumerate(stripped, start=1):
        text = layout_text(page_blocks, 595, 842)
        assert "COMMODORE" not in text and "Page 4" not in text, text
        assert cer("\n".join(body_lines(n)), text) < 0.05, text
    assert any(HEADER.split()[0] in b.text for b in blocks[0])


def test_ocr_pages_pool_matches_sequential(scanned):
    one = ocr_pages(scanned, [1, 0], "tesseract", {"dpi": 300}, workers=1)
    two = ocr_pages(scanned, [1, 0], "tesseract", {"dpi": 300}, workers=2)
    assert list(one) == [1, 0] and list(two) == [1, 0]
    assert one == two
    assert one[1] and all(b.x1 <= 595 and b.y1 <= 842 for b in one[1])


def test_ocr_errors_name_file_and_page(scanned):
    with pytest.raises(OcrError, match=r"scan\.pdf.*page index 7"):
        ocr_pages(scanned, [7], "tesseract", {})
    with pytest.raises(OcrError, match=r"scan\.pdf.*page 2 \(index 1\)") as info:
        ocr_pages(scanned, [1], "tesseract", {"tessdata": "/nonexistent/tessdata"})
    assert "apt-get install tesseract-ocr" in str(info.value)
    with pytest.raises(OcrError, match=r"scan\.pdf.*page 1 \(index 0\)"):
        ocr_pages(scanned, [0], "tesseract", {"tessdata": "/nonexistent/tessdata"}, workers=2)


def test_find_tessdata():
    folder = find_tessdata(None, "eng")
    assert (Path(folder) / "eng.traineddata").is_file()
    with pytest.raises(RuntimeError, match="tesseract-ocr-xyz"):
        find_tessdata(None, "eng+xyz")


def test_make_ocr_engine():
    assert make_ocr_engine("tesseract") == TesseractEngine()
    assert make_ocr_engine("EasyOCR", dpi=150) == EasyOcrEngine(dpi=150)
    assert make_ocr_engine("tesseract", dpi=200, language="eng").name == "tesseract"
    with pytest.raises(ValueError, match="easyocr, tesseract"):
        make_ocr_engine("abbyy")
    with pytest.raises(ValueError, match="psm"):
        make_ocr_engine("tesseract", psm=6)
    for engine in (TesseractEngine(dpi=150), EasyOcrEngine()):
        assert pickle.loads(pickle.dumps(engine)) == engine


# --------------------------------------------------------------------------------------------
# Hex repair and EasyOCR
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, fixed",
    [
        ("SDO2O", "$D020"),
        ("SD020", "$D020"),
        ("5D020", "$D020"),
        ("SDO21 = 53281", "$D021 = 53281"),
        ("(SD418),", "($D418),"),
        ("SDOOO", "$D000"),
        ("SCOOO and SFFD2", "$C000 and $FFD2"),
        ("SDOl9", "$D019"),
        ("S1000", "$1000"),
        ("5DEAD", "$DEAD"),
    ],
)
def test_repair_hex_tokens_fixes(raw, fixed):
    assert repair_hex_tokens(raw) == fixed


@pytest.mark.parametrize(
    "text",
    [
        "POKE 53280,0",
        "SYS 64738",
        "55296",
        "SEED STOP SCOFF Soil Sprites SOFA",
        "ISD020",
        "SD0200",
        "SD02",
        "Sams sold 5 units",
        "$D020",
    ],
)
def test_repair_hex_tokens_leaves_words(text):
    assert repair_hex_tokens(text) == text


@pytest.mark.slow
def test_easyocr_small_page_repairs_addresses(tmp_path):
    torch = pytest.importorskip("torch")
    # A few lines only: EasyOCR costs tens of CPU-seconds and gigabytes on a full page.
    doc = pymupdf.open()
    page = doc.new_page(width=320, height=110)
    rows = [("$D020", "53280", "Border colour"), ("$D021", "53281", "Background colour 0"), ("$D418", "54296", "Volume and filter")]
    for i, row in enumerate(rows):
        for x, cell in zip((15, 85, 150), row):
            page.insert_text((x, 30 + 25 * i), cell, fontsize=11)
    page.insert_text((15, 100), "Type POKE 53280,0 to make the border black.", fontsize=11)
    path = image_only(doc, tmp_path / "small.pdf")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; one thread is also the fastest here
    try:
        blocks = ocr_pages(path, [0], "easyocr", {})[0]
    finally:
        torch.set_num_threads(threads)
    text = layout_text(blocks, 320, 110)
    lines = text.splitlines()
    for row in rows:
        assert " | ".join(row) in lines, text
    assert "POKE 53280,0" in text
    assert "SD0" not in text and "SDO" not in text


def test_repair_hex_ranges_only_touches_address_ranges():
    from c64_pipeline.ingest.ocr import repair_hex_ranges

    assert repair_hex_ranges("CIA 1 | DCOO-DCFF") == "CIA 1 | DC00-DCFF"
    assert repair_hex_ranges("DS00-DSFF and FOOO-FFFF") == "D500-D5FF and F000-FFFF"
    for unchanged in ("DEAD-BEEF", "CODE-BASE", "1982-1984", "FFFF-0000", "page 12-13"):
        assert repair_hex_ranges(unchanged) == unchanged


def test_huge_pages_are_rendered_at_a_lower_dpi():
    import pymupdf

    from c64_pipeline.ingest.ocr import MAX_OCR_PIXELS, safe_dpi

    doc = pymupdf.open()
    doc.new_page(width=595, height=842)
    doc.new_page(width=14400, height=14400)  # the largest page PDF allows: 200 x 200 inches
    a4, hostile = doc[0], doc[1]
    assert safe_dpi(a4, 300) == 300
    dpi = safe_dpi(hostile, 300)
    assert dpi < 40 and (200 * dpi) ** 2 <= MAX_OCR_PIXELS


# --------------------------------------------------------------------------------------------
# One pool for several documents; workers die with their parent
# --------------------------------------------------------------------------------------------


def test_ocr_many_pools_pages_of_several_documents(scanned, tmp_path):
    from c64_pipeline.ingest.ocr import ocr_many

    heads = image_only(make_running_head_doc(1), tmp_path / "heads.pdf")
    options = {"dpi": 150}
    alone = {scanned: ocr_pages(scanned, [1], "tesseract", options), heads: ocr_pages(heads, [0], "tesseract", options)}
    together = ocr_many([(scanned, [1]), (heads, [0])], "tesseract", options, workers=2)
    assert list(together) == [scanned, heads] and list(together[scanned]) == [1]
    assert together == alone and together[heads][0]
    with pytest.raises(OcrError, match=r"heads\.pdf.*page index 5"):
        ocr_many([(scanned, [0]), (heads, [5])], "tesseract", options, workers=2)


def test_ocr_workers_do_not_import_the_callers_main_module(scanned, tmp_path):
    """A spawned worker would import the calling script (and all it imports) before its first page."""
    import os
    import subprocess
    import sys

    imported = tmp_path / "imported.txt"
    script = tmp_path / "caller.py"
    script.write_text(
        "import os\n"
        f"with open({str(imported)!r}, 'a') as f: f.write(str(os.getpid()) + '\\n')\n"
        "if __name__ == '__main__':\n"
        "    from c64_pipeline.ingest.ocr import ocr_many\n"
        f"    pages = ocr_many([({str(scanned)!r}, [0, 1])], 'tesseract', {{'dpi': 100}}, workers=2)\n"
        "    print(os.getpid(), sum(len(blocks) for page in pages.values() for blocks in page.values()))\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    parent, blocks = done.stdout.split()
    assert int(blocks) > 0  # the workers did OCR the pages
    assert imported.read_text().split() == [parent], "the workers imported the calling script"


def _children(pid: int) -> dict[int, str]:
    """Live child processes of ``pid`` (Linux /proc): {pid: command line}; zombies count as gone."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields_after_name = stat.rsplit(")", 1)[1].split()
        state, ppid = fields_after_name[0], int(fields_after_name[1])
        if ppid == pid and state != "Z":
            out[int(entry.name)] = cmdline
    return out


def _loaded(pid: int, library: str) -> bool:
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_ocr_workers_die_when_the_parent_is_killed(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    doc = pymupdf.open()
    for _ in range(6):
        add_table_page(doc)
    pdf = image_only(doc, tmp_path / "many.pdf", dpi=100)
    script = (
        "import sys; from c64_pipeline.ingest.ocr import ocr_many; "
        f"ocr_many([({str(pdf)!r}, range(6))], 'tesseract', {{'dpi': 300}}, workers=2); print('finished')"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    parent = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        workers: dict[int, str] = {}
        while time.monotonic() < deadline and len(workers) < 2:
            assert parent.poll() is None, parent.communicate()
            workers = {p: c for p, c in _children(parent.pid).items() if "spawn_main" in c}
            time.sleep(0.1)
        assert len(workers) == 2, f"the pool did not start two workers: {_children(parent.pid)}"
        # Wait until both workers have PyMuPDF loaded: they import it after their initializer bound them to the
        # parent, so from here on they are the long-lived workers that used to survive the parent.
        while time.monotonic() < deadline and not all(_loaded(p, "mupdf") for p in workers):
            time.sleep(0.1)
        assert all(_loaded(p, "mupdf") for p in workers), "the workers never loaded PyMuPDF"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        survivors = [p for p in workers if _alive(p)]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    for p in survivors:  # clean up before failing
        os.kill(p, signal.SIGKILL)
    assert not survivors, f"OCR workers {survivors} still running after kill -9 of their parent"


# --------------------------------------------------------------------------------------------
# Hex repair proved by the token or by its row, with counts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, fixed, repairs",
    [
        # misreads seen in Tesseract output of scanned register tables
        ("S$DOOA", "$D00A", 1),
        ("$DO00C", "$D00C", 1),
        ("$DDO00 | 56576 | CI2PRA", "$DD00 | 56576 | CI2PRA", 1),
        ("$DCO08 | 56328 | TODTEN", "$DC08 | 56328 | TODTEN", 1),
        ("$DCOA | 56330", "$DC0A | 56330", 1),
        ("LDX $CO000", "LDX $C000", 1),
        ("Table 3-1. CIA 1 at $DC00-$DCOF (56320-56335).", "Table 3-1. CIA 1 at $DC00-$DC0F (56320-56335).", 1),
        ("($DCOE, 56334 on CIA 1)", "($DC0E, 56334 on CIA 1)", 1),
        ("$BO $Cl $CS", "$B0 $C1 $C5", 3),
        ("LDA #$OF", "LDA #$0F", 1),
        # a decimal column proves the reading
        ("O30F 783", "030F 783", 1),
        ("$Al1 | 161", "$A1 | 161", 1),
        ("$D028 | 53280 | EXTCOL", "$D020 | 53280 | EXTCOL", 1),
        ("53281 ($DO2l)", "53281 ($D021)", 1),
        ("SDO2O = 53280", "$D020 = 53280", 1),
        # ranges without "$" in memory maps
        ("CIA 1 | DCOO-DCFF", "CIA 1 | DC00-DCFF", 1),
        ("DS00-DSFF", "D500-D5FF", 1),
    ],
)
def test_hex_repair_fixes_misreads_the_context_proves(raw, fixed, repairs):
    from c64_pipeline.ingest.hex_repair import repair_hex_text

    assert repair_hex_text(raw) == (fixed, repairs)


@pytest.mark.parametrize(
    "text",
    [
        "SOLID DOS I/O",
        "The SOLID state DOS 2.6 reads I/O 1 at 56832",
        "O30F",  # a bare token needs a decimal neighbour that proves it
        "O2 2",
        "POKE 53280,0 and SYS 64738",
        "A$=CHR$(147)+B$",
        "1982-1984 and page 12-13",
        "DEAD-BEEF CODE-BASE FFFF-0000",
        "$D020 | 53281",  # no small correction of $D020 is 53281: left for a reader to judge
        "SEED STOP SCOFF Soil Sprites SOFA",
        "$D020 53280 $FF $0E 14",
        "LDA #$08 STA 0",  # a small number beside a valid byte proves nothing
        "$D016 22",
    ],
)
def test_hex_repair_leaves_words_and_unproved_tokens(text):
    from c64_pipeline.ingest.hex_repair import repair_hex_text

    assert repair_hex_text(text) == (text, 0)


def test_repair_blocks_uses_the_decimal_cell_of_the_same_row_and_counts_per_block():
    from c64_pipeline.ingest.layout import TextBlock
    from c64_pipeline.ingest.ocr import OcrBlock, ocr_repairs, repair_blocks

    blocks = [
        TextBlock(60, 100, 90, 112, "$DDOOA"),  # one zero too many: only the decimal cell says which
        TextBlock(120, 101, 150, 113, "56586"),
        TextBlock(170, 100, 400, 112, "Time of day clock, minutes"),
        TextBlock(60, 120, 90, 132, "O30F"),
        TextBlock(120, 121, 150, 133, "783"),
        TextBlock(60, 140, 400, 164, "SOLID DOS I/O\nat $DCOl"),
    ]
    out = repair_blocks(blocks)
    assert all(isinstance(b, OcrBlock) for b in out)
    assert [b.text for b in out] == [
        "$DD0A", "56586", "Time of day clock, minutes", "030F", "783", "SOLID DOS I/O\nat $DC01"
    ]
    assert [b.repairs for b in out] == [1, 0, 0, 1, 0, 1] and ocr_repairs(out) == 3
    assert [(b.x0, b.y0, b.x1, b.y1) for b in out] == [(b.x0, b.y0, b.x1, b.y1) for b in blocks]


def _words(line: list[tuple[float, str]], y: float, line_no: int, block_no: int = 0, char_w: float = 5.0):
    """OCR word tuples (x0, y0, x1, y1, text, block, line, word) for words starting at the given x."""
    return [(x, y, x + char_w * len(t), y + 12, t, block_no, line_no, i) for i, (x, t) in enumerate(line)]


def test_ocr_word_boxes_become_table_cells_and_rows():
    from c64_pipeline.ingest.ocr import blocks_from_ocr_words

    words = []
    # prose: words 3-4 points apart stay one block
    words += _words([(50, "The"), (68, "CIA"), (86, "sits"), (110, "at"), (124, "$DC00.")], 80, 0)
    # a register row: cells 20+ points apart, a ruling-line speck "_" between two cells, an underscore glued on
    row = [(50, "$DC0B"), (100, "56331"), (150, "TODHRS_"), (187, "_"), (210, "Time"), (234, "of"), (248, "day")]
    words += _words(row, 100, 1)
    # the engine split the description of the next row into two lines that touch on one row
    words += _words([(50, "$DC0C"), (100, "56332")], 120, 2)
    words += _words([(210, "Serial"), (244, "data")], 120, 0, block_no=1)
    words += _words([(268, "register")], 121, 1, block_no=1)
    blocks = blocks_from_ocr_words(words)
    texts = [b.text for b in blocks]
    assert texts == [
        "The CIA sits at $DC00.",
        "$DC0B", "56331", "TODHRS", "Time of day",
        "$DC0C", "56332", "Serial data register",
    ]
    row = [b for b in blocks if b.text in ("$DC0B", "56331", "TODHRS", "Time of day")]
    assert len({(b.y0, b.y1) for b in row}) == 1  # the cells of one OCR line share its height
    layout = layout_text(blocks, 595, 842)
    assert "$DC0B | 56331 | TODHRS | Time of day" in layout.splitlines(), layout
    assert "$DC0C | 56332 | Serial data register" in layout.splitlines(), layout


def _prose(y: float) -> list:
    """Three lines of prose, words 4 points apart (5-point characters), from height ``y`` down."""
    words = []
    for n, sentence in enumerate(("Each voice has a control register whose bits are",
                                  "listed below with the value each bit adds when",
                                  "it is set, and what setting it does to the voice.")):
        x, line = 50, []
        for word in sentence.split():
            line.append((x, word))
            x += 5 * len(word) + 4
        words += _words(line, y + 16 * n, 20 + n, block_no=20)
    return words


def test_ocr_cells_given_each_in_its_own_line_are_one_row():
    """An engine may give every cell of a table row its own line (and a column its own block): the row is rebuilt
    from lines side by side, while lines stacked in one column stay apart."""
    from c64_pipeline.ingest.ocr import blocks_from_ocr_words

    words = _words([(50, "The"), (68, "CIA"), (86, "sits"), (110, "at"), (124, "$DC00.")], 60, 0, block_no=0)
    for row, y in ((("$DC0B", "56331", "TODHRS"), 100), (("$DC0C", "56332", "CIASDR"), 116)):
        for k, cell in enumerate(row):
            words += _words([(50 + 60 * k, cell)], y, line_no=k, block_no=10 + y + k)
    layout = layout_text(blocks_from_ocr_words(words), 595, 842).splitlines()
    assert "$DC0B | 56331 | TODHRS" in layout and "$DC0C | 56332 | CIASDR" in layout, layout


def test_ocr_word_box_stretched_across_the_row_is_narrowed():
    """A one-character word whose box the OCR layer stretched over the whole row must not swallow its row."""
    from c64_pipeline.ingest.ocr import blocks_from_ocr_words

    words = _words([(50, "Keys"), (74, "by"), (88, "column"), (122, "and"), (141, "row"), (160, "below.")], 60, 5)
    words += _words([(50, "The"), (69, "matrix"), (103, "has"), (122, "eight"), (151, "of"), (165, "each.")], 76, 6)
    words += _words([(50, "3"), (100, "7"), (150, "Y"), (200, "G")], 100, 0)
    words += [(50, 120, 400, 132, "4", 0, 1, 0)]  # broken: 350 points wide for one character
    words += _words([(100, "9"), (150, "I"), (200, "J")], 120, 2)
    layout = layout_text(blocks_from_ocr_words(words), 595, 842).splitlines()
    assert "3 | 7 | Y | G" in layout and "4 | 9 | I | J" in layout, layout


def test_narrow_ocr_columns_are_cut_where_the_other_rows_cells_start():
    """Header words of narrow columns sit closer than a cell gap ("Bit  Value  Name"); they are cells because the
    cells of the rows below start at the same x."""
    from c64_pipeline.ingest.ocr import blocks_from_ocr_words

    words = _prose(20)  # the page's typical word gap: 4 points
    # the header's narrow columns are 9 points apart: a little more than two word gaps, less than a cell gap
    words += _words([(50, "Bit"), (74, "Value"), (108, "Name"), (170, "Effect"), (204, "when"), (228, "set")], 80, 0)
    rows = [("0", "1", "GATE", "Starts the attack"), ("1", "2", "SYNC", "Hard-syncs this oscillator"),
            ("2", "4", "RING", "Ring modulation"), ("3", "8", "TEST", "Resets the oscillator")]
    for n, (bit, value, name, effect) in enumerate(rows, 1):
        line = [(50, bit), (74, value), (108, name)]
        x = 170
        for word in effect.split():
            line.append((x, word))
            x += 5 * len(word) + 4
        words += _words(line, 80 + 16 * n, n)
    # prose with a wider word gap (7 points) before a word at a column start is not cut: it is not a table row
    words += _words([(50, "Setting"), (92, "it"), (109, "selects"), (148, "waveforms.")], 200, 9)
    layout = layout_text(blocks_from_ocr_words(words), 595, 842).splitlines()
    assert "Bit | Value | Name | Effect when set" in layout, layout
    assert "0 | 1 | GATE | Starts the attack" in layout, layout
    assert "Setting it selects waveforms." in layout, layout


def test_a_lone_dash_cell_is_kept_and_edge_specks_are_dropped():
    from c64_pipeline.ingest.ocr import blocks_from_ocr_words

    words = _prose(20)  # the page's typical word gap: 4 points
    words += _words([(50, "BCC"), (100, "Branch"), (134, "if"), (146, "carry"), (180, "clear"), (300, "-")], 100, 0)
    words += _words([(50, "ADC"), (100, "Add"), (122, "with"), (148, "carry"), (300, "NVZC")], 116, 1)
    words += _words([(40, "|"), (50, "CLC"), (100, "Clear"), (130, "carry"), (300, "C"), (330, "|")], 132, 2)
    layout = layout_text(blocks_from_ocr_words(words), 595, 842).splitlines()
    assert "BCC | Branch if carry clear | -" in layout, layout
    assert "CLC | Clear carry | C" in layout, layout


def test_ruling_lines_glued_to_words_and_specks_after_numbers_leave_table_cells():
    from c64_pipeline.ingest.ocr import blocks_from_ocr_words

    words = _prose(20)
    words += _words([(50, "$D40B"), (100, "54283."), (150, "VCREG2__—~"), (220, "Voice"), (250, "2")], 100, 0)
    words += _words([(50, "$DD06"), (100, "56582"), (150, "TI2BLO"), (183, "_‘Timer"), (222, "B")], 116, 1)
    words += _words([(50, "$DD07"), (100, "56583"), (150, "TI2BHI"), (220, "Timer"), (250, "B")], 132, 2)
    # prose keeps the full stop after a number
    words += _words([(50, "Poke"), (74, "53280.")], 160, 3)
    layout = layout_text(blocks_from_ocr_words(words), 595, 842).splitlines()
    assert "$D40B | 54283 | VCREG2 | Voice 2" in layout, layout
    assert "$DD06 | 56582 | TI2BLO | Timer B" in layout, layout
    assert "Poke 53280." in layout, layout


def test_a_lone_equals_sign_bridging_two_table_cells_is_dropped_and_the_row_cut():
    """A speck read as "=" between two cells of a table row fills their gap; the row is cut there when the word
    after it starts on a column of the table. An "=" in prose, or in a row whose next word is on no column, stays."""
    from c64_pipeline.ingest.ocr import blocks_from_ocr_words

    words = _prose(20)
    rows = [("ASL $FB", "Zero page", "$06"), ("ASL A", "Accumulator", "$0A"), ("ROL $FB", "Zero page", "$26"),
            ("ROL A", "Accumulator", "$2A")]
    for n, (code, mode, op) in enumerate(rows):
        line = [(50, w) for w in code.split()[:1]] + [(72, w) for w in code.split()[1:]]
        line += [(123 + 30 * k, w) for k, w in enumerate(mode.split())] + [(240, op)]
        words += _words(line, 80 + 16 * n, n)
    # the glued row: "$C000,X" ends at 107, "=" at 115-120, "Absolute,X" starts at 123 (a column): both gaps are
    # narrower than a cell gap, the two together wider
    words += _words([(50, "ASL"), (72, "$C000,X")], 160, 10) + [(115, 160, 120, 172, "=", 0, 10, 2)]
    words += _words([(123, "Absolute,X"), (240, "$1E")], 160, 10)
    words += _words([(50, "so"), (64, "A"), (74, "="), (84, "B"), (94, "here.")], 200, 11)  # prose
    layout = layout_text(blocks_from_ocr_words(words), 595, 842).splitlines()
    assert "ASL $C000,X | Absolute,X | $1E" in layout, layout
    assert "so A = B here." in layout, layout


def test_ocr_many_collects_a_failed_page_without_losing_the_others(scanned, tmp_path):
    from c64_pipeline.ingest.ocr import ocr_many

    out = ocr_many([(scanned, [1, 9])], "tesseract", {"dpi": 150}, errors="collect")
    assert out[scanned][1] and isinstance(out[scanned][9], OcrError) and "page index 9" in str(out[scanned][9])
    with pytest.raises(ValueError, match="errors"):
        ocr_many([(scanned, [1])], "tesseract", {}, errors="ignore")


@pytest.mark.slow
def test_extract_pdfs_ocrs_several_documents_in_one_pool(scanned, tmp_path):
    from c64_pipeline.ingest.documents import DocumentRejected
    from c64_pipeline.ingest.extraction import ExtractionSettings, extract_document, extract_pdfs

    heads = image_only(make_running_head_doc(1), tmp_path / "heads.pdf")
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 not really")
    settings = ExtractionSettings(ocr_options={"dpi": 150}, ocr_workers=2)
    out = extract_pdfs([("scan", scanned), ("broken", broken), ("heads", heads)], settings)
    assert list(out) == ["scan", "broken", "heads"]
    assert isinstance(out["broken"], DocumentRejected) and "broken.pdf" in str(out["broken"])
    one_by_one = ExtractionSettings(ocr_options={"dpi": 150}, ocr_workers=1)
    assert out["scan"] == extract_document("scan", scanned, "pdf", one_by_one)
    assert out["heads"] == extract_document("heads", heads, "pdf", one_by_one)
    assert all(p.method == "ocr" for p in out["scan"])


def test_page_records_count_the_hex_repairs_of_their_ocr_blocks():
    from pathlib import Path as P

    from c64_pipeline.ingest.extraction import ExtractionSettings, PdfTextLayer, finish_pdf
    from c64_pipeline.ingest.layout import TextBlock
    from c64_pipeline.ingest.ocr import repair_blocks

    layer = PdfTextLayer(
        "doc", P("doc.pdf"), [(595, 842), (595, 842)],
        [[TextBlock(50, 100, 300, 112, "Text layer page at $DCOA stays as it is")], []],
        [None, "no text layer"], [0.9, 0.0],
    )
    ocr = {1: repair_blocks([TextBlock(50, 100, 90, 112, "$DDOOA"), TextBlock(120, 100, 150, 112, "56586"),
                             TextBlock(50, 130, 300, 142, "Bits of $DCOE and S$DOOA")])}
    pages = finish_pdf(layer, ocr, ExtractionSettings())
    assert [p.ocr_repairs for p in pages] == [0, 3]
    assert "$DD0A | 56586" in pages[1].text and "$DC0E and $D00A" in pages[1].text
    assert "$DCOA" in pages[0].text  # text layers are never "repaired"
    assert pages[1].as_dict()["ocr_repairs"] == 3
