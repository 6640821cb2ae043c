"""OCR engines on image-only renderings of the synthetic pages from test_layout."""

from __future__ import annotations

import pickle
from pathlib import Path

import pymupdf
import pytest

from c64_pipeline.layout import layout_text, strip_running_heads
from c64_pipeline.ocr import (
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
    from c64_pipeline.ocr import repair_hex_ranges

    assert repair_hex_ranges("CIA 1 | DCOO-DCFF") == "CIA 1 | DC00-DCFF"
    assert repair_hex_ranges("DS00-DSFF and FOOO-FFFF") == "D500-D5FF and F000-FFFF"
    for unchanged in ("DEAD-BEEF", "CODE-BASE", "1982-1984", "FFFF-0000", "page 12-13"):
        assert repair_hex_ranges(unchanged) == unchanged


def test_huge_pages_are_rendered_at_a_lower_dpi():
    import pymupdf

    from c64_pipeline.ocr import MAX_OCR_PIXELS, safe_dpi

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
    from c64_pipeline.ocr import ocr_many

    heads = image_only(make_running_head_doc(2), tmp_path / "heads.pdf")
    alone = {scanned: ocr_pages(scanned, [1], "tesseract", {}), heads: ocr_pages(heads, [1, 0], "tesseract", {})}
    together = ocr_many([(scanned, [1]), (heads, [1, 0])], "tesseract", {}, workers=2)
    assert list(together) == [scanned, heads] and list(together[heads]) == [1, 0]
    assert together == alone
    with pytest.raises(OcrError, match=r"heads\.pdf.*page index 5"):
        ocr_many([(scanned, [0]), (heads, [5])], "tesseract", {}, workers=2)


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
        "import sys; from c64_pipeline.ocr import ocr_many; "
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
        time.sleep(1.0)  # let them pick up pages (busy in Tesseract)
        assert all(_alive(p) for p in workers)
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
