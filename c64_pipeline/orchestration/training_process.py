"""The training process that the training assets launch through Dagster Pipes.

It runs a stage of c64_pipeline.training (dapt, sft or evaluation) with the parameters Dagster passes as Pipes
extras, streams progress to the run's logs and reports the materialization. Because it is a plain process, the same
entry point runs under `accelerate launch` / `torchrun` or on another machine:

    python -m c64_pipeline.orchestration.training_process      (started by PipesSubprocessClient)
"""

import base64
import json
import math
import os
from pathlib import Path

from dagster_pipes import open_dagster_pipes

from c64_pipeline.training.recipe import TrainingRecipe


def _png_markdown(path: Path, title: str) -> str:
    if not path.is_file():
        return f"_no {title}_"
    encoded = base64.b64encode(path.read_bytes()).decode()
    return f"![{title}](data:image/png;base64,{encoded})"


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def run_stage(extras: dict, progress) -> tuple[dict, dict]:
    """Run one stage; return (metrics, Dagster metadata)."""
    stage = extras["stage"]
    recipe = TrainingRecipe.from_dict(extras["recipe"])
    out_dir = Path(extras["out_dir"])
    if stage == "dapt":
        from c64_pipeline.training.dapt import train_dapt

        metrics = train_dapt(Path(extras["model_dir"]), Path(extras["dapt_dir"]), out_dir, recipe,
                             resume=extras.get("resume", True), progress=progress)
    elif stage == "sft":
        from c64_pipeline.training.sft import train_sft

        metrics = train_sft(Path(extras["model_dir"]), Path(extras["dapt_adapter_dir"]), Path(extras["sft_dir"]),
                            out_dir, recipe, resume=extras.get("resume", True), progress=progress)
    elif stage == "evaluation":
        from c64_pipeline.training.evaluation import evaluate

        exam_dir = Path(extras["exam_dir"]) if extras.get("exam_dir") else None
        metrics = evaluate(Path(extras["model_dir"]), Path(extras["dapt_adapter_dir"]), Path(extras["sft_adapter_dir"]),
                           Path(extras["dapt_dir"]), Path(extras["sft_dir"]), out_dir, recipe, progress=progress,
                           exam_dir=exam_dir)
        return metrics, evaluation_metadata(metrics, out_dir)
    elif stage == "merge":
        from c64_pipeline.training.export import export_merged_model

        merged = export_merged_model(Path(extras["model_dir"]), Path(extras["dapt_adapter_dir"]),
                                     Path(extras["sft_adapter_dir"]), out_dir, recipe.eval_max_new_tokens)
        metrics = {k: v for k, v in merged.as_dict().items() if k not in ("weight_files", "adapters")}
        return metrics, {**metrics, "weight_files": {"type": "json", "raw_value": merged.weight_files}}
    elif stage == "gguf":
        from c64_pipeline.training.export import export_gguf

        summary = export_gguf(Path(extras["merged_dir"]), out_dir, Path(extras["sft_dir"]) / "test.jsonl",
                              recipe.eval_max_prompts, recipe.eval_max_new_tokens, recipe.max_length)
        check = summary["check"]
        metrics = {k: check[k] for k in ("prompts", "format_ok", "format_rate", "prompt_tokens_identical")}
        return metrics, {**{k: v for k, v in metrics.items() if v is not None}, "out_dir": str(out_dir),
                         "files": {"type": "json", "raw_value": summary["files"]},
                         "contract_problems": {"type": "json", "raw_value": check["contract_problems"]},
                         "modelfile": {"type": "md", "raw_value": "```\n" + Path(summary["modelfile"]).read_text()
                                       + "```"}}
    else:
        raise ValueError(f"unknown training stage {stage!r}")
    metadata = {key: value for key, value in metrics.items() if isinstance(value, (int, float, str, bool)) and (not isinstance(value, float) or math.isfinite(value))}
    metadata["out_dir"] = str(out_dir)
    metadata["loss_curve"] = {"type": "md", "raw_value": _png_markdown(out_dir / "loss_curve.png", "loss curve")}
    if stage == "sft":
        from c64_pipeline.training.common import SAMPLE_GENERATIONS, sample_generations_markdown

        metadata["sample_generations"] = {"type": "md",
                                          "raw_value": sample_generations_markdown(out_dir / SAMPLE_GENERATIONS)}
    return metrics, metadata


def evaluation_metadata(report: dict, out_dir: Path) -> dict:
    """The evaluation in the UI: the stage-by-figure table, the full report, and the final model's figures as
    numbers (plottable across runs)."""
    from c64_pipeline.training.evaluation import summary_table

    markdown = (out_dir / "report.md").read_text(encoding="utf-8") if (out_dir / "report.md").is_file() else ""
    final = report["models"].get("base+dapt+sft", {})
    exam = final.get("exam") or {}
    figures = {
        "format_rate_after_sft": final.get("format_rate"),
        "truncated_after_sft": final.get("truncated"),
        "malformed_after_sft": final.get("malformed"),
        "exam_accuracy_after_sft": exam.get("accuracy"),
        "exam_questions": report.get("exam", {}).get("questions"),
        "exam_rejected_lines": len(report.get("exam", {}).get("rejections", [])),
    }
    metadata = {k: v for k, v in figures.items() if _number(v) is not None}
    return {"out_dir": str(out_dir), "evaluation": {"type": "md", "raw_value": summary_table(report)},
            "report": {"type": "md", "raw_value": markdown}, **metadata}


def _pipes_extras() -> dict:
    """The Pipes extras, read without opening the message channel (for ranks other than the main one)."""
    from dagster_pipes import PipesDefaultContextLoader, PipesEnvVarParamsLoader

    params = PipesEnvVarParamsLoader().load_context_params()
    with PipesDefaultContextLoader().load_context(params) as data:
        return dict(data["extras"])


def main() -> None:
    from c64_pipeline.training.distributed import launched_distributed, launcher_rank

    if launched_distributed() and launcher_rank() != 0:
        # under accelerate/torchrun: every rank trains, only rank 0 talks to Dagster (logs, metrics, the
        # materialization), so the run sees each figure once
        extras = _pipes_extras()
        if extras["stage"] in ("dapt", "sft"):  # evaluation and export run on the main process alone
            run_stage(extras, progress=None)
        return
    with open_dagster_pipes() as pipes:
        extras = dict(pipes.extras)
        pipes.log.info(f"{extras['stage']} starting in process {os.getpid()} with recipe {extras['recipe'].get('profile')}")

        def progress(event: dict) -> None:
            pipes.log.info("progress " + json.dumps(event, default=str))

        metrics, metadata = run_stage(extras, progress)
        pipes.report_asset_materialization(metadata=metadata)
        pipes.log.info(f"{extras['stage']} finished: " + json.dumps({k: _number(v) for k, v in metrics.items() if _number(v) is not None}))


if __name__ == "__main__":
    main()
