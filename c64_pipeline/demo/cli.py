"""`make demo`: the whole graph headless (data half, then training and evaluation on the tiny demo model, then its
export to GGUF checked under llama.cpp) into the project's Dagster storage (DAGSTER_HOME), so the runs show up in
`make ui` afterwards.

The bundled sample manuals are rendered into the manuals folder only when that folder is the project's own and
holds nothing else (a fresh checkout, or a previous demo). A folder you pointed the pipeline at (C64_MANUALS_DIR)
is never added to: the demo then runs on your shelf.

Usage: python -m c64_pipeline.demo [--samples | --no-samples] [--data-only | --no-export]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from datetime import datetime
from pathlib import Path

from c64_pipeline.settings import Paths, paths_from_env, user_chose_manuals_dir
from c64_pipeline.training.artifacts import MODELFILE, ModelsLayout


def quiet_libraries() -> None:
    """Library chatter off the console (the full event log goes to a file); the training process inherits it."""
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::UserWarning,ignore::DeprecationWarning")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    from dagster import BetaWarning, PreviewWarning

    warnings.filterwarnings("ignore", category=BetaWarning)
    warnings.filterwarnings("ignore", category=PreviewWarning)


def sample_decision(paths: Paths, force: bool | None) -> tuple[bool, str]:
    """Whether to render the sample manuals into the manuals folder, and why (a line for the console)."""
    from c64_pipeline.demo.sample_manuals import sample_file_names

    folder = paths.manuals_dir
    if force is not None:
        return force, ("--samples" if force else "--no-samples")
    if user_chose_manuals_dir():
        return False, f"your manuals folder {folder} (C64_MANUALS_DIR) is never added to"
    others = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []
    foreign = [name for name in others if name not in sample_file_names()]
    if foreign:
        return False, f"{folder} holds your files ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''})"
    return True, f"{folder} holds no manuals of yours"


SAMPLE_EXAM_DIR = Path(__file__).with_name("sample_exam")


def copy_sample_exam(eval_dir: Path) -> list[Path]:
    """The bundled exam on the sample manuals, copied into the eval folder (a user's own files there are kept)."""
    from c64_pipeline.atomic import write_text

    copied = []
    for source in sorted(SAMPLE_EXAM_DIR.glob("*.jsonl")):
        write_text(Path(eval_dir) / source.name, source.read_text(encoding="utf-8"))
        copied.append(Path(eval_dir) / source.name)
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    samples = parser.add_mutually_exclusive_group()
    samples.add_argument("--samples", dest="samples", action="store_const", const=True,
                         help="render the bundled sample manuals into the manuals folder even if it holds other files")
    samples.add_argument("--no-samples", dest="samples", action="store_const", const=False,
                         help="never render the sample manuals (run on what the manuals folder holds)")
    parser.add_argument("--data-only", action="store_true", help="stop after the data half (no training)")
    parser.add_argument("--no-export", action="store_true",
                        help="stop after training and evaluation (no merged model, GGUF or llama.cpp check)")
    args = parser.parse_args(argv)

    quiet_libraries()
    paths = paths_from_env()
    os.environ.setdefault("DAGSTER_HOME", str(paths.dagster_home))
    paths.dagster_home.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    paths.logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = paths.logs_dir / f"demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}.log"

    def say(line: str) -> None:
        print(f"[{time.perf_counter() - started:5.0f} s] {line}", flush=True)

    render, why = sample_decision(paths, args.samples)
    if render:
        from c64_pipeline.demo.sample_manuals import render_sample_manuals

        rendered = render_sample_manuals(paths.manuals_dir)
        say(f"sample manuals: {len(rendered)} files rendered into {paths.manuals_dir} ({why})")
        exam = copy_sample_exam(paths.eval_dir)
        say(f"sample exam: {', '.join(p.name for p in exam)} in {paths.eval_dir}")
    else:
        say(f"sample manuals not rendered: {why}")

    from dagster import DagsterInstance

    from c64_pipeline.definitions import defs
    from c64_pipeline.demo.console import (
        QUIET_RUN_CONFIG, TrainingHeartbeat, check_lines, step_lines, write_event_log,
    )
    from c64_pipeline.demo.runner import materialize_data_half, materialize_graph

    instance = DagsterInstance.get()
    with log_path.open("w", encoding="utf-8") as log:

        def on_run(name: str, result) -> None:
            write_event_log(instance, result, log)
            say(f"{name}: {'ok' if result.success else 'FAILED'} (run {result.run_id[:8]})")
            for line in step_lines(instance, result) + check_lines(result):
                print(line, flush=True)

        def during_training():
            say("training: DAPT, then SFT, then the evaluation (about 11 minutes on 2 cores for the demo model)")
            return TrainingHeartbeat(paths.models_dir, out=lambda line: print(line, flush=True))

        say(f"reading {paths.manuals_dir} as new_manuals_sensor would (full event log: {log_path})")
        if args.data_only:
            run = materialize_data_half(defs, instance, paths.manuals_dir, run_config=QUIET_RUN_CONFIG, on_run=on_run)
        else:
            run = materialize_graph(defs, instance, paths.manuals_dir, run_config=QUIET_RUN_CONFIG, on_run=on_run,
                                    during_training=during_training, export=not args.no_export)

    say(f"documents: {len(instance.get_dynamic_partitions('manuals'))} (new {len(run.added)}, "
        f"removed {len(run.removed)}); done")
    print("outputs:")
    for rel in ("dapt/train.parquet", "dapt/validation.parquet", "dapt/test.parquet",
                "sft/train.jsonl", "sft/validation.jsonl", "sft/test.jsonl", "validation_report.json"):
        print(f"  {paths.processed_dir / rel}")
    print(f"  {paths.docs_dir / 'data_qc_report.md'}")
    models = ModelsLayout(paths.models_dir)
    if not args.data_only:
        for path in (models.dapt.path, models.sft.path, models.evaluation.report_markdown):
            print(f"  {path}")
        if run.export is not None:
            for path in (models.merged, models.gguf, models.gguf / MODELFILE):
                print(f"  {path}")
    print(f"full event log: {log_path}")
    print(f"Dagster storage: {paths.dagster_home}")
    print("Open the web UI on the same storage with: make ui   (dagster dev -w workspace.yaml -h 127.0.0.1, "
          "http://127.0.0.1:3000)")
    for result in run.failed_results:
        print(f"\nFAILED (non-blocking) {result}; see {models.evaluation.report_markdown}")
    if run.failures:
        print("\nFAILED: " + ", ".join(run.failures), file=sys.stderr)
        return 1
    return 0
