"""SFT coverage in the validation report and QC markdown, and the checks that judge it and the validation split."""

from __future__ import annotations

from dataclasses import replace

from dagster import AssetCheckSeverity

from c64_pipeline.defs.datasets.checks import sft_coverage, split_balance, validation_not_empty
from c64_pipeline.defs.resources import QualityThresholds
from c64_pipeline.datasets.chunking import Chunk
from c64_pipeline.datasets.records import SftDataset
from c64_pipeline.datasets.report import NO_STRUCTURE, build_report, render_markdown, sft_coverage as coverage_of
from c64_pipeline.datasets.sft import build_conversations, mine_facts
from c64_pipeline.datasets.splits import DocumentSplits
from c64_pipeline.ingest.documents import SourceDocument
from c64_pipeline.ingest.extraction import DocumentText, PageText

REGISTER_PAGE = "\n".join([
    "VIC-II registers",
    "| $D020 | 53280 | EXTCOL | Border colour, bits 0-3 |",
    "| $D021 | 53281 | BGCOL0 | Background colour 0, bits 0-3 |",
    "| $D012 | 53266 | RASTER | Current raster line, low eight bits |",
])
PROSE_PAGE = "The raster interrupt lets a program change colours part way down the screen, a favourite of demo coders."


def _doc(doc_id: str, pages: list[str]) -> tuple[SourceDocument, DocumentText]:
    record = SourceDocument(doc_id, f"{doc_id}.md", f"/shelf/{doc_id}.md", "md", "0" * 64, 100, len(pages))
    result = DocumentText(doc_id, record.file_name, None, tuple(
        PageText(doc_id, n, text, "text_layer" if text else "none", 1.0, None, len(text))
        for n, text in enumerate(pages, start=1)
    ))
    return record, result


def _report(docs: dict[str, list[str]], splits: dict[str, str], outcomes: dict | None = None, chunk_tokens: int = 100) -> dict:
    records, results, rows, built = [], {}, {"train": [], "validation": [], "test": []}, {}
    for doc_id, pages in docs.items():
        record, result = _doc(doc_id, pages)
        records.append(record)
        results[doc_id] = result
        facts = mine_facts(result.pages)
        conversations = build_conversations(facts, "system", 4)
        built[doc_id] = {"candidates": len(facts), "conversations": len(conversations), "rejections": {}}
        rows[splits[doc_id]].extend(conversations)
    chunks = [Chunk(f"{d}-0", d, 0, "x", chunk_tokens, 1, 1) for d in docs]
    sft = SftDataset("sft", {s: len(r) for s, r in rows.items()}, {s: [50] * len(r) for s, r in rows.items()}, (), 2048,
                     {**built, **(outcomes or {})})
    families = (("vic", "vic-scan"),) if "vic-scan" in docs else ()
    return build_report(documents=records, texts=results, splits=DocumentSplits(splits, families=families),
                        chunks=chunks, sft=sft, conversations=rows, near_duplicate_threshold=0.8)


def test_coverage_counts_families_pages_cited_and_why_a_document_has_no_sft():
    docs = {"vic": [REGISTER_PAGE, PROSE_PAGE, ""], "prose": [PROSE_PAGE], "rejected-rows": [PROSE_PAGE]}
    splits = {"vic": "train", "prose": "validation", "rejected-rows": "test"}
    outcomes = {"rejected-rows": {"candidates": 4, "conversations": 0, "rejections": {"bit-column debris": 3, "not a noun phrase": 1}}}
    report = _report(docs, splits, outcomes)
    cov = report["sft_coverage"]
    per_doc = {d["doc_id"]: d for d in cov["documents"]}
    assert per_doc["vic"]["conversations"] > 0 and per_doc["vic"]["families"] == {"register": per_doc["vic"]["conversations"]}
    assert (per_doc["vic"]["pages_cited"], per_doc["vic"]["pages_with_text"]) == (1, 2)
    assert per_doc["prose"]["no_sft_reason"] == NO_STRUCTURE
    assert per_doc["rejected-rows"]["no_sft_reason"] == "all 4 mined rows rejected (bit-column debris: 3, not a noun phrase: 1)"
    assert (cov["documents_with_sft"], cov["documents_with_text"], cov["pages_cited"], cov["pages_with_text"]) == (1, 3, 1, 4)
    assert cov["conversations_per_family"] == {"register": per_doc["vic"]["conversations"]}
    assert cov["rows_rejected"] == {"bit-column debris": 3, "not a noun phrase": 1}
    markdown = render_markdown(report)
    assert "## SFT coverage" in markdown and "Pages cited by SFT: 1 of 4" in markdown
    assert "Mined rows rejected: bit-column debris 3, not a noun phrase 1" in markdown
    assert f"| prose.md | 0 | - | 0 / 1 | {NO_STRUCTURE} |" in markdown


def test_conversations_are_counted_under_the_family_the_builder_names():
    report = _report({"vic": [REGISTER_PAGE]}, {"vic": "train"})
    mined = build_conversations(mine_facts([{"doc_id": "vic", "page": 1, "text": REGISTER_PAGE, "method": "text_layer"}]), "system")
    rows = {"train": [replace(r, family="kernal" if i % 2 else "register") for i, r in enumerate(mined)]}
    per_family = coverage_of(report["documents"], rows, None)["conversations_per_family"]
    assert per_family == {"kernal": len(mined) // 2, "register": len(mined) - len(mined) // 2}


def test_sft_coverage_check_warns_by_default_and_blocks_when_configured():
    report = _report({"vic": [REGISTER_PAGE], "prose": [PROSE_PAGE]}, {"vic": "train", "prose": "test"})
    warn = sft_coverage(validation_report=report, thresholds=QualityThresholds())
    assert not warn.passed and warn.severity == AssetCheckSeverity.WARN and "1 of 2 documents" in warn.description
    strict = sft_coverage(validation_report=report, thresholds=QualityThresholds(sft_coverage_severity="ERROR"))
    assert not strict.passed and strict.severity == AssetCheckSeverity.ERROR
    lenient = QualityThresholds(min_sft_document_share=0.5, min_sft_page_share=0.5)
    assert sft_coverage(validation_report=report, thresholds=lenient).passed


def test_validation_minimum_fails_with_one_row_when_the_threshold_asks_for_more():
    one_row = "| $D020 | 53280 | EXTCOL | Border colour of the screen frame |"
    report = _report({"vic": [REGISTER_PAGE], "tiny": [one_row], "sid": [REGISTER_PAGE.replace("VIC-II", "SID")]},
                     {"vic": "train", "tiny": "validation", "sid": "test"})
    validation_rows = report["splits"]["validation"]["sft_conversations"]
    assert 0 < validation_rows < 5
    failed = validation_not_empty(validation_report=report, thresholds=QualityThresholds(min_validation_sft_conversations=5))
    assert not failed.passed and "(min 5)" in failed.description
    assert validation_not_empty(validation_report=report, thresholds=QualityThresholds(min_validation_sft_conversations=1)).passed


def test_validation_share_is_judged_once_there_are_enough_documents():
    docs = {f"manual-{i:02d}": [REGISTER_PAGE] for i in range(12)}
    splits = {d: "train" for d in docs}
    splits["manual-00"], splits["manual-01"] = "validation", "test"  # 1 of 12 documents: about 8% of everything
    report = _report(docs, splits)
    thresholds = QualityThresholds(min_validation_sft_conversations=1)
    assert validation_not_empty(validation_report=report, thresholds=thresholds).passed
    strict = QualityThresholds(min_validation_sft_conversations=1, min_validation_share=0.1)
    result = validation_not_empty(validation_report=report, thresholds=strict)
    assert not result.passed and "0.083 of SFT conversations" in result.description
    few = QualityThresholds(min_validation_sft_conversations=1, min_validation_share=0.1, held_out_share_from_documents=13)
    assert validation_not_empty(validation_report=report, thresholds=few).passed


def test_split_balance_warns_when_a_held_out_split_is_too_small_or_too_large():
    docs = {f"manual-{i:02d}": [REGISTER_PAGE] for i in range(12)}
    splits = {d: "train" for d in docs}
    splits["manual-00"] = "validation"  # 1 of 12: about 8%
    splits.update({"manual-01": "test", "manual-02": "test", "manual-03": "test"})  # 3 of 12: 25%
    report = _report(docs, splits)
    result = split_balance(validation_report=report, thresholds=QualityThresholds())
    assert not result.passed and result.severity == AssetCheckSeverity.WARN
    assert "test_sft_share" in result.description and "validation_sft_share" not in result.description
    assert split_balance(validation_report=report, thresholds=QualityThresholds(max_held_out_share=0.3)).passed
    few = QualityThresholds(held_out_share_from_documents=20)
    assert split_balance(validation_report=report, thresholds=few).passed
