"""The new-manuals sensor, evaluated against a real (ephemeral) Dagster instance (alert sensors: test_alerting.py)."""

from __future__ import annotations

import json

import pytest
from dagster import DagsterInstance, DagsterRun, build_sensor_context
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from c64_pipeline.defs.ingest.sensors import new_manuals_sensor
from c64_pipeline_tests.graph_helpers import SMALL_CORPUS, Workspace, write_small_corpus


@pytest.fixture
def workspace(tmp_path, tiny_model_dir) -> Workspace:
    return Workspace.create(tmp_path, tiny_model_dir)


def _tick(instance, workspace, cursor=None):
    context = build_sensor_context(instance=instance, cursor=cursor, resources={"paths": workspace.resources()["paths"]})
    result = new_manuals_sensor(context)
    # apply the partition requests as the daemon would
    for request in result.dynamic_partitions_requests or []:
        if type(request).__name__ == "AddDynamicPartitionsRequest":
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result


def test_new_edited_and_removed_manuals(workspace):
    write_small_corpus(workspace.manuals)
    with DagsterInstance.ephemeral() as instance:
        first = _tick(instance, workspace)
        assert len(first.run_requests) == 1, "a batch of new manuals is read in one run"
        (request,) = first.run_requests
        assert request.tags["dagster/asset_partition_range_start"] == "cia_registers-md"
        assert request.tags["dagster/asset_partition_range_end"] == "vic_registers-md"
        assert len(instance.get_dynamic_partitions("manuals")) == len(SMALL_CORPUS)

        quiet = _tick(instance, workspace, first.cursor)
        assert quiet.run_requests == [] and not quiet.dynamic_partitions_requests

        path = workspace.manuals / "sid_registers.md"
        path.write_text(path.read_text() + "\nOne more note on the SID.\n")
        edited = _tick(instance, workspace, quiet.cursor)
        (request,) = edited.run_requests
        assert request.partition_key == "sid_registers-md" and ":sid_registers-md:" in request.run_key
        assert request.run_key != [r.run_key for r in first.run_requests][0]

        (workspace.manuals / "kernal_routines.md").unlink()
        removed = _tick(instance, workspace, edited.cursor)
        assert [r.job_name for r in removed.run_requests] == ["build_datasets"]
        assert "kernal_routines-md" not in instance.get_dynamic_partitions("manuals")


def test_only_the_new_manual_is_read_again(workspace):
    write_small_corpus(workspace.manuals, ["vic_registers.md", "sid_registers.md", "cia_registers.md"])
    with DagsterInstance.ephemeral() as instance:
        workspace.run(instance)  # the three manuals are ingested (no sensor cursor yet)
        write_small_corpus(workspace.manuals, ["kernal_routines.md"])
        tick = _tick(instance, workspace)  # fresh cursor: falls back to the hashes recorded by raw_pdfs
        assert [(r.partition_key, r.tags.get("dagster/asset_partition_range_start")) for r in tick.run_requests] == [
            ("kernal_routines-md", None)
        ]
        run = workspace.run(instance, only=[r.partition_key for r in tick.run_requests])
        (ingest,) = run.ingest.values()
        read = {e.partition for e in ingest.get_asset_materialization_events() if e.asset_key.path == ["page_text"]}
        assert read == {"kernal_routines-md"}


def test_run_keys_are_unique_per_change(workspace):
    """Dagster skips a run request whose run key the sensor used before; a revert, a restore and a second deletion
    bring back the same file, bytes and removals, and still each gets a run."""
    path = workspace.manuals / "notes.txt"
    steps = [
        ("add", lambda: path.write_text("first text"), "ingest_documents"),
        ("edit", lambda: path.write_text("second text"), "ingest_documents"),
        ("revert", lambda: path.write_text("first text"), "ingest_documents"),
        ("delete", path.unlink, "build_datasets"),
        ("restore", lambda: path.write_text("first text"), "ingest_documents"),
        ("delete again", path.unlink, "build_datasets"),
    ]
    keys, cursor = [], None
    with DagsterInstance.ephemeral() as instance:
        for step, change, job in steps:
            change()
            result = _tick(instance, workspace, cursor)
            assert [r.job_name for r in result.run_requests] == [job], step
            keys += [r.run_key for r in result.run_requests]
            for request in result.run_requests:  # the runs the daemon creates (not executed here)
                instance.add_run(DagsterRun(job_name=request.job_name, tags={
                    RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: new_manuals_sensor.name}))
            quiet = _tick(instance, workspace, result.cursor)
            assert quiet.run_requests == [] and quiet.cursor == result.cursor, step
            cursor = quiet.cursor
        assert len(set(keys)) == len(keys), keys
        # a cursor that was reset starts past every generation the sensor's runs carry
        path.write_text("first text")
        restarted = _tick(instance, workspace, None)
        assert [r.run_key for r in restarted.run_requests if r.run_key in keys] == []
        assert json.loads(restarted.cursor)["generation"] > json.loads(cursor)["generation"]


def test_the_cursor_before_generations_is_read(workspace):
    write_small_corpus(workspace.manuals, ["vic_registers.md", "sid_registers.md"])
    with DagsterInstance.ephemeral() as instance:
        first = _tick(instance, workspace)
        hashes = json.loads(first.cursor)["hashes"]
        quiet = _tick(instance, workspace, json.dumps(hashes))  # {partition key: sha256}, as the sensor wrote it
        assert quiet.run_requests == [] and json.loads(quiet.cursor) == {"generation": 0, "hashes": hashes}
        path = workspace.manuals / "vic_registers.md"
        path.write_text(path.read_text() + "\nOne more line.\n")
        edited = _tick(instance, workspace, quiet.cursor)
        assert [(r.partition_key, r.run_key.split(":")[0]) for r in edited.run_requests] == [("vic_registers-md", "g1")]


def test_nightly_rescan_catches_what_the_sensor_missed(workspace):
    from datetime import datetime, timezone

    from dagster import build_schedule_context

    from c64_pipeline.defs.ingest.sensors import nightly_manuals_rescan

    write_small_corpus(workspace.manuals, ["vic_registers.md", "sid_registers.md", "cia_registers.md"])
    # a schedule context reopens the instance from its reference, so this one lives on disk
    (workspace.root / "dagster_home").mkdir()
    with DagsterInstance.local_temp(tempdir=str(workspace.root / "dagster_home")) as instance:
        workspace.run(instance)
        write_small_corpus(workspace.manuals, ["kernal_routines.md"])  # dropped while the sensor was off
        context = build_schedule_context(instance=instance, resources={"paths": workspace.resources()["paths"]},
                                         scheduled_execution_time=datetime(2026, 1, 1, 1, tzinfo=timezone.utc))
        requests = nightly_manuals_rescan(context)
        assert [r.partition_key for r in requests] == ["kernal_routines-md"]
        assert "kernal_routines-md" in instance.get_dynamic_partitions("manuals")
        again = nightly_manuals_rescan(context)  # the same plan again: same run key, so no duplicate run
        assert [r.run_key for r in again] == [r.run_key for r in requests]
        # a later night that finds the same change pending asks again (Dagster would skip a repeated key)
        nights = [
            nightly_manuals_rescan(build_schedule_context(
                instance=instance, resources={"paths": workspace.resources()["paths"]},
                scheduled_execution_time=datetime(2026, 1, day, 1, tzinfo=timezone.utc)))
            for day in (2, 3)
        ]
        assert [r.partition_key for night in nights for r in night] == ["kernal_routines-md"] * 2
        assert len({r.run_key for night in nights for r in night} | {requests[0].run_key}) == 3

