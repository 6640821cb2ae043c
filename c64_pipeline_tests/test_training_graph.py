"""Training in the Dagster graph: Pipes subprocesses, the gates before training and the checks after it."""

from __future__ import annotations

import json

import pytest
from dagster import AssetKey, DagsterInstance

from c64_pipeline.defs.resources import QualityThresholds
from c64_pipeline.demo.runner import materialize_data_half
from c64_pipeline_tests.graph_helpers import Workspace, write_small_corpus

pytestmark = pytest.mark.slow

# the tiny model is validated as a real one (mode "real"), so "auto" would pick the founding recipe, which refuses
# to run on a machine without a bf16 GPU: the demo profile, cut to 30 steps
QUICK = {"profile": "demo", "max_steps": 30, "eval_max_prompts": 3, "eval_max_new_tokens": 32}
QUICK_RUN = {"ops": {name: {"config": QUICK} for name in ("dapt_adapter", "sft_adapter", "model_evaluation")}}


@pytest.fixture
def workspace(tmp_path, tiny_model_dir) -> Workspace:
    ws = Workspace.create(tmp_path, tiny_model_dir)
    write_small_corpus(ws.manuals)
    return ws


def _train(workspace, instance, **resource_overrides):
    from c64_pipeline.definitions import build_definitions

    defs = build_definitions(workspace.resources(**resource_overrides))
    data = materialize_data_half(defs, instance, workspace.manuals)
    training = defs.resolve_job_def("train_and_evaluate").execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUICK_RUN
    )
    return data, training


def test_adapters_and_evaluation_are_trained_in_pipes_processes(workspace):
    with DagsterInstance.ephemeral() as instance:
        # 30 steps do not teach the format; the demo test holds the real threshold
        data, training = _train(workspace, instance, thresholds=QualityThresholds(min_reasoning_format_rate=0.0))
        assert data.datasets.success
        assert training.success, [e.message for e in training.all_events if e.is_failure]
        materialized = {e.asset_key: e for e in training.get_asset_materialization_events()}
        assert set(materialized) == {AssetKey("dapt_adapter"), AssetKey("sft_adapter"), AssetKey("model_evaluation")}
        dapt = materialized[AssetKey("dapt_adapter")].materialization.metadata
        assert dapt["tokens_per_second"].value > 0 and "loss curve" in dapt["loss_curve"].value
        # the SFT adapter shows its fixed-prompt generations, the evaluation a stage-by-figure table (not JSON)
        sft = materialized[AssetKey("sft_adapter")].materialization.metadata
        assert "Greedy generations of 3 fixed validation prompts" in sft["sample_generations"].value
        table = materialized[AssetKey("model_evaluation")].materialization.metadata["evaluation"].value
        assert "| base+dapt+sft |" in table and "| truncated |" in table
        # the subprocess's log lines reached the run's logs
        logs = [e.message for e in instance.all_logs(training.run_id) if e.user_message and "progress" in e.user_message]
        assert logs
        checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in training.get_asset_check_evaluations()}
        for key in (("dapt_adapter", "loss_finite"), ("sft_adapter", "loss_finite"), ("dapt_adapter", "dapt_improves_validation"),
                    ("sft_adapter", "assistant_only_loss_recorded")):
            assert checks[key] is True, key
        assert ("model_evaluation", "reasoning_contract") in checks

    models = workspace.root / "models"
    manifest = json.loads((models / "fine-tuned-sft" / "run_manifest.json").read_text())
    assert manifest["assistant_only_loss"] is True and manifest["chat_template_sha256"]
    assert (models / "fine-tuned-dapt" / "loss_curve.png").is_file()
    report = json.loads((models / "evaluation" / "report.json").read_text())
    assert set(report["models"]) == {"base", "base+dapt", "base+dapt+sft"}


def test_training_does_not_start_when_a_data_gate_failed(workspace):
    with DagsterInstance.ephemeral() as instance:
        data, training = _train(workspace, instance, thresholds=QualityThresholds(min_coverage_ratio=1.01))
        assert not {e.check_name: e.passed for e in data.datasets.get_asset_check_evaluations()}["coverage_ratio"]
        assert not training.success
        failures = [
            (e.step_failure_data.user_failure_data.description if e.step_failure_data.user_failure_data else "")
            for e in training.all_events if e.is_step_failure
        ]
        assert any("training refused" in m and "coverage_ratio" in m for m in failures), failures
        assert training.get_asset_materialization_events() == []
    assert not (workspace.root / "models" / "fine-tuned-dapt").exists()
