"""Table cells that OCR misread, read again with the alphabet their column proves.

Tesseract reads narrow table cells of a scan badly: "44" as "Ad", "77" as "thf", "2" as "Z", "7" as "y:", where the
full-page reading has only the cell's few pixels and the English language model to go by. The cell's column
knows better: when most of the other cells of its column (cells of nearby table rows that share its horizontal
span) are numbers, or hex addresses, the misread cell is a number too. ``reread_cells`` finds such cells (a cell
that does not fit the form its column's other cells have) and OCRs their crops of the page image again, as single
lines (``--psm 7``) with Tesseract restricted to the column's alphabet (digits, or hex digits and "$", plus the
punctuation the column's cells use, such as "+" and "*" in a cycle count "4+"). Without the ``tesseract``
program, or when it fails, the first reading stays (with a warning). A re-read is kept only when it fits
the column's form and has at least half as many characters as the first reading (a header word over a number
column, "(Hz)", is not a "2"); otherwise the first reading stays.

All re-read cells of a page go to Tesseract in one run per alphabet: their crops are stacked into one image, one
crop a line, and the lines of Tesseract's TSV output are matched back to the crops by position. The Tesseract
command-line program is used (``tesseract``): PyMuPDF's built-in OCR offers neither a page segmentation mode nor a
character whitelist.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
import numpy as np

from c64_pipeline.ingest.layout import TextBlock, single_line_rows

__all__ = ["column_form", "reread_cells", "suspect_cells", "tesseract_lines"]

# The forms a column's cells can have, each with the alphabet a re-read of the column is restricted to (the
# punctuation its well-read cells use is added to it).
FORMS: dict[str, tuple[re.Pattern[str], str]] = {
    "number": (re.compile(r"^\d+(?:[.,-]\d+)?[+*]?$"), "0123456789"),  # 12, 4+, 2*, 1.5, 0-3
    "hex": (re.compile(r"^\$[0-9A-F]{2,4}$"), "$0123456789ABCDEF"),
}
FORM_SHARE = 0.6  # this share of a column's other cells must have one form for the column to have it
FORM_MIN_CELLS = 3  # ... and at least this many
COLUMN_ROWS = 8  # rows above and below a cell whose cells can be its column
COLUMN_MAX_GAP = 3.0  # row heights: a wider gap between two rows ends the table (another table may follow)
COLUMN_OVERLAP = 0.5  # share of the narrower cell's width two cells of one column share
PAD = 0.25  # row heights of page image kept around a cell's crop
TESSERACT_TIMEOUT_S = 60


def column_form(cells: list[str]) -> tuple[str, str] | None:
    """(form name, alphabet) that at least FORM_SHARE of these cells (the column) have, or None."""
    if len(cells) < FORM_MIN_CELLS:
        return None
    for name, (pattern, alphabet) in FORMS.items():
        fitting = [c for c in cells if pattern.match(c)]
        if len(fitting) >= FORM_MIN_CELLS and len(fitting) >= FORM_SHARE * len(cells):
            extra = sorted({ch for c in fitting for ch in c} - set(alphabet) - set("0123456789"))
            return name, alphabet + "".join(extra)
    return None


def _rows(blocks: list[TextBlock]) -> list[list[int]]:
    """Indices of single-line blocks grouped into rows (vertical overlap), top to bottom, each left to right."""
    rows = single_line_rows(blocks, recent=3)
    for row in rows:
        row.sort(key=lambda i: blocks[i].x0)
    return rows


def suspect_cells(blocks: list[TextBlock]) -> dict[int, tuple[str, str]]:
    """{block index: (form, alphabet)} of the table cells whose column has a form they lack."""
    rows = [r for r in _rows(blocks) if len(r) > 1]  # table rows only
    out: dict[int, tuple[str, str]] = {}
    for k, row in enumerate(rows):
        near: list[list[int]] = []
        for step in (-1, 1):  # the rows of the same table around this one
            j, prev = k + step, row
            while 0 <= j < len(rows) and abs(j - k) <= COLUMN_ROWS:
                a, b = blocks[prev[0]], blocks[rows[j][0]]
                gap = max(a.y0, b.y0) - min(a.y1, b.y1)
                if gap > COLUMN_MAX_GAP * max(a.height, b.height):
                    break
                near.append(rows[j])
                prev, j = rows[j], j + step
        for i in row:
            cell = blocks[i]
            column = []
            for other in near:
                for m in other:
                    o = blocks[m]
                    narrow = min(cell.width, o.width)
                    if narrow > 0 and min(cell.x1, o.x1) - max(cell.x0, o.x0) >= COLUMN_OVERLAP * narrow:
                        column.append(o.text.strip())
            form = column_form(column)
            if form and not FORMS[form[0]][0].match(cell.text.strip()):
                out[i] = form
    return out


def tesseract_lines(crops: list[np.ndarray], alphabet: str, language: str = "eng",
                    tessdata: str | None = None) -> list[str]:
    """Each crop (gray uint8 image of one line) read by the Tesseract CLI as a single line restricted to
    ``alphabet``; all crops in one run, stacked one a line with paper between them. '' where nothing was read."""
    from PIL import Image

    exe = shutil.which("tesseract")
    if exe is None:
        raise RuntimeError("the tesseract program is not on PATH (apt-get install tesseract-ocr)")
    if not crops:
        return []
    gap = max(c.shape[0] for c in crops)
    width = max(c.shape[1] for c in crops) + 2 * gap
    height = sum(c.shape[0] + gap for c in crops) + gap
    sheet = np.full((height, width), 255, dtype=np.uint8)
    spans = []
    y = gap
    for c in crops:
        sheet[y : y + c.shape[0], gap : gap + c.shape[1]] = c
        spans.append((y, y + c.shape[0]))
        y += c.shape[0] + gap
    png = _png(Image.fromarray(sheet))
    cmd = [exe, "stdin", "stdout", "-l", language, "--psm", "6", "-c", f"tessedit_char_whitelist={alphabet}"]
    if tessdata:
        cmd[3:3] = ["--tessdata-dir", tessdata]
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    done = subprocess.run(cmd + ["tsv"], input=png, capture_output=True, timeout=TESSERACT_TIMEOUT_S, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"tesseract failed ({done.returncode}): {done.stderr.decode(errors='replace')[-300:]}")
    words: list[list[tuple[int, str]]] = [[] for _ in crops]
    for line in done.stdout.decode("utf-8", errors="replace").splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) < 12 or parts[0] != "5" or not parts[11].strip():
            continue
        left, top, h = int(parts[6]), int(parts[7]), int(parts[9])
        middle = top + h / 2
        for n, (a, b) in enumerate(spans):
            if a - gap / 2 <= middle < b + gap / 2:
                words[n].append((left, parts[11].strip()))
                break
    return [" ".join(t for _, t in sorted(ws)) for ws in words]


def _png(image) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _reread_block(block: TextBlock, text: str) -> TextBlock:
    from c64_pipeline.ingest.ocr import OcrBlock

    return OcrBlock(block.x0, block.y0, block.x1, block.y1, text, block.line_spans, getattr(block, "repairs", 0), 1)


def reread_cells(blocks: list[TextBlock], gray: np.ndarray, scale: float, origin: tuple[float, float] = (0.0, 0.0),
                 language: str = "eng", tessdata: str | None = None) -> tuple[list[TextBlock], int]:
    """``blocks`` with the suspect cells (``suspect_cells``) re-read from ``gray``, the page image the blocks were
    read from (``scale`` pixels per point, page point ``origin`` at pixel 0,0); and how many cells changed."""
    suspects = suspect_cells(blocks)
    if not suspects:
        return blocks, 0
    if shutil.which("tesseract") is None:  # PyMuPDF's OCR needs only the language data; the re-read, the program
        _warn_once("the tesseract program is not on PATH: table cells are not re-read (apt-get install tesseract-ocr)")
        return blocks, 0
    by_alphabet: dict[str, list[int]] = {}
    for i, (_, alphabet) in suspects.items():
        by_alphabet.setdefault(alphabet, []).append(i)
    out = list(blocks)
    changed = 0
    for alphabet, indices in by_alphabet.items():
        crops = []
        for i in indices:
            b = blocks[i]
            pad = PAD * b.height
            x0 = max(0, int((b.x0 - origin[0] - pad) * scale))
            x1 = min(gray.shape[1], int((b.x1 - origin[0] + pad) * scale) + 1)
            y0 = max(0, int((b.y0 - origin[1] - pad) * scale))
            y1 = min(gray.shape[0], int((b.y1 - origin[1] + pad) * scale) + 1)
            crops.append(gray[y0:y1, x0:x1])
        try:
            texts = tesseract_lines(crops, alphabet, language, tessdata)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:  # the first reading stays
            _warn_once(f"table cells not re-read: {exc}")
            continue
        for i, text in zip(indices, texts):
            form = suspects[i][0]
            text = text.replace(" ", "") if form == "hex" else text
            first = blocks[i].text.replace(" ", "")
            if FORMS[form][0].match(text) and text != blocks[i].text and 2 * len(text) >= len(first):
                out[i] = _reread_block(blocks[i], text)
                changed += 1
    return out, changed
