"""bench.training end to end on the tests' small datasets, two steps a run: figures, ratios and the results file."""

from __future__ import annotations

import json

import pytest

from bench.training import main


@pytest.mark.slow
def test_training_bench_writes_figures_and_ratios(data_dir, model_dir, tmp_path):  # noqa: F811
    out = tmp_path / "training.json"
    assert main(["--steps", "2", "--repeats", "1", "--data-dir", str(data_dir), "--model-dir", str(model_dir),
                 "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    for stage, variants in (("dapt", ["plain_trl", "project"]),
                            ("sft", ["plain_trl", "project", "plain_trl_group_by_length"])):
        for variant in variants:
            figures = results[stage][variant]
            assert figures["steps"] == 2 and figures["tokens"] > 0 and figures["tokens_per_s"] > 0
            assert 0 <= figures["padding_share"] < 1
        assert results[stage]["ratio_tokens_per_s_project_to_plain"] > 0
    assert results["settings"]["steps"] == 2 and results["data_half_s"] is None
