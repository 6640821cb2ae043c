"""`make demo`: render the sample manuals, then materialize the whole graph headless (data half, then training
and evaluation on the tiny demo model) into the project's Dagster storage (DAGSTER_HOME), so the runs show up in
`make ui` afterwards.

Usage: python -m c64_pipeline.demo [--no-samples] [--data-only]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from dagster import DagsterInstance

from c64_pipeline.settings import PROJECT_ROOT, paths_from_env

SAMPLE_EXAM_DIR = PROJECT_ROOT / "data" / "sample_exam"


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
    parser.add_argument("--no-samples", action="store_true", help="do not render the bundled sample manuals")
    parser.add_argument("--data-only", action="store_true", help="stop after the data half (no training)")
    args = parser.parse_args(argv)

    paths = paths_from_env()
    os.environ.setdefault("DAGSTER_HOME", str(paths.dagster_home))
    paths.dagster_home.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    if not args.no_samples:
        from c64_pipeline.sample_manuals import render_sample_manuals

        rendered = render_sample_manuals(paths.manuals_dir)
        print(f"sample manuals: {len(rendered)} files in {paths.manuals_dir}")
        exam = copy_sample_exam(paths.eval_dir)
        print(f"sample exam: {', '.join(p.name for p in exam)} in {paths.eval_dir}")

    from c64_pipeline.definitions import defs
    from c64_pipeline.orchestration.runner import materialize_data_half, materialize_graph

    instance = DagsterInstance.get()
    if args.data_only:
        run = materialize_data_half(defs, instance, paths.manuals_dir)
    else:
        run = materialize_graph(defs, instance, paths.manuals_dir)
    print(f"documents: {len(instance.get_dynamic_partitions('manuals'))} (new {len(run.added)}, removed {len(run.removed)})")
    for key, result in run.ingest.items():
        print(f"  ingest {key}: {'ok' if result.success else 'FAILED'}")
    print("checks:")
    for result in (run.datasets, run.training):
        for evaluation in result.get_asset_check_evaluations() if result is not None else []:
            print(f"  {evaluation.asset_key.to_user_string()} {evaluation.check_name}: "
                  f"{'passed' if evaluation.passed else 'FAILED'} - {evaluation.description}")
    failed = run.failures

    print(f"\ndone in {time.perf_counter() - started:.0f} s")
    print("outputs:")
    for rel in ("dapt/train.parquet", "dapt/validation.parquet", "dapt/test.parquet",
                "sft/train.jsonl", "sft/validation.jsonl", "sft/test.jsonl", "validation_report.json"):
        print(f"  {paths.processed_dir / rel}")
    print(f"  {paths.docs_dir / 'data_qc_report.md'}")
    if not args.data_only:
        for rel in ("fine-tuned-dapt", "fine-tuned-sft", "evaluation/report.md"):
            print(f"  {paths.models_dir / rel}")
    print(f"Dagster storage: {paths.dagster_home}")
    print("Open the web UI on the same storage with: make ui   (dagster dev -w workspace.yaml -h 127.0.0.1, http://127.0.0.1:3000)")
    for result in run.failed_results:
        print(f"\nFAILED (non-blocking) {result}; see {paths.models_dir / 'evaluation' / 'report.md'}")
    if failed:
        print("\nFAILED: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
