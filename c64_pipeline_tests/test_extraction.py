import pymupdf
import pytest

from c64_pipeline.ingest.documents import DocumentRejected
from c64_pipeline.ingest.extraction import ExtractionSettings, PageSignals, extract_document, ocr_reason, text_quality

SETTINGS = ExtractionSettings(ocr_workers=1)


def _page(doc, body, header="C64 REFERENCE", footer=None):
    page = doc.new_page(width=504, height=684)
    page.insert_text((50, 30), header, fontsize=9)
    page.insert_textbox(pymupdf.Rect(50, 60, 454, 620), body, fontsize=11)
    page.insert_text((240, 670), footer or f"Page {doc.page_count}", fontsize=9)
    return page


def test_quality_separates_text_from_garbage():
    assert text_quality("POKE 53280,0 sets the border colour at $D020 to black.") > 0.9
    assert text_quality("\ufffd\ufffd\x01\x02 \ufffdq\ufffd zxcvbnm qwrtp") < 0.3
    assert text_quality("") == 0.0


def test_ocr_decision_and_reasons():
    assert ocr_reason(PageSignals(0, 0.0, 0.95, 0.0), SETTINGS) == "no text layer"
    assert ocr_reason(PageSignals(0, 0.0, 0.0, 0.0), SETTINGS) is None  # a blank page: nothing to read
    assert "garbage" in ocr_reason(PageSignals(500, 0.2, 0.0, 0.0), SETTINGS)
    assert "existing OCR layer" in ocr_reason(PageSignals(500, 0.2, 0.9, 0.95), SETTINGS)
    assert "characters on a page that is" in ocr_reason(PageSignals(12, 0.9, 0.8, 0.0), SETTINGS)
    assert ocr_reason(PageSignals(2000, 0.95, 0.4, 0.0), SETTINGS) is None


def test_text_layer_pages_keep_symbols_and_lose_running_heads(tmp_path):
    doc = pymupdf.open()
    for i in range(4):
        _page(doc, f"Section {i + 1}. POKE 53280,{i} changes the border; the register is $D020 (EXTCOL).")
    doc.save(tmp_path / "ref.pdf")
    pages = extract_document("ref-pdf", tmp_path / "ref.pdf", "pdf", SETTINGS)
    assert [p.method for p in pages] == ["text_layer"] * 4
    assert "POKE 53280,2 changes the border; the register is $D020 (EXTCOL)." in pages[2].text
    assert all("C64 REFERENCE" not in p.text and "Page" not in p.text for p in pages)


def test_scanned_page_goes_to_ocr_and_says_why(tmp_path):
    source = pymupdf.open()
    _page(source, "The SID master volume sits in the low four bits of $D418, decimal 54296.")
    pix = source[0].get_pixmap(dpi=200, colorspace=pymupdf.csGRAY)
    scan = pymupdf.open()
    scan.new_page(width=504, height=684).insert_image(pymupdf.Rect(0, 0, 504, 684), pixmap=pix)
    scan.save(tmp_path / "scan.pdf")
    (page,) = extract_document("scan-pdf", tmp_path / "scan.pdf", "pdf", SETTINGS)
    assert page.method == "ocr" and page.ocr_reason == "no text layer"
    assert "$D418" in page.text and "54296" in page.text


def test_blank_pdf_is_rejected_with_its_name(tmp_path):
    doc = pymupdf.open()
    doc.new_page()
    doc.new_page()
    doc.save(tmp_path / "blank.pdf")
    with pytest.raises(DocumentRejected, match=r"blank\.pdf: blank document"):
        extract_document("blank-pdf", tmp_path / "blank.pdf", "pdf", SETTINGS)


def test_text_documents_keep_their_line_breaks(tmp_path):
    path = tmp_path / "kernal.txt"
    path.write_bytes("CHROUT  $FFD2  Output a character\r\nGETIN   $FFE4  Get a character\r\n".encode("latin-1"))
    (page,) = extract_document("kernal-txt", path, "txt", SETTINGS)
    assert page.text.splitlines() == ["CHROUT  $FFD2  Output a character", "GETIN   $FFE4  Get a character"]


def test_hostile_pdf_is_read_without_running_anything_or_exhausting_memory(tmp_path):
    from c64_pipeline_tests.bad_inputs import hostile_pdf

    pages = extract_document("hostile-pdf", hostile_pdf(tmp_path / "hostile.pdf"), "pdf", SETTINGS)
    assert pages[0].ocr_reason == "no text layer" and pages[0].method == "none"  # a blank image: nothing to read
    assert "CHROUT at $FFD2" in pages[1].text


GARBLED = ("ED020 2280 EXTCOL Bondar colour. Tbe SlD cbip bqs tbree voiccs; cach voicc bas ifs owri osci1lotor, "
           "cnvc1opc gcricrotor qrid wovcforrn sc1cctiori. Wrifirig fo ihc frcqucricv rcqisfcns chorigcs ihc pifeh.")
CLEAN = ("The SID chip has three voices. Each voice has its own oscillator, envelope generator and waveform "
         "selection; the filter is shared. Writing to the frequency registers changes the pitch of a voice.")


def _scan_page(doc, text):
    """An image-only page showing `text` (rendered, then rasterised)."""
    source = pymupdf.open()
    _page(source, text)
    pix = source[0].get_pixmap(dpi=200, colorspace=pymupdf.csGRAY)
    page = doc.new_page(width=504, height=684)
    page.insert_image(pymupdf.Rect(0, 0, 504, 684), pixmap=pix)
    return page


def test_quality_sees_a_garbled_ocr_layer_that_old_token_shapes_accepted():
    assert text_quality(GARBLED) < SETTINGS.min_quality <= text_quality(CLEAN)


def test_page_with_a_garbage_invisible_ocr_layer_is_ocred_again(tmp_path):
    doc = pymupdf.open()
    page = _scan_page(doc, CLEAN)
    page.insert_textbox(pymupdf.Rect(50, 60, 454, 620), GARBLED * 3, fontsize=11, render_mode=3)
    doc.save(tmp_path / "layer.pdf")
    (result,) = extract_document("layer-pdf", tmp_path / "layer.pdf", "pdf", SETTINGS)
    assert result.method == "ocr" and result.ocr_reason.startswith("garbage existing OCR layer (invisible text)")
    assert "oscillator" in result.text and result.flag is None and result.quality >= SETTINGS.min_quality


def test_page_still_poor_after_ocr_is_flagged(tmp_path):
    doc = pymupdf.open()
    _scan_page(doc, GARBLED)
    _scan_page(doc, CLEAN)
    doc.save(tmp_path / "poor.pdf")
    poor, good = extract_document("poor-pdf", tmp_path / "poor.pdf", "pdf", SETTINGS)
    assert poor.method == "ocr" and poor.flag == f"low quality after OCR ({poor.quality:.2f})"
    assert good.method == "ocr" and good.flag is None


def test_garbled_text_file_page_is_flagged_and_a_clean_one_is_not(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_text(CLEAN + "\f" + GARBLED + "\n")
    clean, garbled = extract_document("mixed-txt", path, "txt", SETTINGS)
    assert clean.flag is None
    assert garbled.method == "text_layer" and garbled.flag == f"low quality text ({garbled.quality:.2f})"


@pytest.mark.timeout(120)
def test_one_megabyte_single_line_text_file_is_read_in_linear_time_and_flagged(tmp_path):
    """A run of letters ending in a digit made the old plausibility regex quadratic (91 s for 100 kB); now
    the file is read in one pass, and its one page is flagged as unreadable."""
    path = tmp_path / "blob.txt"
    path.write_text("POKE 53280,0 sets the border colour. " + "a" * 1_000_000 + "1\n")
    (page,) = extract_document("blob-txt", path, "txt", SETTINGS)
    assert page.quality < 0.1 and page.flag == f"low quality text ({page.quality:.2f})"


def test_the_page_reader_takes_each_reading_setting_and_its_default_from_extraction_settings():
    from c64_pipeline.defs.resources import PageReader
    from c64_pipeline.ingest.ocr import make_ocr_engine

    assert PageReader().settings() == ExtractionSettings()
    easy = PageReader(ocr_engine="easyocr").settings()
    assert make_ocr_engine(easy.ocr_engine, **easy.ocr_options).dpi == 200  # the engine's own, not forced to 300
    assert make_ocr_engine("tesseract", **PageReader(ocr_dpi=150).settings().ocr_options).dpi == 150
    assert make_ocr_engine("tesseract", **PageReader(ocr_lighten_fills=True).settings().ocr_options).lighten_fills
    banded = PageReader(header_band=0.12, header_min_share=0.4).settings()
    assert (banded.header_band, banded.header_min_share) == (0.12, 0.4)
