"""Broken and hostile source files, made on the fly for tests."""

from __future__ import annotations

from pathlib import Path

import pymupdf


def good_pdf(path: Path, pages: list[str]) -> Path:
    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page(width=595, height=842)
        page.insert_textbox(pymupdf.Rect(60, 80, 535, 780), text, fontsize=11, fontname="helv")
    doc.save(path)
    doc.close()
    return path


def make_bad_inputs(folder: Path) -> dict[str, str]:
    """Write one file per kind of bad input; return file name -> words its error must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero_bytes.pdf").write_bytes(b"")
    (folder / "not_really.pdf").write_bytes(b"<html><body>This is a web page saved with a .pdf name</body></html>")
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 40)
    whole = good_pdf(folder / "whole.tmp", ["The border colour register is at $D020 (53280)."] * 3).read_bytes()
    (folder / "whole.tmp").unlink()
    (folder / "truncated.pdf").write_bytes(whole[: len(whole) // 3])
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "secret C64 notes: $D021 is the background colour")
    doc.save(folder / "encrypted.pdf", encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="owner", user_pw="user")
    doc.close()
    doc = pymupdf.open()
    for _ in range(3):
        doc.new_page()
    doc.save(folder / "blank.pdf")
    doc.close()
    return {
        "zero_bytes.pdf": "empty file",
        "not_really.pdf": "not a PDF",
        "corrupt.pdf": "PDF",
        "truncated.pdf": "",
        "encrypted.pdf": "encrypted",
        "blank.pdf": "blank",
    }


def hostile_pdf(path: Path) -> Path:
    """A PDF that tries its luck: a JavaScript open action and a 200 x 200 inch image-only page (a naive OCR
    render at 300 dpi would need gigabytes), followed by one ordinary page."""
    doc = pymupdf.open()
    huge = doc.new_page(width=14400, height=14400)
    pix = pymupdf.Pixmap(pymupdf.csGRAY, pymupdf.IRect(0, 0, 64, 64), False)
    pix.clear_with(255)
    huge.insert_image(huge.rect, pixmap=pix)
    doc.new_page().insert_text((72, 72), "CHROUT at $FFD2 prints the character in the accumulator.")
    doc.set_metadata({"title": "hostile"})
    doc.save(path)
    doc.close()
    doc = pymupdf.open(path)
    doc.xref_set_key(doc.pdf_catalog(), "OpenAction", "<</S/JavaScript/JS(app.alert\\('hi'\\))>>")
    doc.saveIncr()
    doc.close()
    return path
