"""Recording how an observable value changes over a scenario, in the background.

:class:`Recorder` reads a value every ``interval`` seconds and keeps each change with the
monotonic time it was first seen, so a scenario can assert on everything that happened in a
window ("the route stayed at 100/0 from the moment the old leader resumed") and not only on the
value at the end. A read that fails is recorded as ``None`` and does not end the recording.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Change(Generic[T]):
    at: float
    """``time.monotonic()`` when the value was first seen."""
    value: T | None


@dataclass
class Recorder(Generic[T]):
    read: Callable[[], T]
    interval: float = 0.1
    changes: list[Change[T]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Recorder[T]:
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                value: T | None = self.read()
            except Exception:  # noqa: BLE001 - a transient read error must not end the recording
                value = None
            with self._lock:
                if not self.changes or self.changes[-1].value != value:
                    self.changes.append(Change(time.monotonic(), value))
            self._stop.wait(self.interval)

    def since(self, at: float) -> list[T | None]:
        """Every value seen from ``at`` on: the one current at ``at``, then each change after it."""
        with self._lock:
            changes = list(self.changes)
        current = [c for c in changes if c.at <= at][-1:]
        return [c.value for c in current + [c for c in changes if c.at > at]]
