"""On-call annotations: rollback, promote, pause and retry, each acted on once per value."""

from __future__ import annotations

from datetime import timedelta

import pytest

from canary.domain.actions import Notify, PromotePrimary, ScaleCanary, SetRoute
from canary.domain.machine import Decision, NeedProbes, RollbackCause, decide
from canary.domain.spec import WebhookType
from canary.domain.status import Annotation, CanaryStatus, ConditionType, Phase, Verdict
from canary.domain.weights import ALL_PRIMARY, Weights
from tests.domain.world import (
    NOW, SUCCESS_RATE, answered, assert_safe, decide_all, hook, make_spec, running, seen,
)

ROLLBACK, PROMOTE, PAUSE, RETRY = (a.value for a in (Annotation.ROLLBACK, Annotation.PROMOTE, Annotation.PAUSE,
                                                     Annotation.RETRY))
ANALYSING = {Phase.PROGRESSING, Phase.WAITING_PROMOTION}
#: Phases an annotation can meet without a deletion in progress.
PHASES = [None, Phase.INITIALIZING, Phase.INITIALIZED, Phase.WAITING, Phase.PROGRESSING, Phase.WAITING_PROMOTION,
          Phase.PROMOTING, Phase.FINALISING, Phase.SUCCEEDED, Phase.FAILED]
SPEC = make_spec(metrics=[SUCCESS_RATE], webhooks=[hook("confirm-promotion")])


def status_in(phase: Phase | None, **changes: object) -> CanaryStatus:
    if phase is None:
        return CanaryStatus(**changes)  # type: ignore[arg-type]
    return running(phase, 25, **changes)


SERVING = {Phase.PROGRESSING, Phase.WAITING_PROMOTION, Phase.PROMOTING}


def decide_with(status: CanaryStatus, annotations: dict[str, str], *, ready: bool = True,
                verdict: Verdict = Verdict.PASS, rev: str = "rev2", replicas: int = 2) -> Decision:
    """Decide in a cluster that matches ``status`` (the route is where it left it)."""
    serving = ready and status.phase in SERVING
    route = Weights.canary_at(status.canary_weight) if serving else ALL_PRIMARY
    observed = seen(ready=ready, route=route, annotations=annotations, rev=rev, replicas=replicas)
    decision, _ = decide_all(SPEC, status, observed, NOW, answered(verdict))
    assert_safe(decision, observed)
    return decision


def reasons(decision: Decision) -> list[str]:
    return [e.reason for e in decision.events]


# --- rollback ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, shown", [("bad latency, paged by bob", "bad latency, paged by bob"),
                                          ("", "no reason given")], ids=["reason", "empty"])
@pytest.mark.parametrize("phase", PHASES, ids=str)
def test_rollback_annotation(phase: Phase | None, value: str, shown: str) -> None:
    decision = decide_with(status_in(phase), {ROLLBACK: value})
    new = decision.status
    assert new.handled_annotations == {"rollback": value}, "acted on or ignored, the value is recorded"
    if phase in ANALYSING:
        assert new.phase is Phase.FAILED and new.canary_weight == 0
        assert new.message == f"rolled back by the canary.dev/rollback annotation: {shown}"
        assert reasons(decision) == ["RolledBack"]
        assert decision.outcome is not None and decision.outcome.cause == RollbackCause.ANNOTATION.value
        assert list(decision.actions) == [SetRoute(ALL_PRIMARY), ScaleCanary(0), Notify(WebhookType.POST_ROLLOUT)]
    else:
        assert "RollbackIgnored" in reasons(decision)
        assert shown in decision.events[reasons(decision).index("RollbackIgnored")].message
        assert new.phase is not Phase.FAILED or phase is Phase.FAILED


@pytest.mark.parametrize("key", [ROLLBACK, PROMOTE, RETRY, PAUSE])
@pytest.mark.parametrize("phase", PHASES, ids=str)
def test_an_annotation_value_is_acted_on_once(phase: Phase | None, key: str) -> None:
    short = key.split("/")[1]
    value = "true"
    first = decide_with(status_in(phase), {key: value})
    assert first.status.handled_annotations == {short: value}
    # Deciding again from a status that recorded it: nothing about the annotation happens again.
    recorded = status_in(phase, handled_annotations={short: value})
    again = decide_with(recorded, {key: value})
    assert again.status.handled_annotations == {short: value}
    assert not {"RolledBack", "RollbackIgnored", "PromotedManually", "PromoteIgnored", "Retry", "RetryIgnored",
                "Paused", "Resumed"} & set(reasons(again))
    plain = decide_with(status_in(phase), {})
    if key != PAUSE:
        assert again.status.phase == plain.status.phase


@pytest.mark.parametrize("key", [ROLLBACK, PROMOTE, RETRY, PAUSE])
def test_removing_an_annotation_clears_its_record_and_re_adding_acts_again(key: str) -> None:
    short = key.split("/")[1]
    cleared = decide_with(status_in(Phase.PROGRESSING, handled_annotations={short: "true", "other": "x"}), {})
    assert cleared.status.handled_annotations == {"other": "x"}
    again = decide_with(cleared.status.with_(phase=Phase.PROGRESSING), {key: "true"})
    assert again.status.handled_annotations == {"other": "x", short: "true"}
    expected = {ROLLBACK: "RolledBack", PROMOTE: "PromotedManually", RETRY: "RetryIgnored", PAUSE: "Paused"}[key]
    assert expected in reasons(again)


def test_a_new_value_acts_again() -> None:
    first = decide_with(status_in(Phase.FAILED), {ROLLBACK: "one"})
    assert "RollbackIgnored" in reasons(first)
    retried = first.status.with_(phase=Phase.PROGRESSING)
    second = decide_with(retried, {ROLLBACK: "two"})
    assert second.status.phase is Phase.FAILED
    assert second.status.handled_annotations == {"rollback": "two"}


# --- promote -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ready", [True, False], ids=["ready", "unready"])
@pytest.mark.parametrize("value", ["true", "True", "TRUE", "false", "yes", ""])
@pytest.mark.parametrize("phase", PHASES, ids=str)
def test_promote_annotation(phase: Phase | None, value: str, ready: bool) -> None:
    decision = decide_with(status_in(phase), {PROMOTE: value}, ready=ready)
    new = decision.status
    assert new.handled_annotations == {"promote": value}
    if value.strip().lower() not in ("", "false") and phase in ANALYSING and ready:
        assert new.phase is Phase.PROMOTING
        assert reasons(decision) == ["PromotedManually", "Promoting"]
        assert PromotePrimary("rev2") in decision.actions
        assert new.canary_weight == 25, "promotion starts from the current weight"
    else:
        assert "PromoteIgnored" in reasons(decision)
        assert new.phase is not Phase.PROMOTING or phase is Phase.PROMOTING


def test_promote_starts_the_primary_deadline_afresh() -> None:
    # The canary was unready long ago and has just recovered; that wait is not the primary's.
    status = status_in(Phase.PROGRESSING, waiting_since=NOW - timedelta(hours=2))
    promoted = decide_with(status, {PROMOTE: "true"})
    assert promoted.status.phase is Phase.PROMOTING and promoted.status.waiting_since is None
    observed = seen(route=Weights.canary_at(25), annotations={PROMOTE: "true"}, primary_ready=False)
    later, _ = decide_all(SPEC, promoted.status, observed, NOW + timedelta(seconds=10))
    assert later.status.phase is Phase.PROMOTING


def test_promote_skips_the_confirm_promotion_gate_and_the_analysis() -> None:
    status = status_in(Phase.WAITING_PROMOTION)
    observed = seen(route=Weights.canary_at(25), annotations={PROMOTE: "true"})
    result = decide(SPEC, status, observed, NOW)
    assert isinstance(result, Decision), "no probe is asked when promoting by hand"
    assert result.status.phase is Phase.PROMOTING


# --- retry -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", PHASES, ids=str)
def test_retry_annotation_only_from_failed(phase: Phase | None) -> None:
    status = status_in(phase, failed_checks=2, message="boom")
    if phase is Phase.FAILED:
        status = status.with_(canary_weight=0)
    decision = decide_with(status, {RETRY: "2026-01-01T10:00"}, ready=False)
    new = decision.status
    assert new.handled_annotations == {"retry": "2026-01-01T10:00"}
    if phase is Phase.FAILED:
        assert new.phase is Phase.PROGRESSING
        assert (new.canary_weight, new.failed_checks, new.iterations, new.message) == (0, 0, 0, "")
        assert new.last_applied_spec == "rev2" and new.run_started == NOW
        assert reasons(decision) == ["Retry", "Started"]
    else:
        assert "RetryIgnored" in reasons(decision)


def test_retry_runs_the_failed_revision_even_when_the_target_did_not_change() -> None:
    # The only way to run the same revision again (Flagger #237): no pod-template bump needed.
    failed = running(Phase.FAILED, 0, failed_checks=2)
    decision = decide_with(failed, {RETRY: "1"}, ready=False, rev="rev2", replicas=0)
    assert decision.status.phase is Phase.PROGRESSING
    assert ScaleCanary(2) in decision.actions


# --- pause -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, paused", [("true", True), ("True", True), ("false", False), ("", False),
                                           ("yes", False)])
def test_pause_freezes_the_analysis(value: str, paused: bool) -> None:
    status = status_in(Phase.PROGRESSING)
    observed = seen(route=Weights.canary_at(25), annotations={PAUSE: value})
    result = decide(SPEC, status, observed, NOW)
    if not paused:
        assert isinstance(result, NeedProbes)
        return
    assert isinstance(result, Decision), "a paused canary asks no probes"
    assert result.status.canary_weight == 25
    assert result.status.last_analysis_time == status.last_analysis_time
    assert result.status.handled_annotations == {"pause": value}
    assert reasons(result) == ["Paused"]
    assert "25%" in result.events[0].message
    reconciling = result.status.condition(ConditionType.RECONCILING)
    assert reconciling is not None and reconciling.reason == "Paused"
    # Later decisions stay frozen without repeating the event, however much time passes.
    later = decide(SPEC, result.status, observed, NOW + timedelta(hours=3))
    assert isinstance(later, Decision)
    assert later.events == () and later.status.canary_weight == 25


@pytest.mark.parametrize("resume", ["removed", "false", "no"])
def test_resume_event_and_immediate_tick(resume: str) -> None:
    status = status_in(Phase.PROGRESSING, handled_annotations={"pause": "true"})
    annotations = {} if resume == "removed" else {PAUSE: resume}
    decision = decide_with(status, annotations)
    assert reasons(decision)[0] == "Resumed"
    assert decision.status.canary_weight == 50, "the overdue tick runs at once"
    expected = {} if resume == "removed" else {"pause": resume}
    assert decision.status.handled_annotations == expected


def test_removing_a_pause_that_never_paused_does_not_resume() -> None:
    decision = decide_with(status_in(Phase.PROGRESSING, handled_annotations={"pause": "false"}), {})
    assert "Resumed" not in reasons(decision)


@pytest.mark.parametrize("phase", [Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED], ids=str)
def test_pause_holds_a_new_revision_back(phase: Phase) -> None:
    status = CanaryStatus(phase=phase, last_applied_spec="rev1", last_promoted_spec="rev1", primary_replicas=2)
    decision = decide_with(status, {PAUSE: "true"}, ready=False, rev="rev2")
    assert decision.status.phase is phase
    assert decision.status.last_applied_spec == "rev1"


def test_pause_freezes_promotion_steps() -> None:
    spec = make_spec(stepWeightPromotion=10)
    status = running(Phase.PROMOTING, 50)
    observed = seen(primary_rev="rev2", route=Weights.canary_at(50), annotations={PAUSE: "true"})
    decision, _ = decide_all(spec, status, observed, NOW)
    assert decision.status.canary_weight == 50 and decision.status.phase is Phase.PROMOTING
    resumed, _ = decide_all(spec, decision.status, seen(primary_rev="rev2", route=Weights.canary_at(50)), NOW)
    assert resumed.status.canary_weight == 40


def test_pause_still_takes_traffic_off_an_unready_canary() -> None:
    status = status_in(Phase.PROGRESSING, handled_annotations={"pause": "true"})
    observed = seen(ready=False, route=Weights.canary_at(25), annotations={PAUSE: "true"})
    decision = decide(SPEC, status, observed, NOW)
    assert isinstance(decision, Decision)
    assert decision.actions == (SetRoute(ALL_PRIMARY),)


def test_rollback_works_while_paused() -> None:
    status = status_in(Phase.PROGRESSING, handled_annotations={"pause": "true"})
    decision = decide_with(status, {PAUSE: "true", ROLLBACK: "now"})
    assert decision.status.phase is Phase.FAILED


def test_a_new_revision_restarts_a_paused_run() -> None:
    # Restarting only takes traffic away from the canary, so it is safe while paused.
    status = status_in(Phase.PROGRESSING, handled_annotations={"pause": "true"})
    decision = decide_with(status, {PAUSE: "true"}, rev="rev3")
    assert decision.status.phase is Phase.PROGRESSING and decision.status.canary_weight == 0
    assert reasons(decision) == ["Restarted"]


# --- several at once ---------------------------------------------------------------------------------


def test_all_annotations_are_recorded_in_one_decision() -> None:
    decision = decide_with(status_in(Phase.SUCCEEDED), {ROLLBACK: "a", PROMOTE: "true", RETRY: "1", PAUSE: "true"})
    assert decision.status.handled_annotations == {"rollback": "a", "promote": "true", "retry": "1", "pause": "true"}
    assert reasons(decision) == ["Paused", "RollbackIgnored", "PromoteIgnored", "RetryIgnored"]


@pytest.mark.parametrize("present, acted, ignored", [
    ({ROLLBACK: "a", PROMOTE: "true"}, "RolledBack", ["PromoteIgnored"]),
    ({ROLLBACK: "a", RETRY: "1"}, "RolledBack", ["RetryIgnored"]),
    ({ROLLBACK: "a", PROMOTE: "true", RETRY: "1"}, "RolledBack", ["PromoteIgnored", "RetryIgnored"]),
    ({PROMOTE: "true", RETRY: "1"}, "PromotedManually", ["RetryIgnored"]),
], ids=["rollback+promote", "rollback+retry", "all-three", "promote+retry"])
def test_one_annotation_acts_and_the_others_set_with_it_say_they_were_ignored(
        present: dict[str, str], acted: str, ignored: list[str]) -> None:
    decision = decide_with(status_in(Phase.PROGRESSING), present)
    got = reasons(decision)
    assert acted in got
    assert [r for r in got if r.endswith("Ignored")] == ignored
    assert all("acted first" in e.message for e in decision.events if e.reason.endswith("Ignored"))
    assert decision.status.handled_annotations == {k.split("/")[1]: v for k, v in present.items()}
    # Nothing acts a second time on the next decision.
    again = decide_with(decision.status, present)
    assert not [r for r in reasons(again) if r.endswith("Ignored") or r in ("RolledBack", "PromotedManually",
                                                                             "Retry")]


def test_unrelated_annotations_are_ignored() -> None:
    decision = decide_with(status_in(Phase.SUCCEEDED), {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                                                        "canary.dev/unknown": "x"})
    assert decision.status.handled_annotations == {}
    assert decision.events == ()


def test_annotations_wait_while_suspended() -> None:
    spec = make_spec(_spec={"suspend": True})
    status = status_in(Phase.PROGRESSING)
    decision, _ = decide_all(spec, status, seen(route=Weights.canary_at(25), annotations={ROLLBACK: "x"}), NOW)
    assert decision.status.phase is Phase.PROGRESSING
    assert decision.status.handled_annotations == {}
    assert decision.actions == ()
