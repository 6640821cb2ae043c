"""End to end: the demo command on the bundled sample manuals, into its own Dagster storage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from c64_pipeline.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_workspace_loads_for_the_web_ui(tmp_path):
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_demo_materializes_the_whole_graph_into_its_dagster_home(tmp_path):
    env = {
        **os.environ,
        "C64_DATA_DIR": str(tmp_path / "data"),
        "C64_MODELS_DIR": str(tmp_path / "models"),
        "C64_DOCS_DIR": str(tmp_path / "docs"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    result = subprocess.run([sys.executable, "-m", "c64_pipeline.demo"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "make ui" in result.stdout and "127.0.0.1" in result.stdout

    processed = tmp_path / "data" / "processed"
    for rel in ("dapt/train.parquet", "dapt/validation.parquet", "dapt/test.parquet",
                "sft/train.jsonl", "sft/validation.jsonl", "sft/test.jsonl", "validation_report.json"):
        assert (processed / rel).is_file(), rel
    assert (tmp_path / "docs" / "data_qc_report.md").is_file()
    models = tmp_path / "models"
    assert (models / "c64-tiny-ministral3" / "model.safetensors").is_file()
    for stage in ("fine-tuned-dapt", "fine-tuned-sft"):
        assert (models / stage / "adapter_model.safetensors").is_file() and (models / stage / "run_manifest.json").is_file()
    evaluation = json.loads((models / "evaluation" / "report.json").read_text())
    assert set(evaluation["models"]) == {"base", "base+dapt", "base+dapt+sft"}

    report = json.loads((processed / "validation_report.json").read_text())
    kinds = {d["kind"] for d in report["documents"]}
    assert {"pdf", "md"} <= kinds and report["totals"]["documents_rejected"] == 0
    assert report["totals"]["pages"] >= 40 and report["totals"]["pages_ocr"] > 0
    assert report["totals"]["coverage_ratio"] >= 0.9

    # the runs are in the project's Dagster storage, so `make ui` shows them
    from dagster import AssetCheckKey, AssetKey, DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    with DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / "dagster_home"))) as instance:
        for asset in ("validation_report", "dapt_adapter", "sft_adapter", "model_evaluation"):
            assert instance.get_latest_materialization_event(AssetKey(asset)) is not None, asset
        assert len(instance.get_dynamic_partitions("manuals")) == len(report["documents"])
        contract = instance.get_latest_asset_check_evaluation_record(
            AssetCheckKey(AssetKey("model_evaluation"), "reasoning_contract"))
        assert contract.event.dagster_event.event_specific_data.passed
    # the demo model learns the reasoning format: at least 0.9 of the held-out prompts, checked on token ids
    after_sft = evaluation["models"]["base+dapt+sft"]
    assert after_sft["prompts"] >= 30 and after_sft["format_rate"] >= 0.9, after_sft["contract_problems"]
    assert evaluation["models"]["base"]["format_ok"] == 0
    # the bundled exam was copied into the eval folder and asked of every stage (capped by the demo profile)
    assert evaluation["exam"]["questions"] > 0 and evaluation["exam"]["rejections"] == []
    assert all(m["exam"]["questions"] == evaluation["exam"]["questions"] for m in evaluation["models"].values())
    assert (models / "fine-tuned-sft" / "sample_generations.jsonl").is_file()
    assert after_sft["sft_test_loss"] < evaluation["models"]["base"]["sft_test_loss"]
    assert "model_evaluation reasoning_contract: passed" in result.stdout

    # ... and ends with a model people can run: GGUF files written by llama.cpp's converter, whose greedy answers
    # under llama.cpp keep the [THINK] format on held-out prompts tokenized exactly as transformers tokenizes them
    gguf = models / "gguf"
    assert {p.name for p in gguf.glob("*.gguf")} == {"c64-ministral3-F16.gguf", "c64-ministral3-Q8_0.gguf"}
    assert (gguf / "Modelfile").read_text().startswith("FROM ./c64-ministral3-Q8_0.gguf")
    summary = json.loads((gguf / "gguf_check.json").read_text())
    check = summary["check"]
    assert summary["vocabulary"] == "tekken.json"  # the demo tokenizer is in the Tekken layout llama.cpp reads
    assert check["prompts"] >= 10 and check["prompt_tokens_identical"] == check["prompts"]
    assert check["format_rate"] >= 0.9, check["contract_problems"]
    assert "gguf_model gguf_reasoning_contract: passed" in result.stdout
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / "dagster_home"))) as instance:
        contract = instance.get_latest_asset_check_evaluation_record(
            AssetCheckKey(AssetKey("gguf_model"), "gguf_reasoning_contract"))
        assert contract.event.dagster_event.event_specific_data.passed

    # llama.cpp and transformers split every line of the training data into the same ids
    from llama_cpp import Llama

    from c64_pipeline.base_model import load_tokenizer

    tokenizer = load_tokenizer(models / "merged")
    import pyarrow.parquet as pq

    texts = pq.read_table(processed / "dapt" / "train.parquet").column("text").to_pylist()[:200]
    llm = Llama(model_path=str(gguf / "c64-ministral3-F16.gguf"), vocab_only=True, verbose=False)
    try:
        assert llm.metadata["tokenizer.ggml.pre"] == "tekken"
        differ = [t[:60] for t in texts if list(llm.tokenize(t.encode(), add_bos=False, special=True))
                  != tokenizer.encode(t, add_special_tokens=False)]
    finally:
        llm.close()
    assert texts and differ == []
