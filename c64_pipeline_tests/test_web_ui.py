"""End to end through the real web UI, in headless Chromium.

`dagster dev` runs on a temporary instance and data folder. Manuals dropped into the folder are ingested by the
new-manuals sensor without a click. Then "Materialize all" on the dataset group is clicked, the run is watched to
success, and the blocking checks are read on validation_report's Checks tab. The training and evaluation assets
are never launched. Screenshots go to test-artifacts/ui/ (git-ignored) and to the test's tmp_path."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from c64_pipeline.defs.datasets.checks import data_checks
from c64_pipeline_tests.graph_helpers import SMALL_CORPUS, write_small_corpus
from c64_pipeline_tests.ui_helpers import (
    CHROMIUM, chromium_context, running_dagster_dev, wait_until, workspace_location_name,
)

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ui"
# the blocking checks on validation_report (coverage_ratio, ..., think_diversity, split_leakage) and their descriptions
CHECK_DESCRIPTIONS = {spec.name: spec.description for check in data_checks for spec in check.check_specs}
DATA_CHECKS = sorted(CHECK_DESCRIPTIONS)
SHOWN_IN_DETAIL = ("coverage_ratio", "think_diversity")
TEMPLATE_CHECK = "chat_template_has_generation_blocks"  # on base_model, part of the dataset group's run
DATASET_ASSETS = {"base_model", "token_chunks", "document_splits", "dapt_dataset", "sft_dataset", "validation_report"}
INGEST_TIMEOUT = 240  # s from the webserver answering to every manual read by the sensor's run
QUIET_TIMEOUT = 120  # s for runs the automation sensor started meanwhile to end
REFRESH_TIMEOUT = 300  # s for the dataset automation to build the datasets after the ingest, without a click
RUN_TIMEOUT = 240  # s for the run launched from the UI
UI_TIMEOUT_MS = 30_000


def _environment(tmp_path: Path) -> tuple[dict[str, str], dict[str, Path]]:
    dirs = {name: tmp_path / name for name in ("dagster_home", "data", "models", "docs")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / "deploy" / "dagster.local.yaml", dirs["dagster_home"] / "dagster.yaml")
    # what "Skip" on the webserver's first-visit "Join the Dagster community" modal records for an instance
    (dirs["dagster_home"] / ".nux").mkdir()
    (dirs["dagster_home"] / ".nux" / "nux.yaml").write_text("seen: 1\n")
    # none of the caller's C64_* / DAGSTER_* settings leak in: every path derives from these roots
    env = {k: v for k, v in os.environ.items() if not k.startswith(("C64_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(dirs["dagster_home"]),
        C64_DATA_DIR=str(dirs["data"]),
        C64_MODELS_DIR=str(dirs["models"]),
        C64_DOCS_DIR=str(dirs["docs"]),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    return env, dirs


class Shots:
    """Screenshots into tmp_path/screenshots and test-artifacts/ui/."""

    def __init__(self, tmp_path: Path):
        self.dirs = [tmp_path / "screenshots", ARTIFACTS]
        for folder in self.dirs:
            folder.mkdir(parents=True, exist_ok=True)

    def take(self, page, name: str) -> None:
        first = self.dirs[0] / name
        page.screenshot(path=str(first))
        for folder in self.dirs[1:]:
            shutil.copyfile(first, folder / name)


def _open_instance(home: Path):
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def _runs_summary(instance) -> str:
    lines = ["runs:"]
    for run in instance.get_runs():
        origin = run.tags.get("dagster/sensor_name") or ("the UI" if run.tags.get("dagster/from_ui") else "?")
        lines.append(f"  {run.run_id[:8]} {run.job_name} {run.status.value} from {origin}")
    return "\n".join(lines)


def _run_failure_messages(instance, run_id: str) -> str:
    from dagster import DagsterEventType

    failures = instance.all_logs(run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE})
    return "\n".join(f"{e.step_key or 'run'}: {e.dagster_event.message}"[:2000] for e in failures)


def _wait_for_sensor_ingest(instance, server, partitions: set[str]) -> None:
    """The drop-in flow: no click, the new-manuals sensor adds the partitions and its run reads every manual."""
    from dagster import AssetKey, AssetRecordsFilter, DagsterRunStatus

    def ingested() -> bool:
        for run in instance.get_runs():
            if run.job_name == "ingest_documents" and run.status == DagsterRunStatus.FAILURE:
                raise AssertionError(f"ingest run {run.run_id} failed:\n{_run_failure_messages(instance, run.run_id)}"
                                     f"\n{server.log_tail()}")
        records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey("page_text")), limit=100).records
        return {r.partition_key for r in records} >= partitions

    wait_until(ingested, INGEST_TIMEOUT, f"page_text materializations of {sorted(partitions)}",
               describe=lambda: _runs_summary(instance) + "\n" + server.log_tail())
    ingest_runs = [r for r in instance.get_runs() if r.job_name == "ingest_documents"]
    assert ingest_runs and all(r.tags.get("dagster/sensor_name") == "new_manuals_sensor" for r in ingest_runs), \
        _runs_summary(instance)
    assert set(instance.get_dynamic_partitions("manuals")) == partitions
    assert not [r for r in instance.get_runs() if r.tags.get("dagster/from_ui")], "nothing was launched from the UI yet"

    # still without a click, the dataset automation builds the base model and the datasets from what was read
    wait_until(lambda: instance.get_latest_materialization_event(AssetKey("validation_report")) is not None,
               REFRESH_TIMEOUT, "validation_report materialized by the dataset automation",
               describe=lambda: _runs_summary(instance) + "\n" + server.log_tail())
    assert not [r for r in instance.get_runs() if r.tags.get("dagster/from_ui")], "the refresh came from the automation"

    # let the automation's runs end so the click starts from a quiet instance
    wait_until(lambda: all(r.is_finished for r in instance.get_runs()), QUIET_TIMEOUT, "no run in progress",
               describe=lambda: _runs_summary(instance) + "\n" + server.log_tail())


def _skip_community_dialog_if_shown(page) -> None:
    """Should the first-visit "Join the Dagster community" modal show anyway, skip it before any action."""
    dialog = page.get_by_role("dialog").filter(has_text="Join the Dagster community")
    page.add_locator_handler(dialog, lambda d: d.get_by_role("button", name="Skip").click())


def _open_dataset_group(page, base_url: str, location: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base_url}/locations/{location}/asset-groups/dataset")
    expect(page.get_by_role("button", name="Materialize all")).to_be_enabled()
    for asset in sorted(DATASET_ASSETS):
        expect(page.get_by_text(asset, exact=True).first).to_be_visible()
    # a node's footer says "Loading..." until its live status has arrived
    expect(page.get_by_text("Loading...", exact=True)).to_have_count(0)


def _click_materialize_all(page) -> str:
    """Click "Materialize all", confirm should a dialog ask, return the run id prefix the toast shows."""
    page.get_by_role("button", name="Materialize all").click()
    toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}")).first
    confirm = page.get_by_role("dialog").get_by_role("button", name=re.compile(r"^(Launch|Materialize)")).first
    deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
    while not toast.is_visible():
        if confirm.is_visible():
            confirm.click()
        if time.monotonic() > deadline:
            raise AssertionError("no 'Launched run' toast after clicking Materialize all")
        page.wait_for_timeout(250)
    return re.search(r"Launched run ([0-9a-f]{8})", toast.inner_text()).group(1)


@pytest.mark.timeout(600)
def test_drop_in_then_materialize_the_data_half_from_the_web_ui(tmp_path):
    if not CHROMIUM.is_file():
        pytest.skip(f"Debian's Chromium is not at {CHROMIUM} (apt-get install chromium); this test never lets "
                    "Playwright download a browser")
    from dagster import DagsterEventType, DagsterRunStatus
    from playwright.sync_api import expect

    assert set(SHOWN_IN_DETAIL) <= set(DATA_CHECKS), DATA_CHECKS
    started = time.monotonic()
    env, dirs = _environment(tmp_path)
    write_small_corpus(dirs["data"] / "raw" / "manuals")  # dropped in before the server starts
    partitions = {name.replace(".", "-") for name in SMALL_CORPUS}
    shots = Shots(tmp_path)
    location = workspace_location_name(REPO_ROOT / "workspace.yaml")
    log_path = tmp_path / "dagster-dev.log"

    try:
        with running_dagster_dev(REPO_ROOT, env, log_path) as server, _open_instance(dirs["dagster_home"]) as instance:
            _wait_for_sensor_ingest(instance, server, partitions)
            ingested_at = time.monotonic()

            with chromium_context(tmp_path / "chromium-profile") as browser:
                page = browser.new_page()
                page.set_default_timeout(UI_TIMEOUT_MS)  # actions and navigation
                expect.set_options(timeout=UI_TIMEOUT_MS)  # assertions (Playwright's default: 5 s)
                _skip_community_dialog_if_shown(page)
                try:
                    # the dataset group's lineage, then one click
                    _open_dataset_group(page, server.base_url, location)
                    shots.take(page, "01-dataset-group-before.png")
                    prefix = _click_materialize_all(page)
                    shots.take(page, "02-launched.png")

                    (run,) = wait_until(
                        lambda: [r for r in instance.get_runs() if r.tags.get("dagster/from_ui")], 30,
                        "the run launched from the UI in the instance", interval=0.5,
                        describe=lambda: _runs_summary(instance))
                    assert run.run_id.startswith(prefix), (prefix, run.run_id)
                    selected = {key.to_user_string() for key in run.asset_selection or ()}
                    assert selected == DATASET_ASSETS, f"the dataset group only, no training: {selected}"

                    # the toast's "View" opens the run page; the run is watched there until it ends
                    view = page.get_by_role("link", name="View", exact=True).first
                    expect(view).to_have_attribute("href", re.compile(rf"/runs/{prefix}"))
                    view.click()
                    expect(page).to_have_url(re.compile(rf"/runs/{run.run_id}"))
                    finished = wait_until(
                        lambda: (r := instance.get_run_by_id(run.run_id)).is_finished and r, RUN_TIMEOUT,
                        f"run {run.run_id} to finish", interval=2.0,
                        describe=lambda: _runs_summary(instance) + "\n" + server.log_tail())
                    if finished.status != DagsterRunStatus.SUCCESS:
                        shots.take(page, "03-run.png")
                        raise AssertionError(f"run {run.run_id} ended {finished.status.value}:\n"
                                             f"{_run_failure_messages(instance, run.run_id)}\n{server.log_tail()}")
                    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
                    expect(page.get_by_text("RUN_SUCCESS", exact=True).first).to_be_visible()
                    shots.take(page, "03-run.png")
                    record = instance.get_run_record_by_id(run.run_id)
                    run_seconds = (record.end_time or time.time()) - (record.start_time or record.create_timestamp.timestamp())

                    # the run's verdicts, as recorded: every check it ran passed
                    verdicts = {
                        e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data
                        for e in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
                    }
                    assert set(verdicts) == {*DATA_CHECKS, TEMPLATE_CHECK}, sorted(verdicts)
                    assert all(v.passed for v in verdicts.values()), {n: v.description for n, v in verdicts.items()}

                    # the graph again: every node materialized, the report's checks all passed
                    _open_dataset_group(page, server.base_url, location)
                    expect(page.get_by_text(f"{len(DATA_CHECKS)} / {len(DATA_CHECKS)} Passed", exact=True)).to_be_visible()
                    expect(page.get_by_text("Never materialized", exact=True)).to_have_count(0)
                    shots.take(page, "04-dataset-group-after.png")

                    # validation_report's Checks tab: each blocking check listed as succeeded; the detail of a check
                    # shows its description, "Passed" and the figures the run recorded
                    page.goto(f"{server.base_url}/assets/validation_report")
                    page.get_by_role("tab", name="Checks").click()
                    expect(page).to_have_url(re.compile(r"view=checks"))
                    expect(page.get_by_text(f"Checks ({len(DATA_CHECKS)})", exact=True)).to_be_visible()
                    for check in DATA_CHECKS:
                        entry = page.get_by_title(check, exact=True).first.locator("xpath=..")
                        expect(entry).to_contain_text("Succeeded")
                    for check in SHOWN_IN_DETAIL:
                        page.get_by_title(check, exact=True).first.click()
                        expect(page.get_by_text(CHECK_DESCRIPTIONS[check], exact=True).first).to_be_visible()
                        expect(page.get_by_text(verdicts[check].description, exact=True).first).to_be_visible()
                        expect(page.get_by_text("Evaluation result", exact=True)).to_be_visible()
                        expect(page.get_by_text("Passed", exact=True).first).to_be_visible()
                        shots.take(page, f"05-checks-{check}.png")
                except Exception:
                    shots.take(page, "99-failure.png")
                    raise
                finally:
                    expect.set_options(timeout=5_000)
    finally:
        if log_path.is_file():
            shutil.copyfile(log_path, ARTIFACTS / "dagster-dev.log")

    # the files the data half writes, in the temporary folders
    processed = dirs["data"] / "processed"
    for rel in ("dapt/train.parquet", "dapt/validation.parquet", "dapt/test.parquet", "sft/train.jsonl",
                "sft/validation.jsonl", "sft/test.jsonl", "splits.json", "validation_report.json"):
        assert (processed / rel).is_file(), rel
    assert (dirs["docs"] / "data_qc_report.md").is_file()
    assert (dirs["models"] / "c64-tiny-ministral3" / "tokenizer.json").is_file()
    report = json.loads((processed / "validation_report.json").read_text())
    assert len(report["documents"]) == len(SMALL_CORPUS) and report["totals"]["documents_rejected"] == 0
    assert report["totals"]["coverage_ratio"] >= 0.9
    print(f"\nweb UI test: manuals ingested by the sensor {ingested_at - started:.0f} s after start, UI run "
          f"{run_seconds:.0f} s, dagster dev stopped with {server.stop_signal} in {server.stop_seconds:.1f} s, "
          f"total {time.monotonic() - started:.0f} s; screenshots in {ARTIFACTS}")
