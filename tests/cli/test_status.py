from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import yaml

from canary.cli.client import WatchEvent
from canary.cli.errors import CanaryNotFound, ExitCode
from canary.cli.status import TICK_SECONDS, show_status, watch_status
from tests.cli.fakes import NOW, FakeCanaryClient, canary

PODINFO = canary(status={"phase": "Progressing", "canaryWeight": 10})
CHECKOUT = canary(name="checkout", namespace="shop", status={"phase": "Succeeded"})


class InterruptedClient(FakeCanaryClient):
    """Delivers what is pending, then the user presses Ctrl-C."""

    def watch(self, namespace: str | None, name: str | None, timeout: float) -> Iterator[WatchEvent]:
        events = list(super().watch(namespace, name, timeout))
        yield from events
        raise KeyboardInterrupt


def _show(client: FakeCanaryClient, namespace: str | None, name: str | None, output: str = "text") -> str:
    out = io.StringIO()
    assert show_status(client, namespace, name, output=output, out=out, now=lambda: NOW) == ExitCode.OK
    return out.getvalue()


def test_one_canary_as_text() -> None:
    text = _show(FakeCanaryClient(PODINFO, CHECKOUT), "default", "podinfo")
    assert text.startswith("Canary default/podinfo\n  Phase:            Progressing\n")
    assert "shop/checkout" not in text


def test_namespace_and_all_namespaces() -> None:
    client = FakeCanaryClient(PODINFO, CHECKOUT)
    assert "Canary shop/checkout" not in _show(client, "default", None)
    everything = _show(client, None, None)
    assert "Canary default/podinfo" in everything and "Canary shop/checkout" in everything


def test_no_canaries() -> None:
    assert _show(FakeCanaryClient(), "web", None) == "No canaries in namespace web.\n"


def test_unknown_canary() -> None:
    with pytest.raises(CanaryNotFound):
        _show(FakeCanaryClient(), "default", "nope")


def test_json_for_one_and_for_many() -> None:
    client = FakeCanaryClient(PODINFO, CHECKOUT)
    one = json.loads(_show(client, "default", "podinfo", "json"))
    assert one == {"namespace": "default", "name": "podinfo", "annotations": {},
                   "status": {"phase": "Progressing", "canaryWeight": 10}}
    many = json.loads(_show(client, None, None, "json"))
    assert [item["name"] for item in many["items"]] == ["podinfo", "checkout"]


def _watch(client: FakeCanaryClient, *, output: str = "text", interactive: bool = False,
           namespace: str | None = "default", name: str | None = "podinfo") -> str:
    out = io.StringIO()
    code = watch_status(client, namespace, name, output=output, out=out, now=lambda: NOW, interactive=interactive)
    assert code == ExitCode.OK  # Ctrl-C is how a watch ends
    return out.getvalue()


def test_watch_appends_a_block_per_change() -> None:
    client = InterruptedClient(PODINFO)
    client.emit("MODIFIED", canary(status={"phase": "Progressing", "canaryWeight": 20}))
    client.emit("DELETED", PODINFO)
    text = _watch(client)
    assert text.count("--- 2024-05-01T10:03:20Z ADDED\nCanary default/podinfo") == 1
    assert "--- 2024-05-01T10:03:20Z MODIFIED\nCanary default/podinfo" in text
    assert "[##........] 20%" in text
    assert text.endswith("--- 2024-05-01T10:03:20Z default/podinfo deleted\n")


def test_watch_redraws_a_terminal() -> None:
    client = InterruptedClient(PODINFO)
    client.emit("MODIFIED", canary(status={"phase": "Promoting", "canaryWeight": 50}))
    frames = _watch(client, interactive=True).split("\x1b[H\x1b[2J")[1:]
    assert len(frames) == 2
    assert "Phase:            Progressing" in frames[0]
    assert "Phase:            Promoting" in frames[1] and "Progressing" not in frames[1]


def test_watch_as_json_lines() -> None:
    client = InterruptedClient(PODINFO, CHECKOUT)
    client.emit("MODIFIED", canary(name="checkout", namespace="shop", status={"phase": "Failed"}))
    lines = [json.loads(line) for line in _watch(client, output="json", namespace=None, name=None).splitlines()]
    assert [(doc["type"], doc["name"], doc["status"]["phase"]) for doc in lines] == [
        ("ADDED", "podinfo", "Progressing"),
        ("ADDED", "checkout", "Succeeded"),
        ("MODIFIED", "checkout", "Failed"),
    ]


def test_watch_on_an_empty_namespace_waits_for_canaries() -> None:
    client = InterruptedClient()
    client.emit("ADDED", PODINFO)
    text = _watch(client, name=None)
    assert text.startswith("No canaries in namespace default yet; waiting for changes.\n")
    assert "Canary default/podinfo" in text


def test_yaml_for_one_and_for_many() -> None:
    client = FakeCanaryClient(PODINFO, CHECKOUT)
    one = yaml.safe_load(_show(client, "default", "podinfo", "yaml"))
    assert one == {"namespace": "default", "name": "podinfo", "annotations": {},
                   "status": {"phase": "Progressing", "canaryWeight": 10}}
    many = yaml.safe_load(_show(client, None, None, "yaml"))
    assert [item["name"] for item in many["items"]] == ["podinfo", "checkout"]


def test_all_namespaces_text_is_compact() -> None:
    out = io.StringIO()
    show_status(FakeCanaryClient(PODINFO, CHECKOUT), None, None, output="text", out=out, now=lambda: NOW,
                compact=True)
    assert [line.split()[:3] for line in out.getvalue().splitlines()] == [
        ["NAMESPACE", "NAME", "PHASE"], ["default", "podinfo", "Progressing"], ["shop", "checkout", "Succeeded"]]


def test_watch_as_yaml_documents() -> None:
    client = InterruptedClient(PODINFO)
    client.emit("MODIFIED", canary(status={"phase": "Promoting"}))
    docs = list(yaml.safe_load_all(_watch(client, output="yaml")))
    assert [(d["type"], d["status"]["phase"]) for d in docs] == [("ADDED", "Progressing"), ("MODIFIED", "Promoting")]


class ScriptedFeed:
    """Plays a list of events; None is a second passing without one (the clock moves on)."""

    def __init__(self, clock: list[datetime], *script: WatchEvent | None) -> None:
        self.clock = clock
        self.script = list(script)
        self.timeouts: list[float | None] = []

    def next(self, timeout: float | None) -> WatchEvent | None:
        self.timeouts.append(timeout)
        if not self.script:
            raise KeyboardInterrupt
        item = self.script.pop(0)
        if item is None:
            self.clock[0] += timedelta(seconds=1)
        return item


def _ticking_frames(*script: WatchEvent | None, compact: bool = False) -> tuple[list[str], ScriptedFeed]:
    clock = [NOW]
    feed = ScriptedFeed(clock, *script)
    out = io.StringIO()
    code = watch_status(FakeCanaryClient(PODINFO), None if compact else "default", None if compact else "podinfo",
                        output="text", out=out, now=lambda: clock[0], interactive=True, compact=compact, feed=feed)
    assert code == ExitCode.OK
    return out.getvalue().split("\x1b[H\x1b[2J")[1:], feed


def test_the_clock_and_ages_tick_between_events() -> None:
    started = canary(status={"phase": "Progressing", "lastTransitionTime": "2024-05-01T10:03:00Z"})
    frames, feed = _ticking_frames(WatchEvent(type="MODIFIED", object=started), None, None)
    assert len(frames) == 4  # the first draw, the change, two seconds without news
    assert frames[1].startswith("2024-05-01T10:03:20Z") and "(20s ago)" in frames[1]
    assert frames[2].startswith("2024-05-01T10:03:21Z") and "(21s ago)" in frames[2]
    assert frames[3].startswith("2024-05-01T10:03:22Z") and "(22s ago)" in frames[3]
    # A terminal view waits at most a tick for the next event.
    assert set(feed.timeouts) == {TICK_SECONDS}


def test_all_namespaces_watch_redraws_one_line_per_canary() -> None:
    frames, _ = _ticking_frames(WatchEvent(type="ADDED", object=CHECKOUT), compact=True)
    last = [line.split()[:3] for line in frames[-1].splitlines()[2:]]
    assert last == [["NAMESPACE", "NAME", "PHASE"], ["default", "podinfo", "Progressing"],
                    ["shop", "checkout", "Succeeded"]]


def test_a_pipe_is_not_redrawn_on_ticks() -> None:
    out = io.StringIO()
    feed = ScriptedFeed([NOW])
    watch_status(FakeCanaryClient(PODINFO), "default", "podinfo", output="text", out=out, now=lambda: NOW,
                 interactive=False, feed=feed)
    assert feed.timeouts == [None]  # waits for the next event, however long
