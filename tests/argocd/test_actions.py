"""integrations/argocd/actions: which actions Argo CD offers, and the patch each one sends."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from canary.cli.annotate import Action as CliAction
from canary.cli.annotate import request_for
from canary.domain.status import Phase
from e2e.harness.argocd_lua import ACTIONS, action_patch, discover, merge_patch
from tests.argocd.fixtures import canary_object, without_nulls
from tests.domain.test_machine_annotations import PHASES, decide_with, reasons, status_in

ANALYSING = {Phase.PROGRESSING, Phase.WAITING_PROMOTION}
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def apply_merge_patch(obj: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies the patch Argo CD sends."""
    if not isinstance(patch, dict):
        return patch
    out = dict(obj) if isinstance(obj, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


def annotations_after(name: str, obj: dict[str, Any]) -> dict[str, str]:
    patch = action_patch(name, obj)
    assert set(patch) == {"metadata"} and set(patch["metadata"]) == {"annotations"}, patch
    return dict(apply_merge_patch(obj, patch)["metadata"].get("annotations") or {})


@pytest.mark.parametrize("suspend", [False, True], ids=["active", "suspended"])
@pytest.mark.parametrize("paused", [False, True], ids=["running", "paused"])
@pytest.mark.parametrize("phase", [None, *Phase], ids=str)
def test_discovery_enables_what_the_controller_would_act_on(phase: Phase | None, paused: bool, suspend: bool) -> None:
    obj = canary_object(phase, annotations={"canary.dev/pause": "true"} if paused else None, suspend=suspend)
    offered = discover(obj)
    assert set(offered) == set(ACTIONS)
    enabled = {name for name, action in offered.items() if not action.disabled}
    want = {"resume"} if paused else {"pause"}
    if not suspend and phase in ANALYSING:
        want |= {"promote", "rollback"}
    if not suspend and phase is Phase.FAILED:
        want |= {"retry"}
    assert enabled == want
    assert all(action.display_name and action.icon_class for action in offered.values())


def test_discovery_on_a_canary_without_status_or_annotations() -> None:
    offered = discover(canary_object(observed=None))
    assert {name for name, action in offered.items() if not action.disabled} == {"pause"}


@pytest.mark.parametrize("name, cli", [("pause", CliAction.PAUSE), ("promote", CliAction.PROMOTE)])
def test_the_same_annotation_as_the_cli(name: str, cli: CliAction) -> None:
    request = request_for(cli, now=NOW, user="someone")
    got = annotations_after(name, canary_object(Phase.PROGRESSING))
    assert got == {request.annotation.value: request.value}


def test_resume_removes_the_pause_and_keeps_other_annotations() -> None:
    obj = canary_object(Phase.PROGRESSING, annotations={"canary.dev/pause": "true", "team": "payments"})
    assert annotations_after("resume", obj) == {"team": "payments"}


def test_resume_when_the_pause_is_the_only_annotation() -> None:
    # The case Argo CD would get wrong with an emptied table (it keeps the live map instead).
    obj = canary_object(Phase.PROGRESSING, annotations={"canary.dev/pause": "true"})
    assert action_patch("resume", obj) == {"metadata": {"annotations": None}}
    assert annotations_after("resume", obj) == {}


def test_resume_without_annotations_changes_nothing() -> None:
    assert action_patch("resume", canary_object(Phase.PROGRESSING)) == {}


def test_rollback_writes_a_reason_the_controller_has_not_handled() -> None:
    first = annotations_after("rollback", canary_object(Phase.PROGRESSING))["canary.dev/rollback"]
    assert first == "requested with the Argo CD rollback action"
    again = canary_object(Phase.PROGRESSING, annotations={"canary.dev/rollback": first},
                          handled={"rollback": first})
    second = annotations_after("rollback", again)["canary.dev/rollback"]
    assert second != first and second.startswith(first + " (")


def test_promote_after_a_handled_true_writes_a_fresh_value() -> None:
    obj = canary_object(Phase.PROGRESSING, annotations={"canary.dev/promote": "true"}, handled={"promote": "true"})
    value = annotations_after("promote", obj)["canary.dev/promote"]
    assert value != "true"
    datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")  # a timestamp, which the controller reads as "promote"


def test_retry_writes_a_value_the_controller_has_not_handled() -> None:
    value = annotations_after("retry", canary_object(Phase.FAILED))["canary.dev/retry"]
    datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    obj = canary_object(Phase.FAILED, annotations={"canary.dev/retry": value}, handled={"retry": value})
    assert annotations_after("retry", obj)["canary.dev/retry"] != value


@pytest.mark.parametrize("name", ACTIONS)
def test_actions_touch_nothing_but_annotations_even_with_empty_maps_in_status(name: str) -> None:
    # handledAnnotations {} and judge.carried {} come back from Lua as []: the patch must not
    # carry them (Argo CD would send them to the status subresource).
    obj = canary_object(Phase.PROGRESSING, annotations={"canary.dev/pause": "true", "team": "payments"})
    assert obj["status"]["handledAnnotations"] == {} and obj["status"]["judge"]["carried"] == {}
    patch = action_patch(name, obj)
    assert set(patch) <= {"metadata"} and set(patch.get("metadata", {})) <= {"annotations"}, patch


def test_merge_patch() -> None:
    live = {"a": {"b": 1, "c": 2}, "d": [1, 2], "e": "x"}
    new = {"a": {"b": 1, "c": 3}, "d": [1], "f": True}
    patch = merge_patch(live, new)
    assert patch == {"a": {"c": 3}, "d": [1], "e": None, "f": True}
    assert apply_merge_patch(live, patch) == new


@pytest.mark.parametrize("action, ignored", [("promote", "PromoteIgnored"), ("rollback", "RollbackIgnored"),
                                             ("retry", "RetryIgnored")])
@pytest.mark.parametrize("phase", PHASES, ids=str)
def test_discovery_offers_exactly_what_the_controller_acts_on(phase: Phase | None, action: str, ignored: str) -> None:
    # The action's annotation, applied to the object, given to decide() in the same phase.
    status = status_in(phase)
    obj = canary_object(phase)
    obj["status"] = without_nulls(status.to_dict()) | {"observedGeneration": 1}
    offered = not discover(obj)[action].disabled
    annotations = annotations_after(action, obj)
    decision = decide_with(status, annotations)
    assert decision.status.handled_annotations == {key.split("/", 1)[1]: value for key, value in annotations.items()}
    acted = ignored not in reasons(decision)
    assert offered == acted, (offered, reasons(decision))
