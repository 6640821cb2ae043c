"""The new-manuals sensor over a folder's life: after every tick the datasets are what a from-scratch build of the
same folder gives. The sensor runs against a real instance; its run requests are executed with the real jobs,
skipped when the sensor used their run key before (as the Dagster daemon does), and the dataset refresh that
follows an ingest is the one the project's automation conditions request."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import (
    AddDynamicPartitionsRequest, AssetKey, AssetSelection, DagsterInstance, RunsFilter, build_sensor_context,
    evaluate_automation_conditions,
)
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from c64_pipeline.definitions import build_definitions
from c64_pipeline.defs.ingest.sensors import new_manuals_sensor
from c64_pipeline.splits import SPLITS
from c64_pipeline_tests.graph_helpers import Workspace

DATASET_GROUP = AssetSelection.groups("dataset")
DATASETS = {AssetKey("dapt_dataset"), AssetKey("sft_dataset"), AssetKey("validation_report")}


def _built(run) -> set[AssetKey]:
    return {event.asset_key for event in run.get_asset_materialization_events()}


def _manual(title: str, rows: list[tuple[str, int, str, str]], note: str = "") -> str:
    """A tiny text manual with a register table: read without OCR, and gives SFT facts."""
    lines = [f"{title}", "", f"Notes on the {title.lower()} of the Commodore 64, written for this test. {note}", ""]
    lines += [f"{a}  {d}  {name}  {desc}" for a, d, name, desc in rows]
    lines += ["", f"Each {title.lower()} entry above is used from BASIC with PEEK and POKE or from machine code."]
    return "\n".join(lines) + "\n"


VIC = _manual("VIC registers", [("$D020", 53280, "EXTCOL", "Border colour"),
                                ("$D021", 53281, "BGCOL0", "Background colour 0")])
SID = _manual("SID registers", [("$D418", 54296, "SIGVOL", "Master volume and filter mode select")])
SID_EDITED = _manual("SID registers", [("$D418", 54296, "SIGVOL", "Master volume and filter mode select"),
                                       ("$D404", 54276, "VCREG1", "Voice 1 control register")], "Second edition.")
CIA = _manual("CIA registers", [("$DC00", 56320, "CIAPRA", "Data port A, keyboard columns and joystick 2")])


class Daemon:
    """The sensor ticking against one instance, with what the daemon does around it."""

    def __init__(self, workspace: Workspace, instance: DagsterInstance):
        self.workspace, self.instance = workspace, instance
        self.defs = build_definitions(workspace.resources())
        self.cursor: str | None = None
        self.automation_cursor = None
        self.skipped: list[str] = []
        self._automation()  # the automation sensor ticks from the start, before the first manual arrives

    def _run_key_used(self, run_key: str) -> bool:
        # the daemon skips a request whose run key a run of the same sensor already carries
        tags = {RUN_KEY_TAG: run_key, SENSOR_NAME_TAG: new_manuals_sensor.name}
        return bool(self.instance.get_runs(RunsFilter(tags=tags), limit=1))

    def tick(self) -> None:
        paths = self.workspace.resources()["paths"]
        result = new_manuals_sensor(build_sensor_context(instance=self.instance, cursor=self.cursor,
                                                         resources={"paths": paths}))
        for request in result.dynamic_partitions_requests or []:
            if isinstance(request, AddDynamicPartitionsRequest):
                self.instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
            else:
                for key in request.partition_keys:
                    self.instance.delete_dynamic_partition(request.partitions_def_name, key)
        for request in result.run_requests:
            if self._run_key_used(request.run_key):
                self.skipped.append(request.run_key)
                continue
            tags = {**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: new_manuals_sensor.name}
            job = self.defs.resolve_job_def(request.job_name)
            run = job.execute_in_process(instance=self.instance, partition_key=request.partition_key, tags=tags,
                                         raise_on_error=False)
            # a build_datasets run fails when a blocking quality check does (two manuals leave a split empty);
            # what counts here is that its datasets were written
            assert run.success if request.job_name != "build_datasets" else _built(run) >= DATASETS, request
        self.cursor = result.cursor
        self._automation()

    def _automation(self) -> None:
        """The automation sensor's ticks until it requests nothing more (a missing base model is built on one tick,
        the datasets it gates follow on the next); whatever a tick requests is materialized."""
        keys = DATASET_GROUP.resolve(self.defs.resolve_asset_graph())
        for _ in range(4):
            result = evaluate_automation_conditions(self.defs, self.instance, asset_selection=DATASET_GROUP,
                                                    cursor=self.automation_cursor)
            self.automation_cursor = result.cursor
            requested = [key for key in keys if result.get_num_requested(key)]
            if not requested:
                return
            run = self.defs.resolve_job_def("build_datasets").execute_in_process(
                instance=self.instance, asset_selection=requested, raise_on_error=False)
            assert _built(run) >= set(requested)
        raise AssertionError("the automation keeps requesting the datasets")


def _datasets(ws: Workspace) -> dict:
    """What a build produced, in a form two builds can be compared by: DAPT rows and SFT rows (without their split),
    the report's document list and the split ledger; with a check that every row sits in its document's split."""
    ledger = json.loads((ws.processed / "splits.json").read_text())["assignment"]
    dapt, sft = [], []
    for split in SPLITS:
        for row in pq.read_table(ws.processed / "dapt" / f"{split}.parquet").to_pylist():
            assert ledger[row["doc_id"]] == split, row["chunk_id"]
            dapt.append((row["doc_id"], row["chunk_id"], row["text"]))
        for row in ws.sft_rows(split):
            assert ledger[row["doc_id"]] == split
            sft.append(json.dumps(row, sort_keys=True))
    report = ws.report()
    documents = []
    for doc in report["documents"]:
        assert doc["split"] == ledger.get(doc["doc_id"]), doc["file_name"]
        documents.append({k: v for k, v in doc.items() if k != "split"})
    return {"dapt": sorted(dapt), "sft": sorted(sft), "documents": documents, "ledger_documents": sorted(ledger)}


class FromScratch:
    """Builds of a folder's contents in a fresh instance and a fresh data directory; a build is deterministic
    (test_graph.test_two_runs_give_identical_datasets), so a folder seen before is not built twice."""

    def __init__(self, root: Path, model_dir: Path):
        self.root, self.model_dir, self.builds = root, model_dir, {}

    def of(self, folder: Path) -> dict:
        contents = tuple(sorted((p.name, p.read_bytes()) for p in folder.iterdir()))
        if contents not in self.builds:
            ws = Workspace.create(self.root / f"scratch{len(self.builds)}", self.model_dir)
            for name, data in contents:
                (ws.manuals / name).write_bytes(data)
            with DagsterInstance.ephemeral() as instance:
                assert _built(ws.run(instance).datasets) >= DATASETS
            self.builds[contents] = _datasets(ws)
        return self.builds[contents]


@pytest.mark.slow
def test_datasets_match_a_from_scratch_build_after_every_change(tmp_path, tiny_model_dir):
    ws = Workspace.create(tmp_path / "live", tiny_model_dir)
    manuals = ws.manuals
    # sid.txt first comes alone, so its run key (file and bytes) is one that a revert or a restore brings back
    steps = [
        ("add two", lambda: [(manuals / n).write_text(t) for n, t in (("vic.md", VIC), ("cia.txt", CIA))]),
        ("add one", lambda: (manuals / "sid.txt").write_text(SID)),
        ("edit", lambda: (manuals / "sid.txt").write_text(SID_EDITED)),
        ("revert to earlier bytes", lambda: (manuals / "sid.txt").write_text(SID)),
        ("delete", lambda: (manuals / "sid.txt").unlink()),
        ("restore the same bytes", lambda: (manuals / "sid.txt").write_text(SID)),
        ("delete again", lambda: (manuals / "sid.txt").unlink()),
        ("rename", lambda: (manuals / "vic.md").rename(manuals / "vic_chip.md")),
    ]
    scratch = FromScratch(tmp_path, tiny_model_dir)
    with DagsterInstance.ephemeral() as instance:
        daemon = Daemon(ws, instance)
        for step, change in steps:
            change()
            daemon.tick()
            live, expected = _datasets(ws), scratch.of(manuals)
            assert live["documents"] == expected["documents"], step
            assert live["ledger_documents"] == expected["ledger_documents"], step
            assert live["dapt"] == expected["dapt"], step
            assert live["sft"] == expected["sft"], step
            assert live["dapt"] and live["sft"], step
        assert daemon.skipped == [], "a change whose run Dagster skipped leaves the datasets stale"
