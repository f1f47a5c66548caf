"""The watch feed of ``status --watch``: events through a thread, None when nothing came."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from canary.cli.client import WatchEvent
from canary.cli.errors import ClusterError
from canary.cli.feed import ThreadedFeed
from tests.cli.fakes import canary


def _held(release: threading.Event, then: list[WatchEvent], error: BaseException | None = None) -> Iterator[WatchEvent]:
    """A watch that says nothing until ``release`` is set, then delivers ``then`` (and raises)."""
    release.wait()
    yield from then
    if error is not None:
        raise error
    threading.Event().wait()  # and then nothing more, like an idle watch


def test_nothing_yet_is_none_then_events_arrive_in_order() -> None:
    release = threading.Event()
    events = [WatchEvent(type="ADDED", object=canary()), WatchEvent(type="MODIFIED", object=canary(name="b"))]
    feed = ThreadedFeed(_held(release, events))
    # The watch cannot have produced anything: the wait gives up and says so.
    assert feed.next(0.01) is None
    release.set()
    assert [feed.next(None), feed.next(None)] == events


def test_a_watch_error_is_raised_by_the_reader() -> None:
    release = threading.Event()
    release.set()
    feed = ThreadedFeed(_held(release, [], ClusterError("watching canary */*: connection refused")))
    with pytest.raises(ClusterError, match="connection refused"):
        feed.next(None)
