"""The alert sensors and the AlertSink resource (defs/alerts/sensors.py), against real Dagster instances and a real
HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import time

import pytest
from dagster import DagsterInstance, build_sensor_context
from dagster._core.remote_representation.external_data import RepositorySnap, ResourceConfigEnvVarSnap
from dagster._serdes import serialize_value
from pydantic import ValidationError

from c64_pipeline.alerts import Alert
from c64_pipeline.definitions import build_definitions
from c64_pipeline.defs.alerts.resources import AlertSink
from c64_pipeline.defs.alerts.sensors import alert_delivery, check_failure_alerts, run_failure_alerts
from c64_pipeline.defs.resources import QualityThresholds
from c64_pipeline_tests.graph_helpers import Workspace, write_small_corpus
from c64_pipeline_tests.http_sink import RecordingWebhook

SECRET_HOOK_PATH = "/services/T0SECRET/B0SECRET/xoxb-do-not-show"


@pytest.fixture
def workspace(tmp_path, tiny_model_dir) -> Workspace:
    return Workspace.create(tmp_path, tiny_model_dir)


def _deliver(sink: AlertSink):
    return alert_delivery(build_sensor_context(resources={"alert_sink": sink}))


def test_failed_checks_alert_once_even_when_a_tick_is_cut(workspace):
    write_small_corpus(workspace.manuals)
    (workspace.root / "dagster_home").mkdir()
    alerts_file = workspace.root / "alerts" / "alerts.jsonl"
    # on disk, as under `make ui`: SQLite's run-sharded event storage is the one that must work
    with DagsterInstance.local_temp(tempdir=str(workspace.root / "dagster_home")) as instance, RecordingWebhook() as hook:
        workspace.run(instance, thresholds=QualityThresholds(min_coverage_ratio=1.01))
        sink = AlertSink(alerts_file=str(alerts_file), webhook_url=hook.url)
        result = check_failure_alerts(build_sensor_context(instance=instance, resources={"alert_sink": sink}))
        assert hook.payloads == [], "recording never touches the network"
        _deliver(sink)
        # the daemon never stored that tick's cursor (the tick was cut): the next tick sees the same failures
        cut = check_failure_alerts(build_sensor_context(instance=instance, resources={"alert_sink": sink}))
        again = check_failure_alerts(build_sensor_context(instance=instance, cursor=result.cursor,
                                                         resources={"alert_sink": sink}))
        assert cut.cursor == again.cursor == result.cursor
        _deliver(sink)
    lines = [json.loads(line) for line in alerts_file.read_text().splitlines()]
    assert [line["check"] for line in lines] == ["coverage_ratio"]
    (payload,) = hook.payloads
    assert payload["figures"]["coverage_ratio"] == 1.0 and payload["figures"]["threshold"] == 1.01
    assert payload["asset"] == "validation_report" and payload["run_url"].startswith("http://127.0.0.1:3000/runs/")


def test_a_crashed_run_raises_an_alert(tmp_path):
    from dagster import DagsterEventType, build_run_status_sensor_context, job, op

    @op
    def train_step():
        raise RuntimeError("CUDA out of memory (simulated crash)")

    @job
    def crashing_training():
        train_step()

    with DagsterInstance.ephemeral() as instance, RecordingWebhook() as hook:
        result = crashing_training.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
        sink = AlertSink(alerts_file=str(tmp_path / "alerts.jsonl"), webhook_url=hook.url)
        for _ in range(2):  # the same failure seen twice is one alert
            context = build_run_status_sensor_context(
                sensor_name="run_failure_alerts", dagster_event=failure, dagster_instance=instance,
                dagster_run=result.dagster_run, resources={"alert_sink": sink},
            ).for_run_failure()
            run_failure_alerts(context)
        _deliver(sink)
        _deliver(sink)
    (payload,) = hook.payloads
    assert payload["kind"] == "run_failed" and payload["run_id"] == result.run_id
    assert "crashing_training" in payload["text"] and payload["run_url"].endswith(result.run_id)
    assert json.loads((tmp_path / "alerts.jsonl").read_text())["kind"] == "run_failed"


def test_a_delivery_tick_on_a_webhook_that_never_answers_ends_within_its_budget(tmp_path):
    alerts = [Alert(kind="run_failed", title=f"run {i} failed", severity="ERROR", run_id=f"r{i}") for i in range(3)]
    with RecordingWebhook(hang=True) as hook:
        sink = AlertSink(alerts_file=str(tmp_path / "alerts.jsonl"), webhook_url=hook.url,
                         round_budget_seconds=3, request_timeout_seconds=1)
        sink.record(alerts)
        started = time.monotonic()
        skipped = _deliver(sink)
        assert time.monotonic() - started < 3 and "3 pending" in skipped.skip_message and hook.unanswered
        hook.answer()
        _deliver(sink)
        _deliver(sink)
    assert [p["id"] for p in hook.payloads] == [a.id for a in alerts]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "http//missing-colon.example/hook", "https://:443/x", "gopher://h/"])
def test_a_bad_webhook_url_fails_when_the_definitions_load_not_on_every_tick(monkeypatch, url):
    monkeypatch.setenv("C64_ALERT_WEBHOOK_URL", url)
    with pytest.raises(ValidationError) as error:
        build_definitions()
    message = str(error.value)
    assert "C64_ALERT_WEBHOOK_URL" in message and ("http:// or https://" in message or "has no host" in message)
    assert "passwd" not in message and "missing-colon" not in message


def test_a_bad_webhook_url_given_in_code_is_refused_when_the_resource_is_built(tmp_path):
    with pytest.raises(ValidationError, match="webhook_url must be an http:// or https:// URL, not a file:// URL"):
        AlertSink(alerts_file=str(tmp_path / "alerts.jsonl"), webhook_url="file:///etc/passwd")
    with pytest.raises(ValidationError, match="at most 45 s"):
        AlertSink(alerts_file=str(tmp_path / "alerts.jsonl"), round_budget_seconds=119)


def test_the_webhook_url_is_read_from_the_environment_and_never_shown_in_the_ui(monkeypatch, tmp_path):
    with RecordingWebhook() as hook:
        url = hook.url.removesuffix("/hook") + SECRET_HOOK_PATH
        monkeypatch.setenv("C64_ALERT_WEBHOOK_URL", url)
        monkeypatch.setenv("C64_DATA_DIR", str(tmp_path))
        defs = build_definitions()
        snapshot = RepositorySnap.from_def(defs.get_repository_def())
        (sink_snap,) = [r for r in snapshot.resources if r.name == "alert_sink"]
        assert sink_snap.configured_values["webhook_url"] == ResourceConfigEnvVarSnap(name="C64_ALERT_WEBHOOK_URL")
        assert "xoxb-do-not-show" not in serialize_value(snapshot), "the URL must not reach the UI"
        # at run time the variable is resolved: the alert reaches the webhook
        sink = defs.resources["alert_sink"]
        sink.record([Alert(kind="run_failed", title="run of build_datasets failed", severity="ERROR", run_id="x")])
        _deliver(sink)
    (payload,) = hook.payloads
    assert payload["run_id"] == "x" and (tmp_path / "alerts" / "alerts.jsonl").exists()
