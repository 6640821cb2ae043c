"""Alerts: an outbox on disk, then a bounded delivery to a webhook.

Every alert is first a line in `alerts.jsonl` (the outbox), once per alert id: recording it again (a sensor tick
that was cut before its cursor was stored finds the same failures again) adds nothing. Delivery reads the alerts
that have no line yet in `alerts.delivered.jsonl` (the ledger) and POSTs them in order (Slack-compatible `text`
plus the structured fields, and the alert id as an `Idempotency-Key` header); each success is written to the
ledger at once, so a delivery cut at any point resends nothing already acknowledged. A delivery never runs past
its time budget: each request has its own timeout no longer than what is left of the budget, and the first
transport error, timeout or 5xx ends the round; what was not sent goes out on the next round. A webhook that
stays down never loses the file record."""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

WEBHOOK_SCHEMES = ("http", "https")
REQUEST_TIMEOUT_S = 5.0
# Dagster cancels a sensor tick after 60 s; a delivery round stays well under that.
ROUND_BUDGET_S = 20.0
# Below this much time left, a round stops rather than start a request it would have to cut short.
MIN_REQUEST_S = 0.5


class InvalidWebhookUrl(ValueError):
    """The webhook URL cannot be used: it names the setting and the reason, never the (secret) URL itself."""


def validate_webhook_url(url: str, setting: str = "C64_ALERT_WEBHOOK_URL") -> str:
    """Return `url` (stripped) when it is an http(s) URL with a host, or "" when it is empty; raise otherwise."""
    url = (url or "").strip()
    if not url:
        return ""
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidWebhookUrl(f"{setting} contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise InvalidWebhookUrl(f"{setting} is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in WEBHOOK_SCHEMES:
        shown = f"a {scheme}:// URL" if scheme else "a URL without a scheme"
        raise InvalidWebhookUrl(f"{setting} must be an http:// or https:// URL, not {shown}")
    if not parts.hostname:
        raise InvalidWebhookUrl(f"{setting} has no host")
    return url


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

    @property
    def id(self) -> str:
        """Stable for the event the alert is about (one check evaluation of one run, one failed run), so the same
        failure found again by a later tick is the same alert."""
        source = json.dumps([self.kind, self.run_id, self.asset, self.check, self.partition, self.title])
        return f"{self.kind}:{hashlib.sha256(source.encode()).hexdigest()[:20]}"

    def payload(self) -> dict:
        link = f" <{self.run_url}|run>" if self.run_url else ""
        where = " / ".join(x for x in (self.asset, self.partition, self.check) if x)
        text = f"[{self.severity}] {self.title}" + (f" ({where})" if where else "") + (f": {self.description}" if self.description else "") + link
        return {"text": text, "id": self.id, **{k: v for k, v in asdict(self).items() if v not in (None, {}, "")}}


@dataclass
class DeliveryRound:
    """What one delivery round did."""

    sent: list[str] = field(default_factory=list)  # alert ids acknowledged by the webhook
    rejected: dict[str, str] = field(default_factory=dict)  # alert id -> reason (a 4xx the webhook will not take)
    pending: int = 0  # alerts still to deliver after this round
    stopped: str = ""  # why the round ended early ("" when nothing was left to send)
    seconds: float = 0.0


def post_json(url: str, payload: dict, timeout: float, headers: dict | None = None) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(65536)
            return response.status
    except urllib.error.HTTPError as exc:  # a non-2xx answer is an answer, not a transport error
        return exc.code


# (url, payload, timeout_s, headers) -> HTTP status; raises OSError (URLError, TimeoutError) or
# http.client.HTTPException (a garbled answer) on transport errors
Poster = Callable[[str, dict, float, dict], int]


def _append_lines(path: Path, records: list[dict]) -> None:
    """Append JSON lines and fsync; a line left half-written by a killed writer is ended first, never joined to."""
    if not records:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    with path.open("a+b") as fh:
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                text = "\n" + text
        fh.write(text.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def _read_lines(path: Path) -> Iterator[dict]:
    """The JSON objects of a JSON-lines file; a half-written or foreign line is skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


class AlertOutbox:
    """`alerts.jsonl` (every alert, once) and `alerts.delivered.jsonl` (the ids the webhook acknowledged or
    refused for good) side by side. Lock files beside them keep two recorders from adding the same alert and two
    deliveries from running at once; recording never waits for a delivery (a reader skips a line still being
    written, and sees it whole on its next round)."""

    def __init__(self, alerts_file: Path) -> None:
        self.alerts_file = Path(alerts_file)
        self.ledger_file = self.alerts_file.with_name(self.alerts_file.stem + ".delivered.jsonl")
        self.record_lock = self.alerts_file.with_name(self.alerts_file.name + ".lock")
        self.delivery_lock = self.ledger_file.with_name(self.ledger_file.name + ".lock")

    @staticmethod
    @contextmanager
    def _locked(lock_file: Path, blocking: bool) -> Iterator[bool]:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        with lock_file.open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def recorded_ids(self) -> set[str]:
        return {r["id"] for r in _read_lines(self.alerts_file) if "id" in r}

    def settled_ids(self) -> set[str]:
        return {r["id"] for r in _read_lines(self.ledger_file) if "id" in r}

    def record(self, alerts: list[Alert]) -> list[Alert]:
        """Put each alert in the outbox unless it is there already; returns the ones that were new."""
        if not alerts:
            return []
        with self._locked(self.record_lock, blocking=True):
            known = self.recorded_ids()
            new = []
            for alert in alerts:
                if alert.id not in known:
                    known.add(alert.id)
                    new.append(alert)
            now = datetime.now(timezone.utc).isoformat()
            _append_lines(self.alerts_file, [{"at": now, **alert.payload()} for alert in new])
            return new

    def pending(self) -> list[dict]:
        """Recorded alerts the webhook has not acknowledged (or refused for good), oldest first. Lines without an id
        (written before the outbox existed) count as settled."""
        settled = self.settled_ids()
        out, seen = [], set()
        for record in _read_lines(self.alerts_file):
            alert_id = record.get("id")
            if alert_id and alert_id not in settled and alert_id not in seen:
                seen.add(alert_id)
                out.append(record)
        return out

    def _settle(self, alert_ids: list[str], outcome: str) -> None:
        now = datetime.now(timezone.utc).isoformat()
        _append_lines(self.ledger_file, [{"id": alert_id, "outcome": outcome, "at": now} for alert_id in alert_ids])

    def deliver(self, webhook_url: str, budget_s: float = ROUND_BUDGET_S, request_timeout_s: float = REQUEST_TIMEOUT_S,
                post: Poster = post_json) -> DeliveryRound:
        """Send pending alerts in order until none is left, the webhook fails, or `budget_s` is spent."""
        started = time.monotonic()
        deadline = started + budget_s
        result = DeliveryRound()
        with self._locked(self.delivery_lock, blocking=False) as locked:
            if not locked:
                result.stopped = "another delivery is running"
                return result
            queue = self.pending()
            if not webhook_url:
                # nothing to deliver to: settled as such, so a webhook set later does not replay the backlog
                self._settle([record["id"] for record in queue], "not sent: no webhook")
                result.seconds = time.monotonic() - started
                return result
            for record in queue:
                left = deadline - time.monotonic()
                if left < MIN_REQUEST_S:
                    result.stopped = f"time budget of {budget_s:g} s spent"
                    break
                body = {k: v for k, v in record.items() if k != "at"}
                try:
                    status = post(webhook_url, body, min(request_timeout_s, left), {"Idempotency-Key": record["id"]})
                except (OSError, http.client.HTTPException) as exc:  # timeouts and URLErrors are OSErrors too
                    result.stopped = f"webhook unreachable: {getattr(exc, 'reason', exc)}"
                    break
                if 200 <= status < 300:
                    self._settle([record["id"]], "sent")
                    result.sent.append(record["id"])
                elif 400 <= status < 500 and status not in (408, 425, 429):
                    # the webhook refuses this payload; sending it again would not change that
                    self._settle([record["id"]], f"rejected: HTTP {status}")
                    result.rejected[record["id"]] = f"HTTP {status}"
                else:
                    result.stopped = f"webhook answered HTTP {status}"
                    break
            done = len(result.sent) + len(result.rejected)
            result.pending = len(queue) - done
        result.seconds = time.monotonic() - started
        return result
