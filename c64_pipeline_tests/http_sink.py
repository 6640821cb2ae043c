"""A real HTTP server on 127.0.0.1 that records JSON POSTs, failing the first `fail_first` of them."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RecordingWebhook:
    def __init__(self, fail_first: int = 0) -> None:
        self.payloads: list[dict] = []
        self.attempts = 0
        self.fail_first = fail_first
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                sink.attempts += 1
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if sink.attempts <= sink.fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                sink.payloads.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "RecordingWebhook":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
