"""The real third-party corpus in ../shared/corpus goes through the data half, every document accounted for,
and the evidence quotes of its question/answer pairs are found on the pages they cite."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from dagster import DagsterInstance

from c64_pipeline.ingest.documents import discover_documents
from c64_pipeline_tests.graph_helpers import Workspace

pytestmark = [pytest.mark.slow, pytest.mark.corpus]


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[‘’]", "'", text).split())


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory, tiny_model_dir):
    from c64_pipeline_tests.conftest import SHARED_CORPUS

    if not SHARED_CORPUS.is_dir():
        pytest.skip(f"the shared corpus is not at {SHARED_CORPUS}")
    ws = Workspace.create(tmp_path_factory.mktemp("corpus"), tiny_model_dir)
    for sub in ("pdf", "text"):
        for path in sorted((SHARED_CORPUS / sub).iterdir()):
            shutil.copy(path, ws.manuals / path.name)
    with DagsterInstance.ephemeral() as instance:
        run = ws.run(instance)
    pages = ws.page_text()
    return ws, run, pages, SHARED_CORPUS


def test_every_document_is_accounted_for(corpus_run):
    ws, run, _, corpus = corpus_run
    assert all(r.success for r in run.ingest.values()) and run.datasets.success
    report = ws.report()
    files = {p.name for p in discover_documents(ws.manuals).values()}
    assert len(files) == 22
    listed = {d["file_name"]: d for d in report["documents"]}
    assert set(listed) == files
    for doc in listed.values():
        assert doc["status"] == "ok" or doc["error"], doc
    assert report["totals"]["documents_accepted"] + report["totals"]["documents_rejected"] == 22
    scans = [listed[f"danbolt_{n}.pdf"] for n in ("6510_pinout", "6567_pinout", "6581_pinout", "c64_memmap_diagram")]
    assert all(d["pages_ocr"] == 1 for d in scans), "image-only pages go to OCR"


def test_text_layer_and_text_evidence_is_on_the_cited_page(corpus_run):
    _, _, pages, corpus = corpus_run
    rows = [json.loads(line) for line in (corpus / "qa.jsonl").read_text().splitlines()]
    checked = 0
    for row in rows:
        if row["evidence_kind"] not in ("pdf-text-layer", "text"):
            continue
        name = row["source_file"].split("/")[-1]
        doc_pages = pages[name]
        if row["evidence_kind"] == "pdf-text-layer":
            number = int(row["locator"].split()[1])
            haystack = doc_pages[number]["text"]
        else:
            haystack = "\n".join(p["text"] for p in doc_pages.values())
        # a multi-line quote (labels on a schematic) has no single reading order: each of its lines must be there
        for part in row["evidence"].split("\n"):
            assert _norm(part) in _norm(haystack), (name, row["evidence"])
        checked += 1
    assert checked == 25


def test_memory_map_scan_is_read_by_ocr(corpus_run):
    _, _, pages, _ = corpus_run
    text = pages["danbolt_c64_memmap_diagram.pdf"][1]["text"]
    assert pages["danbolt_c64_memmap_diagram.pdf"][1]["method"] == "ocr"
    assert "CIA 1 | DC00-DCFF" in text  # the label and its range on one row, the range repaired from "DCOO"
