from __future__ import annotations

import io
from typing import Any

import pytest

from canary.cli.errors import ExitCode
from canary.cli.wait import Goal, Outcome, evaluate, wait_for
from canary.domain.status import CanaryStatus, Phase
from tests.cli.fakes import NOW, FakeCanaryClient, canary

S, F, P = Goal.SUCCEEDED, Goal.FAILED, Goal.PROMOTED


def _status(phase: Phase | None, applied: str = "", promoted: str = "") -> CanaryStatus:
    return CanaryStatus(phase=phase, last_applied_spec=applied, last_promoted_spec=promoted)


@pytest.mark.parametrize(
    ("phase", "goal", "expected"),
    [
        pytest.param(Phase.SUCCEEDED, S, Outcome.REACHED, id="succeeded-for-succeeded"),
        pytest.param(Phase.SUCCEEDED, P, Outcome.REACHED, id="succeeded-for-promoted"),
        pytest.param(Phase.SUCCEEDED, F, Outcome.OPPOSITE, id="succeeded-for-failed"),
        pytest.param(Phase.FAILED, F, Outcome.REACHED, id="failed-for-failed"),
        pytest.param(Phase.FAILED, S, Outcome.OPPOSITE, id="failed-for-succeeded"),
        pytest.param(Phase.FAILED, P, Outcome.OPPOSITE, id="failed-for-promoted"),
        pytest.param(Phase.PROGRESSING, S, Outcome.PENDING, id="progressing"),
        pytest.param(Phase.PROMOTING, P, Outcome.PENDING, id="promoting"),
        pytest.param(Phase.INITIALIZED, S, Outcome.PENDING, id="initialized"),
        pytest.param(None, F, Outcome.PENDING, id="no-status"),
    ],
)
def test_evaluate_by_phase(phase: Phase | None, goal: Goal, expected: Outcome) -> None:
    assert evaluate(_status(phase), goal) is expected


@pytest.mark.parametrize(
    ("status", "goal", "seen", "expected"),
    [
        pytest.param(_status(Phase.SUCCEEDED, "old", "old"), S, False, Outcome.PENDING,
                     id="previous-release-succeeded"),
        pytest.param(_status(Phase.FAILED, "old", "older"), S, False, Outcome.PENDING, id="previous-release-failed"),
        pytest.param(_status(Phase.PROGRESSING, "rev", "old"), S, True, Outcome.PENDING, id="running"),
        pytest.param(_status(Phase.SUCCEEDED, "rev", "rev"), S, True, Outcome.REACHED, id="succeeded"),
        pytest.param(_status(Phase.FAILED, "rev", "old"), S, True, Outcome.OPPOSITE, id="failed"),
        pytest.param(_status(Phase.FAILED, "rev", "old"), F, True, Outcome.REACHED, id="failed-for-failed"),
        pytest.param(_status(Phase.SUCCEEDED, "rev", "rev"), F, True, Outcome.OPPOSITE, id="succeeded-for-failed"),
        pytest.param(_status(Phase.INITIALIZED, "", "rev"), P, False, Outcome.REACHED,
                     id="first-revision-needs-no-analysis"),
        pytest.param(_status(Phase.FAILED, "newer", "rev"), S, False, Outcome.REACHED,
                     id="reverted-to-the-promoted-revision"),
        pytest.param(_status(Phase.PROMOTING, "rev", "rev"), P, True, Outcome.PENDING,
                     id="primary-updated-but-still-finalising"),
        pytest.param(_status(Phase.PROGRESSING, "newer", "old"), S, True, Outcome.SUPERSEDED, id="superseded"),
        pytest.param(_status(Phase.PROGRESSING, "newer", "old"), F, True, Outcome.SUPERSEDED,
                     id="superseded-for-failed"),
    ],
)
def test_evaluate_with_revision(status: CanaryStatus, goal: Goal, seen: bool, expected: Outcome) -> None:
    assert evaluate(status, goal, "rev", seen_revision=seen) is expected


def _state(phase: str, weight: int = 0, applied: str = "rev", promoted: str = "old", **extra: Any) -> dict[str, Any]:
    return canary(status={"phase": phase, "canaryWeight": weight, "lastAppliedSpec": applied,
                          "lastPromotedSpec": promoted, **extra})


def _wait(client: FakeCanaryClient, goal: Goal, *, revision: str | None = None,
          timeout: float = 600.0) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = wait_for(client, "default", "podinfo", goal, timeout=timeout, revision=revision, out=out, err=err,
                    clock=client.clock, now=lambda: NOW)
    return code, out.getvalue(), err.getvalue()


def test_success_prints_each_change_once() -> None:
    client = FakeCanaryClient(_state("Progressing", 10))
    client.emit("MODIFIED", _state("Progressing", 10, lastAnalysisTime="2024-05-01T10:04:00Z"))
    client.emit("MODIFIED", _state("Progressing", 20))
    client.emit("MODIFIED", _state("Promoting", 20))
    client.emit("MODIFIED", _state("Succeeded", 0, promoted="rev"))
    code, out, err = _wait(client, S)
    assert (code, err) == (ExitCode.OK, "")
    assert out == """\
10:03:20Z default/podinfo Progressing [#.........] 10% failed checks 0/5
10:03:20Z default/podinfo Progressing [##........] 20% failed checks 0/5
10:03:20Z default/podinfo Promoting [##........] 20% failed checks 0/5
10:03:20Z default/podinfo Succeeded [..........] 0% failed checks 0/5
default/podinfo is succeeded (phase Succeeded)
"""


def test_opposite_outcome_exits_1_with_the_reason() -> None:
    client = FakeCanaryClient(_state("Progressing", 10))
    client.emit("MODIFIED", _state("Failed", 0, failedChecks=5, message="success rate 91 below 99"))
    code, _, err = _wait(client, S)
    assert code == ExitCode.OPPOSITE
    assert err == "default/podinfo ended Failed, not succeeded: success rate 91 below 99\n"


def test_waiting_for_failure() -> None:
    client = FakeCanaryClient(_state("Progressing", 10))
    client.emit("MODIFIED", _state("Failed"))
    assert _wait(client, F)[0] == ExitCode.OK


def test_timeout_exits_2() -> None:
    client = FakeCanaryClient(_state("Progressing", 10))
    code, out, err = _wait(client, P, timeout=90.0)
    assert code == ExitCode.TIMEOUT
    assert out.count("\n") == 1  # the starting state, printed once despite every renewed watch
    assert err == "timed out after 1m30s waiting for default/podinfo to be promoted (phase Progressing)\n"
    assert client.clock.now == pytest.approx(1090.0)


def test_already_final_returns_without_watching() -> None:
    client = FakeCanaryClient(_state("Succeeded", promoted="rev"))
    assert _wait(client, S)[0] == ExitCode.OK
    assert client.watches == []


def test_revision_ignores_the_previous_release() -> None:
    client = FakeCanaryClient(_state("Succeeded", applied="old", promoted="old"))
    client.emit("MODIFIED", _state("Progressing", 10, applied="rev"))
    client.emit("MODIFIED", _state("Succeeded", 0, applied="rev", promoted="rev"))
    code, out, _ = _wait(client, S, revision="rev")
    assert code == ExitCode.OK
    assert [line.split()[2] for line in out.splitlines()[:-1]] == ["Succeeded", "Progressing", "Succeeded"]


def test_revision_never_applied_times_out() -> None:
    client = FakeCanaryClient(_state("Succeeded", applied="old", promoted="old"))
    assert _wait(client, S, revision="rev", timeout=60.0)[0] == ExitCode.TIMEOUT


def test_superseded_revision_exits_1() -> None:
    client = FakeCanaryClient(_state("Progressing", 10, applied="rev"))
    client.emit("MODIFIED", _state("Progressing", 10, applied="newer"))
    code, _, err = _wait(client, S, revision="rev")
    assert code == ExitCode.OPPOSITE
    assert err == "default/podinfo: revision rev was superseded by newer before it finished\n"
