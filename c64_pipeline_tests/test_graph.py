"""Integration tests: the data half materialized in-process with Dagster on small data."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterInstance, asset

from c64_pipeline.defs.resources import QualityThresholds
from c64_pipeline_tests.bad_inputs import make_bad_inputs
from c64_pipeline_tests.graph_helpers import Workspace, write_small_corpus

CHECKS = {"chat_template_has_generation_blocks", "coverage_ratio", "validation_not_empty", "train_not_empty", "think_coverage", "think_diversity", "split_leakage", "sft_coverage", "split_balance"}


@pytest.fixture
def workspace(tmp_path, tiny_model_dir) -> Workspace:
    return Workspace.create(tmp_path, tiny_model_dir)


def _no_temporaries(folder):
    return [p for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def test_small_corpus_with_bad_inputs(workspace):
    write_small_corpus(workspace.manuals)
    expected_errors = make_bad_inputs(workspace.manuals)
    with DagsterInstance.ephemeral() as instance:
        run = workspace.run(instance)
    assert all(r.success for r in run.ingest.values()), "a bad document must not fail its run"
    assert len(run.ingest) == 1, "new manuals are read in one batched run"
    (ingest,) = run.ingest.values()
    materialized = [e.partition for e in ingest.get_asset_materialization_events() if e.asset_key == AssetKey("page_text")]
    assert sorted(materialized) == sorted(run.added) and len(materialized) == 10
    assert run.datasets.success
    checks = {e.check_name: e for e in run.datasets.get_asset_check_evaluations()}
    assert set(checks) == CHECKS
    assert all(e.passed for e in checks.values()), {k: e.description for k, e in checks.items()}

    report = workspace.report()
    rejected = {r["file_name"]: r["reason"] for r in report["rejected_documents"]}
    assert set(rejected) == set(expected_errors)
    for name, words in expected_errors.items():
        assert name in rejected[name] and words in rejected[name]
    assert report["totals"]["documents_accepted"] == 4
    assert report["leakage"]["documents_in_several_splits"] == []
    for split in ("train", "validation", "test"):
        table = pq.read_table(workspace.processed / "dapt" / f"{split}.parquet")
        assert table.num_rows == report["splits"][split]["dapt_chunks"] > 0
        assert table.column_names == ["text", "token_count", "doc_id", "chunk_id", "page_start", "page_end"]
        assert len(workspace.sft_rows(split)) == report["splits"][split]["sft_conversations"] > 0
    markdown = (workspace.docs / "data_qc_report.md").read_text()
    assert "encrypted.pdf" in markdown and "Coverage ratio" in markdown
    assert _no_temporaries(workspace.processed) == [] and _no_temporaries(workspace.docs) == []


def test_sft_rows_follow_the_contract(workspace):
    write_small_corpus(workspace.manuals)
    with DagsterInstance.ephemeral() as instance:
        workspace.run(instance)
    system_prompt = (workspace.model_dir / "SYSTEM_PROMPT.txt").read_text().strip()
    rows = [r for s in ("train", "validation", "test") for r in workspace.sft_rows(s)]
    assert any(sum(m["role"] == "assistant" for m in r["messages"]) > 1 for r in rows), "some conversations are multi-turn"
    for row in rows:
        system = row["messages"][0]
        assert system["role"] == "system" and system["content"].startswith(system_prompt)
        assert "Commodore 64 specialization" in system["content"]
        assert row["source_refs"] and all(ref["doc_id"] == row["doc_id"] for ref in row["source_refs"])


def test_failing_check_stops_everything_downstream_in_the_same_run(workspace):
    write_small_corpus(workspace.manuals)
    consumed = []

    @asset(group_name="dataset")
    def gated_consumer(validation_report: dict) -> None:
        consumed.append(True)

    with DagsterInstance.ephemeral() as instance:
        run = workspace.run(instance, extra_assets=[gated_consumer], thresholds=QualityThresholds(min_coverage_ratio=1.01))
        checks = {e.check_name: e for e in run.datasets.get_asset_check_evaluations()}
        assert checks["coverage_ratio"].passed is False
        assert checks["coverage_ratio"].metadata["threshold"].value == 1.01
        materialized = {e.asset_key for e in run.datasets.get_asset_materialization_events()}
        assert AssetKey("validation_report") in materialized
        assert AssetKey("gated_consumer") not in materialized and consumed == []

        # the same graph with default thresholds lets the consumer run: the gate, not the wiring, stopped it
        run = workspace.run(instance, extra_assets=[gated_consumer])
        assert consumed == [True]


def test_adding_a_manual_keeps_every_split_and_removing_one_is_reported(workspace):
    write_small_corpus(workspace.manuals, ["vic_registers.md", "sid_registers.md", "cia_registers.md"])
    with DagsterInstance.ephemeral() as instance:
        workspace.run(instance)
        before = json.loads((workspace.processed / "splits.json").read_text())["assignment"]
        write_small_corpus(workspace.manuals, ["kernal_routines.md"])
        workspace.run(instance, only=["kernal_routines-md"])
        after = json.loads((workspace.processed / "splits.json").read_text())["assignment"]
        assert {d: after[d] for d in before} == before and "kernal_routines-md" in after

        (workspace.manuals / "kernal_routines.md").unlink()
        run = workspace.run(instance, only=[])
        assert run.removed == ["kernal_routines-md"]
        report = workspace.report()
        assert report["removed_documents"] == ["kernal_routines-md"]
        assert all(r["doc_id"] != "kernal_routines-md" for s in ("train", "validation", "test") for r in workspace.sft_rows(s))


def test_curated_conversations_are_validated(workspace):
    write_small_corpus(workspace.manuals)
    curated = workspace.root / "curated"
    curated.mkdir()
    good = {"messages": [{"role": "user", "content": "What colour is the C64 border after power-on?"},
                         {"role": "assistant", "content": "[THINK]Power-on value of $D020 is 14.[/THINK]Light blue (14)."}]}
    bad = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "No reasoning here."}]}
    (curated / "mine.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\nnot json\n")
    with DagsterInstance.ephemeral() as instance:
        workspace.run(instance)
    rejections = workspace.report()["curated_sft_rejections"]
    assert [(r["line"], "THINK" in r["reason"] or "JSON" in r["reason"]) for r in rejections] == [(2, True), (3, True)]
    train = workspace.sft_rows("train")
    assert any(r["origin"] == "curated:mine.jsonl" for r in train)


def test_two_runs_give_identical_datasets(tmp_path, tiny_model_dir):
    import pymupdf

    source = pymupdf.open()  # one scanned page, so OCR is part of what must repeat exactly
    source.new_page(width=504, height=684).insert_textbox(
        pymupdf.Rect(50, 60, 454, 620), "$D418 | 54296 | SIGVOL | Master volume and filter mode", fontsize=11)
    scan = pymupdf.open()
    scan.new_page(width=504, height=684).insert_image(
        pymupdf.Rect(0, 0, 504, 684), pixmap=source[0].get_pixmap(dpi=200, colorspace=pymupdf.csGRAY))
    scan.save(tmp_path / "scanned_sid.pdf")
    outputs = []
    for name in ("first", "second"):
        ws = Workspace.create(tmp_path / name, tiny_model_dir)
        write_small_corpus(ws.manuals)
        shutil.copy(tmp_path / "scanned_sid.pdf", ws.manuals)
        with DagsterInstance.ephemeral() as instance:
            assert ws.run(instance).datasets.success
        files = sorted(p for p in ws.processed.rglob("*") if p.is_file())
        outputs.append({p.relative_to(ws.processed).as_posix(): p.read_bytes() for p in files})
    assert set(outputs[0]) >= {"dapt/train.parquet", "sft/train.jsonl", "validation_report.json", "splits.json"}
    assert outputs[0] == outputs[1]


def test_chunk_length_and_the_reports_sft_limit_follow_the_training_recipe(workspace):
    """One max_length governs chunking, the report and training: for the real model the founding recipe's 2048
    (chunks of 2047 tokens, room for <s>), for the demo model the demo profile's 768."""
    from c64_pipeline.training.recipe import default_recipe

    write_small_corpus(workspace.manuals)
    with DagsterInstance.ephemeral() as instance:
        run = workspace.run(instance)
        assert run.datasets.success
        chunking = instance.get_latest_materialization_event(AssetKey("token_chunks")).asset_materialization
    founding = default_recipe("real", "dapt").max_length
    assert chunking.metadata["max_tokens"].value == founding - 1
    chunks = [row for split in ("train", "validation", "test")
              for row in pq.read_table(workspace.processed / "dapt" / f"{split}.parquet").to_pylist()]
    assert max(row["token_count"] for row in chunks) <= founding - 1
    assert workspace.report()["sft_max_length"] == default_recipe("real", "sft").max_length
    assert default_recipe("demo", "dapt").max_length == default_recipe("demo", "sft").max_length == 768
