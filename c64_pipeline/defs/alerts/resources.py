"""The alert sink: where failed checks and runs are reported (the outbox file, and a webhook when configured)."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource, EnvVar
from pydantic import field_validator

from c64_pipeline.alerts import (
    REQUEST_TIMEOUT_S, ROUND_BUDGET_S, Alert, AlertOutbox, DeliveryRound, validate_webhook_url,
)
from c64_pipeline.settings import ALERT_WEBHOOK_ENV, deployment_from_env, paths_from_env

# Dagster cancels a sensor tick after 60 s: a delivery round plus one request must end well before that.
TICK_LIMIT_MARGIN_S = 45.0


class AlertSink(ConfigurableResource):
    """Where alerts go: always the outbox `alerts_file` (data/alerts/alerts.jsonl), and a webhook POST when
    `webhook_url` is set. `from_env` passes the URL as `EnvVar("C64_ALERT_WEBHOOK_URL")`, so the UI shows the
    variable's name, never the URL; the URL is checked when the resource is built (http or https, with a host)."""

    alerts_file: str
    webhook_url: str = ""
    ui_base_url: str = "http://127.0.0.1:3000"
    request_timeout_seconds: float = REQUEST_TIMEOUT_S
    round_budget_seconds: float = ROUND_BUDGET_S

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _webhook_url_is_http(cls, value):
        # an EnvVar arrives as itself (its text is the variable's name): check the value it will resolve to
        if isinstance(value, EnvVar):
            resolved = value.get_value()
            if resolved is None:
                raise ValueError(f"{value.env_var_name} is not set")
            validate_webhook_url(resolved, setting=value.env_var_name)
            return value
        return validate_webhook_url(value, setting="webhook_url")

    @field_validator("round_budget_seconds", "request_timeout_seconds")
    @classmethod
    def _within_the_tick_limit(cls, value: float) -> float:
        if not 0 < value <= TICK_LIMIT_MARGIN_S:
            raise ValueError(f"must be above 0 and at most {TICK_LIMIT_MARGIN_S:g} s (Dagster ends a tick at 60 s)")
        return value

    @classmethod
    def from_env(cls) -> "AlertSink":
        paths, deployment = paths_from_env(), deployment_from_env()
        return cls(
            alerts_file=str(paths.alerts_file),
            webhook_url=EnvVar(ALERT_WEBHOOK_ENV) if deployment.alert_webhook_configured else "",
            ui_base_url=deployment.ui_base_url,
        )

    @property
    def outbox(self) -> AlertOutbox:
        return AlertOutbox(Path(self.alerts_file))

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_base_url.rstrip('/')}/runs/{run_id}"

    def record(self, alerts: list[Alert]) -> list[Alert]:
        return self.outbox.record(alerts)

    def deliver(self) -> DeliveryRound:
        # inside a run or a sensor the EnvVar has been resolved to the URL by now
        url = self.webhook_url.get_value() if isinstance(self.webhook_url, EnvVar) else self.webhook_url
        return self.outbox.deliver(url or "", self.round_budget_seconds, self.request_timeout_seconds)
