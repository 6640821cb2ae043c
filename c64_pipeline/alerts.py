"""Alerts: a line in data/alerts/alerts.jsonl, always and first, then a JSON POST to a webhook (Slack-compatible
`text` plus the structured fields), retried with backoff. A webhook that stays down never loses the file record."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path


@dataclass(frozen=True)
class Alert:
    kind: str  # "check_failed" or "run_failed"
    title: str
    severity: str  # "ERROR" or "WARN"
    asset: str | None = None
    check: str | None = None
    partition: str | None = None
    run_id: str | None = None
    run_url: str | None = None
    figures: dict = field(default_factory=dict)
    description: str | None = None

    def payload(self) -> dict:
        link = f" <{self.run_url}|run>" if self.run_url else ""
        where = " / ".join(x for x in (self.asset, self.partition, self.check) if x)
        text = f"[{self.severity}] {self.title}" + (f" ({where})" if where else "") + (f": {self.description}" if self.description else "") + link
        return {"text": text, **{k: v for k, v in asdict(self).items() if v not in (None, {}, "")}}


@dataclass
class AlertDelivery:
    recorded: bool
    webhook_status: str  # "sent", "failed: ...", or "no webhook"
    attempts: int


def record_alert(alerts_file: Path, alert: Alert) -> None:
    """Append one JSON line; appends of one short line are atomic enough for a single-writer sensor."""
    alerts_file.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"at": datetime.now(timezone.utc).isoformat(), **alert.payload()}, ensure_ascii=False)
    with alerts_file.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()


def post_json(url: str, payload: dict, timeout: float) -> int:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status


def send_alert(
    alert: Alert, alerts_file: Path, webhook_url: str | None, attempts: int = 4, backoff_s: float = 0.5, timeout_s: float = 5.0
) -> AlertDelivery:
    record_alert(alerts_file, alert)
    if not webhook_url:
        return AlertDelivery(True, "no webhook", 0)
    error = ""
    for attempt in range(1, attempts + 1):
        try:
            status = post_json(webhook_url, alert.payload(), timeout_s)
            if 200 <= status < 300:
                return AlertDelivery(True, "sent", attempt)
            error = f"HTTP {status}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            error = str(exc)
        if attempt < attempts:
            time.sleep(backoff_s * 2 ** (attempt - 1))
    return AlertDelivery(True, f"failed: {error}", attempts)
