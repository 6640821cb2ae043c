"""Sensors: new or changed manuals start their own ingestion (the alert sensors are in defs/alerts/sensors.py)."""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    schedule,
    sensor,
)

from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from c64_pipeline.documents import discover_documents, entry_fingerprint
from c64_pipeline.settings import deployment_from_env
from c64_pipeline.defs.jobs import dataset_job, ingest_job
from c64_pipeline.defs.partitions import contiguous_ranges, manual_partitions, range_tags
from c64_pipeline.defs.resources import PipelinePaths


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
    cron_schedule=deployment_from_env().rescan_cron,
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
