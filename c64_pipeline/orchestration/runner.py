"""Materialize the data half headless: every document partition, then the corpus-wide datasets and checks.
Used by `make demo` and by the integration tests, against any Dagster instance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dagster import AssetCheckSeverity, DagsterInstance, Definitions, ExecuteInProcessResult

from c64_pipeline.orchestration.partitions import (
    contiguous_ranges, manual_partitions, range_tags, sync_manual_partitions,
)


@dataclass
class DataHalfRun:
    added: list[str]
    removed: list[str]
    ingest: dict[str, ExecuteInProcessResult] = field(default_factory=dict)
    datasets: ExecuteInProcessResult | None = None
    training: ExecuteInProcessResult | None = None

    @property
    def failures(self) -> list[str]:
        """Failed runs and failed blocking checks (gates) of ERROR severity (a WARN check never stops a run)."""
        failed = [f"ingest {keys}" for keys, result in self.ingest.items() if not result.success]
        for name, result in (("build_datasets", self.datasets), ("train_and_evaluate", self.training)):
            if result is not None:
                if not result.success:
                    failed.append(name)
                failed += [
                    f"check {e.check_name}" for e in result.get_asset_check_evaluations()
                    if not e.passed and e.blocking and e.severity != AssetCheckSeverity.WARN
                ]
        return failed

    @property
    def failed_results(self) -> list[str]:
        """Non-blocking or WARN checks that failed: results to act on (e.g. the reasoning format rate, SFT coverage),
        not broken runs."""
        return [
            f"{e.asset_key.to_user_string()} {e.check_name}: {e.description}"
            for result in (self.datasets, self.training) if result is not None
            for e in result.get_asset_check_evaluations()
            if not e.passed and (not e.blocking or e.severity == AssetCheckSeverity.WARN)
        ]


def materialize_data_half(
    defs: Definitions, instance: DagsterInstance, manuals_dir: Path, only: list[str] | None = None
) -> DataHalfRun:
    """Sync partitions with the folder, ingest each document (or only the given partition keys), build datasets."""
    added, removed = sync_manual_partitions(instance, manuals_dir)
    run = DataHalfRun(added, removed)
    ingest = defs.resolve_job_def("ingest_documents")
    ordered = list(instance.get_dynamic_partitions(manual_partitions.name))
    wanted = set(ordered if only is None else only)
    for start, end in contiguous_ranges(ordered, wanted):
        if start == end:
            result = ingest.execute_in_process(instance=instance, raise_on_error=False, partition_key=start)
        else:
            result = ingest.execute_in_process(instance=instance, raise_on_error=False, tags=range_tags(start, end))
        run.ingest[start if start == end else f"{start}...{end}"] = result
    run.datasets = defs.resolve_job_def("build_datasets").execute_in_process(instance=instance, raise_on_error=False)
    return run


def materialize_graph(
    defs: Definitions, instance: DagsterInstance, manuals_dir: Path, training_run_config: dict | None = None
) -> DataHalfRun:
    """The whole graph: the data half, then (in a run of its own, behind the data gates) training and evaluation."""
    run = materialize_data_half(defs, instance, manuals_dir)
    run.training = defs.resolve_job_def("train_and_evaluate").execute_in_process(
        instance=instance, raise_on_error=False, run_config=training_run_config or {}
    )
    return run
