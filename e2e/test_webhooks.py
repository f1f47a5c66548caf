"""Scenario 6: a confirm-promotion webhook holds a finished analysis until it answers yes; a
confirm-traffic-increase webhook holds a step, recorded as one Event whose count grows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from canary.domain.quiet import QUIET_WRITE_EVERY
from e2e.conftest import StartController
from e2e.harness.environment import Environment
from e2e.harness.gate import Gate, serve_gate
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import install_app, ship, template_version


@pytest.fixture
def gate() -> Iterator[Gate]:
    with serve_gate() as state:
        yield state


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
    # Three more answers of "no", however long the controller takes to ask them.
    wait_for(lambda: len(gate.calls), lambda n: n >= asked + 3, timeout=60,
             what="the gate to be asked again at the following intervals")
    status = kube.status("podinfo")
    assert status["phase"] == "WaitingPromotion", status
    assert template_version(kube.deployment("podinfo-primary")) == "1", "nothing is promoted without a yes"

    gate.approved.set()
    final = kube.wait_for_phase("podinfo", "Succeeded", "Failed", timeout=60)
    assert final["phase"] == "Succeeded", final
    assert template_version(kube.deployment("podinfo-primary")) == "2"


def _step_waits(kube: Kube) -> list[Any]:
    """The Events saying the confirm-traffic-increase gate holds the weight."""
    items = kube.core.list_namespaced_event(
        kube.namespace, field_selector="involvedObject.name=podinfo,involvedObject.kind=Canary").items
    return [e for e in items if e.reason == "Waiting" and "confirm-traffic-increase" in (e.message or "")]


def test_a_held_step_is_one_event_whose_count_grows(
    env: Environment, kube: Kube, start_controller: StartController, gate: Gate
) -> None:
    env.use_flavour("linkerd")
    start_controller()
    install_app(kube, "podinfo", step_weight=50, max_weight=50, webhooks=[
        {"name": "step-approval", "type": "confirm-traffic-increase", "url": gate.url, "timeout": "2s"},
    ])
    env.mesh.client.set_load(kube.namespace, "podinfo", 40)
    ship(kube, "podinfo", "2")

    # The repeats are written into the Event's count with the coalesced status write.
    [held] = wait_for(lambda: _step_waits(kube), lambda found: len(found) == 1 and (found[0].count or 0) > 1,
                      timeout=30 * QUIET_WRITE_EVERY, what="the held step's Event to count its repeats")
    assert len(gate.calls) >= held.count
    status = kube.status("podinfo")
    assert (status["phase"], status["canaryWeight"]) == ("Progressing", 0), status

    gate.approved.set()
    final = kube.wait_for_phase("podinfo", "Succeeded", "Failed", timeout=90)
    assert final["phase"] == "Succeeded", final
    [held] = _step_waits(kube)
    assert held.count > 1 and held.first_timestamp <= held.last_timestamp
