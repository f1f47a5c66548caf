"""A release-approval webhook endpoint on loopback: 403 until approved, then 200.

Scenarios put it behind a ``confirm-promotion`` (or other gate) hook to hold a release where
they want to look at it, and record when the controller asked. A :class:`Gate` with
``permits`` instead of ``approved`` opens once per permit: behind ``confirm-traffic-increase``
and ``confirm-promotion`` it lets a release take exactly one step per permit, so a scenario can
measure the data plane at every weight without racing the controller's next tick.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from e2e.harness.loopback import QuietHandler, serve_loopback


@dataclass
class Gate:
    approved: threading.Event = field(default_factory=threading.Event)
    #: time.monotonic() of every call the controller made.
    calls: list[float] = field(default_factory=list)
    url: str = ""
    #: Answers still to give 200 to while ``approved`` is not set; each 200 uses one.
    permits: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def grant(self, count: int = 1) -> None:
        """Let ``count`` more calls through (one release step each)."""
        with self._lock:
            self.permits += count

    def answer(self) -> bool:
        """Whether this call is let through; a permit is used up if one is."""
        with self._lock:
            self.calls.append(time.monotonic())
            if self.approved.is_set():
                return True
            if self.permits > 0:
                self.permits -= 1
                return True
            return False


@contextmanager
def serve_gate() -> Iterator[Gate]:
    state = Gate()

    class Handler(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200 if state.answer() else 403)
            self.end_headers()

    with serve_loopback(Handler) as base:
        state.url = f"{base}/approve"
        yield state
