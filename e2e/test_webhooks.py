"""Scenario 6: a confirm-promotion webhook holds a finished analysis until it answers yes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from e2e.conftest import StartController
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube
from e2e.harness.release import install_app, ship, template_version


@dataclass
class Gate:
    """A release-approval endpoint: 403 until approved, then 200. Records every call."""

    approved: threading.Event = field(default_factory=threading.Event)
    calls: list[float] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def gate() -> Iterator[Gate]:
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
    yield state
    server.shutdown()


def test_confirm_promotion_webhook_holds_until_yes(
    env: Environment, kube: Kube, start_controller: StartController, gate: Gate
) -> None:
    env.use_flavour("linkerd")
    start_controller()
    install_app(kube, "podinfo", step_weight=50, max_weight=50, webhooks=[
        {"name": "release-approval", "type": "confirm-promotion", "url": gate.url, "timeout": "2s"},
    ])
    env.mesh.client.set_load(kube.namespace, "podinfo", 40)
    ship(kube, "podinfo", "2")

    kube.wait_for_phase("podinfo", "WaitingPromotion", timeout=90)
    asked = len(gate.calls)
    time.sleep(6)  # three intervals of "no"
    status = kube.status("podinfo")
    assert status["phase"] == "WaitingPromotion", status
    assert len(gate.calls) > asked, "the gate is asked again every interval"
    assert template_version(kube.deployment("podinfo-primary")) == "1", "nothing is promoted without a yes"

    gate.approved.set()
    final = kube.wait_for_phase("podinfo", "Succeeded", "Failed", timeout=60)
    assert final["phase"] == "Succeeded", final
    assert template_version(kube.deployment("podinfo-primary")) == "2"
