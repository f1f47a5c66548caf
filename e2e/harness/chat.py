"""Chat systems on loopback: one HTTP receiver that records every JSON body by path.

Each path plays one chat system's incoming webhook (``/slack``, ``/teams``, ...); a path can be
told to answer with an error status, to watch the controller retry and give up.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from e2e.harness.loopback import QuietHandler, serve_loopback


@dataclass
class ChatReceiver:
    base: str = ""
    #: path -> HTTP status to answer (200 when absent).
    statuses: dict[str, int] = field(default_factory=dict)
    _posts: list[tuple[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def record(self, path: str, body: Any) -> int:
        with self._lock:
            self._posts.append((path, body))
            return self.statuses.get(path, 200)

    def bodies(self, path: str) -> list[Any]:
        with self._lock:
            return [body for p, body in self._posts if p == path]


@contextmanager
def serve_chat() -> Iterator[ChatReceiver]:
    state = ChatReceiver()

    class Handler(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            self.send_response(state.record(self.path, body))
            self.end_headers()

    with serve_loopback(Handler) as base:
        state.base = base
        yield state
