"""The splitter and the SFT coverage check in the graph: a scan-like copy of a manual never lands in another split than
its original, even when an old ledger put them apart, so split_leakage passes without anyone deleting a file; and low
SFT coverage is reported (WARN) without stopping the run."""

from __future__ import annotations

import json

import pytest
from dagster import DagsterInstance

from c64_pipeline_tests.conftest import ocr_noise
from c64_pipeline_tests.graph_helpers import Workspace, write_small_corpus

pytestmark = pytest.mark.slow  # each test is one run of the data half (~45 s on 2 shared cores)


def test_a_copy_split_from_its_original_by_an_old_ledger_is_reunited_and_leakage_passes(tmp_path, tiny_model_dir):
    ws = Workspace.create(tmp_path, tiny_model_dir)
    write_small_corpus(ws.manuals)
    original = (ws.manuals / "vic_registers.md").read_text()
    (ws.manuals / "vic_registers_scan.md").write_text(ocr_noise(original, 0.02, seed=5))
    # what the hash-only splitter could leave behind: the two copies in train and validation
    ws.processed.mkdir(parents=True)
    old = {"vic_registers-md": "train", "vic_registers_scan-md": "validation", "sid_registers-md": "train",
           "cia_registers-md": "validation", "kernal_routines-md": "test"}
    (ws.processed / "splits.json").write_text(json.dumps({"assignment": old}))
    with DagsterInstance.ephemeral() as instance:
        run = ws.run(instance)
    assert run.datasets.success
    checks = {e.check_name: e for e in run.datasets.get_asset_check_evaluations()}
    assert checks["split_leakage"].passed, checks["split_leakage"].description
    assert checks["validation_not_empty"].passed, checks["validation_not_empty"].description
    ledger = json.loads((ws.processed / "splits.json").read_text())
    assert ledger["assignment"]["vic_registers_scan-md"] == ledger["assignment"]["vic_registers-md"] == "train"
    assert ledger["families"] == [["vic_registers-md", "vic_registers_scan-md"]]
    assert {d: s for d, s in ledger["assignment"].items() if not d.startswith("vic")} == {
        d: s for d, s in old.items() if not d.startswith("vic")}
    report = ws.report()
    assert any("vic_registers_scan-md moved from validation to train" in w for w in report["warnings"])
    assert report["split_balance"]["near_duplicate_families"] == [["vic_registers-md", "vic_registers_scan-md"]]
    markdown = (ws.docs / "data_qc_report.md").read_text()
    assert "vic_registers-md + vic_registers_scan-md" in markdown and "## SFT coverage" in markdown


def test_low_sft_coverage_warns_without_stopping_the_run(tmp_path, tiny_model_dir):
    ws = Workspace.create(tmp_path, tiny_model_dir)
    write_small_corpus(ws.manuals)
    # a page with text and nothing to teach: no table, no definition, no heading with an explanation under it
    (ws.manuals / "history.md").write_text(
        "thanks to everyone who sent in corrections, tips and kind words over the years.\n\n"
        "see you at the next meeting, and bring your disks!\n")
    with DagsterInstance.ephemeral() as instance:
        run = ws.run(instance)
    checks = {e.check_name: e for e in run.datasets.get_asset_check_evaluations()}
    coverage = checks["sft_coverage"]
    assert not coverage.passed and coverage.severity.value == "WARN" and "4 of 5 documents" in coverage.description
    assert run.failures == [] and any("sft_coverage" in r for r in run.failed_results)
    doc = next(d for d in ws.report()["sft_coverage"]["documents"] if d["file_name"] == "history.md")
    assert doc["no_sft_reason"] == "no minable structure" and doc["pages_with_text"] == 1
