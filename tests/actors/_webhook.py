"""A real HTTP server (http.server in a thread) that receives webhook alerts.

Each POST's JSON body is recorded. `fail_first` answers that many requests with 500 first;
a request to a path ending in `/hang` is held until `release()` (a webhook that hangs).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.messages: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.attempts = 0
        self.hanging = threading.Event()
        """Set once a request is being held at `/hang`."""
        self._release = threading.Event()
        self._lock = threading.Lock()
        self.url = ""

    def release(self) -> None:
        self._release.set()

    def answer(self, path: str, body: bytes) -> int:
        """The status for one request (called on the server's thread)."""
        if path.endswith("/hang"):
            self.hanging.set()
            self._release.wait(30)
            return 200
        with self._lock:
            self.attempts += 1
            self.raw.append(body)
            if self.attempts <= self.fail_first:
                return 500
            self.messages.append(json.loads(body))
            return 200


@contextmanager
def receiving(fail_first: int = 0) -> Iterator[Receiver]:
    receiver = Receiver(fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver.answer(self.path, body)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield receiver
    finally:
        receiver.release()
        server.shutdown()
        server.server_close()
        thread.join(5)
