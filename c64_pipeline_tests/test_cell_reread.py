"""Table cells misread by OCR, read again with their column's alphabet (c64_pipeline.ingest.cell_reread)."""

from __future__ import annotations

import shutil

import numpy as np
import pymupdf
import pytest

from c64_pipeline.ingest.cell_reread import column_form, reread_cells, suspect_cells
from c64_pipeline.ingest.layout import TextBlock, layout_text
from c64_pipeline.ingest.ocr import ocr_rereads, repair_blocks

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs the tesseract program")

ROWS = [("Mode", "Opcode", "Decimal", "Cycles"), ("Zero page", "$24", "36", "3"), ("Absolute", "$2C", "44", "4"),
        ("Immediate", "$A9", "169", "2"), ("Indirect,Y", "$B1", "177", "5+"), ("Absolute,X", "$BD", "189", "4+"),
        ("Zero page,X", "$B5", "181", "4")]
COLUMNS = (50, 150, 220, 290)
DPI = 300


def _table_page():
    """(gray page image at DPI, one block per cell with its real box): a small instruction table."""
    doc = pymupdf.open()
    page = doc.new_page(width=400, height=300)
    for n, row in enumerate(ROWS):
        for x, cell in zip(COLUMNS, row):
            page.insert_text((x, 60 + 18 * n), cell, fontsize=10, fontname="helv")
    pix = page.get_pixmap(dpi=DPI, colorspace=pymupdf.csGRAY, alpha=False)
    gray = np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.stride)[:, : pix.width].copy()
    blocks = []
    for n, row in enumerate(ROWS):
        for x, cell in zip(COLUMNS, row):
            width = pymupdf.get_text_length(cell, fontname="helv", fontsize=10)
            blocks.append(TextBlock(x, 60 + 18 * n - 9, x + width, 60 + 18 * n + 3, cell))
    return gray, blocks


@needs_tesseract
def test_misread_cells_of_number_and_hex_columns_are_read_again_with_their_alphabet():
    gray, blocks = _table_page()
    misread = {"44": "Ad", "177": "Ld,", "5+": "Oe", "$A9": "SAQ"}  # what Tesseract made of such cells on scans
    read = [TextBlock(b.x0, b.y0, b.x1, b.y1, misread.get(b.text, b.text)) for b in blocks]
    fixed, count = reread_cells(read, gray, DPI / 72.0)
    assert [b.text for b in fixed] == [b.text for b in blocks]
    assert count == len(misread)
    out = repair_blocks(fixed)
    assert ocr_rereads(out) == len(misread) and sum(b.rereads for b in out if b.text in misread) == len(misread)
    assert "Absolute | $2C | 44 | 4" in layout_text(out, 400, 300).splitlines()


@needs_tesseract
def test_a_header_word_over_a_number_column_is_not_replaced_by_digits():
    """The header is a cell that does not fit its column's form; a digits-only re-read of it is too short to be
    what the crop holds, so the first reading stays."""
    gray, blocks = _table_page()
    fixed, count = reread_cells(blocks, gray, DPI / 72.0)
    assert [b.text for b in fixed] == [b.text for b in blocks] and count == 0


def test_only_cells_that_lack_the_form_of_their_column_are_suspect():
    _, blocks = _table_page()
    suspects = suspect_cells(blocks)
    # the headers of the three number/hex columns; the mode column (words) has no form
    assert sorted(blocks[i].text for i in suspects) == ["Cycles", "Decimal", "Opcode"]
    assert suspects[[b.text for b in blocks].index("Cycles")][1] == "0123456789+"  # digits and the column's "+"
    prose = [TextBlock(50, 60 + 18 * n, 300, 72 + 18 * n, "Ad 44 words") for n in range(5)]
    assert suspect_cells(prose) == {}  # single blocks on their rows: not a table


@pytest.mark.parametrize("cells, form", [
    (["3", "4", "2", "5+", "4+", "Ad"], "number"),
    (["0-3", "4-7", "1.5", "12", "x"], "number"),
    (["$24", "$2C", "$A9", "SBl"], "hex"),
    (["Zero page", "Absolute", "3", "4"], None),
    (["3", "4"], None),  # too few cells to prove a form
])
def test_column_form_needs_most_cells_of_one_form(cells, form):
    got = column_form(cells)
    assert (got[0] if got else None) == form


def test_without_the_tesseract_program_the_first_reading_stays(monkeypatch):
    import c64_pipeline.ingest.cell_reread as cell_reread

    gray, blocks = _table_page()
    read = [TextBlock(b.x0, b.y0, b.x1, b.y1, "Ad" if b.text == "44" else b.text) for b in blocks]
    monkeypatch.setattr(cell_reread.shutil, "which", lambda name: None)
    monkeypatch.setattr(cell_reread, "_WARNED", set())
    with pytest.warns(RuntimeWarning, match="tesseract program"):
        fixed, count = reread_cells(read, gray, DPI / 72.0)
    assert fixed == read and count == 0
