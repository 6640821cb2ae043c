"""Reading order and running heads on synthetic manual pages (text layer)."""

from __future__ import annotations

import pymupdf
import pytest

from c64_pipeline.ingest.layout import TextBlock, blocks_from_page, layout_text, strip_running_heads

# --------------------------------------------------------------------------------------------
# Test pages (also used by test_ocr.py)
# --------------------------------------------------------------------------------------------

TITLE = "CHAPTER 3: THE HARDWARE"
LEFT = [
    "The VIC-II chip controls the screen. Its registers start at $D000 and the border colour "
    "lives at $D020, which is 53280 in decimal.",
    "To change the border, type POKE 53280,0 and press RETURN. The border turns black at once.",
    "Sprites are movable objects. Each of the eight sprites has its own pointer and colour register.",
]
RIGHT = [
    "The SID chip makes the sound. Its registers start at $D400, which is 54272 in decimal, "
    "and there are three voices.",
    "Set the volume with POKE 54296,15 before you play a note, or nothing will be heard at all.",
    "Each voice has a waveform, an envelope and a frequency that you set with two POKE commands.",
]
CLOSING = (
    "This full width paragraph closes the page and spans both of the columns above it, "
    "so it must come last."
)

TABLE_TITLE = "VIC-II REGISTERS"
TABLE_ROWS = [
    ("Address", "Decimal", "Description"),
    ("$D020", "53280", "Border colour"),
    ("$D021", "53281", "Background colour 0"),
    ("$D011", "53265", "Control register 1"),
    ("$D016", "53270", "Control register 2"),
    ("$D418", "54296", "Volume and filter mode"),
]
TABLE_NOTE = "The table above lists a few of the registers of the video chip."

HEADER = "COMMODORE 64 PROGRAMMER'S REFERENCE GUIDE"


def add_two_column_page(doc: pymupdf.Document) -> pymupdf.Page:
    """Title, two prose columns whose lines sit at the same heights, a full-width paragraph."""
    page = doc.new_page()  # A4-ish 595 x 842
    page.insert_textbox(pymupdf.Rect(50, 40, 545, 80), TITLE, fontsize=16)
    y = 100
    for left, right in zip(LEFT, RIGHT):
        assert page.insert_textbox(pymupdf.Rect(50, y, 290, y + 80), left, fontsize=11) >= 0
        assert page.insert_textbox(pymupdf.Rect(310, y, 550, y + 80), right, fontsize=11) >= 0
        y += 90
    assert page.insert_textbox(pymupdf.Rect(50, y, 550, y + 60), CLOSING, fontsize=11) >= 0
    return page


def add_table_page(doc: pymupdf.Document) -> pymupdf.Page:
    """A register table: every cell is its own text box at a fixed position."""
    page = doc.new_page()
    page.insert_textbox(pymupdf.Rect(50, 40, 545, 80), TABLE_TITLE, fontsize=14)
    y = 90
    for row in TABLE_ROWS:
        for x, cell in zip((60, 180, 300), row):
            assert page.insert_textbox(pymupdf.Rect(x, y, x + 200, y + 20), cell, fontsize=11) >= 0
        y += 20
    page.insert_textbox(pymupdf.Rect(50, y + 20, 545, y + 80), TABLE_NOTE, fontsize=11)
    return page


def body_lines(n: int) -> list[str]:
    return [
        f"Section {n}: POKE 53280,{n} sets the border to colour {n}.",
        "10 PRINT CHR$(147): POKE 53281,6",
        f"There are {8 * n} sprites on page {n} of this example.",
    ]


def make_running_head_doc(pages: int = 4) -> pymupdf.Document:
    doc = pymupdf.open()
    for n in range(1, pages + 1):
        page = doc.new_page()
        page.insert_text((72, 30), HEADER, fontsize=9)  # top band
        page.insert_text((280, 825), f"Page {n + 40}", fontsize=9)  # bottom band, digits vary
        y = 120
        for line in body_lines(n):
            page.insert_textbox(pymupdf.Rect(72, y, 520, y + 40), line, fontsize=11)
            y += 50
    return doc


def normalise(text: str) -> str:
    return " ".join(text.split())


def page_text(page: pymupdf.Page, **kw) -> str:
    return layout_text(blocks_from_page(page, **kw), page.rect.width, page.rect.height)


# --------------------------------------------------------------------------------------------
# Two-column prose
# --------------------------------------------------------------------------------------------


def test_two_columns_read_left_then_right(tmp_path):
    doc = pymupdf.open()
    add_two_column_page(doc)
    doc.save(tmp_path / "two.pdf")
    page = pymupdf.open(tmp_path / "two.pdf")[0]

    # The trap is real: PyMuPDF's own sort interleaves the columns line by line.
    naive = normalise(page.get_text(sort=True))
    assert normalise(LEFT[0]) not in naive

    text = page_text(page)
    expected = "\n\n".join([TITLE, *LEFT, *RIGHT, CLOSING])
    assert normalise(text) == normalise(expected)
    paragraphs = [normalise(p) for p in text.split("\n\n")]
    assert paragraphs == [normalise(p) for p in [TITLE, *LEFT, *RIGHT, CLOSING]]
    # Line breaks inside a paragraph are single newlines, and no line mixes the columns.
    for line in text.splitlines():
        assert not ("VIC-II" in line and "SID" in line)


def test_two_columns_from_line_blocks_at_equal_heights():
    """OCR-style input: one block per line, left and right lines on exactly the same rows."""
    left = ["Sprites are movable objects that", "you can place anywhere on the", "screen with two POKE commands."]
    right = ["The SID chip has three voices and", "each of them has its own envelope", "and its own waveform register."]
    blocks = []
    for i, (l, r) in enumerate(zip(left, right)):
        y = 100 + 14 * i
        blocks += [TextBlock(310, y, 545, y + 11, r), TextBlock(50, y, 285, y + 11, l)]
    text = layout_text(blocks, 595, 842)
    assert text == "\n".join(left) + "\n\n" + "\n".join(right)


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def expected_table_lines() -> list[str]:
    return [" | ".join(row) for row in TABLE_ROWS]


def test_register_table_row_by_row(tmp_path):
    doc = pymupdf.open()
    add_table_page(doc)
    doc.save(tmp_path / "table.pdf")
    page = pymupdf.open(tmp_path / "table.pdf")[0]
    text = page_text(page)
    assert text == "\n\n".join([TABLE_TITLE, "\n".join(expected_table_lines()), TABLE_NOTE])


def test_blocks_from_page_splits_row_blocks_into_cells(tmp_path):
    doc = pymupdf.open()
    page = add_table_page(doc)
    raw = [b.text for b in blocks_from_page(page, granularity="blocks")]
    assert "Address\nDecimal\nDescription" in raw  # PyMuPDF glues a table row into one block
    auto = [b.text for b in blocks_from_page(page)]
    assert {"Address", "Decimal", "Description", "$D020", "53280", "Border colour"} <= set(auto)
    lines = blocks_from_page(page, granularity="lines")
    assert all("\n" not in b.text for b in lines)


def test_table_from_cell_blocks_in_any_order():
    rows = [("$D020", "53280", "Border colour"), ("$D021", "53281", "Background colour 0"), ("$D022", "53282", "Extra colour 1")]
    blocks = []
    for i, row in enumerate(rows):
        y = 200 + 16 * i
        for x, cell in zip((60, 160, 260), row):
            blocks.append(TextBlock(x, y, x + 6 * len(cell), y + 12, cell))
    blocks.reverse()  # column-major / reversed input must not matter
    assert layout_text(blocks, 595, 842) == "\n".join(" | ".join(r) for r in rows)


def test_table_with_wrapped_description_cells():
    blocks = [
        TextBlock(60, 100, 90, 112, "ABS"),
        TextBlock(140, 100, 400, 124, "Returns the absolute value of the\nnumber given as its argument."),
        TextBlock(60, 130, 90, 142, "ASC"),
        TextBlock(140, 130, 400, 142, "Returns the code of a character."),
    ]
    assert layout_text(blocks, 595, 842) == (
        "ABS | Returns the absolute value of the number given as its argument.\n"
        "ASC | Returns the code of a character."
    )


def test_monospace_table_in_one_text_line(tmp_path):
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((50, 60), "ADDRESS   DECIMAL   FUNCTION", fontname="cour", fontsize=10)
    page.insert_text((50, 74), "$D020     53280     BORDER COLOR", fontname="cour", fontsize=10)
    page.insert_text((50, 86), "$D021     53281     BACKGROUND 0", fontname="cour", fontsize=10)
    assert page_text(page) == (
        "ADDRESS | DECIMAL | FUNCTION\n$D020 | 53280 | BORDER COLOR\n$D021 | 53281 | BACKGROUND 0"
    )


def test_prose_column_beside_a_table_stays_whole():
    prose = [
        "The colour registers of the video chip",
        "are listed on the right. Each of them",
        "takes a value from 0 to 15 and changes",
        "the colour at once, without a delay.",
    ]
    blocks = [TextBlock(50, 100, 280, 100 + 14 * len(prose), "\n".join(prose))]
    cells = [("$D020", "Border"), ("$D021", "Background"), ("$D022", "Extra 1"), ("$D023", "Extra 2")]
    for i, (a, d) in enumerate(cells):
        y = 100 + 14 * i
        blocks += [TextBlock(320, y, 355, y + 14, a), TextBlock(380, y, 440, y + 14, d)]
    text = layout_text(blocks, 595, 842)
    assert text == "\n".join(prose) + "\n\n" + "\n".join(f"{a} | {d}" for a, d in cells)


def test_text_is_kept_exactly():
    blocks = [TextBlock(50, 50, 400, 62, "Type POKE 53280,0 : REM $D020 = black (see p. 12)!")]
    assert layout_text(blocks, 595, 842) == "Type POKE 53280,0 : REM $D020 = black (see p. 12)!"
    assert layout_text([], 595, 842) == ""
    assert layout_text([TextBlock(0, 0, 10, 10, "  \n ")], 595, 842) == ""


# --------------------------------------------------------------------------------------------
# Running heads
# --------------------------------------------------------------------------------------------


def test_strip_running_heads(tmp_path):
    doc = make_running_head_doc(4)
    doc.save(tmp_path / "heads.pdf")
    doc = pymupdf.open(tmp_path / "heads.pdf")
    pages = [blocks_from_page(p) for p in doc]
    heights = [p.rect.height for p in doc]
    assert any(HEADER in b.text for b in pages[0]) and any("Page 41" in b.text for b in pages[0])

    stripped = strip_running_heads(pages, heights)
    for n, blocks in enumerate(stripped, start=1):
        texts = [b.text for b in blocks]
        assert not any(HEADER in t or t.startswith("Page ") for t in texts)
        # Body lines with digits (and the same body line on every page) are kept.
        assert normalise(" ".join(texts)) == normalise(" ".join(body_lines(n)))


def test_strip_running_heads_needs_three_pages_and_recurrence():
    top = TextBlock(72, 20, 300, 30, "MANUAL 1")
    body = TextBlock(72, 300, 300, 312, "MANUAL 1")  # same text, but not in a band
    two = strip_running_heads([[top, body], [top, body]], [842, 842])
    assert two == [[top, body], [top, body]]
    pages = [[top, body], [TextBlock(72, 20, 300, 30, "Manual  2"), body], [body], [body]]
    out = strip_running_heads(pages, [842] * 4)
    assert out == [[body], [body], [body], [body]]
    # Recurring on only 1 of 4 pages (< min_share): kept.
    pages = [[top, body], [body], [body], [body]]
    assert strip_running_heads(pages, [842] * 4) == pages
    with pytest.raises(ValueError):
        strip_running_heads([[top]], [842, 842])


# --------------------------------------------------------------------------------------------
# Tables whose producer wrote each column as one text block (the I/O-assignment case)
# --------------------------------------------------------------------------------------------

IO_ROWS = [
    ("$DC00", "Data port A: keyboard matrix columns and joystick 2"),
    ("$DC01", "Data port B: keyboard matrix rows and joystick 1"),
    ("$DC02", "Data direction register for port A"),
    ("$DC03", "Data direction register for port B"),
    ("$DC04", "Timer A low byte, counts system clock cycles"),
    ("$DC05", "Timer A high byte, loads the latch when written"),
]


def column_block_table(tmp_path, columns: list[list[str]], xs: list[float], width: float = 300) -> pymupdf.Page:
    """One insert_textbox per COLUMN (the whole column in one block), lines on shared rows."""
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_textbox(pymupdf.Rect(50, 40, 545, 70), "CIA 1 REGISTERS", fontsize=14)
    for x, cells in zip(xs, columns):
        rect = pymupdf.Rect(x, 90, x + width, 90 + 14 * len(cells) + 20)
        assert page.insert_textbox(rect, "\n".join(cells), fontsize=10) >= 0
    page.insert_textbox(pymupdf.Rect(50, 300, 545, 340), "Writing to a timer register sets its latch.", fontsize=10)
    doc.save(tmp_path / "columns.pdf")
    return pymupdf.open(tmp_path / "columns.pdf")[0]


def test_address_column_written_as_one_block_pairs_row_by_row_with_its_descriptions(tmp_path):
    page = column_block_table(tmp_path, [[a for a, _ in IO_ROWS], [d for _, d in IO_ROWS]], [60, 130], 380)
    raw = [b.text for b in blocks_from_page(page, granularity="blocks")]
    assert "\n".join(a for a, _ in IO_ROWS) in raw  # the trap is real: the address column is one block
    text = page_text(page)
    assert "\n".join(f"{a} | {d}" for a, d in IO_ROWS) in text
    assert text.startswith("CIA 1 REGISTERS\n\n") and text.endswith("Writing to a timer register sets its latch.")


def test_three_column_blocks_with_a_wrapped_description_keep_their_rows(tmp_path):
    rows = [
        ("$D020", "53280", "Border colour"),
        ("$D021", "53281", "Background colour 0, also the colour of the text window"),
        ("", "", "in the default screen mode"),  # the description wraps onto a second line
        ("$D022", "53282", "Background colour 1 for multicolour characters"),
    ]
    page = column_block_table(tmp_path, [[r[i] for r in rows] for i in range(3)], [60, 120, 180], 360)
    lines = page_text(page).split("\n")
    assert "$D020 | 53280 | Border colour" in lines
    assert "$D021 | 53281 | Background colour 0, also the colour of the text window in the default screen mode" in lines
    assert "$D022 | 53282 | Background colour 1 for multicolour characters" in lines


def test_cells_a_few_points_apart_in_one_extractor_block_stay_separate_cells(tmp_path):
    """A producer that sets a whole row as one block with narrow cell padding: MuPDF ends a line at each cell, and
    two of its lines side by side are two cells even 8 points apart (about 0.6 line heights)."""
    rows = [("Address", "Size", "Description"), ("$0002-$00FF", "254 bytes", "Zero page work area"),
            ("$0100-$01FF", "256 bytes", "Processor stack")]
    xs = [60.0]
    for col in range(2):  # each column starts 8 pt after the widest cell of the one before
        xs.append(xs[-1] + max(pymupdf.get_text_length(r[col], fontsize=10) for r in rows) + 8)
    doc = pymupdf.open()
    page = doc.new_page()
    tw = pymupdf.TextWriter(page.rect)  # the whole table is one text object
    for i, row in enumerate(rows):
        for x, cell in zip(xs, row):
            tw.append((x, 100 + 14 * i), cell, fontsize=10)
    tw.write_text(page)
    doc.save(tmp_path / "narrow.pdf")
    page = pymupdf.open(tmp_path / "narrow.pdf")[0]
    assert page_text(page).split("\n") == [
        "Address | Size | Description", "$0002-$00FF | 254 bytes | Zero page work area",
        "$0100-$01FF | 256 bytes | Processor stack",
    ]


def test_prose_beside_a_label_column_is_not_read_as_a_table():
    """The guard the column-block case must not break: wrapped sentences (continuation lines start in lower case)
    beside short labels stay a paragraph."""
    prose = [
        "The interrupt flag register tells which",
        "source caused the last interrupt, and",
        "reading it clears every flag at once,",
        "so read it only once in the handler.",
    ]
    blocks = [TextBlock(140, 100, 400, 100 + 14 * len(prose), "\n".join(prose))]
    blocks += [TextBlock(60, 100 + 14 * i, 100, 114 + 14 * i, lab) for i, lab in enumerate(["ICR", "IRQ", "NMI", "CLR"])]
    text = layout_text(blocks, 595, 842)
    assert "\n".join(prose) in text


def test_numbered_heading_set_with_a_tab_is_one_line():
    blocks = [
        TextBlock(60, 100, 90, 114, "6.2.1."),
        TextBlock(130, 100, 220, 114, "SID mapper"),
        TextBlock(60, 130, 500, 170, "The SID mapper provides a way to map the 256 registers\nof this 16-voice SID into two regions."),
    ]
    assert layout_text(blocks, 595, 842).split("\n\n")[0] == "6.2.1. SID mapper"


def test_text_box_in_a_figure_stays_out_of_the_sentence_beside_it(tmp_path):
    sentence = [
        "The clock input of the processor is driven",
        "by the video chip, which divides the dot",
        "clock by eight for PAL and NTSC machines.",
    ]
    doc = pymupdf.open()
    page = doc.new_page()
    assert page.insert_textbox(pymupdf.Rect(50, 100, 300, 160), "\n".join(sentence), fontsize=10, lineheight=1.4) >= 0
    box = pymupdf.Rect(312, 112, 420, 148)  # a framed note inside a pin diagram, on the rows of lines 2 and 3
    page.draw_rect(box)
    assert page.insert_textbox(box + (4, 2, -4, -2), "NO SUFFIX = 1 MHz\nA = 2 MHz", fontsize=9, lineheight=1.4) >= 0
    doc.save(tmp_path / "figure.pdf")
    text = page_text(pymupdf.open(tmp_path / "figure.pdf")[0])
    assert "\n".join(sentence) in text
    assert "NO SUFFIX = 1 MHz\nA = 2 MHz" in text


def test_running_head_under_a_logo_below_the_narrow_band_is_stripped():
    """'1541 Ultimate-II / Documentation' sits at 69-99 pt on 842 pt pages (12%), at the same height on every page."""
    def page(n: int) -> list[TextBlock]:
        return [
            TextBlock(400, 69, 540, 99, "1541 Ultimate-II\nDocumentation"),
            TextBlock(60, 69 + 40 * n, 400, 81 + 40 * n, f"Body line {n} at a height that moves from page to page."),
            TextBlock(60, 300, 400, 312, "A paragraph at the same height on every page, in the body."),
        ]
    pages = [page(n) for n in range(1, 5)]
    out = strip_running_heads(pages, [842.0] * 4)
    assert all(not any("Documentation" in b.text for b in blocks) for blocks in out)
    assert [len(blocks) for blocks in out] == [2, 2, 2, 2]  # the body, even where it repeats, stays


def test_body_lines_that_differ_only_in_digits_at_a_fixed_height_are_not_running_heads():
    pages = [[TextBlock(50, 60, 450, 72, f"Section {n}. POKE 53280,{n} changes the border.")] for n in range(4)]
    assert strip_running_heads(pages, [684.0] * 4) == pages


def test_last_table_row_set_as_one_line_splits_at_the_column_start(tmp_path):
    """Ultimate DOS page 4: 'FA_CREATE_ALWAYS $08' is one extractor line, its value three spaces after the name but
    exactly where the values above start."""
    rows = [("Attribute", "Value"), ("FA_READ", "$01"), ("FA_WRITE", "$02"), ("FA_CREATE_NEW", "$04")]
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((50, 60), "The following table shows which flags are applicable:", fontsize=10)
    for i, (name, value) in enumerate(rows):
        page.insert_text((63, 100 + 14 * i), name, fontsize=10)
        page.insert_text((175, 100 + 14 * i), value, fontsize=10)
    last = "FA_CREATE_ALWAYS   "  # three spaces (8 pt): one string, so one extractor line
    page.insert_text((175 - pymupdf.get_text_length(last, fontsize=10), 100 + 14 * len(rows)), last + "$08", fontsize=10)
    doc.save(tmp_path / "dos.pdf")
    text = page_text(pymupdf.open(tmp_path / "dos.pdf")[0])
    assert "FA_CREATE_NEW | $04\nFA_CREATE_ALWAYS | $08" in text


def test_wrapped_first_header_cell_stays_in_its_cell():
    """'Address (hex)' wraps inside its header cell; the second line is not a row of its own."""
    blocks = [
        TextBlock(64, 128, 105, 156, "Address\n(hex)", ((128, 142), (142, 156))),
        TextBlock(138, 128, 176, 142, "Decimal"),
        TextBlock(205, 128, 260, 142, "Description"),
    ]
    for i, (a, d, text) in enumerate([("$D020", "53280", "Border colour"), ("$D021", "53281", "Background colour")]):
        y = 160 + 14 * i
        blocks += [TextBlock(64, y, 95, y + 14, a), TextBlock(138, y, 165, y + 14, d), TextBlock(205, y, 300, y + 14, text)]
    assert layout_text(blocks, 504, 684) == (
        "Address (hex) | Decimal | Description\n$D020 | 53280 | Border colour\n$D021 | 53281 | Background colour"
    )


def _cell_blocks(rows: list[tuple[float, list[tuple[float, str]]]], h: float = 10.0) -> list[TextBlock]:
    """One block per cell (as OCR gives them): (top, [(x, text), ...]) per line, 5 points a character."""
    return [TextBlock(x, top, x + 5 * len(t), top + h, t) for top, cells in rows for x, t in cells]


def test_a_wrapped_header_row_of_separate_cell_blocks_joins_the_row_above():
    """"Address | Name/" over "(hex) | Bits", one line apart, while the table's rows are padded further apart: the
    wrapped line belongs to the header's cells (first column included), the data rows stay rows."""
    columns = (50, 110, 170, 230)
    lines = [(100, list(zip(columns, ("Address", "Decimal", "Name/", "Description")))),
             (111, [(50, "(hex)"), (170, "Bits")])]
    for k, (addr, dec, name) in enumerate((("$D400", "54272", "FRELO1"), ("$D401", "54273", "FREHI1"),
                                           ("$D402", "54274", "PWLO1"), ("$D403", "54275", "PWHI1"))):
        lines.append((128 + 17 * k, list(zip(columns, (addr, dec, name, f"Voice 1 register {k}")))))
    text = layout_text(_cell_blocks(lines), 595, 842).splitlines()
    assert "Address (hex) | Decimal | Name/Bits | Description" in text, text
    assert "$D400 | 54272 | FRELO1 | Voice 1 register 0" in text, text
    assert "$D403 | 54275 | PWHI1 | Voice 1 register 3" in text, text


def test_rows_of_a_tight_table_with_a_short_row_are_not_taken_for_wrapped_lines():
    """Rows set as close as the lines of a cell: a row with fewer cells is still a row of its own."""
    columns = (50, 100, 150, 200)
    lines = [(100 + 12 * k, list(zip(columns, cells))) for k, cells in enumerate((
        ("3", "7", "Y", "G"), ("4", "9", "I", "J"), ("5", "+", "P"), ("6", "*", ";", "="), ("7", "1", "Q", "2")))]
    text = layout_text(_cell_blocks(lines), 595, 842).splitlines()
    assert "5 | + | P" in text and "4 | 9 | I | J" in text and "6 | * | ; | =" in text, text


def test_a_cell_wrapped_after_a_slash_reads_as_one_word():
    columns = (50, 110, 170)
    lines = [(100, list(zip(columns, ("Key", "Name/", "Code")))), (111, [(110, "Bits")])]
    for k, (key, name, code) in enumerate((("A", "RUN/", "3"), ("B", "DEL", "4"), ("C", "HOME", "5"))):
        lines.append((128 + 17 * k, list(zip(columns, (key, name, code)))))
    lines.append((139, [(110, "STOP")]))
    text = layout_text(_cell_blocks(lines), 595, 842).splitlines()
    assert "Key | Name/Bits | Code" in text and "A | RUN/STOP | 3" in text, text
