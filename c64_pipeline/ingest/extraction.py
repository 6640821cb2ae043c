"""Page text of one source document: the PDF text layer in reading order, OCR only where a page needs it.

Plain module (no Dagster): `extract_document` is what the `page_text` asset runs for each partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pymupdf

from c64_pipeline.ingest.documents import DocumentRejected, check_text_size, open_pdf
from c64_pipeline.ingest.layout import TextBlock, blocks_from_page, layout_text, strip_running_heads
from c64_pipeline.ingest.readability import readability
from c64_pipeline.ingest.text_sources import read_text_pages
from c64_pipeline.records import Record

# Flagged pages (still poor after OCR) scoring below this are left out of the DAPT chunks; flagged pages at or above
# it are kept, and listed in the validation report with their flag. 0.3 is gibberish: a page with a few real words.
DAPT_MIN_PAGE_QUALITY = 0.3


@dataclass(frozen=True)
class ExtractionSettings:
    """How page text is obtained: the one definition of these settings and their defaults (the `page_reader`
    resource takes its fields and defaults from here)."""

    min_chars: int = 40  # fewer characters than this and the page is a candidate for OCR
    min_quality: float = 0.6  # text-layer quality below this is garbage (OCR'd); any page below it after OCR is flagged
    image_share_for_ocr: float = 0.3  # a near-empty page with this much image area is a scan
    ocr_engine: str = "tesseract"  # "tesseract" (fastest and most accurate here, see README) or "easyocr"
    ocr_options: dict = field(default_factory=dict)  # the engine's own options (e.g. dpi); unset ones keep its defaults
    ocr_workers: int = 2  # OCR worker processes, one pool for the pages of every document being read
    header_band: float = 0.08  # running heads/feet: lines in this top/bottom share of the page height ...
    header_min_share: float = 0.5  # ... repeated on at least this share of the pages are left out


@dataclass(frozen=True)
class PageText(Record):
    doc_id: str
    page: int  # 1-based
    text: str
    method: str  # "text_layer", "ocr" or "none"
    quality: float
    ocr_reason: str | None
    chars: int
    flag: str | None = None  # why the page's text is still poor after OCR (low quality), or None
    ocr_repairs: int = 0  # hex tokens the OCR step repaired on this page (c64_pipeline.ingest.hex_repair)

    @property
    def has_text(self) -> bool:
        return self.method != "none"

    def as_dict(self) -> dict:
        return self.to_dict()


def as_page(page: PageText | Mapping) -> PageText:
    """`page` as a `PageText`: a record as it is; a dict with doc_id, page and text (a hand-written page, as tests and
    notebooks give) read as a text-layer page unless it says its method, quality and length."""
    if isinstance(page, PageText):
        return page
    text = page["text"]
    return PageText(page["doc_id"], page["page"], text, page.get("method", "text_layer"), page.get("quality", 1.0),
                    page.get("ocr_reason"), page.get("chars", len(text)), page.get("flag"), page.get("ocr_repairs", 0))


@dataclass(frozen=True)
class DocumentText(Record):
    """What reading one document gave (the `page_text` asset's value per partition): its pages, or the reason it
    could not be read (`error`, with no pages)."""

    doc_id: str
    file_name: str
    error: str | None = None
    pages: tuple[PageText, ...] = ()

    @property
    def accepted(self) -> bool:
        """Read, with at least one page (a page may still have no text)."""
        return not self.error and bool(self.pages)

    @property
    def chars(self) -> int:
        return sum(p.chars for p in self.pages)

    @property
    def text(self) -> str:
        """The text of the pages that have some, one page a line apart."""
        return "\n".join(p.text for p in self.pages if p.has_text)

    @classmethod
    def from_dict(cls, data: Mapping) -> DocumentText:
        return cls(data["doc_id"], data["file_name"], data.get("error"),
                   tuple(PageText.from_dict(p) for p in data.get("pages", ())))


@dataclass(frozen=True)
class PageSignals:
    chars: int
    quality: float
    image_share: float
    invisible_share: float


def text_quality(text: str) -> float:
    """0..1: how much of the text a reader of technical English would accept (words of the vocabulary, numbers,
    addresses, register names, plausible unknown words), discounted by stray symbols, control and replacement
    characters. Linear in the length of the text. See `c64_pipeline.ingest.readability`."""
    return readability(text)


def quality_flag(method: str, quality: float, settings: ExtractionSettings) -> str | None:
    """Why a page's text is still poor after OCR (quality below `min_quality`), or None. Text-layer pages that
    scored this low went to OCR, so a flagged page is an OCR result, or a text file, that nothing better exists for."""
    if method == "none" or quality >= settings.min_quality:
        return None
    return f"low quality after OCR ({quality:.2f})" if method == "ocr" else f"low quality text ({quality:.2f})"


def dapt_pages(pages: Iterable[PageText], min_quality: float = DAPT_MIN_PAGE_QUALITY) -> tuple[list[tuple[int, str]], list[int]]:
    """(page number, text) of the pages that go into DAPT, and the numbers of flagged pages left out (quality below
    `min_quality`). Pages without text are neither."""
    kept, left_out = [], []
    for p in pages:
        if not p.has_text:
            continue
        if p.flag and p.quality < min_quality:
            left_out.append(p.page)
        else:
            kept.append((p.page, p.text))
    return kept, left_out


def _image_share(page: pymupdf.Page) -> float:
    area = abs(page.rect) or 1.0
    covered = 0.0
    for info in page.get_image_info():
        rect = pymupdf.Rect(info["bbox"]) & page.rect
        covered += abs(rect)
    return min(1.0, covered / area)


def _invisible_share(page: pymupdf.Page) -> float:
    """Share of characters drawn invisibly (render mode 3): an OCR layer someone already added."""
    total = invisible = 0
    for span in page.get_texttrace():
        n = len(span["chars"])
        total += n
        if span["type"] == 3:
            invisible += n
    return invisible / total if total else 0.0


def page_signals(page: pymupdf.Page, text: str, settings: ExtractionSettings) -> PageSignals:
    """Signals for the OCR decision. Image and invisible-text shares cost more than reading the text, so they are
    measured only on pages whose text layer is short or poor (the only pages where they change the decision)."""
    chars, quality = len(text.strip()), text_quality(text)
    suspicious = chars < settings.min_chars or quality < settings.min_quality
    image_share = round(_image_share(page), 4) if suspicious else 0.0
    invisible_share = round(_invisible_share(page), 4) if suspicious and chars else 0.0
    return PageSignals(chars=chars, quality=quality, image_share=image_share, invisible_share=invisible_share)


def ocr_reason(signals: PageSignals, settings: ExtractionSettings) -> str | None:
    """Why a page must be OCR'd, or None when its text layer is good enough."""
    if signals.chars == 0:
        return "no text layer" if signals.image_share > 0 else None
    if signals.quality < settings.min_quality:
        layer = "existing OCR layer (invisible text)" if signals.invisible_share > 0.5 else "text layer"
        return f"garbage {layer} (quality {signals.quality:.2f})"
    if signals.chars < settings.min_chars and signals.image_share >= settings.image_share_for_ocr:
        return f"text layer has {signals.chars} characters on a page that is {signals.image_share:.0%} image"
    return None


@dataclass
class PdfTextLayer:
    """The text layer of one PDF read page by page, and which pages still need OCR (``read_text_layer``)."""

    doc_id: str
    path: Path
    sizes: list[tuple[float, float]]
    blocks: list[list[TextBlock]]
    reasons: list[str | None]
    qualities: list[float]  # each page's text-layer quality, as the OCR decision judged it

    @property
    def to_ocr(self) -> list[int]:
        return [i for i, reason in enumerate(self.reasons) if reason]


def read_text_layer(doc_id: str, path: Path, settings: ExtractionSettings) -> PdfTextLayer:
    """First half of ``extract_pdf``: text-layer blocks of every page and the pages to OCR (no OCR yet)."""
    with open_pdf(path) as doc:
        sizes: list[tuple[float, float]] = []
        page_blocks: list[list[TextBlock]] = []
        reasons: list[str | None] = []
        qualities: list[float] = []
        for page in doc:  # each page loaded once: its size, blocks and signals together
            rect = page.rect
            sizes.append((rect.width, rect.height))
            try:
                blocks = blocks_from_page(page)
            except Exception as exc:
                raise DocumentRejected(f"{path.name}: page {page.number + 1} cannot be read ({exc})") from exc
            raw = "\n".join(block.text for block in blocks)
            sig = page_signals(page, raw, settings)
            page_blocks.append(blocks)
            reasons.append(ocr_reason(sig, settings))
            qualities.append(sig.quality)
    return PdfTextLayer(doc_id, path, sizes, page_blocks, reasons, qualities)


def finish_pdf(
    layer: PdfTextLayer, ocr_blocks: dict[int, list[TextBlock]], settings: ExtractionSettings, *, ocr: bool = True
) -> list[PageText]:
    """Second half of ``extract_pdf``: OCR blocks in place of the pages that needed them (unless ``ocr=False``,
    which keeps their text layer), running heads stripped, reading order, one ``PageText`` per page."""
    from c64_pipeline.ingest.ocr import ocr_repairs  # light: the engines' heavy libraries are imported lazily

    page_blocks = list(layer.blocks)
    repairs = [0] * len(page_blocks)
    ocred = set(layer.to_ocr) if ocr else set()
    for i in ocred:
        page_blocks[i] = ocr_blocks.get(i, [])
        repairs[i] = ocr_repairs(page_blocks[i])
    cleaned = strip_running_heads(
        page_blocks, [h for _, h in layer.sizes], band=settings.header_band, min_share=settings.header_min_share
    )
    pages: list[PageText] = []
    for i, blocks in enumerate(cleaned):
        width, height = layer.sizes[i]
        text = layout_text(blocks, width, height)
        # a text-layer page keeps the quality its layer was judged by (same words; scoring it again costs ~10% of
        # the extraction time); an OCR'd page is scored on what OCR read
        quality = text_quality(text) if i in ocred else layer.qualities[i]
        usable = bool(text.strip())
        reason = layer.reasons[i]
        method = ("ocr" if i in ocred else "text_layer") if usable else "none"
        flag = quality_flag(method, quality, settings)
        pages.append(
            PageText(layer.doc_id, i + 1, text, method, quality, reason, len(text.strip()), flag, repairs[i])
        )
    return pages


def extract_pdf(doc_id: str, path: Path, settings: ExtractionSettings, *, ocr: bool = True) -> list[PageText]:
    """Page texts of a PDF. ``ocr=False`` keeps the text layer of pages that would be OCR'd (benchmarks, quick checks);
    their ``ocr_reason`` still says why they would be."""
    layer = read_text_layer(doc_id, path, settings)
    ocr_blocks: dict[int, list[TextBlock]] = {}
    if ocr and layer.to_ocr:
        from c64_pipeline.ingest.ocr import ocr_pages  # imported here: OCR engines pull in heavy libraries

        ocr_blocks = ocr_pages(
            path, layer.to_ocr, settings.ocr_engine, dict(settings.ocr_options), settings.ocr_workers
        )
    return finish_pdf(layer, ocr_blocks, settings, ocr=ocr)


def extract_pdfs(
    documents: list[tuple[str, Path]], settings: ExtractionSettings
) -> dict[str, list[PageText] | DocumentRejected]:
    """``extract_pdf`` for several PDFs, with the pages that need OCR of all of them in one worker pool
    (``ocr.ocr_many``: ``settings.ocr_workers`` stay busy even when each document has one scanned page).

    One document's failure (unreadable, or OCR failing on one of its pages) is that document's
    ``DocumentRejected`` in the result; the other documents are unaffected.
    """
    out: dict[str, list[PageText] | DocumentRejected] = {}
    layers: list[PdfTextLayer] = []
    for doc_id, path in documents:
        try:
            layers.append(read_text_layer(doc_id, Path(path), settings))
        except DocumentRejected as exc:
            out[doc_id] = exc
    jobs = [(layer.path, layer.to_ocr) for layer in layers if layer.to_ocr]
    ocr: dict = {}
    if jobs:
        from c64_pipeline.ingest.ocr import ocr_many

        ocr = ocr_many(jobs, settings.ocr_engine, dict(settings.ocr_options), settings.ocr_workers, errors="collect")
    for layer in layers:
        pages = ocr.get(layer.path, {})
        failed = next((r for r in pages.values() if isinstance(r, Exception)), None)
        if failed is not None:
            out[layer.doc_id] = DocumentRejected(f"{layer.path.name}: {failed}")
            continue
        result = finish_pdf(layer, pages, settings)
        if not any(page.method != "none" for page in result):
            out[layer.doc_id] = DocumentRejected(
                f"{layer.path.name}: blank document (no text on any of its {len(result)} pages, OCR included)"
            )
        else:
            out[layer.doc_id] = result
    return {doc_id: out[doc_id] for doc_id, _ in documents if doc_id in out}


def extract_text_document(doc_id: str, path: Path, kind: str, settings: ExtractionSettings | None = None) -> list[PageText]:
    settings = settings or ExtractionSettings()
    check_text_size(path, path.stat().st_size)  # again: the file may have grown since it was inspected
    pages = []
    for i, text in enumerate(read_text_pages(path, kind)):
        text = text.strip("\n")
        method = "text_layer" if text.strip() else "none"
        quality = text_quality(text)
        flag = quality_flag(method, quality, settings)
        pages.append(PageText(doc_id, i + 1, text, method, quality, None, len(text.strip()), flag))
    return pages


def extract_document(doc_id: str, path: Path, kind: str, settings: ExtractionSettings) -> list[PageText]:
    """All pages of one document. Raises DocumentRejected (naming the file) when it cannot be read or holds no text."""
    pages = extract_pdf(doc_id, path, settings) if kind == "pdf" else extract_text_document(doc_id, path, kind, settings)
    if not any(page.method != "none" for page in pages):
        raise DocumentRejected(f"{path.name}: blank document (no text on any of its {len(pages)} pages, OCR included)")
    return pages
