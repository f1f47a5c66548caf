"""Fault suite: network faults between the controller and its webhooks follow the retry budget.

docs/analysis.md ("Webhooks"): a webhook call makes at most ``retries + 1`` attempts, retrying
after a timeout, a connection error or a 5xx; each attempt has its own ``timeout``; anything
but 200-202 in time is a "no". For a ``rollout`` hook a "no" is a failed check, so a hook that
never says yes fails the release after ``threshold`` ticks; for ``confirm-promotion`` a "no"
holds the release in ``WaitingPromotion``.

One controller, five apps released at once, each with one hook on a path of
:class:`~e2e.harness.hook_faults.FaultyHookServer`:

========== ===================== ======= =====================================================
app        hook (fault)          retries documented outcome
========== ===================== ======= =====================================================
wh-hang    rollout (never answers) 1     Failed; every call 2 attempts, each ended by the caller
wh-reset   rollout (RST)           2     Failed; every call 3 attempts
wh-slow    rollout (slow body)     1     Failed; every call 2 attempts, no body waited out
wh-flaky   rollout (503 then 200)  1     Succeeded; every call 2 attempts (the retry passes)
wh-hold    confirm-promotion (RST) 1     held in WaitingPromotion, primary unchanged
========== ===================== ======= =====================================================

Attempts per call come from the controller's own "webhook called" log records and are checked
against what the server received, so neither count is taken on trust.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from e2e.conftest import StartController
from e2e.harness.controller import Controller
from e2e.harness.environment import Environment
from e2e.harness.hook_faults import Fault, FaultyHookServer
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import install_app, ship, template_version

pytestmark = pytest.mark.chaos

RPS = 20
TIMEOUT = "1s"
#: How many more gate calls the held release must refuse before the scenario calls it held.
HELD_CALLS = 3


@dataclass(frozen=True)
class Case:
    app: str
    hook_type: str
    fault: Fault
    retries: int
    outcome: str  # the phase the release must reach and, for "WaitingPromotion", stay in
    message: str  # what the last failing check's message must contain ("" for a passing hook)

    @property
    def path(self) -> str:
        return f"/{self.app}"

    @property
    def hook_name(self) -> str:
        return f"{self.app}-gate"


CASES = (
    Case("wh-hang", "rollout", Fault.HANG, 1, "Failed", f"no answer within {TIMEOUT} (after 2 attempts)"),
    Case("wh-reset", "rollout", Fault.RESET, 2, "Failed", "(after 3 attempts)"),
    Case("wh-slow", "rollout", Fault.SLOW_BODY, 1, "Failed", f"no answer within {TIMEOUT} (after 2 attempts)"),
    Case("wh-flaky", "rollout", Fault.FLAKY, 1, "Succeeded", ""),
    Case("wh-hold", "confirm-promotion", Fault.RESET, 1, "WaitingPromotion", "(after 2 attempts)"),
)


@pytest.fixture
def hooks() -> Iterator[FaultyHookServer]:
    with FaultyHookServer({c.path: c.fault for c in CASES}) as server:
        yield server


def _calls(controller: Controller) -> dict[str, list[dict[str, Any]]]:
    """The controller's "webhook called" records (one per call, after its retries) per hook name,
    from every log file the controller wrote in this scenario."""
    out: dict[str, list[dict[str, Any]]] = {}
    assert controller.process is not None
    logs = sorted(controller.process.log_path.parent.glob(controller.process.log_path.name.rsplit("-", 1)[0] + "-*.log"))
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if '"webhook called"' not in line:
                continue
            record = json.loads(line)
            out.setdefault(str(record["webhook"]), []).append(record)
    return out


def _webhook_check(status: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((c for c in status.get("checks") or [] if c.get("kind") == "webhook" and c.get("name") == name), None)


def test_webhook_network_faults_follow_the_retry_budget(
    env: Environment, kube: Kube, start_controller: StartController, hooks: FaultyHookServer
) -> None:
    env.use_flavour("linkerd")
    controller = start_controller()
    for case in CASES:
        install_app(kube, case.app, interval="2s", threshold=2, step_weight=50, max_weight=50,
                    webhooks=[{"name": case.hook_name, "type": case.hook_type, "url": hooks.url(case.path),
                               "timeout": TIMEOUT, "retries": case.retries}])
        env.mesh.client.set_load(kube.namespace, case.app, RPS)
    for case in CASES:
        ship(kube, case.app, "2")

    finals: dict[str, dict[str, Any]] = {}
    for case in CASES:
        finals[case.app] = kube.wait_for_phase(case.app, case.outcome, *({"Succeeded", "Failed"} - {case.outcome}),
                                               timeout=180)
    hold = next(c for c in CASES if c.outcome == "WaitingPromotion")
    asked = len(hooks.of(hold.path))
    wait_for(lambda: len(hooks.of(hold.path)), lambda n: n >= asked + HELD_CALLS * (hold.retries + 1),
             timeout=120, what=f"{HELD_CALLS} more calls of the held release's gate")
    finals[hold.app] = kube.status(hold.app)
    controller.stop()  # no call in flight from here on: the log and the server can be compared

    calls = _calls(controller)
    report = []
    for case in CASES:
        final = finals[case.app]
        records = calls.get(case.hook_name, [])
        attempts = [int(r["attempts"]) for r in records]
        received = hooks.of(case.path)
        report.append(f"{case.app}: {final.get('phase')} after {len(records)} calls, attempts {sorted(set(attempts))}, "
                      f"server saw {len(received)} ({sorted({a.end for a in received})})")
    print("\n" + "\n".join(report))

    for case in CASES:
        final = finals[case.app]
        assert final.get("phase") == case.outcome, (case, final)
        records = calls.get(case.hook_name, [])
        assert records, f"{case.app}: the controller never logged a call of {case.hook_name}"
        # Every call spends exactly its budget: a failing hook all of it, the flaky one one retry.
        assert {int(r["attempts"]) for r in records} == {case.retries + 1}, (case.app, records)
        received = hooks.of(case.path)
        # The stop may have cut one call short after the server saw some of its attempts.
        logged = sum(int(r["attempts"]) for r in records)
        assert logged <= len(received) <= logged + case.retries + 1, (case.app, logged, len(received))
        if case.fault is Fault.HANG:
            finished = [a for a in received if a.end != "server stopped"]
            assert finished and {a.end for a in finished} == {"client closed"}, received
        if case.fault is Fault.SLOW_BODY:
            assert "body sent" not in {a.end for a in received}, "a body slower than the timeout was waited out"
        if case.message:
            check = _webhook_check(final, case.hook_name)
            assert check is not None and check.get("verdict") == "Fail", final.get("checks")
            assert case.message in str(check.get("message")), check
        if case.outcome == "Succeeded":
            assert template_version(kube.deployment(f"{case.app}-primary")) == "2"
        else:
            assert template_version(kube.deployment(f"{case.app}-primary")) == "1", f"{case.app} was promoted"
