"""Materialize the data half headless: every document partition, then the corpus-wide datasets and checks.
Used by `make demo` and by the integration tests, against any Dagster instance."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from dagster import AssetCheckSeverity, DagsterInstance, Definitions, ExecuteInProcessResult

from c64_pipeline.defs.partitions import contiguous_ranges, manual_partitions, range_tags


@dataclass
class DataHalfRun:
    added: list[str]
    removed: list[str]
    ingest: dict[str, ExecuteInProcessResult] = field(default_factory=dict)
    datasets: ExecuteInProcessResult | None = None
    training: ExecuteInProcessResult | None = None
    export: ExecuteInProcessResult | None = None

    @property
    def failures(self) -> list[str]:
        """Failed runs and failed blocking checks (gates) of ERROR severity (a WARN check never stops a run)."""
        failed = [f"ingest {keys}" for keys, result in self.ingest.items() if not result.success]
        for name, result in (("build_datasets", self.datasets), ("train_and_evaluate", self.training),
                             ("export_model", self.export)):
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
            for result in (self.datasets, self.training, self.export) if result is not None
            for e in result.get_asset_check_evaluations()
            if not e.passed and (not e.blocking or e.severity == AssetCheckSeverity.WARN)
        ]


RunHook = Callable[[str, ExecuteInProcessResult], None]


def materialize_data_half(
    defs: Definitions, instance: DagsterInstance, manuals_dir: Path, only: list[str] | None = None,
    run_config: dict | None = None, on_run: RunHook | None = None,
) -> DataHalfRun:
    """The sensor's own plan, run in-process: partitions follow the folder, new and edited documents are ingested in
    the same batched runs the sensor would request (or exactly the partition keys in `only`), then the datasets are
    built. The demo and the tests thus take the path `new_manuals_sensor` takes in production."""
    from c64_pipeline.defs.ingest.sensors import plan_manual_changes

    plan = plan_manual_changes(instance, manuals_dir, seen={}, run_key_prefix="in-process")
    if plan.new:
        instance.add_dynamic_partitions(manual_partitions.name, plan.new)
    for key in plan.removed:
        instance.delete_dynamic_partition(manual_partitions.name, key)
    run = DataHalfRun(plan.new, plan.removed)
    ingest = defs.resolve_job_def("ingest_documents")
    if only is None:
        requests = [(r.partition_key, r.tags) for r in plan.run_requests if r.job_name == ingest.name]
    else:
        ordered = list(instance.get_dynamic_partitions(manual_partitions.name))
        requests = [(start, {}) if start == end else (None, range_tags(start, end))
                    for start, end in contiguous_ranges(ordered, set(only))]
    for partition_key, tags in requests:
        result = ingest.execute_in_process(instance=instance, raise_on_error=False, partition_key=partition_key,
                                           tags=dict(tags or {}), run_config=run_config or {})
        label = partition_key or f"{tags['dagster/asset_partition_range_start']}...{tags['dagster/asset_partition_range_end']}"
        run.ingest[label] = result
        if on_run:
            on_run(f"ingest {label}", result)
    run.datasets = defs.resolve_job_def("build_datasets").execute_in_process(
        instance=instance, raise_on_error=False, run_config=run_config or {})
    if on_run:
        on_run("datasets", run.datasets)
    return run


def materialize_graph(
    defs: Definitions, instance: DagsterInstance, manuals_dir: Path, training_run_config: dict | None = None,
    run_config: dict | None = None, on_run: RunHook | None = None,
    during_training: Callable[[], AbstractContextManager] = nullcontext, export: bool = False,
) -> DataHalfRun:
    """The whole graph: the data half, then (in a run of its own, behind the data gates) training and evaluation,
    then, with `export` and once training succeeded, the export job (merged model, GGUF, llama.cpp check)."""
    run = materialize_data_half(defs, instance, manuals_dir, run_config=run_config, on_run=on_run)
    with during_training():
        run.training = defs.resolve_job_def("train_and_evaluate").execute_in_process(
            instance=instance, raise_on_error=False, run_config={**(run_config or {}), **(training_run_config or {})}
        )
    if on_run:
        on_run("training", run.training)
    if export and run.training.success:
        run.export = defs.resolve_job_def("export_model").execute_in_process(
            instance=instance, raise_on_error=False, run_config={**(run_config or {}), **(training_run_config or {})}
        )
        if on_run:
            on_run("export", run.export)
    return run
