"""Export assets downstream of the SFT adapter: the merged model (plain safetensors) and its GGUF files with an Ollama
Modelfile, checked with llama.cpp. Each runs c64_pipeline.training.export in its own process through Dagster Pipes,
always as one process (merging and converting are not distributed)."""

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

from c64_pipeline.orchestration.resources import BaseModelSource, PipelinePaths, QualityThresholds
from c64_pipeline.orchestration.training_assets import TrainingConfig, TrainingLauncher, run_stage, stage_request
from c64_pipeline.training.artifacts import ModelsLayout


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
    return run_stage(context, pipes_subprocess_client, TrainingLauncher(),
                     stage_request("merge", config, model_source, paths, model_dir=base_model["model_dir"]))


@asset(
    group_name="export",
    pool="gpu",
    deps=[AssetKey("merged_model"), AssetKey("sft_dataset")],
    description="GGUF files (F16, Q8_0) written by llama.cpp's own converter, an Ollama Modelfile, and greedy "
    "generations of held-out prompts run by llama.cpp (models/gguf/).",
)
def gguf_model(context: AssetExecutionContext, config: TrainingConfig, model_source: BaseModelSource,
               paths: PipelinePaths, pipes_subprocess_client: PipesSubprocessClient) -> MaterializeResult:
    return run_stage(context, pipes_subprocess_client, TrainingLauncher(),
                     stage_request("gguf", config, model_source, paths))


@asset_check(asset=gguf_model, blocking=False,
             description="Under llama.cpp the GGUF tokenizes prompts exactly as transformers does and its greedy "
             "generations keep [THINK]reasoning[/THINK]answer</s> at the configured rate.")
def gguf_reasoning_contract(paths: PipelinePaths, thresholds: QualityThresholds) -> AssetCheckResult:
    import json

    path = ModelsLayout(paths.models_dir).gguf_check
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
