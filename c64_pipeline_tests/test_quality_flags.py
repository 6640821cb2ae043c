"""Pages still poor after OCR: flagged in the report, and the worst left out of DAPT."""

from c64_pipeline.ingest.extraction import DAPT_MIN_PAGE_QUALITY, ExtractionSettings, dapt_pages, extract_document
from c64_pipeline.datasets.records import SftDataset
from c64_pipeline.datasets.report import build_report, render_markdown
from c64_pipeline.datasets.splits import DocumentSplits
from c64_pipeline.ingest.documents import SourceDocument
from c64_pipeline.ingest.extraction import DocumentText

CLEAN = "The SID chip has three voices; writing to the frequency registers at $D400 changes the pitch of a voice."
POOR = "The SID chip has three voices; cach voicc bas ifs owri osci1lotor qrid wovcforrn, ED020 Bondar colour."
GIBBERISH = "qxz vbnm ~^ zzkq wprt ^~ {jhg} xkcd qqq zxv bnmq ~~ ^^ lkjh vbvb"


def _pages(tmp_path):
    path = tmp_path / "shelf.txt"
    path.write_text("\f".join([CLEAN, POOR, "", GIBBERISH]) + "\n")
    return extract_document("shelf-txt", path, "txt", ExtractionSettings())


def test_poor_pages_are_flagged_and_gibberish_is_left_out_of_dapt(tmp_path):
    pages = _pages(tmp_path)
    assert [p.flag is not None for p in pages] == [False, True, False, True]
    assert pages[1].quality >= DAPT_MIN_PAGE_QUALITY > pages[3].quality and pages[2].method == "none"
    kept, left_out = dapt_pages(pages)
    assert [n for n, _ in kept] == [1, 2] and left_out == [4]
    kept, left_out = dapt_pages(pages, min_quality=0.0)  # keep every flagged page
    assert [n for n, _ in kept] == [1, 2, 4] and left_out == []


def test_report_counts_and_lists_flagged_pages_per_document(tmp_path):
    pages = _pages(tmp_path)
    document = SourceDocument("shelf-txt", "shelf.txt", str(tmp_path / "shelf.txt"), "txt", "0" * 64, 100, 4)
    report = build_report(
        documents=[document], texts={"shelf-txt": DocumentText("shelf-txt", "shelf.txt", None, tuple(pages))},
        splits=DocumentSplits({"shelf-txt": "train"}), chunks=[], sft=SftDataset("sft", {}, {}, max_length=2048), conversations={},
        near_duplicate_threshold=0.8,
    )
    (row,) = report["documents"]
    assert row["pages_flagged"] == 2 and [p["page"] for p in row["flagged_pages"]] == [2, 4]
    assert "shelf.txt: 2 page(s) flagged as low quality after OCR (pages 2, 4)" in report["warnings"]
    markdown = render_markdown(report)
    assert f"- shelf.txt page 2: low quality text ({pages[1].quality:.2f})" in markdown
