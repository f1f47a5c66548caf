"""integrations/argocd/health.lua, run as Argo CD runs it, on every phase the controller writes."""

from __future__ import annotations

import pytest

from canary.domain.observed import Problem
from canary.domain.status import Phase
from e2e.harness.argocd_lua import LuaScriptError, health, run
from tests.argocd.fixtures import PROBLEM, canary_object

HEALTHY_PHASES = {Phase.INITIALIZED, Phase.SUCCEEDED}


def expected(phase: Phase | None, *, problem: Problem | None, suspend: bool, paused: bool) -> str:
    # Written from the README's table, not from the Lua.
    if problem is not None or phase is Phase.FAILED:
        return "Degraded"
    if suspend or paused:
        return "Suspended"
    return "Healthy" if phase in HEALTHY_PHASES else "Progressing"


@pytest.mark.parametrize("paused", [False, True], ids=["running", "paused"])
@pytest.mark.parametrize("suspend", [False, True], ids=["active", "suspended"])
@pytest.mark.parametrize("problem", [None, PROBLEM], ids=["ok", "problem"])
@pytest.mark.parametrize("phase", [None, *Phase], ids=str)
def test_every_phase(phase: Phase | None, problem: Problem | None, suspend: bool, paused: bool) -> None:
    annotations = {"canary.dev/pause": "true"} if paused else {}
    obj = canary_object(phase, annotations=annotations, suspend=suspend, problem=problem, weight=40,
                        message="3 failed checks reached the threshold 3" if phase is Phase.FAILED else "")
    got = health(obj)
    assert got.status == expected(phase, problem=problem, suspend=suspend, paused=paused)
    assert got.message, "Argo CD shows the message beside the status: it must say something"
    if problem is not None:
        assert got.message == PROBLEM.message
    elif phase is Phase.FAILED:
        assert got.message.startswith("3 failed checks reached the threshold 3")
    elif got.status == "Suspended" and not suspend:
        assert got.message == "paused by the canary.dev/pause annotation at canary weight 40%"


@pytest.mark.parametrize("observed", [None, 0], ids=["no-status", "crd-default"])
def test_a_canary_the_controller_has_not_seen_is_progressing(observed: int | None) -> None:
    obj = canary_object(generation=1, observed=observed)
    if observed == 0:
        obj["status"] = {"observedGeneration": 0}  # what the API server returns for a new Canary
    got = health(obj)
    assert (got.status, got.message) == ("Progressing", "waiting for the canary controller to observe generation 1")


def test_a_spec_edit_not_yet_observed_is_progressing_even_when_the_old_status_says_healthy() -> None:
    obj = canary_object(Phase.SUCCEEDED, generation=3, observed=2)
    assert health(obj).status == "Progressing"
    assert health(canary_object(Phase.SUCCEEDED, generation=3, observed=3)).status == "Healthy"


@pytest.mark.parametrize("value, paused", [("true", True), ("True", True), ("TRUE", True), ("tRuE", True),
                                           ("false", False), ("yes", False), ("", False), (" true", False)])
def test_pause_annotation_is_read_as_the_controller_reads_it(value: str, paused: bool) -> None:
    # The controller: annotation.lower() == "true" (no stripping).
    obj = canary_object(Phase.PROGRESSING, annotations={"canary.dev/pause": value})
    assert (health(obj).status == "Suspended") is paused


@pytest.mark.parametrize("phase, status", [("Succeeded", "Healthy"), ("Initialized", "Healthy"),
                                           ("Failed", "Degraded"), ("Progressing", "Progressing")])
def test_a_status_without_conditions_falls_back_on_the_phase(phase: str, status: str) -> None:
    obj = canary_object()
    obj["status"] = {"observedGeneration": 1, "phase": phase, "message": "why"}
    assert health(obj).status == status


def test_the_sandbox_has_no_string_library() -> None:
    # Argo CD runs custom scripts without it; a script that used it would fail there.
    with pytest.raises(LuaScriptError, match="string"):
        run('return string.lower("X")', canary_object())
    with pytest.raises(LuaScriptError):
        run('return ("X"):lower()', canary_object())
    assert run("return {status = tostring(obj.metadata.generation)}", canary_object()) == {"status": "1"}
