"""Sensors: new or changed manuals start their own ingestion; failed checks and failed runs raise alerts."""

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetKey,
    AssetRecordsFilter,
    ConfigurableResource,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    run_failure_sensor,
    schedule,
    sensor,
)

from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from c64_pipeline.alerts import Alert, AlertDelivery, send_alert
from c64_pipeline.documents import discover_documents, entry_fingerprint
from c64_pipeline.orchestration.jobs import dataset_job, ingest_job
from c64_pipeline.orchestration.partitions import contiguous_ranges, manual_partitions, range_tags
from c64_pipeline.orchestration.resources import PipelinePaths


class AlertSink(ConfigurableResource):
    """Where alerts go: always a line in `alerts_file`, and a webhook POST when `webhook_url` is set
    (default: the C64_ALERT_WEBHOOK_URL environment variable)."""

    alerts_file: str
    webhook_url: str = ""
    ui_base_url: str = "http://127.0.0.1:3000"
    attempts: int = 4
    backoff_seconds: float = 0.5

    @classmethod
    def from_env(cls, data_dir: Path) -> "AlertSink":
        return cls(
            alerts_file=str(data_dir / "alerts" / "alerts.jsonl"),
            webhook_url=os.environ.get("C64_ALERT_WEBHOOK_URL", ""),
            ui_base_url=os.environ.get("C64_UI_BASE_URL", "http://127.0.0.1:3000"),
        )

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_base_url.rstrip('/')}/runs/{run_id}"

    def send(self, alert: Alert) -> AlertDelivery:
        return send_alert(alert, Path(self.alerts_file), self.webhook_url or None, self.attempts, self.backoff_seconds)


def _last_ingested_sha(instance, key: str) -> str | None:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("raw_pdfs"), asset_partitions=[key]), limit=1
    ).records
    if not records:
        return None
    hashes = records[0].asset_materialization.metadata.get("sha256_by_partition")
    return hashes.value.get(key) if hashes is not None else None


@dataclass
class ManualChanges:
    new: list[str]
    changed: list[str]
    removed: list[str]
    hashes: dict[str, str]
    run_requests: list[RunRequest]


def plan_manual_changes(instance, manuals_dir: Path, seen: dict[str, str], run_key_prefix: str) -> ManualChanges:
    """Compare the folder with the known partitions and the content hashes seen before (falling back to the hashes
    the last ingest recorded); plan one batched ingest run per contiguous range of new or changed documents, and a
    dataset rebuild when documents were removed.

    Dagster skips a run request whose run key the same sensor has used before, and the same file, bytes and
    removals come back over time (a revert, a restore, a second deletion), so every run key starts with
    `run_key_prefix`, which the caller makes unique per change (the sensor's generation, the schedule's time)."""
    files = discover_documents(manuals_dir)
    current = {key: entry_fingerprint(path) for key, path in files.items()}
    known = list(instance.get_dynamic_partitions(manual_partitions.name))
    new = sorted(key for key in current if key not in known)
    removed = [key for key in known if key not in current]
    changed = [
        key for key in known
        if key in current and (seen.get(key) or _last_ingested_sha(instance, key)) != current[key]
    ]
    ordered = [key for key in known if key in current] + new
    requests = []
    for start, end in contiguous_ranges(ordered, set(new) | set(changed)):
        keys = ordered[ordered.index(start) : ordered.index(end) + 1]
        run_key = f"{run_key_prefix}:" + ",".join(f"{k}:{current[k][:16]}" for k in keys)
        if start == end:
            requests.append(RunRequest(job_name=ingest_job.name, partition_key=start, run_key=run_key))
        else:
            requests.append(RunRequest(job_name=ingest_job.name, tags=range_tags(start, end), run_key=run_key))
    if removed:
        run_key = f"{run_key_prefix}:removed:" + ",".join(sorted(removed))
        requests.append(RunRequest(job_name=dataset_job.name, run_key=run_key))
    return ManualChanges(new, changed, removed, current, requests)


@dataclass
class ManualsCursor:
    """The new-manuals sensor's cursor: the fingerprint of every file it has planned for, and the generation, one
    more for every tick that requested runs. Run keys start with `g<generation>:`, so no two changes share one."""

    generation: int
    hashes: dict[str, str]

    @classmethod
    def parse(cls, raw: str | None) -> "ManualsCursor | None":
        if not raw:
            return None
        data = json.loads(raw)
        if isinstance(data.get("hashes"), dict):
            return cls(int(data.get("generation", 0)), dict(data["hashes"]))
        return cls(0, dict(data))  # the cursor before generations, {partition key: sha256}; its keys had no "g"

    def dumps(self) -> str:
        return json.dumps({"generation": self.generation, "hashes": self.hashes}, sort_keys=True)


GENERATION_RUN_KEY = re.compile(r"g(\d+):")


def last_generation(instance, sensor_name: str) -> int:
    """The highest generation in the run keys of the sensor's latest runs: where a cursor that was never written,
    or was reset, starts counting, so that it never brings back a run key Dagster would skip."""
    runs = instance.get_runs(RunsFilter(tags={SENSOR_NAME_TAG: sensor_name}), limit=50)
    found = (GENERATION_RUN_KEY.match(run.tags.get(RUN_KEY_TAG, "")) for run in runs)
    return max((int(match.group(1)) for match in found if match), default=0)


SENSOR_NAME = "new_manuals_sensor"


@sensor(
    name=SENSOR_NAME,
    jobs=[ingest_job, dataset_job],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Watches the manuals folder: adds a partition per new file and reads it, re-reads edited files, "
    "and removes the partitions of deleted files (then rebuilds the datasets without them).",
)
def new_manuals_sensor(context: SensorEvaluationContext, paths: PipelinePaths) -> SensorResult:
    cursor = ManualsCursor.parse(context.cursor) or ManualsCursor(last_generation(context.instance, SENSOR_NAME), {})
    generation = cursor.generation + 1
    plan = plan_manual_changes(context.instance, Path(paths.manuals_dir), cursor.hashes, f"g{generation}")
    partition_requests = []
    if plan.new:
        partition_requests.append(manual_partitions.build_add_request(plan.new))
    if plan.removed:
        partition_requests.append(manual_partitions.build_delete_request(plan.removed))
    if plan.new or plan.changed or plan.removed:
        context.log.info(f"generation {generation}: new: {plan.new}, changed: {plan.changed}, removed: {plan.removed}")
    after = ManualsCursor(generation if plan.run_requests else cursor.generation, plan.hashes)
    return SensorResult(run_requests=plan.run_requests, dynamic_partitions_requests=partition_requests,
                        cursor=after.dumps())


@schedule(
    cron_schedule=os.environ.get("C64_RESCAN_CRON", "0 1 * * *"),
    job=ingest_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Nightly safety net: rescans the manuals folder against what was last ingested and reads new or "
    "edited manuals the sensor missed (cron from C64_RESCAN_CRON). Removals are left to the sensor, which also "
    "rebuilds the datasets without them.",
)
def nightly_manuals_rescan(context: ScheduleEvaluationContext, paths: PipelinePaths) -> list[RunRequest]:
    # one prefix per scheduled night: a retried tick repeats its run keys, the next night's never do
    prefix = f"rescan:{context.scheduled_execution_time.isoformat()}"
    plan = plan_manual_changes(context.instance, Path(paths.manuals_dir), seen={}, run_key_prefix=prefix)
    # a schedule cannot return partition requests as a sensor does, so it adds the partitions itself
    if plan.new:
        context.instance.add_dynamic_partitions(manual_partitions.name, plan.new)
    if plan.removed:
        context.log.info(f"removed manuals left to new_manuals_sensor: {plan.removed}")
    return [
        RunRequest(partition_key=r.partition_key, tags=r.tags, run_key=r.run_key)
        for r in plan.run_requests if r.job_name == ingest_job.name
    ]


def _figures(evaluation: AssetCheckEvaluation) -> dict:
    out = {}
    for key, value in evaluation.metadata.items():
        raw = getattr(value, "value", value)
        if isinstance(raw, (int, float, str, bool)) or raw is None:
            out[key] = raw
        else:
            out[key] = json.loads(json.dumps(raw, default=str))
    return out


def _project_check_keys() -> list[AssetCheckKey]:
    from c64_pipeline.orchestration.checks import data_checks
    from c64_pipeline.orchestration.training_checks import training_checks

    return [key for check in data_checks + training_checks for key in check.check_keys]


@sensor(
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Sends each failed asset check (ERROR or WARN, blocking or not) once to the alert sink.",
)
def check_failure_alerts(context: SensorEvaluationContext, alert_sink: AlertSink) -> SensorResult:
    # cursor: the id of the last execution seen per check. Each check's own execution history is read, which
    # works on every event storage (SQLite's run-sharded one cannot page through all check events at once).
    seen: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    repository = getattr(context, "repository_def", None)
    keys = list(repository.asset_graph.asset_check_keys) if repository else _project_check_keys()
    storage = context.instance.event_log_storage
    for key in sorted(keys, key=lambda k: k.to_user_string()):
        name = key.to_user_string()
        history = storage.get_asset_check_execution_history(key, limit=50)
        for record in sorted(history, key=lambda r: r.id):
            if record.id <= seen.get(name, 0) or record.event is None:
                continue
            seen[name] = record.id
            evaluation = record.event.dagster_event.event_specific_data
            if not isinstance(evaluation, AssetCheckEvaluation) or evaluation.passed:
                continue
            alert = Alert(
                kind="check_failed",
                title=f"check {evaluation.check_name} failed",
                severity=evaluation.severity.value,
                asset=evaluation.asset_key.to_user_string(),
                check=evaluation.check_name,
                partition=evaluation.partition,
                run_id=record.run_id,
                run_url=alert_sink.run_url(record.run_id),
                figures=_figures(evaluation),
                description=evaluation.description,
            )
            delivery = alert_sink.send(alert)
            context.log.info(f"alert for {name}: webhook {delivery.webhook_status}")
    return SensorResult(cursor=json.dumps(seen, sort_keys=True))


@run_failure_sensor(default_status=DefaultSensorStatus.RUNNING, description="Alerts on every failed run.")
def run_failure_alerts(context: RunFailureSensorContext, alert_sink: AlertSink) -> None:
    run = context.dagster_run
    alert_sink.send(
        Alert(
            kind="run_failed",
            title=f"run of {run.job_name} failed",
            severity="ERROR",
            partition=run.tags.get("dagster/partition"),
            run_id=run.run_id,
            run_url=alert_sink.run_url(run.run_id),
            description=(context.failure_event.message or "")[:500],
        )
    )
