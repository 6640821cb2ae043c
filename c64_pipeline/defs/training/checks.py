"""Checks after training, read from what the training process wrote (run manifest, metrics, evaluation report)."""

import math
from pathlib import Path

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, MetadataValue, asset_check

from c64_pipeline.defs.resources import PipelinePaths, QualityThresholds
from c64_pipeline.defs.training.assets import dapt_adapter, model_evaluation, sft_adapter
from c64_pipeline.training.artifacts import ModelsLayout, RunDir


def _models(paths: PipelinePaths) -> ModelsLayout:
    return ModelsLayout(paths.models_dir)


def _fail(description: str, **metadata) -> AssetCheckResult:
    return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR, description=description, metadata=metadata)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _loss_finite(run: RunDir) -> AssetCheckResult:
    metrics = run.read_metrics()
    if metrics is None:
        return _fail(f"no {run.metrics.name} in {run.path}")
    train, evaluation = metrics.get("final_train_loss"), metrics.get("final_eval_loss")
    losses = [e.get("loss") for e in (run.read_log_history() or []) if "loss" in e]
    ok = _finite(train) and _finite(evaluation) and all(_finite(x) for x in losses)
    return AssetCheckResult(
        passed=ok, severity=AssetCheckSeverity.ERROR,
        description=f"final train loss {train}, final eval loss {evaluation}, {len(losses)} logged losses all finite: {ok}",
        metadata={"final_train_loss": train if _finite(train) else str(train),
                  "final_eval_loss": evaluation if _finite(evaluation) else str(evaluation), "logged_losses": len(losses)},
    )


@asset_check(asset=dapt_adapter, name="loss_finite", blocking=True, description="No NaN/inf loss; eval loss recorded.")
def dapt_loss_finite(paths: PipelinePaths) -> AssetCheckResult:
    return _loss_finite(_models(paths).dapt)


@asset_check(asset=sft_adapter, name="loss_finite", blocking=True, description="No NaN/inf loss; eval loss recorded.")
def sft_loss_finite(paths: PipelinePaths) -> AssetCheckResult:
    return _loss_finite(_models(paths).sft)


@asset_check(asset=dapt_adapter, blocking=True,
             description="Validation loss after DAPT is below the base model's loss on the same validation chunks.")
def dapt_improves_validation(paths: PipelinePaths) -> AssetCheckResult:
    metrics = _models(paths).dapt.read_metrics() or {}
    before, after = metrics.get("base_eval_loss"), metrics.get("final_eval_loss")
    if not (_finite(before) and _finite(after)):
        return _fail(f"eval losses missing (base {before}, after DAPT {after})")
    return AssetCheckResult(
        passed=after < before, severity=AssetCheckSeverity.ERROR,
        description=f"validation loss {before:.4f} (base) -> {after:.4f} (after DAPT)",
        metadata={"base_eval_loss": before, "dapt_eval_loss": after, "improvement": before - after},
    )


@asset_check(asset=sft_adapter, blocking=True,
             description="The run manifest records that SFT trained with assistant_only_loss=True.")
def assistant_only_loss_recorded(paths: PipelinePaths) -> AssetCheckResult:
    manifest = _models(paths).sft.read_manifest()
    if manifest is None:
        return _fail("no run_manifest.json for the SFT adapter")
    value = manifest.get("assistant_only_loss")
    return AssetCheckResult(
        passed=value is True, severity=AssetCheckSeverity.ERROR,
        description=f"assistant_only_loss in the run manifest: {value}",
        metadata={"assistant_only_loss": str(value), "chat_template_sha256": str(manifest.get("chat_template_sha256"))},
    )


# Not blocking: nothing is downstream of the evaluation; a failure is an ERROR result (and an alert), not a crash.
@asset_check(asset=model_evaluation, blocking=False,
             description="After SFT, held-out generations that finish within the token budget keep "
             "[THINK]reasoning[/THINK]answer</s> at the configured rate (truncated ones are counted apart).")
def reasoning_contract(paths: PipelinePaths, thresholds: QualityThresholds) -> AssetCheckResult:
    report = _models(paths).evaluation.read_report()
    if report is None:
        return _fail("no evaluation report")
    models = report["models"]
    rates = {stage: r.get("format_rate") for stage, r in models.items()}
    truncated = {stage: r.get("truncated", 0) for stage, r in models.items()}
    after = models.get("base+dapt+sft", {})
    final = rates.get("base+dapt+sft")
    floor = thresholds.min_reasoning_format_rate
    finished, prompts = after.get("finished", after.get("prompts")), after.get("prompts")
    if _finite(final):
        verdict = f"format rate after SFT {final:.3f} over {finished} finished generations (threshold {floor})"
    else:
        verdict = f"no generation after SFT finished within the token budget ({prompts} prompts, all truncated)"
    return AssetCheckResult(
        passed=_finite(final) and final >= floor, severity=AssetCheckSeverity.ERROR,
        description=f"{verdict}; truncated {truncated.get('base+dapt+sft')}/{prompts}; base {rates.get('base')}, "
        f"base+DAPT {rates.get('base+dapt')}",
        metadata={"format_rate_after_sft": final if _finite(final) else str(final), "threshold": floor,
                  "finished_after_sft": finished if finished is not None else "n/a",
                  "truncated_after_sft": truncated.get("base+dapt+sft", 0),
                  "malformed_after_sft": after.get("malformed", "n/a"),
                  "rates": MetadataValue.json(rates), "truncated": MetadataValue.json(truncated),
                  "fact_accuracy": MetadataValue.json({s: r.get("fact_accuracy") for s, r in models.items()}),
                  "exam_accuracy": MetadataValue.json({s: (r.get("exam") or {}).get("accuracy") for s, r in models.items()})},
    )


@asset_check(asset=AssetKey("base_model"), blocking=True,
             description="The chat template really marks assistant turns (rendered assistant mask), or SFT is refused.")
def chat_template_has_generation_blocks(base_model) -> AssetCheckResult:  # a ModelIdentity
    from c64_pipeline.base_model import load_tokenizer
    from c64_pipeline.training.sft import ChatTemplateError, strict_template_check

    tokenizer = load_tokenizer(Path(base_model.model_dir))
    sample = [
        {"role": "system", "content": "You are a C64 expert."},
        {"role": "user", "content": "Where is the border colour register?"},
        {"role": "assistant", "content": "[THINK]The VIC-II table lists it.[/THINK]$D020 (53280)."},
    ]
    try:
        strict_template_check(tokenizer, sample)
    except ChatTemplateError as exc:
        return _fail(str(exc))
    return AssetCheckResult(passed=True, severity=AssetCheckSeverity.ERROR,
                            description="assistant turns (with the end-of-sequence token) and nothing else are marked")


training_checks = [
    chat_template_has_generation_blocks, dapt_loss_finite, sft_loss_finite, dapt_improves_validation,
    assistant_only_loss_recorded, reasoning_contract,
]
