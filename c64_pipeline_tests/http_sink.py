"""A real HTTP server on 127.0.0.1 that records JSON POSTs, failing the first `fail_first` of them (with
`fail_status`), and, when hanging, accepting requests and never answering them until `answer()` is called."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RecordingWebhook:
    def __init__(self, fail_first: int = 0, fail_status: int = 503, hang: bool = False, hang_after: int = 0) -> None:
        """`hang`: requests after the first `hang_after` answered ones are read and then held open, unanswered."""
        self.payloads: list[dict] = []  # answered with 200, in arrival order
        self.keys: list[str] = []  # their Idempotency-Key headers
        self.unanswered: list[dict] = []  # read, never answered
        self.attempts = 0
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.hang_after = hang_after
        self._hanging = threading.Event()
        if hang:
            self._hanging.set()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink._lock:
                    sink.attempts += 1
                    attempt = sink.attempts
                    hang = sink._hanging.is_set() and len(sink.payloads) >= sink.hang_after
                    if hang:
                        sink.unanswered.append(json.loads(body))
                if hang:
                    sink._closing.wait(120)  # the connection stays open, no status line is ever sent
                    self.close_connection = True
                    return
                if attempt <= sink.fail_first:
                    self.send_response(sink.fail_status)
                    self.end_headers()
                    return
                with sink._lock:
                    sink.payloads.append(json.loads(body))
                    sink.keys.append(self.headers.get("Idempotency-Key", ""))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self) -> None:
        """From now on, answer new requests (the ones held open stay unanswered)."""
        self._hanging.clear()

    def __enter__(self) -> "RecordingWebhook":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()
