"""The server deployment: docker-compose.yml and the Dockerfile as docker-compose reads them, deploy/dagster.yaml as
Dagster reads it, and that instance configuration running the project's graph on a real PostgreSQL server."""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path

import pytest
import yaml
from dagster import (
    AssetKey, DagsterEvent, DagsterEventType, DagsterInstance, DagsterInvalidConfigError, DagsterRunStatus, RunsFilter,
    build_sensor_context, validate_run_config,
)
from dagster._config import process_config
from dagster._core.definitions.dynamic_partitions_request import AddDynamicPartitionsRequest
from dagster._core.definitions.selector import InstigatorSelector
from dagster._core.definitions.sensor_definition import SensorType
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._core.remote_origin import GrpcServerCodeLocationOrigin, RemoteInstigatorOrigin, RemoteRepositoryOrigin
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.scheduler.instigation import (
    DynamicPartitionsRequestResult, InstigatorState, InstigatorStatus, InstigatorType, SensorInstigatorData, TickData,
    TickStatus,
)
from dagster._core.storage.tags import MAX_RUNTIME_SECONDS_TAG, RUN_KEY_TAG, SENSOR_NAME_TAG
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration
from dagster._serdes.config_class import class_from_code_pointer
from dagster_postgres import PostgresRunStorage
from dagster_postgres.utils import pg_url_from_config

from c64_pipeline.definitions import ASSETS, build_definitions
from c64_pipeline.defs.partitions import manual_partitions
from c64_pipeline.defs.training.assets import TRAINING_MODULE, Launcher, TrainingLauncher
from c64_pipeline.defs.ingest.sensors import new_manuals_sensor
from c64_pipeline_tests.graph_helpers import SMALL_CORPUS, Workspace, write_small_corpus
from c64_pipeline_tests.postgres_server import PostgresServer, postgres_server  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = ROOT / "docker-compose.yml"
PG_ENV = {"DAGSTER_POSTGRES_DB": "dagster", "DAGSTER_POSTGRES_USER": "dagster", "DAGSTER_POSTGRES_PASSWORD": "secret"}
LOCATION = "c64_pipeline"
INSTALL_HINT = "install it with `bash scripts/install_test_packages.sh`"


# --- docker-compose.yml and the Dockerfile -------------------------------------------------------------------------


COMPOSE_PASSWORD = "compose-test-password"


def _compose(*args: str, password: str | None = COMPOSE_PASSWORD) -> subprocess.CompletedProcess:
    """docker-compose on the project's file with only the given password in the environment (a .env file beside it
    is ignored: an empty env file is passed instead)."""
    if not shutil.which("docker-compose"):
        pytest.skip(f"docker-compose is not installed: {INSTALL_HINT}")
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_POSTGRES_PASSWORD"}
    if password is not None:
        env["DAGSTER_POSTGRES_PASSWORD"] = password
    with tempfile.NamedTemporaryFile("w", suffix=".env") as empty_env:
        return subprocess.run(["docker-compose", "--env-file", empty_env.name, "-f", str(COMPOSE_FILE), *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture(scope="module")
def compose_config() -> dict:
    """The compose file as docker-compose resolves it (anchors, defaults and ports normalized)."""
    done = _compose("config")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def _published(port) -> tuple[str, str]:
    """(host ip, published port) of a short ("127.0.0.1:3000:3000/tcp") or long (mapping) port entry."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), str(port.get("published", ""))
    parts = str(port).split("/")[0].split(":")
    if len(parts) == 3:
        return parts[0], parts[1]
    return "", parts[0] if len(parts) == 2 else ""


def test_compose_file_is_valid():
    done = _compose("config", "-q")
    assert done.returncode == 0, done.stderr


def test_only_the_webserver_is_published_and_only_on_localhost(compose_config):
    services = compose_config["services"]
    assert {"postgres", "user-code", "webserver", "daemon", "trainer"} <= set(services)
    assert "ports" not in services["postgres"], "PostgreSQL must stay on the compose network"
    published = {name: [_published(p) for p in spec.get("ports", [])] for name, spec in services.items()}
    assert published.pop("webserver") == [("127.0.0.1", "3000")]
    assert all(not ports for ports in published.values()), published
    assert all(spec.get("network_mode") != "host" for spec in services.values())


def test_services_build_the_project_image(compose_config):
    services = compose_config["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    for name in ("user-code", "webserver", "daemon", "trainer"):
        build = services[name].get("build")
        assert build, f"{name} must be built from the project's Dockerfile"
        assert Path(build["context"]).resolve() == ROOT and build.get("dockerfile", "Dockerfile") == "Dockerfile", name


def test_trainer_has_the_gpu_and_runs_the_runs(compose_config):
    services = compose_config["services"]
    devices = services["trainer"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices), devices
    assert "code-server" in services["trainer"]["command"] and "c64_pipeline.definitions" in services["trainer"]["command"]
    assert not any("deploy" in services[name] for name in ("user-code", "webserver", "daemon"))
    # the daemon launches queued runs (and evaluates sensors) through its own workspace: the trainer's code server
    daemon_command = services["daemon"]["command"]
    workspace_path = daemon_command[daemon_command.index("-w") + 1]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["daemon"]["volumes"]}
    workspace = yaml.safe_load(Path(mounts[workspace_path]).read_text())
    (location,) = workspace["load_from"]
    assert location["grpc_server"] == {"host": "trainer", "port": 4000, "location_name": LOCATION}
    ui_workspace = yaml.safe_load((DEPLOY / "workspace.docker.yaml").read_text())
    assert [loc["grpc_server"]["location_name"] for loc in ui_workspace["load_from"]] == [LOCATION]


def test_compose_refuses_to_start_without_the_postgres_password():
    for missing in (None, ""):
        done = _compose("config", "-q", password=missing)
        assert done.returncode != 0 and "set DAGSTER_POSTGRES_PASSWORD" in done.stderr, done.stderr


def test_every_service_uses_the_given_postgres_password_and_none_has_a_default(compose_config):
    services = compose_config["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == COMPOSE_PASSWORD
    for name in ("user-code", "webserver", "daemon", "trainer"):
        assert services[name]["environment"]["DAGSTER_POSTGRES_PASSWORD"] == COMPOSE_PASSWORD, name
    assert not re.search(r"PASSWORD[^\n]*:-", COMPOSE_FILE.read_text()), "no fallback password"


def test_containers_run_as_an_unprivileged_user(compose_config):
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)\s*$", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0", "0:0"), "the image's last USER must not be root"
    assert re.search(rf"useradd[^\n]*--uid \"?\$\{{?APP_UID\}}?\"?[^\n]* {re.escape(users[-1])}$", dockerfile, re.M)
    assert re.search(r"^ARG APP_UID=(\d+)$", dockerfile, re.M).group(1) != "0"
    # what Dagster writes in the image (its home: compute logs, history) belongs to that user; the code stays root's
    assert re.search(rf"chown -R {users[-1]}:\S+ [^\n]*/opt/dagster/home", dockerfile)
    for name, spec in compose_config["services"].items():
        assert str(spec.get("user", "")).split(":")[0] not in ("root", "0"), name
        assert not spec.get("privileged") and not spec.get("cap_add"), name
        if name != "postgres":
            assert spec["build"]["args"]["APP_UID"] == "1000", name
            # every path the pipeline writes is on a mount, not in the root-owned code folder
            env = spec["environment"]
            assert env["C64_DATA_DIR"] == "/data" and env["C64_DOCS_DIR"].startswith("/data/"), name


def test_the_alert_webhook_and_training_launcher_reach_only_the_code_servers(compose_config):
    services = compose_config["services"]
    for name in ("user-code", "trainer"):
        env = services[name]["environment"]
        assert env["C64_ALERT_WEBHOOK_URL"] == "" and env["C64_TRAINING_LAUNCHER"] == "python", name
    for name in ("webserver", "daemon"):
        assert "C64_ALERT_WEBHOOK_URL" not in services[name]["environment"], name


def test_dockerfile_pins_torch_and_installs_the_project():
    dockerfile = (ROOT / "Dockerfile").read_text()
    pins = {}
    for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, sep, version = requirement.partition("==")
        assert sep and version, f"pyproject.toml dependency not pinned: {requirement}"
        pins[name.strip()] = version.strip()
    for package in ("torch", "torchvision"):
        assert re.search(rf"pip install[^\n]*\b{package}=={re.escape(pins[package])}(\s|$)", dockerfile), package
    assert re.search(r"^COPY pyproject\.toml ", dockerfile, re.M)
    assert re.search(r"pip install [^\n]*(-e )?\.\s*$", dockerfile, re.M), "the project must be installed from pyproject.toml"
    assert re.search(r"^COPY deploy/dagster\.yaml /opt/dagster/home/dagster\.yaml$", dockerfile, re.M)
    assert "DAGSTER_HOME=/opt/dagster/home" in dockerfile


# --- deploy/dagster.yaml --------------------------------------------------------------------------------------------


def test_dagster_yaml_is_a_valid_instance_config(monkeypatch):
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    config, custom_class = dagster_instance_config(str(DEPLOY))
    assert custom_class is None
    postgres = config["storage"]["postgres"]["postgres_db"]
    assert postgres["hostname"] == "postgres" and postgres["port"] == 5432
    # dagster-postgres brings psycopg2 only; SQLAlchemy 2.1 would pick psycopg 3 for a bare "postgresql" scheme
    assert postgres["scheme"] == "postgresql+psycopg2"
    assert {k: postgres[k] for k in ("db_name", "username", "password")} == {
        "db_name": {"env": "DAGSTER_POSTGRES_DB"}, "username": {"env": "DAGSTER_POSTGRES_USER"},
        "password": {"env": "DAGSTER_POSTGRES_PASSWORD"},
    }
    coordinator = config["run_coordinator"]
    assert class_from_code_pointer(coordinator["module"], coordinator["class"]) is QueuedRunCoordinator
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["concurrency"]["pools"]["granularity"] == "op"
    # the default pool limit is the gpu pool's limit: gpu is the only pool the project's steps use
    assert {asset.op.pool for asset in ASSETS} - {None} == {"gpu"}


def test_dagster_yaml_resolves_the_postgres_credentials_from_the_environment(monkeypatch, tmp_path):
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    ref = InstanceRef.from_dir(str(tmp_path), config_dir=str(DEPLOY))
    storages = {"storage": ref.storage_data, "runs": ref.run_storage_data, "events": ref.event_storage_data,
                "schedules": ref.schedule_storage_data}
    assert {name: data.module_name for name, data in storages.items()} == dict.fromkeys(storages, "dagster_postgres")
    stored = yaml.safe_load(ref.run_storage_data.config_yaml)
    assert stored["postgres_db"]["password"] == {"env": "DAGSTER_POSTGRES_PASSWORD"}, "no secret in the instance ref"
    resolved = process_config(PostgresRunStorage.config_type(), stored)
    assert resolved.success, resolved.errors
    assert pg_url_from_config(resolved.value) == "postgresql+psycopg2://dagster:secret@postgres:5432/dagster"
    assert isinstance(ref.run_coordinator, QueuedRunCoordinator)


# --- run monitoring and per-run time limits (both instance configs) -------------------------------------------------

INSTANCE_CONFIGS = ["dagster.yaml", "dagster.local.yaml"]


@pytest.mark.parametrize("filename", INSTANCE_CONFIGS)
def test_instance_configs_turn_on_run_monitoring(monkeypatch, filename):
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    config, _ = dagster_instance_config(str(DEPLOY), config_filename=filename)  # validated against Dagster's schema
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    for key in ("start_timeout_seconds", "cancel_timeout_seconds", "max_runtime_seconds",
                "free_slots_after_run_end_seconds"):
        assert monitoring[key] > 0, key
    # every job's own limit is shorter than the catch-all one
    jobs = build_definitions().resolve_all_job_defs()
    for job in (j for j in jobs if not j.name.startswith("__")):
        assert 0 < int(job.run_tags[MAX_RUNTIME_SECONDS_TAG]) <= monitoring["max_runtime_seconds"], job.name


def test_the_local_instance_runs_the_monitoring_daemon(tmp_path):
    ref = InstanceRef.from_dir(str(tmp_path), config_dir=str(DEPLOY), config_filename="dagster.local.yaml")
    with DagsterInstance.from_ref(ref) as instance:
        assert instance.run_monitoring_enabled and "MONITORING" in instance.get_required_daemon_types()
        assert instance.run_monitoring_max_runtime_seconds > 0


def test_a_run_left_started_by_a_killed_worker_or_past_its_limit_is_ended_by_run_monitoring(tmp_path):
    """The state kill -9 leaves (a STARTED run, no worker), on the local instance config as it is: one pass of the
    monitoring daemon ends the run once it is past its job's time limit, and leaves a run within its limit alone."""
    ref = InstanceRef.from_dir(str(tmp_path), config_dir=str(DEPLOY), config_filename="dagster.local.yaml")
    job = build_definitions().resolve_job_def("build_datasets")
    limit = int(job.run_tags[MAX_RUNTIME_SECONDS_TAG])
    with DagsterInstance.from_ref(ref) as instance:
        runs = {}
        for name, started_ago in (("stale", limit + 60), ("fresh", limit - 600)):
            run = instance.create_run_for_job(job_def=job, tags=job.run_tags)  # tags as a launch merges them
            start = DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name=job.name)
            instance.report_dagster_event(start, run.run_id, timestamp=time.time() - started_ago)
            assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED
            runs[name] = run.run_id
        with create_test_daemon_workspace_context(EmptyWorkspaceTarget(), instance) as workspace:
            errors = [e for e in execute_run_monitoring_iteration(workspace, logging.getLogger(__name__)) if e]
        assert not errors, errors
        stale = instance.get_run_by_id(runs["stale"])
        assert stale.status == DagsterRunStatus.FAILURE
        messages = [e.message for e in instance.all_logs(runs["stale"]) if e.message]
        assert any(f"maximum runtime of {limit} seconds" in m for m in messages), messages
        assert instance.get_run_by_id(runs["fresh"]).status == DagsterRunStatus.STARTED


# --- the Launchpad cannot choose the training command ---------------------------------------------------------------


def test_the_launchpad_cannot_set_the_training_command():
    job = build_definitions().resolve_job_def("train_and_evaluate")

    def launchpad(config: dict) -> None:
        validate_run_config(job, {"resources": {"training_launcher": {"config": config}}})

    with pytest.raises(DagsterInvalidConfigError, match="command_prefix"):
        launchpad({"command_prefix": ["/bin/sh", "-c", "id > /tmp/owned"]})
    with pytest.raises(DagsterInvalidConfigError, match="module"):
        launchpad({"module": "http.server"})
    with pytest.raises(DagsterInvalidConfigError, match="not in enum"):
        launchpad({"launcher": "/bin/sh"})
    launchpad({"launcher": "torchrun", "processes": 4})  # an allowed launcher stays selectable
    assert TrainingLauncher(launcher=Launcher.torchrun, processes=4).command() == [
        "torchrun", "--nproc_per_node", "4", "-m", TRAINING_MODULE]
    assert TrainingLauncher().command()[-2:] == ["-m", TRAINING_MODULE]


def test_the_training_launcher_is_chosen_for_the_deployment_from_the_environment(monkeypatch):
    monkeypatch.setenv("C64_TRAINING_LAUNCHER", "accelerate_fsdp")
    monkeypatch.setenv("C64_TRAINING_PROCESSES", "2")
    assert TrainingLauncher.from_env().command() == [
        "accelerate", "launch", "--num_processes", "2", "--use_fsdp", "-m", TRAINING_MODULE]
    monkeypatch.setenv("C64_TRAINING_LAUNCHER", "/bin/sh -c id")
    with pytest.raises(ValueError, match="C64_TRAINING_LAUNCHER must be one of python, accelerate"):
        TrainingLauncher.from_env()


# --- the instance on a real PostgreSQL ------------------------------------------------------------------------------


def _instance(home: Path, server: PostgresServer) -> DagsterInstance:
    """deploy/dagster.yaml as it is, with only the server's address changed (and local artifacts in `home`)."""
    storage = copy.deepcopy(yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["storage"])
    storage["postgres"]["postgres_db"].update(hostname=server.hostname, port=server.port)
    ref = InstanceRef.from_dir(str(home), config_dir=str(DEPLOY), overrides={"storage": storage})
    return DagsterInstance.from_ref(ref)


def _sensor_origin() -> RemoteInstigatorOrigin:
    """The sensor's origin as the compose daemon sees it (code location served by the trainer)."""
    location = GrpcServerCodeLocationOrigin(host="trainer", port=4000, location_name=LOCATION)
    return RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, "__repository__"), new_manuals_sensor.name)


@pytest.mark.slow
def test_the_graph_on_postgres(postgres_server, monkeypatch, tmp_path, tiny_model_dir):  # noqa: F811
    for name, value in postgres_server.env().items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    workspace = Workspace.create(tmp_path / "workspace", tiny_model_dir)
    write_small_corpus(workspace.manuals)
    resources = workspace.resources()
    defs = build_definitions(resources)
    origin = _sensor_origin()
    origin_id = origin.get_id()
    selector_id = InstigatorSelector(
        location_name=LOCATION, repository_name="__repository__", name=new_manuals_sensor.name).get_id()

    with _instance(home, postgres_server) as instance:
        assert type(instance.run_storage).__module__.startswith("dagster_postgres")
        assert type(instance.event_log_storage).__module__.startswith("dagster_postgres")
        assert type(instance.schedule_storage).__module__.startswith("dagster_postgres")
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)

        # one sensor tick, recorded the way the daemon records it: tick, partitions, runs, cursor
        tick = instance.create_tick(TickData(
            instigator_origin_id=origin_id, instigator_name=new_manuals_sensor.name,
            instigator_type=InstigatorType.SENSOR, status=TickStatus.STARTED, timestamp=time.time(),
            selector_id=selector_id,
        ))
        result = new_manuals_sensor(build_sensor_context(instance=instance, resources={"paths": resources["paths"]}))
        for request in result.dynamic_partitions_requests:
            assert isinstance(request, AddDynamicPartitionsRequest)
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
            tick = tick.with_dynamic_partitions_request_result(DynamicPartitionsRequestResult(
                request.partitions_def_name, added_partitions=list(request.partition_keys), deleted_partitions=None,
                skipped_partitions=[]))
        assert len(result.run_requests) == 1, "the new manuals are read in one run"
        ingest_job = defs.resolve_job_def("ingest_documents")
        ingest_runs = []
        for request in result.run_requests:
            tags = {**request.tags, SENSOR_NAME_TAG: new_manuals_sensor.name, RUN_KEY_TAG: request.run_key}
            run = ingest_job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=tags,
                                                raise_on_error=False)
            assert run.success
            ingest_runs.append(run.run_id)
            tick = tick.with_run_info(run_id=run.run_id, run_key=request.run_key)
        instance.update_tick(tick.with_status(TickStatus.SUCCESS, cursor=result.cursor))
        instance.add_instigator_state(InstigatorState(
            origin, InstigatorType.SENSOR, InstigatorStatus.DECLARED_IN_CODE,
            SensorInstigatorData(last_tick_timestamp=tick.timestamp, last_run_key=result.run_requests[-1].run_key,
                                 min_interval=new_manuals_sensor.minimum_interval_seconds, cursor=result.cursor,
                                 sensor_type=SensorType.STANDARD),
        ))

        datasets = defs.resolve_job_def("build_datasets").execute_in_process(instance=instance, raise_on_error=False)
        assert datasets.success
        evaluations = {e.asset_check_key: e for e in datasets.get_asset_check_evaluations()}
        assert evaluations and all(e.passed for e in evaluations.values()), {
            k.name: e.description for k, e in evaluations.items() if not e.passed}
        dataset_keys = {e.asset_key for e in datasets.get_asset_materialization_events()}
        assert {AssetKey("validation_report"), AssetKey("dapt_dataset"), AssetKey("sft_dataset")} <= dataset_keys

    partitions = sorted(p.removesuffix(".md") + "-md" for p in SMALL_CORPUS)
    # everything read back from PostgreSQL through a fresh instance on the same dagster.yaml
    with _instance(home, postgres_server) as fresh:
        assert sorted(fresh.get_dynamic_partitions(manual_partitions.name)) == partitions
        for key in ("raw_pdfs", "page_text"):
            assert fresh.get_materialized_partitions(AssetKey(key)) == set(partitions), key
        for key in dataset_keys:
            (record,) = fresh.fetch_materializations(key, limit=1).records
            assert record.run_id == datasets.run_id, key
        for check_key, evaluation in evaluations.items():
            record = fresh.get_latest_asset_check_evaluation_record(check_key)
            assert record is not None and record.run_id == datasets.run_id, check_key
            stored = record.event.dagster_event.event_specific_data
            assert stored.passed and stored.check_name == evaluation.check_name
        runs = fresh.get_runs(RunsFilter(tags={SENSOR_NAME_TAG: new_manuals_sensor.name}))
        assert [r.run_id for r in runs] == ingest_runs and all(r.status == DagsterRunStatus.SUCCESS for r in runs)
        assert fresh.get_run_by_id(datasets.run_id).status == DagsterRunStatus.SUCCESS

        (stored_tick,) = fresh.get_ticks(origin_id, selector_id)
        assert stored_tick.status == TickStatus.SUCCESS and stored_tick.cursor == result.cursor
        assert stored_tick.run_ids == ingest_runs and stored_tick.run_keys == [r.run_key for r in result.run_requests]
        (added,) = stored_tick.dynamic_partitions_request_results
        assert sorted(added.added_partitions) == partitions
        state = fresh.get_instigator_state(origin_id, selector_id)
        assert state.instigator_data.cursor == result.cursor
        assert json.loads(state.instigator_data.cursor)["hashes"].keys() == set(partitions)

        # the next tick, from the stored cursor and partitions: nothing new, nothing to do
        quiet = new_manuals_sensor(build_sensor_context(instance=fresh, cursor=state.instigator_data.cursor,
                                                        resources={"paths": resources["paths"]}))
        assert quiet.run_requests == [] and not quiet.dynamic_partitions_requests

        # the gpu pool: the instance's default limit (1) is what PostgreSQL holds once the pool is first used
        assert fresh.get_concurrency_config().pool_config.default_pool_limit == 1
        fresh.event_log_storage.initialize_concurrency_limit_to_default("gpu")
        assert fresh.event_log_storage.get_concurrency_info("gpu").slot_count == 1

    # it is all in PostgreSQL, nothing in a local SQLite file
    assert not list(home.rglob("*.db"))
    connection = postgres_server.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM runs")
            assert cursor.fetchone()[0] == len(ingest_runs) + 1
            cursor.execute("SELECT count(*) FROM dynamic_partitions WHERE partitions_def_name = %s", (manual_partitions.name,))
            assert cursor.fetchone()[0] == len(partitions)
            cursor.execute("SELECT count(*) FROM job_ticks")
            assert cursor.fetchone()[0] == 1
            cursor.execute("SELECT count(*) FROM asset_check_executions")
            assert cursor.fetchone()[0] >= len(evaluations)
    finally:
        connection.close()
