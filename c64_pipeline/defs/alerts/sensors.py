"""Alert sensors: failed checks and failed runs are put in the alert outbox (fast, no network), and `alert_delivery`
sends the outbox to the webhook within a time budget per tick (c64_pipeline.alerts)."""

from __future__ import annotations

import json

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    DefaultSensorStatus,
    RunFailureSensorContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from c64_pipeline.alerts import Alert
from c64_pipeline.defs.alerts.resources import AlertSink


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
    from c64_pipeline.defs.datasets.checks import data_checks
    from c64_pipeline.defs.training.checks import training_checks

    return [key for check in data_checks + training_checks for key in check.check_keys]


@sensor(
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Puts each failed asset check (ERROR or WARN, blocking or not) once in the alert outbox "
    "(alert_delivery sends it).",
)
def check_failure_alerts(context: SensorEvaluationContext, alert_sink: AlertSink) -> SensorResult:
    # cursor: the id of the last execution seen per check. Each check's own execution history is read, which
    # works on every event storage (SQLite's run-sharded one cannot page through all check events at once).
    # A tick cut before its cursor is stored finds the same evaluations again: the outbox records each id once.
    seen: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    repository = getattr(context, "repository_def", None)
    keys = list(repository.asset_graph.asset_check_keys) if repository else _project_check_keys()
    storage = context.instance.event_log_storage
    alerts = []
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
            alerts.append(Alert(
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
            ))
    for alert in alert_sink.record(alerts):
        context.log.info(f"alert recorded: {alert.title} ({alert.id})")
    return SensorResult(cursor=json.dumps(seen, sort_keys=True))


@run_failure_sensor(default_status=DefaultSensorStatus.RUNNING,
                    description="Puts every failed run in the alert outbox (alert_delivery sends it).")
def run_failure_alerts(context: RunFailureSensorContext, alert_sink: AlertSink) -> None:
    run = context.dagster_run
    alert_sink.record([
        Alert(
            kind="run_failed",
            title=f"run of {run.job_name} failed",
            severity="ERROR",
            partition=run.tags.get("dagster/partition"),
            run_id=run.run_id,
            run_url=alert_sink.run_url(run.run_id),
            description=(context.failure_event.message or "")[:500],
        )
    ])


@sensor(
    minimum_interval_seconds=15,
    default_status=DefaultSensorStatus.RUNNING,
    description="Sends the alert outbox to C64_ALERT_WEBHOOK_URL, in order, each alert once; a tick stops after "
    "its time budget (20 s, a request at most 5 s) and the rest goes out on the next tick.",
)
def alert_delivery(context: SensorEvaluationContext, alert_sink: AlertSink) -> SkipReason:
    done = alert_sink.deliver()
    if done.sent or done.rejected or done.stopped:
        context.log.info(f"alerts sent: {len(done.sent)}, refused by the webhook: {len(done.rejected)}, "
                         f"still pending: {done.pending}{', stopped: ' + done.stopped if done.stopped else ''}")
    return SkipReason(f"{len(done.sent)} sent, {done.pending} pending in {done.seconds:.1f} s"
                      + (f" ({done.stopped})" if done.stopped else ""))


ALERT_SENSORS = [check_failure_alerts, run_failure_alerts, alert_delivery]
