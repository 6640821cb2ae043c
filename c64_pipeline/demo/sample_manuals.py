"""Render the bundled sample C64 manuals into PDFs (digital, scanned, mixed) and Markdown.

The sources live in ``c64_pipeline/demo/sample_sources/`` (package data):

* ``manifest.json`` lists the output documents, their kind and their metadata;
* ``manual.css`` is the shared style sheet;
* ``*.html`` files hold the manual text as ``<section>`` blocks. Every section starts
  on a new page. ``data-columns="2"`` lays the section out in two columns (a leading
  ``<h1>`` spans both columns), ``data-scan="true"`` marks its pages as scanned in a
  ``mixed`` document;
* ``*.md`` files are copied unchanged.

Document kinds:

* ``digital``  - every page has a real text layer;
* ``scanned``  - every page is a grayscale image only (noise, slight skew), no text layer;
* ``mixed``    - pages of ``data-scan="true"`` sections are scanned, the rest are digital;
* ``markdown`` - the source is copied as it is.

The output is deterministic: the same sources give byte-identical files (seeded noise,
fixed PDF metadata and dates, no random file identifier). Every file is written to a
temporary file in the output folder first and then moved into place with ``os.replace``
(``c64_pipeline.atomic.atomic_path``).

CLI::

    python -m c64_pipeline.demo.sample_manuals --out data/raw/manuals
"""

from __future__ import annotations

import argparse
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pymupdf
from PIL import Image, ImageFilter

from c64_pipeline.atomic import atomic_path

DEFAULT_SOURCES_DIR = Path(__file__).with_name("sample_sources")
MANIFEST_NAME = "manifest.json"

# Page geometry in points (1/72 inch).
DEFAULT_PAGE_SIZE = (504.0, 684.0)  # 7 x 9.5 inches, a typical manual trim size
MARGIN_X = 50.0
MARGIN_TOP = 68.0
MARGIN_BOTTOM = 64.0
COLUMN_GAP = 20.0
TITLE_GAP = 6.0
HEADER_BASELINE = 40.0
FOOTER_BASELINE_FROM_BOTTOM = 34.0
HEADER_FONT_SIZE = 8.5

# Fixed metadata so that two renders are byte-identical.
FIXED_PDF_DATE = "D:19850401120000+00'00'"
PRODUCER = "c64-pipeline sample_manuals"

# Scan simulation defaults (overridable per document in the manifest).
DEFAULT_SCAN_DPI = 170
DEFAULT_SCAN_SEED = 64
SKEW_RANGE_DEG = (0.3, 1.0)
NOISE_SIGMA = 5.0
BLUR_RADIUS = 0.6
PAPER_LEVEL = 242.0  # gray level of the paper
INK_LEVEL = 22.0  # gray level of the ink
JPEG_QUALITY = 75

KINDS = ("digital", "scanned", "mixed", "markdown")

_COMMENT_RE = re.compile(r"<!--.*?-->", re.DOTALL)
_SECTION_RE = re.compile(r"<section\b([^>]*)>(.*?)</section>", re.DOTALL | re.IGNORECASE)
_ATTR_RE = re.compile(r'([\w-]+)\s*=\s*"([^"]*)"')
_LEADING_H1_RE = re.compile(r"^\s*(<h1\b.*?</h1>)", re.DOTALL | re.IGNORECASE)
_TAG_SPLIT_RE = re.compile(r"(<[^>]*>)")
_LIGATURE_PAIR_RE = re.compile(r"(?<=f)(?=[fil])")


@dataclass
class Section:
    html: str
    columns: int = 1
    scan: bool = False


@dataclass
class DocumentSpec:
    source: str
    output: str
    kind: str
    title: str = ""
    header: str = ""
    author: str = ""
    subject: str = ""
    keywords: str = ""
    scan_dpi: int = DEFAULT_SCAN_DPI
    scan_seed: int = DEFAULT_SCAN_SEED
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- sources


def load_manifest(sources_dir: Path) -> tuple[dict, list[DocumentSpec]]:
    data = json.loads((sources_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    known = set(DocumentSpec.__dataclass_fields__) - {"extra"}
    specs = []
    for entry in data["documents"]:
        spec = DocumentSpec(
            **{k: v for k, v in entry.items() if k in known},
            extra={k: v for k, v in entry.items() if k not in known},
        )
        if spec.kind not in KINDS:
            raise ValueError(f"{spec.output}: unknown kind {spec.kind!r}")
        specs.append(spec)
    return data, specs


def parse_sections(html: str) -> list[Section]:
    sections = []
    for attrs_text, body in _SECTION_RE.findall(_COMMENT_RE.sub("", html)):
        attrs = dict(_ATTR_RE.findall(attrs_text))
        sections.append(
            Section(
                html=body,
                columns=int(attrs.get("data-columns", "1")),
                scan=attrs.get("data-scan", "false").lower() == "true",
            )
        )
    if not sections:
        raise ValueError("no <section> blocks found")
    return sections


def break_ligatures(html: str) -> str:
    """Keep ff/fi/fl as separate letters in the text layer.

    The Story fonts shape "ff", "fi" and "fl" into single ligature glyphs, which then come out
    of text extraction as U+FB00..U+FB04. An empty span between the letters splits the shaping
    run without changing the look or the extracted text.
    """
    parts = _TAG_SPLIT_RE.split(html)
    for i in range(0, len(parts), 2):  # even indices are text between tags
        parts[i] = _LIGATURE_PAIR_RE.sub("<span></span>", parts[i])
    return "".join(parts)


# --------------------------------------------------------------------------- layout


def _place_and_draw(story: pymupdf.Story, device, rect: pymupdf.Rect) -> tuple[bool, pymupdf.Rect]:
    more, filled = story.place(rect)
    story.draw(device)
    return bool(more), pymupdf.Rect(filled)


def layout_body(sections: list[Section], css: str, page_size: tuple[float, float]) -> tuple[bytes, list[bool]]:
    """Lay out all sections with PyMuPDF Story; returns the PDF bytes and a scan flag per page."""
    width, height = page_size
    mediabox = pymupdf.Rect(0, 0, width, height)
    content = pymupdf.Rect(MARGIN_X, MARGIN_TOP, width - MARGIN_X, height - MARGIN_BOTTOM)
    col_width = (content.width - COLUMN_GAP) / 2

    buf = io.BytesIO()
    writer = pymupdf.DocumentWriter(buf)
    scan_flags: list[bool] = []
    for number, section in enumerate(sections, start=1):
        body_html = break_ligatures(section.html)
        title_html = None
        if section.columns == 2:
            match = _LEADING_H1_RE.match(body_html)
            if match:
                title_html = match.group(1)
                body_html = body_html[match.end():]
        story = pymupdf.Story(body_html, user_css=css)
        first_page = True
        more = True
        while more:
            device = writer.begin_page(mediabox)
            top = content.y0
            if first_page and title_html:
                title_story = pymupdf.Story(title_html, user_css=css)
                title_more, filled = _place_and_draw(title_story, device, content)
                if title_more:
                    raise ValueError(f"section {number}: title does not fit on one page")
                top = filled.y1 + TITLE_GAP
            if section.columns == 2:
                rects = [
                    pymupdf.Rect(content.x0, top, content.x0 + col_width, content.y1),
                    pymupdf.Rect(content.x1 - col_width, top, content.x1, content.y1),
                ]
            else:
                rects = [pymupdf.Rect(content.x0, top, content.x1, content.y1)]
            placed_any = False
            for rect in rects:
                more, filled = _place_and_draw(story, device, rect)
                placed_any = placed_any or not filled.is_empty
                if not more:
                    break
            writer.end_page()
            scan_flags.append(section.scan)
            if more and not placed_any:
                raise ValueError(f"section {number}: content does not fit into a page")
            first_page = False
    writer.close()
    return buf.getvalue(), scan_flags


def add_running_heads(doc: pymupdf.Document, header: str) -> None:
    """Running header (text plus rule) and a centred page-number footer on every page."""
    for page in doc:
        rect = page.rect
        page.insert_text(
            (MARGIN_X, HEADER_BASELINE), header, fontname="hebo", fontsize=HEADER_FONT_SIZE, color=(0, 0, 0)
        )
        page.draw_line(
            (MARGIN_X, HEADER_BASELINE + 5), (rect.width - MARGIN_X, HEADER_BASELINE + 5), color=(0, 0, 0), width=0.6
        )
        footer = f"Page {page.number + 1}"
        text_width = pymupdf.get_text_length(footer, fontname="helv", fontsize=HEADER_FONT_SIZE + 0.5)
        page.insert_text(
            ((rect.width - text_width) / 2, rect.height - FOOTER_BASELINE_FROM_BOTTOM),
            footer,
            fontname="helv",
            fontsize=HEADER_FONT_SIZE + 0.5,
            color=(0, 0, 0),
        )


# --------------------------------------------------------------------------- scanning


def scan_image(page: pymupdf.Page, dpi: int, rng: np.random.Generator) -> bytes:
    """Render a page as a slightly skewed, noisy grayscale scan; returns JPEG bytes."""
    pix = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY, alpha=False)
    img = Image.frombytes("L", (pix.width, pix.height), pix.samples)
    # Paper is never pure white and toner never pure black.
    lut = [round(INK_LEVEL + (PAPER_LEVEL - INK_LEVEL) * v / 255.0) for v in range(256)]
    img = img.point(lut)
    angle = float(rng.uniform(*SKEW_RANGE_DEG)) * (1.0 if rng.random() < 0.5 else -1.0)
    img = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=round(PAPER_LEVEL))
    img = img.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    arr = np.asarray(img, dtype=np.float32)
    arr = arr + rng.normal(0.0, NOISE_SIGMA, size=arr.shape).astype(np.float32)
    img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=JPEG_QUALITY, dpi=(dpi, dpi))
    return out.getvalue()


def replace_with_scans(doc: pymupdf.Document, page_numbers: list[int], dpi: int, seed: int) -> None:
    """Replace the given pages by image-only pages that look scanned."""
    for pno in page_numbers:
        rng = np.random.default_rng([seed, pno])
        page = doc[pno]
        width, height = page.rect.width, page.rect.height
        jpeg = scan_image(page, dpi, rng)
        doc.delete_page(pno)
        new_page = doc.new_page(pno, width=width, height=height)
        new_page.insert_image(new_page.rect, stream=jpeg, keep_proportion=False)


# --------------------------------------------------------------------------- output


def _atomic_write(path: Path, data: bytes) -> None:
    """Temporary file in the same folder, then os.replace (see c64_pipeline.atomic)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        tmp.chmod(0o644)  # mkstemp creates 0600; these are ordinary data files


def render_pdf(spec: DocumentSpec, sources_dir: Path, css: str, page_size: tuple[float, float]) -> bytes:
    sections = parse_sections((sources_dir / spec.source).read_text(encoding="utf-8"))
    body, scan_flags = layout_body(sections, css, page_size)
    doc = pymupdf.open("pdf", body)
    try:
        add_running_heads(doc, spec.header or spec.title)
        if spec.kind == "scanned":
            to_scan = list(range(doc.page_count))
        elif spec.kind == "mixed":
            to_scan = [i for i, flag in enumerate(scan_flags) if flag]
            if not to_scan or len(to_scan) == doc.page_count:
                raise ValueError(f"{spec.output}: a mixed document needs both scanned and digital pages")
        else:
            to_scan = []
        replace_with_scans(doc, to_scan, spec.scan_dpi, spec.scan_seed)
        doc.set_metadata(
            {
                "title": spec.title,
                "author": spec.author,
                "subject": spec.subject,
                "keywords": spec.keywords,
                "creator": PRODUCER,
                "producer": PRODUCER,
                "creationDate": FIXED_PDF_DATE,
                "modDate": FIXED_PDF_DATE,
            }
        )
        doc.del_xml_metadata()
        return doc.tobytes(garbage=3, deflate=True, no_new_id=True)
    finally:
        doc.close()


def sample_file_names(sources_dir: Path | None = None) -> set[str]:
    """The file names the sample manuals are rendered to."""
    _, specs = load_manifest(Path(sources_dir) if sources_dir is not None else DEFAULT_SOURCES_DIR)
    return {spec.output for spec in specs}


def render_sample_manuals(out_dir: Path, sources_dir: Path | None = None) -> list[Path]:
    """Render every document of the manifest into ``out_dir``; returns the written paths."""
    sources_dir = Path(sources_dir) if sources_dir is not None else DEFAULT_SOURCES_DIR
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest, specs = load_manifest(sources_dir)
    css = (sources_dir / manifest.get("css", "manual.css")).read_text(encoding="utf-8")
    page_size = tuple(manifest.get("page_size", DEFAULT_PAGE_SIZE))

    written = []
    for spec in specs:
        target = out_dir / spec.output
        if spec.kind == "markdown":
            data = (sources_dir / spec.source).read_bytes()
        else:
            data = render_pdf(spec, sources_dir, css, page_size)
        _atomic_write(target, data)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the bundled sample C64 manuals.")
    parser.add_argument("--out", type=Path, default=Path("data/raw/manuals"), help="output folder")
    parser.add_argument("--sources", type=Path, default=None, help="sources folder (default: the bundled sample_sources/)")
    args = parser.parse_args(argv)
    for path in render_sample_manuals(args.out, args.sources):
        if path.suffix.lower() == ".pdf":
            with pymupdf.open(path) as doc:
                print(f"{path}  ({doc.page_count} pages)")
        else:
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
