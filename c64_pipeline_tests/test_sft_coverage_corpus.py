"""SFT coverage measured on the real third-party corpus in ../shared/corpus (bench.sft_coverage), every document
and every question/answer pair accounted for. The figures themselves are recorded in the README, not asserted:
the pairs are a yardstick, not a target to tune the builder to."""

from __future__ import annotations

import json
import re

import pytest

from bench.sft_coverage import measure
from c64_pipeline.ingest.documents import discover_documents
from c64_pipeline_tests.conftest import SHARED_CORPUS

pytestmark = [pytest.mark.corpus, pytest.mark.slow]  # reads the corpus, OCR of the four scans included (~25 s)


@pytest.fixture(scope="module")
def figures():
    if not SHARED_CORPUS.is_dir():
        pytest.skip(f"the shared corpus is not at {SHARED_CORPUS}")
    return measure(SHARED_CORPUS)


def test_every_document_is_counted_and_each_one_without_sft_says_why(figures, shared_corpus):
    files = {p.name for sub in ("pdf", "text") for p in discover_documents(shared_corpus / sub).values()}
    per_doc = {d["file_name"]: d for d in figures["per_document"]}
    assert set(per_doc) == files and figures["documents"] == len(files)
    assert 0 < figures["documents_with_sft"] <= figures["documents_with_text"] <= len(files)
    for doc in per_doc.values():
        assert doc["pages_cited"] <= doc["pages_with_text"]
        assert (doc["conversations"] > 0) == (doc["no_sft_reason"] is None), doc
    assert figures["pages_cited"] == sum(d["pages_cited"] for d in per_doc.values()) <= figures["pages_with_text"]
    assert sum(figures["conversations_per_family"].values()) == figures["conversations"] > 0
    assert sum(figures["no_sft_reasons"].values()) == figures["documents_with_text"] - figures["documents_with_sft"]


def test_every_pair_is_judged_and_each_answer_counted_states_the_pairs_hex_values(figures, shared_corpus):
    pairs = [json.loads(line) for line in (shared_corpus / "qa.jsonl").read_text().splitlines() if line.strip()]
    qa = figures["qa"]
    assert qa["pairs"] == len(pairs) == len(qa["answered_pairs"]) + len(qa["unanswered_pairs"])
    assert qa["answered"] == len(qa["answered_pairs"])
    for row in qa["answered_pairs"]:
        said = {int(h, 16) for h in re.findall(r"(?:\$|0x)([0-9A-Fa-f]{1,4})\b", row["sft_answer"])}
        wanted = {int(h, 16) for h in re.findall(r"(?:\$|0x)([0-9A-Fa-f]{1,4})\b", row["answer"] + row["question"])}
        assert wanted <= said, row


def test_a_register_row_the_miner_reads_answers_the_readers_question_about_it(figures):
    # the yardstick recognises an answer where there is one: Mapping's $D020 row is a plain register row
    answered = {r["question"] for r in figures["qa"]["answered_pairs"]}
    assert "What is the label of $D020 in the Mapping the Commodore 64 I/O map?" in answered
