"""Export assets downstream of the SFT adapter: the merged model (plain safetensors) and its GGUF files with an Ollama
Modelfile, checked with llama.cpp. Each runs c64_pipeline.training.export in its own process through Dagster Pipes,
always as one process (merging and converting are not distributed)."""

from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    PipesSubprocessClient,
    asset,
    asset_check,
)

from c64_pipeline.defs.resources import BaseModelSource, PipelinePaths, QualityThresholds
from c64_pipeline.orchestration.training_assets import TrainingConfig, TrainingLauncher, _model_dir, _run
from c64_pipeline.training.export import GGUF_CHECK_FILE

MERGED_DIR, GGUF_DIR = "merged", "gguf"


@asset(
    group_name="export",
    pool="gpu",
    deps=[AssetKey("dapt_adapter"), AssetKey("sft_adapter")],
    description="Base + DAPT + SFT merged into plain safetensors with tokenizer, chat template, SYSTEM_PROMPT.txt and "
    "a generation config (models/merged/): loads with from_pretrained alone.",
)
def merged_model(context: AssetExecutionContext, config: TrainingConfig, base_model: dict,
                 model_source: BaseModelSource, paths: PipelinePaths,
                 pipes_subprocess_client: PipesSubprocessClient) -> MaterializeResult:
    recipe = config.recipe(model_source.mode, "sft")
    models = Path(paths.models_dir)
    return _run(context, pipes_subprocess_client, TrainingLauncher(), {
        "stage": "merge", "recipe": recipe.as_dict(), "model_dir": str(_model_dir(base_model)),
        "dapt_adapter_dir": str(models / "fine-tuned-dapt"), "sft_adapter_dir": str(models / "fine-tuned-sft"),
        "out_dir": str(models / MERGED_DIR),
    })


@asset(
    group_name="export",
    pool="gpu",
    deps=[AssetKey("merged_model"), AssetKey("sft_dataset")],
    description="GGUF files (F16, Q8_0) written by llama.cpp's own converter, an Ollama Modelfile, and greedy "
    "generations of held-out prompts run by llama.cpp (models/gguf/).",
)
def gguf_model(context: AssetExecutionContext, config: TrainingConfig, model_source: BaseModelSource,
               paths: PipelinePaths, pipes_subprocess_client: PipesSubprocessClient) -> MaterializeResult:
    recipe = config.recipe(model_source.mode, "sft")
    models = Path(paths.models_dir)
    return _run(context, pipes_subprocess_client, TrainingLauncher(), {
        "stage": "gguf", "recipe": recipe.as_dict(), "merged_dir": str(models / MERGED_DIR),
        "sft_dir": str(paths.processed / "sft"), "out_dir": str(models / GGUF_DIR),
    })


@asset_check(asset=gguf_model, blocking=False,
             description="Under llama.cpp the GGUF tokenizes prompts exactly as transformers does and its greedy "
             "generations keep [THINK]reasoning[/THINK]answer</s> at the configured rate.")
def gguf_reasoning_contract(paths: PipelinePaths, thresholds: QualityThresholds) -> AssetCheckResult:
    import json

    path = Path(paths.models_dir) / GGUF_DIR / GGUF_CHECK_FILE
    if not path.is_file():
        return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR, description=f"no {path}")
    check = json.loads(path.read_text())["check"]
    rate, floor = check.get("format_rate"), thresholds.min_reasoning_format_rate
    same_tokens = check["prompt_tokens_identical"] == check["prompts"]
    passed = check["prompts"] > 0 and same_tokens and rate is not None and rate >= floor
    return AssetCheckResult(
        passed=passed, severity=AssetCheckSeverity.ERROR,
        description=f"llama.cpp: format rate {rate} (threshold {floor}); prompts tokenized as transformers does: "
        f"{check['prompt_tokens_identical']}/{check['prompts']}",
        metadata={"format_rate": rate if rate is not None else "n/a", "threshold": floor,
                  "contract_problems": MetadataValue.json(check["contract_problems"])},
    )


export_assets = [merged_model, gguf_model]
export_checks = [gguf_reasoning_contract]
