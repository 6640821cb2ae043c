"""Page text of one source document: the PDF text layer in reading order, OCR only where a page needs it.

Plain module (no Dagster): `extract_document` is what the `page_text` asset runs for each partition.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pymupdf

from c64_pipeline.documents import DocumentRejected, check_text_size, open_pdf
from c64_pipeline.layout import TextBlock, blocks_from_page, layout_text, strip_running_heads
from c64_pipeline.text_sources import read_text_pages

_TOKEN = re.compile(r"\S+")
# A token that reads as language or as a technical symbol: a word with a vowel, an acronym/mnemonic,
# a number or address ($D020, #$0F, 53280, 0-3), or punctuation around those.
_PLAUSIBLE = re.compile(
    r"""^[("'\[]*(
        [A-Za-z]*[AEIOUYaeiouy][A-Za-z'\-]*   # word with a vowel
      | [A-Z0-9]{1,8}                          # acronym, mnemonic, register name
      | [#$%]*\$?[0-9A-Fa-f]+([.,:\-/][0-9A-Fa-f]+)*  # numbers, hex, ranges
      | [^\w\s]{1,3}                           # a lone punctuation mark or bullet
    )[)"'\].,;:!?]*$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class ExtractionSettings:
    min_chars: int = 40  # fewer characters than this and the page is a candidate for OCR
    min_quality: float = 0.6  # text-layer quality below this is treated as garbage
    image_share_for_ocr: float = 0.3  # a near-empty page with this much image area is a scan
    ocr_engine: str = "tesseract"
    ocr_options: dict = field(default_factory=dict)
    ocr_workers: int = 1
    header_band: float = 0.08
    header_min_share: float = 0.5


@dataclass(frozen=True)
class PageText:
    doc_id: str
    page: int  # 1-based
    text: str
    method: str  # "text_layer", "ocr" or "none"
    quality: float
    ocr_reason: str | None
    chars: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PageSignals:
    chars: int
    quality: float
    image_share: float
    invisible_share: float


def text_quality(text: str) -> float:
    """0..1: share of plausible tokens, discounted by replacement and control characters."""
    stripped = text.strip()
    if not stripped:
        return 0.0
    bad = sum(
        1
        for ch in stripped
        if ch == "\ufffd" or (unicodedata.category(ch) in ("Cc", "Co", "Cs") and ch not in "\n\t")
    )
    tokens = _TOKEN.findall(stripped)
    plausible = sum(1 for tok in tokens if _PLAUSIBLE.match(tok))
    token_share = plausible / len(tokens) if tokens else 0.0
    return round(max(0.0, 1.0 - 5.0 * bad / len(stripped)) * token_share, 4)


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


def extract_pdf(doc_id: str, path: Path, settings: ExtractionSettings) -> list[PageText]:
    with open_pdf(path) as doc:
        sizes = [(page.rect.width, page.rect.height) for page in doc]
        page_blocks: list[list[TextBlock]] = []
        signals: list[PageSignals] = []
        reasons: list[str | None] = []
        for page in doc:
            try:
                blocks = blocks_from_page(page, textpage=page.get_textpage())
            except Exception as exc:
                raise DocumentRejected(f"{path.name}: page {page.number + 1} cannot be read ({exc})") from exc
            raw = "\n".join(block.text for block in blocks)
            sig = page_signals(page, raw, settings)
            page_blocks.append(blocks)
            signals.append(sig)
            reasons.append(ocr_reason(sig, settings))

    to_ocr = [i for i, reason in enumerate(reasons) if reason]
    if to_ocr:
        from c64_pipeline.ocr import ocr_pages  # imported here: OCR engines pull in heavy libraries

        ocr_blocks = ocr_pages(path, to_ocr, settings.ocr_engine, dict(settings.ocr_options), settings.ocr_workers)
        for i in to_ocr:
            page_blocks[i] = ocr_blocks.get(i, [])

    cleaned = strip_running_heads(
        page_blocks, [h for _, h in sizes], band=settings.header_band, min_share=settings.header_min_share
    )
    pages: list[PageText] = []
    for i, blocks in enumerate(cleaned):
        width, height = sizes[i]
        text = layout_text(blocks, width, height)
        quality = text_quality(text)
        usable = bool(text.strip())
        method = ("ocr" if reasons[i] else "text_layer") if usable else "none"
        pages.append(
            PageText(doc_id, i + 1, text, method, quality, reasons[i], len(text.strip()))
        )
    return pages


def extract_text_document(doc_id: str, path: Path, kind: str) -> list[PageText]:
    check_text_size(path, path.stat().st_size)  # again: the file may have grown since it was inspected
    pages = []
    for i, text in enumerate(read_text_pages(path, kind)):
        text = text.strip("\n")
        method = "text_layer" if text.strip() else "none"
        pages.append(PageText(doc_id, i + 1, text, method, text_quality(text), None, len(text.strip())))
    return pages


def extract_document(doc_id: str, path: Path, kind: str, settings: ExtractionSettings) -> list[PageText]:
    """All pages of one document. Raises DocumentRejected (naming the file) when it cannot be read or holds no text."""
    pages = extract_pdf(doc_id, path, settings) if kind == "pdf" else extract_text_document(doc_id, path, kind)
    if not any(page.method != "none" for page in pages):
        raise DocumentRejected(f"{path.name}: blank document (no text on any of its {len(pages)} pages, OCR included)")
    return pages
