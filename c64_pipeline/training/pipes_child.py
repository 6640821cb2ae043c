"""The training process that the training and export assets launch through Dagster Pipes.

It reads its `StageRequest` from the Pipes extras, runs that stage of c64_pipeline.training (dapt, sft, evaluation,
merge or gguf), streams progress to the run's logs and reports the materialization. Because it is a plain process
(it speaks the `dagster_pipes` protocol only, and imports nothing of Dagster), the same entry point runs under
`accelerate launch` / `torchrun` or on another machine:

    python -m c64_pipeline.training.pipes_child      (started by PipesSubprocessClient)
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

from c64_pipeline.training.artifacts import EvaluationDir, RunDir
from c64_pipeline.training.request import StageRequest

Progress = Callable[[dict], None] | None
Result = tuple[dict, dict]  # (metrics, Dagster metadata in the Pipes form)


def _png_markdown(path: Path, title: str) -> str:
    if not path.is_file():
        return f"_no {title}_"
    encoded = base64.b64encode(path.read_bytes()).decode()
    return f"![{title}](data:image/png;base64,{encoded})"


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _markdown(text: str) -> dict:
    return {"type": "md", "raw_value": text}


def _json(value) -> dict:
    return {"type": "json", "raw_value": value}


def training_metadata(metrics: dict, run: RunDir) -> dict:
    """A training run in the UI: its scalar figures, the output folder and the loss curve."""
    metadata = {key: value for key, value in metrics.items()
                if isinstance(value, (int, float, str, bool)) and (not isinstance(value, float) or math.isfinite(value))}
    metadata["out_dir"] = str(run.path)
    metadata["loss_curve"] = _markdown(_png_markdown(run.loss_curve, "loss curve"))
    return metadata


# ---------------------------------------------------------------------------------------------------- stages


def _dapt(request: StageRequest, progress: Progress) -> Result:
    from c64_pipeline.training.dapt import train_dapt

    metrics = train_dapt(request.model_dir, request.dapt_dir, request.out_dir, request.recipe,
                         resume=request.resume, progress=progress)
    return metrics, training_metadata(metrics, RunDir(request.out_dir))


def _sft(request: StageRequest, progress: Progress) -> Result:
    from c64_pipeline.training.common import sample_generations_markdown
    from c64_pipeline.training.sft import train_sft

    metrics = train_sft(request.model_dir, request.dapt_adapter_dir, request.sft_dir, request.out_dir,
                        request.recipe, resume=request.resume, progress=progress)
    run = RunDir(request.out_dir)
    return metrics, {**training_metadata(metrics, run),
                     "sample_generations": _markdown(sample_generations_markdown(run.sample_generations))}


def _evaluation(request: StageRequest, progress: Progress) -> Result:
    from c64_pipeline.training.evaluation import evaluate

    metrics = evaluate(request.model_dir, request.dapt_adapter_dir, request.sft_adapter_dir, request.dapt_dir,
                       request.sft_dir, request.out_dir, request.recipe, progress=progress, exam_dir=request.exam_dir)
    return metrics, evaluation_metadata(metrics, request.out_dir)


def _merge(request: StageRequest, progress: Progress) -> Result:
    from c64_pipeline.training.export import export_merged_model

    merged = export_merged_model(request.model_dir, request.dapt_adapter_dir, request.sft_adapter_dir,
                                 request.out_dir, request.recipe.eval_max_new_tokens)
    metrics = {k: v for k, v in merged.as_dict().items() if k not in ("weight_files", "adapters")}
    return metrics, {**metrics, "weight_files": _json(merged.weight_files)}


def _gguf(request: StageRequest, progress: Progress) -> Result:
    from c64_pipeline.training.artifacts import sft_split
    from c64_pipeline.training.export import export_gguf

    recipe = request.recipe
    summary = export_gguf(request.merged_dir, request.out_dir, sft_split(request.sft_dir, "test"),
                          recipe.eval_max_prompts, recipe.eval_max_new_tokens, recipe.max_length)
    check = summary["check"]
    metrics = {k: check[k] for k in ("prompts", "format_ok", "format_rate", "prompt_tokens_identical")}
    return metrics, {**{k: v for k, v in metrics.items() if v is not None}, "out_dir": str(request.out_dir),
                     "files": _json(summary["files"]), "contract_problems": _json(check["contract_problems"]),
                     "modelfile": _markdown("```\n" + Path(summary["modelfile"]).read_text() + "```")}


RUNNERS: dict[str, Callable[[StageRequest, Progress], Result]] = {
    "dapt": _dapt, "sft": _sft, "evaluation": _evaluation, "merge": _merge, "gguf": _gguf,
}
# Stages every rank of a distributed launch takes part in; the others run on the main process alone
DISTRIBUTED_STAGES = ("dapt", "sft")


def run_stage(request: StageRequest, progress: Progress = None) -> Result:
    """Run one stage; return (metrics, Dagster metadata)."""
    return RUNNERS[request.stage](request, progress)


def evaluation_metadata(report: dict, out_dir: Path) -> dict:
    """The evaluation in the UI: the stage-by-figure table, the full report, and the final model's figures as
    numbers (plottable across runs)."""
    from c64_pipeline.training.evaluation import summary_table

    written = EvaluationDir(out_dir)
    markdown = written.report_markdown.read_text(encoding="utf-8") if written.report_markdown.is_file() else ""
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
    return {"out_dir": str(out_dir), "evaluation": _markdown(summary_table(report)),
            "report": _markdown(markdown), **metadata}


# ---------------------------------------------------------------------------------------------------- entry point


def _pipes_extras() -> dict:
    """The Pipes extras, read without opening the message channel (for ranks other than the main one)."""
    from dagster_pipes import PipesDefaultContextLoader, PipesEnvVarParamsLoader

    params = PipesEnvVarParamsLoader().load_context_params()
    with PipesDefaultContextLoader().load_context(params) as data:
        return dict(data["extras"])


def main() -> None:
    from dagster_pipes import open_dagster_pipes

    from c64_pipeline.training.distributed import launched_distributed, launcher_rank

    if launched_distributed() and launcher_rank() != 0:
        # under accelerate/torchrun: every rank trains, only rank 0 talks to Dagster (logs, metrics, the
        # materialization), so the run sees each figure once
        request = StageRequest.from_extras(_pipes_extras())
        if request.stage in DISTRIBUTED_STAGES:
            run_stage(request, progress=None)
        return
    with open_dagster_pipes() as pipes:
        request = StageRequest.from_extras(dict(pipes.extras))
        pipes.log.info(f"{request.stage} starting in process {os.getpid()} with recipe {request.recipe.profile}")

        def progress(event: dict) -> None:
            pipes.log.info("progress " + json.dumps(event, default=str))

        metrics, metadata = run_stage(request, progress)
        pipes.report_asset_materialization(metadata=metadata)
        pipes.log.info(f"{request.stage} finished: "
                       + json.dumps({k: _number(v) for k, v in metrics.items() if _number(v) is not None}))


if __name__ == "__main__":
    main()
