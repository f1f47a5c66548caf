"""Watch events one at a time, or word that nothing happened for a while (for ``status --watch``).

A watch blocks until the API server has something to say; a view that shows ages and a clock
must also redraw while nothing happens. :class:`ThreadedFeed` reads the watch in a thread and
hands events over a queue, so the reader can wait for the next one with a timeout. The watch
is renewed whenever the server ends it, replaying the current state (callers skip repeats).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Protocol

from canary.cli.client import CanaryClient, WatchEvent

__all__ = ["DirectFeed", "EventFeed", "ThreadedFeed", "WATCH_WINDOW_SECONDS", "renewed_watch"]

#: How long one watch request stays open before it is renewed.
WATCH_WINDOW_SECONDS = 300.0


class EventFeed(Protocol):
    def next(self, timeout: float | None) -> WatchEvent | None:
        """The next event; None when ``timeout`` seconds passed without one (None: wait forever).

        Raises what the watch raised (a cluster error, or Ctrl-C in tests)."""
        ...


def renewed_watch(client: CanaryClient, namespace: str | None, name: str | None) -> Iterator[WatchEvent]:
    """Every event of one watch after the other, forever."""
    while True:
        yield from client.watch(namespace, name, WATCH_WINDOW_SECONDS)


class DirectFeed:
    """Events in the caller's thread: for views that redraw only when something changed."""

    def __init__(self, events: Iterator[WatchEvent]) -> None:
        self._events = events

    def next(self, timeout: float | None) -> WatchEvent | None:
        return next(self._events)


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class ThreadedFeed:
    """Events read by a daemon thread, so :meth:`next` can give up after ``timeout``.

    The thread dies with the process (Ctrl-C ends the command in the main thread); an error in
    the watch is handed over and raised by :meth:`next`.
    """

    def __init__(self, events: Iterator[WatchEvent]) -> None:
        self._queue: queue.Queue[WatchEvent | _Failure] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(events,), name="canary-watch", daemon=True)
        self._thread.start()

    def _pump(self, events: Iterator[WatchEvent]) -> None:
        try:
            for event in events:
                self._queue.put(event)
        except BaseException as exc:  # noqa: BLE001 - every failure belongs to the main thread
            self._queue.put(_Failure(exc))

    def next(self, timeout: float | None) -> WatchEvent | None:
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, _Failure):
            raise item.error
        return item
