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

from c64_pipeline.defs.resources import BaseModelSource, PipelinePaths, QualityThresholds
from c64_pipeline.defs.training.assets import TrainingConfig, TrainingLauncher, launch_stage, stage_request
from c64_pipeline.training.artifacts import ModelsLayout


def export_asset(name: str, stage: str, after: list[str], description: str):
    """The asset `name`: the `stage` of c64_pipeline.training.export run in one Pipes process."""

    @asset(name=name, group_name="export", pool="gpu", deps=[AssetKey(key) for key in after], description=description)
    def export(context: AssetExecutionContext, config: TrainingConfig, model_source: BaseModelSource,
               paths: PipelinePaths, pipes_subprocess_client: PipesSubprocessClient) -> MaterializeResult:
        return launch_stage(context, pipes_subprocess_client, TrainingLauncher(),
                         stage_request(stage, config, model_source, paths))

    return export


merged_model = export_asset(
    "merged_model", "merge", ["base_model", "dapt_adapter", "sft_adapter"],
    "Base + DAPT + SFT merged into plain safetensors with tokenizer, chat template, SYSTEM_PROMPT.txt and "
    "a generation config (models/merged/): loads with from_pretrained alone.",
)
gguf_model = export_asset(
    "gguf_model", "gguf", ["merged_model", "sft_dataset"],
    "GGUF files (F16, Q8_0) written by llama.cpp's own converter, an Ollama Modelfile, and greedy "
    "generations of held-out prompts run by llama.cpp (models/gguf/).",
)


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
