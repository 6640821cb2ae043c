"""The alert outbox and its delivery, against a real HTTP server on 127.0.0.1 (c64_pipeline.alerts)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from c64_pipeline.alerts import Alert, AlertOutbox, InvalidWebhookUrl, validate_webhook_url
from c64_pipeline_tests.http_sink import RecordingWebhook

ROOT = Path(__file__).resolve().parents[1]
ALERT = Alert(kind="check_failed", title="check coverage_ratio failed", severity="ERROR", asset="validation_report",
              check="coverage_ratio", run_id="abc", run_url="http://127.0.0.1:3000/runs/abc",
              figures={"coverage_ratio": 0.42, "threshold": 0.9}, description="42 of 100 pages have usable text")


def _alerts(n: int) -> list[Alert]:
    return [Alert(kind="run_failed", title=f"run of ingest_documents failed ({i})", severity="ERROR", run_id=f"run{i}")
            for i in range(n)]


def _ledger(outbox: AlertOutbox) -> list[str]:
    return [json.loads(line)["id"] for line in outbox.ledger_file.read_text().splitlines()]


def test_a_failing_webhook_gets_the_alert_on_a_later_round_with_a_slack_compatible_payload(tmp_path):
    outbox = AlertOutbox(tmp_path / "alerts.jsonl")
    assert [a.id for a in outbox.record([ALERT])] == [ALERT.id]
    with RecordingWebhook(fail_first=2) as hook:
        first = outbox.deliver(hook.url)
        second = outbox.deliver(hook.url)
        third = outbox.deliver(hook.url)
        fourth = outbox.deliver(hook.url)
    assert first.stopped == second.stopped == "webhook answered HTTP 503" and first.pending == 1
    assert third.sent == [ALERT.id] and third.pending == 0 and fourth.sent == [] and hook.attempts == 3
    (payload,) = hook.payloads
    assert hook.keys == [ALERT.id] and payload["id"] == ALERT.id
    assert "coverage_ratio" in payload["text"] and "http://127.0.0.1:3000/runs/abc" in payload["text"]
    assert payload["check"] == "coverage_ratio" and payload["figures"] == {"coverage_ratio": 0.42, "threshold": 0.9}
    assert payload["severity"] == "ERROR" and payload["asset"] == "validation_report"


def test_a_dead_webhook_never_loses_the_file_record(tmp_path):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    outbox = AlertOutbox(tmp_path / "alerts.jsonl")
    outbox.record([ALERT])
    round_ = outbox.deliver(dead, budget_s=2, request_timeout_s=1)
    assert round_.stopped.startswith("webhook unreachable") and round_.pending == 1 and round_.sent == []
    (line,) = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert json.loads(line)["check"] == "coverage_ratio"
    assert [r["id"] for r in outbox.pending()] == [ALERT.id]


def test_the_same_alert_is_recorded_once(tmp_path):
    outbox = AlertOutbox(tmp_path / "alerts.jsonl")
    first = outbox.record(_alerts(2))
    again = outbox.record(_alerts(3))  # a tick that was cut before its cursor was stored finds the first two again
    assert len(first) == 2 and [a.title for a in again] == [_alerts(3)[2].title]
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 3


def test_a_webhook_that_never_answers_cannot_stall_a_round_and_gets_the_alerts_later(tmp_path):
    outbox = AlertOutbox(tmp_path / "alerts.jsonl")
    alerts = _alerts(3)
    outbox.record(alerts)
    with RecordingWebhook(hang=True) as hook:
        started = time.monotonic()
        stalled = outbox.deliver(hook.url, budget_s=3, request_timeout_s=1)
        elapsed = time.monotonic() - started
        # one request was accepted and left unanswered: the round gave up on it after its timeout, not the budget
        assert stalled.sent == [] and stalled.pending == 3 and "unreachable" in stalled.stopped
        assert len(hook.unanswered) == 1 and elapsed < 3, elapsed
        hook.answer()
        later = outbox.deliver(hook.url, budget_s=3, request_timeout_s=1)
    assert later.sent == [a.id for a in alerts] and later.pending == 0
    assert [p["id"] for p in hook.payloads] == [a.id for a in alerts]
    assert _ledger(outbox) == [a.id for a in alerts]


def test_a_round_stops_at_its_budget_and_the_next_round_sends_the_rest(tmp_path):
    outbox = AlertOutbox(tmp_path / "alerts.jsonl")
    alerts = _alerts(4)
    outbox.record(alerts)
    with RecordingWebhook() as hook:
        calls = []

        def slow_post(url, payload, timeout, headers):  # a real POST that takes its whole timeout's share
            from c64_pipeline.alerts import post_json
            calls.append(timeout)
            time.sleep(0.4)
            return post_json(url, payload, timeout, headers)

        first = outbox.deliver(hook.url, budget_s=1.2, request_timeout_s=1, post=slow_post)
        second = outbox.deliver(hook.url, budget_s=30, request_timeout_s=1)
    assert 0 < len(first.sent) < 4 and first.stopped.startswith("time budget")
    assert all(t <= 1 for t in calls)
    assert first.sent + second.sent == [a.id for a in alerts]
    assert [p["id"] for p in hook.payloads] == [a.id for a in alerts]


_CUT_DELIVERY = """
import sys
from pathlib import Path
from c64_pipeline.alerts import AlertOutbox
AlertOutbox(Path(sys.argv[1])).deliver(sys.argv[2], budget_s=40, request_timeout_s=30)
"""


def test_each_alert_is_delivered_exactly_once_across_a_killed_delivery(tmp_path):
    outbox = AlertOutbox(tmp_path / "alerts.jsonl")
    alerts = _alerts(5)
    outbox.record(alerts)
    with RecordingWebhook(hang=True, hang_after=2) as hook:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-c", _CUT_DELIVERY, str(outbox.alerts_file), hook.url], env=env)
        try:
            deadline = time.monotonic() + 60
            while not hook.unanswered and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert hook.unanswered, "the delivery never reached the third alert"
        finally:
            proc.send_signal(signal.SIGKILL)  # the tick is cut while the third alert is in flight
            proc.wait()
        assert [p["id"] for p in hook.payloads] == [a.id for a in alerts[:2]]
        hook.answer()
        outbox.record(alerts)  # the cut tick's alerts are found again: nothing new is recorded
        rest = outbox.deliver(hook.url, budget_s=5, request_timeout_s=1)
        assert outbox.deliver(hook.url, budget_s=5, request_timeout_s=1).sent == []
    assert rest.sent == [a.id for a in alerts[2:]]
    assert [p["id"] for p in hook.payloads] == [a.id for a in alerts], "each acknowledged exactly once, in order"
    assert _ledger(outbox) == [a.id for a in alerts]
    assert len(outbox.alerts_file.read_text().splitlines()) == 5


def test_a_payload_the_webhook_refuses_is_not_sent_again_and_does_not_block_the_rest(tmp_path):
    outbox = AlertOutbox(tmp_path / "alerts.jsonl")
    alerts = _alerts(2)
    outbox.record(alerts)
    with RecordingWebhook(fail_first=1, fail_status=400) as hook:
        first = outbox.deliver(hook.url)
        second = outbox.deliver(hook.url)
    assert first.rejected == {alerts[0].id: "HTTP 400"} and first.sent == [alerts[1].id]
    assert second.sent == [] and second.rejected == {} and hook.attempts == 2


def test_without_a_webhook_alerts_are_recorded_and_not_replayed_when_one_is_set(tmp_path):
    outbox = AlertOutbox(tmp_path / "alerts.jsonl")
    outbox.record(_alerts(2))
    assert outbox.deliver("").sent == [] and outbox.pending() == []
    outbox.record([ALERT])
    with RecordingWebhook() as hook:
        assert outbox.deliver(hook.url).sent == [ALERT.id]
    assert [p["id"] for p in hook.payloads] == [ALERT.id]
    assert len(outbox.alerts_file.read_text().splitlines()) == 3


def test_a_half_written_line_from_a_killed_writer_is_skipped_not_joined(tmp_path):
    outbox = AlertOutbox(tmp_path / "alerts.jsonl")
    outbox.alerts_file.write_text('{"id": "run_failed:cut", "kind": "run_fai')
    outbox.record([ALERT])
    lines = outbox.alerts_file.read_text().splitlines()
    assert json.loads(lines[-1])["id"] == ALERT.id and [r["id"] for r in outbox.pending()] == [ALERT.id]


@pytest.mark.parametrize("url, reason", [
    ("file:///etc/passwd", "not a file:// URL"),
    ("ftp://example.com/hook", "not a ftp:// URL"),
    ("javascript:alert(1)", "not a javascript:// URL"),
    ("hooks.example.com/services/T0/B0/secret", "not a URL without a scheme"),
    ("http:///services/secret", "has no host"),
    ("https://example.com:99999/secret", "not a valid URL"),
    ("https://exa mple.com/secret", "whitespace"),
])
def test_a_bad_webhook_url_is_refused_with_the_reason_and_without_echoing_it(url, reason):
    with pytest.raises(InvalidWebhookUrl) as error:
        validate_webhook_url(url)
    message = str(error.value)
    assert message.startswith("C64_ALERT_WEBHOOK_URL") and reason in message
    assert "secret" not in message and "passwd" not in message


def test_http_and_https_webhook_urls_are_accepted():
    assert validate_webhook_url(" https://hooks.slack.com/services/T0/B0/x ") == "https://hooks.slack.com/services/T0/B0/x"
    assert validate_webhook_url("http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080/hook"
    assert validate_webhook_url("") == ""


def test_a_second_delivery_while_one_runs_sends_nothing_and_recording_does_not_wait(tmp_path):
    import threading

    outbox = AlertOutbox(tmp_path / "alerts.jsonl")
    outbox.record(_alerts(2))
    with RecordingWebhook(hang=True) as hook:
        first = threading.Thread(target=outbox.deliver, args=(hook.url,), kwargs={"budget_s": 10, "request_timeout_s": 2})
        first.start()
        deadline = time.monotonic() + 10
        while not hook.unanswered and time.monotonic() < deadline:
            time.sleep(0.02)
        assert hook.unanswered, "the first delivery never started"
        second = AlertOutbox(tmp_path / "alerts.jsonl").deliver(hook.url)  # e.g. another sensor's thread
        assert second.stopped == "another delivery is running" and second.sent == []
        assert len(outbox.record([ALERT])) == 1 and first.is_alive(), "recording does not wait for the delivery"
        hook.answer()
        first.join()
        outbox.deliver(hook.url)
    assert len(hook.unanswered) == 1
    assert [p["id"] for p in hook.payloads] == [a.id for a in _alerts(2)] + [ALERT.id]


def test_a_garbled_answer_ends_the_round_without_an_error_and_keeps_the_alert(tmp_path):
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer_garbage():
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"SSH-2.0-not-http\r\n\r\n")

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    outbox = AlertOutbox(tmp_path / "alerts.jsonl")
    outbox.record([ALERT])
    try:
        round_ = outbox.deliver(f"http://127.0.0.1:{server.getsockname()[1]}/hook", budget_s=3, request_timeout_s=1)
    finally:
        thread.join(5)
        server.close()
    assert round_.stopped.startswith("webhook unreachable") and round_.pending == 1
    assert [r["id"] for r in outbox.pending()] == [ALERT.id]
