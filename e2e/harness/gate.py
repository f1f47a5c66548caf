"""A release-approval webhook endpoint on loopback: 403 until approved, then 200.

Scenarios put it behind a ``confirm-promotion`` (or other gate) hook to hold a release where
they want to look at it, and record when the controller asked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Gate:
    approved: threading.Event = field(default_factory=threading.Event)
    #: time.monotonic() of every call the controller made.
    calls: list[float] = field(default_factory=list)
    url: str = ""


@contextmanager
def serve_gate() -> Iterator[Gate]:
    state = Gate()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.calls.append(time.monotonic())
            self.send_response(200 if state.approved.is_set() else 403)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/approve"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
