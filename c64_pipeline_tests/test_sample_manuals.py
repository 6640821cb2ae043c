"""The bundled sample manuals: kinds, page counts, text layers, scans, determinism, OCR."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pymupdf
import pytest

from c64_pipeline.demo.sample_manuals import (
    DEFAULT_SOURCES_DIR,
    break_ligatures,
    layout_body,
    load_manifest,
    main,
    parse_sections,
    render_sample_manuals,
)

TESSDATA_CANDIDATES = ("/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata", "/usr/share/tessdata")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("sample_manuals")
    return out, render_sample_manuals(out)


def _by_kind(paths: list[Path]) -> dict[str, list[Path]]:
    _, specs = load_manifest(DEFAULT_SOURCES_DIR)
    kinds = {spec.output: spec.kind for spec in specs}
    result: dict[str, list[Path]] = {}
    for path in paths:
        result.setdefault(kinds[path.name], []).append(path)
    return result


def _image_share(page: pymupdf.Page) -> float:
    covered = sum(abs(pymupdf.Rect(info["bbox"]) & page.rect) for info in page.get_image_info())
    return covered / abs(page.rect)


def _is_scanned(page: pymupdf.Page) -> bool:
    return page.get_text().strip() == "" and _image_share(page) >= 0.9


def _tessdata() -> str | None:
    for folder in TESSDATA_CANDIDATES:
        if (Path(folder) / "eng.traineddata").is_file():
            return folder
    return None


def test_documents_kinds_and_page_count(rendered):
    out, paths = rendered
    assert len(paths) >= 4
    assert all(p.is_file() and p.parent == out for p in paths)
    kinds = _by_kind(paths)
    assert {"digital", "scanned", "mixed", "markdown"} <= set(kinds)
    pages = 0
    for path in paths:
        if path.suffix == ".pdf":
            with pymupdf.open(path) as doc:
                pages += doc.page_count
    assert pages >= 40


def test_markdown_reference_is_copied_unchanged(rendered):
    _, paths = rendered
    _, specs = load_manifest(DEFAULT_SOURCES_DIR)
    for spec in specs:
        if spec.kind == "markdown":
            target = next(p for p in paths if p.name == spec.output)
            assert target.read_bytes() == (DEFAULT_SOURCES_DIR / spec.source).read_bytes()
            assert "$A000" in target.read_text(encoding="utf-8")


def test_digital_pdf_has_text_on_every_page(rendered):
    _, paths = rendered
    _, specs = load_manifest(DEFAULT_SOURCES_DIR)
    headers = {spec.output: spec.header for spec in specs}
    for path in _by_kind(paths)["digital"]:
        with pymupdf.open(path) as doc:
            for page in doc:
                text = page.get_text()
                assert text.strip(), f"{path.name} page {page.number + 1} has no text layer"
                assert headers[path.name] in text  # running header
                assert f"Page {page.number + 1}" in text  # page-number footer
                assert text.isascii(), "ligatures or other non-ASCII characters in the text layer"
            # A register-table row keeps hex address, decimal address and description on one line.
            assert any({"$D020", "53280", "Border"} <= set(row) for page in doc for row in _rows_with(page, "$D020"))
            assert any(_two_columns(page) for page in doc)


def test_digital_register_table_is_read_row_by_row(rendered):
    """Every register row of the digital manual comes out with its own name, also where a neighbouring row's
    description wraps (the address column is one extractor block whose lines are not evenly spaced)."""
    import re

    from c64_pipeline.extraction import ExtractionSettings, extract_pdf

    _, paths = rendered
    source = (DEFAULT_SOURCES_DIR / "memory_video.html").read_text(encoding="utf-8")
    rows = re.findall(r'<tr><td class="a">(\$[0-9A-F]{4})</td><td>(\d+)</td><td>([A-Z][A-Z0-9]+)</td>', source)
    assert len(rows) >= 40
    (path,) = [p for p in _by_kind(paths)["digital"] if "memory" in p.name]
    lines = [line for page in extract_pdf("m", path, ExtractionSettings()) for line in page.text.split("\n")]
    for address, decimal, name in rows:
        found = [line for line in lines if line.startswith(f"{address} | {decimal} |")]
        assert found and name in found[0], (address, name, found)


def _rows_with(page: pymupdf.Page, token: str) -> list[list[str]]:
    words = page.get_text("words")
    rows = []
    for anchor in (w for w in words if w[4] == token):
        middle = (anchor[1] + anchor[3]) / 2
        rows.append([w[4] for w in words if abs((w[1] + w[3]) / 2 - middle) < 3])
    return rows


def _two_columns(page: pymupdf.Page) -> bool:
    """Body text in both halves of the page, with nothing straddling the middle."""
    mid = page.rect.width / 2
    left = right = straddle = 0
    for x0, y0, x1, y1, text, *_ in page.get_text("blocks"):
        if y0 < 60 or y1 > page.rect.height - 60 or len(text) < 80:
            continue  # header, footer, headings
        if x1 < mid:
            left += 1
        elif x0 > mid:
            right += 1
        else:
            straddle += 1
    return left >= 1 and right >= 1 and straddle == 0


def test_scanned_pdf_is_image_only(rendered):
    _, paths = rendered
    for path in _by_kind(paths)["scanned"]:
        with pymupdf.open(path) as doc:
            assert doc.page_count >= 10
            for page in doc:
                assert page.get_text().strip() == ""
                assert _image_share(page) >= 0.9
                (info,) = page.get_image_info(xrefs=True)
                pix = pymupdf.Pixmap(doc, info["xref"])
                assert pix.n == 1, "scans are grayscale"
                dpi = pix.width / (page.rect.width / 72)
                assert 150 <= dpi <= 200


def test_scanned_sources_have_register_table_and_two_columns():
    _, specs = load_manifest(DEFAULT_SOURCES_DIR)
    for spec in specs:
        if spec.kind == "scanned":
            sections = parse_sections((DEFAULT_SOURCES_DIR / spec.source).read_text(encoding="utf-8"))
            assert any(s.columns == 2 for s in sections)
            assert any("<table" in s.html and "Address (hex)" in s.html for s in sections)


def test_mixed_pdf_has_text_and_scanned_pages(rendered):
    _, paths = rendered
    for path in _by_kind(paths)["mixed"]:
        with pymupdf.open(path) as doc:
            scanned = [page.number for page in doc if _is_scanned(page)]
            text = [page.number for page in doc if page.get_text().strip()]
            assert len(scanned) >= 3
            assert text
            assert len(scanned) + len(text) == doc.page_count


def test_two_renders_are_byte_identical(rendered, tmp_path):
    out, paths = rendered
    assert main(["--out", str(tmp_path)]) == 0  # the CLI renders the same set
    again = sorted(p.name for p in tmp_path.iterdir())
    assert again == sorted(p.name for p in paths)
    for path in paths:
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


def test_no_temporary_files_left(rendered):
    out, paths = rendered
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)


def test_failed_render_leaves_no_temporary_files(tmp_path):
    sources = tmp_path / "sources"
    sources.mkdir()
    shutil.copy(DEFAULT_SOURCES_DIR / "manual.css", sources / "manual.css")
    (sources / "ok.md").write_text("# ok\n", encoding="utf-8")
    (sources / "broken.html").write_text("<p>no sections here</p>", encoding="utf-8")
    manifest = {
        "documents": [
            {"source": "ok.md", "output": "ok.md", "kind": "markdown"},
            {"source": "broken.html", "output": "broken.pdf", "kind": "digital"},
        ]
    }
    (sources / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(ValueError):
        render_sample_manuals(out, sources)
    assert sorted(p.name for p in out.iterdir()) == ["ok.md"]


def test_break_ligatures_only_touches_text():
    html = '<p class="fill">different office</p>'
    assert break_ligatures(html) == '<p class="fill">dif<span></span>ferent of<span></span>f<span></span>ice</p>'


def test_ocr_reads_a_scanned_register_table(rendered):
    tessdata = _tessdata()
    if tessdata is None:
        pytest.skip("no Tesseract eng.traineddata")
    _, paths = rendered
    manifest, specs = load_manifest(DEFAULT_SOURCES_DIR)
    spec = next(s for s in specs if s.kind == "scanned")
    css = (DEFAULT_SOURCES_DIR / manifest.get("css", "manual.css")).read_text(encoding="utf-8")
    # Find the SID register-map page from the layout itself, then OCR that page of the scan.
    body, _ = layout_body(
        parse_sections((DEFAULT_SOURCES_DIR / spec.source).read_text(encoding="utf-8")), css, tuple(manifest["page_size"])
    )
    with pymupdf.open("pdf", body) as layout:
        pno = next(p.number for p in layout if "FRELO1" in p.get_text() and "54272" in p.get_text())
    with pymupdf.open(next(p for p in paths if p.name == spec.output)) as doc:
        page = doc[pno]
        assert page.get_text().strip() == ""
        textpage = page.get_textpage_ocr(dpi=300, full=True, language="eng", tessdata=tessdata)
        text = page.get_text(textpage=textpage)
    hex_found = [tok for tok in ("$D400", "$D404", "$D40E") if tok in text.replace("O", "0")]
    words_found = [tok for tok in ("54272", "frequency", "Voice") if tok in text]
    assert len(hex_found) >= 2, text
    assert len(words_found) >= 2, text
