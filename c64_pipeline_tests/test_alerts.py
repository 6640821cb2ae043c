import json
import socket

from c64_pipeline.alerts import Alert, send_alert
from c64_pipeline_tests.http_sink import RecordingWebhook

ALERT = Alert(kind="check_failed", title="check coverage_ratio failed", severity="ERROR", asset="validation_report",
              check="coverage_ratio", run_id="abc", run_url="http://127.0.0.1:3000/runs/abc",
              figures={"coverage_ratio": 0.42, "threshold": 0.9}, description="42 of 100 pages have usable text")


def test_webhook_is_retried_and_gets_a_slack_compatible_payload(tmp_path):
    with RecordingWebhook(fail_first=2) as hook:
        delivery = send_alert(ALERT, tmp_path / "alerts.jsonl", hook.url, attempts=4, backoff_s=0.01)
    assert delivery.webhook_status == "sent" and delivery.attempts == 3 and hook.attempts == 3
    (payload,) = hook.payloads
    assert "coverage_ratio" in payload["text"] and "http://127.0.0.1:3000/runs/abc" in payload["text"]
    assert payload["check"] == "coverage_ratio" and payload["figures"] == {"coverage_ratio": 0.42, "threshold": 0.9}
    assert payload["severity"] == "ERROR" and payload["asset"] == "validation_report"


def test_a_dead_webhook_never_loses_the_file_record(tmp_path):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    delivery = send_alert(ALERT, tmp_path / "alerts.jsonl", dead, attempts=2, backoff_s=0.01, timeout_s=1)
    assert delivery.webhook_status.startswith("failed") and delivery.attempts == 2
    (line,) = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert json.loads(line)["check"] == "coverage_ratio"
