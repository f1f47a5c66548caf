from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from canary.cli.client import WatchEvent
from canary.cli.errors import CanaryNotFound, ExitCode
from canary.cli.status import show_status, watch_status
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
