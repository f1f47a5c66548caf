"""A release rebuilt from fabricated Events: its runs, weight steps, phases, checks and rollback."""

from __future__ import annotations

import pytest

from canary.domain.event_facts import FACTS_ANNOTATION, EventFacts
from canary.domain.status import Phase, Verdict
from canary.report.timeline import RunNotFound, pick_run, read_events, runs, timeline
from tests.report.releases import FAULTY, HEALTHY, Recorder, at, healthy_then_faulty


def test_the_events_split_into_runs_by_revision() -> None:
    recorded, notes = read_events(healthy_then_faulty().events)
    assert notes == []
    assert [[e.reason for e in run] for run in runs(recorded)][2:] == [
        ["Started", "Advanced", "Advanced", "Advanced", "Promoting", "Finalising", "Succeeded"],
        ["Started", "Advanced", "CheckFailed", "CheckFailed", "RolledBack"],
    ]


def test_the_latest_release_is_the_default_and_a_revision_prefix_picks_another() -> None:
    recorded, _ = read_events(healthy_then_faulty().events)
    assert pick_run(recorded)[0].facts.revision == FAULTY
    assert pick_run(recorded, "rev-healthy")[0].facts.revision == HEALTHY
    with pytest.raises(RunNotFound, match="nope"):
        pick_run(recorded, "nope")


def test_events_are_ordered_by_time_then_by_write_order_whatever_order_they_are_listed_in() -> None:
    events = healthy_then_faulty().events
    recorded, _ = read_events(reversed(events))
    faulty = pick_run(recorded)
    # CheckFailed and RolledBack share a second: the RolledBack Event was written last.
    assert [e.reason for e in faulty][-2:] == ["CheckFailed", "RolledBack"]


def test_a_healthy_release_has_its_weight_steps_and_phases_and_no_rollback() -> None:
    recorded, _ = read_events(healthy_then_faulty().events)
    healthy = timeline(pick_run(recorded, HEALTHY))
    assert [(s.start, s.weight) for s in healthy.weights] == [(at(10), 0), (at(13), 20), (at(16), 40), (at(19), 60),
                                                             (at(25), 0)]
    assert [(p.phase, p.start, p.end) for p in healthy.phases] == [
        (Phase.PROGRESSING, at(10), at(22)), (Phase.PROMOTING, at(22), at(25)),
        (Phase.FINALISING, at(25), at(27)), (Phase.SUCCEEDED, at(27), at(27))]
    assert healthy.rollback is None
    assert healthy.outcome is Phase.SUCCEEDED
    assert healthy.seconds == 17


def test_each_check_is_one_point_per_evaluation_with_its_bounds() -> None:
    recorded, _ = read_events(healthy_then_faulty().events)
    healthy = timeline(pick_run(recorded, HEALTHY))
    by_name = {c.name: c for c in healthy.checks}
    assert set(by_name) == {"request-success-rate", "request-duration"}
    # The tick of +22 s is repeated by the Finalising and Succeeded Events: still one point.
    rate = by_name["request-success-rate"]
    assert [(p.time, p.value) for p in rate.points] == [(at(13), 100.0), (at(16), 99.8), (at(19), 100.0),
                                                        (at(22), 99.9)]
    assert (rate.min, rate.max) == (99.0, None)
    assert (by_name["request-duration"].min, by_name["request-duration"].max) == (None, 200.0)


def test_a_rolled_back_release_says_when_and_which_check_failed() -> None:
    recorded, _ = read_events(healthy_then_faulty().events)
    faulty = timeline(pick_run(recorded))
    assert [(s.start, s.weight) for s in faulty.weights] == [(at(40), 0), (at(43), 20), (at(49), 0)]
    assert [p.phase for p in faulty.phases] == [Phase.PROGRESSING, Phase.FAILED]
    rollback = faulty.rollback
    assert rollback is not None
    assert (rollback.time, rollback.reason) == (at(49), "RolledBack")
    assert rollback.cause.startswith("2 failed checks reached the threshold 2")
    assert {(c.name, c.value, c.verdict) for c in rollback.failing} == {
        ("request-success-rate", 79.25, Verdict.FAIL), ("request-duration", 305.0, Verdict.FAIL)}
    rate = next(c for c in faulty.checks if c.name == "request-success-rate")
    assert [p.failed for p in rate.points] == [False, True, True]


def test_events_without_facts_are_skipped_with_a_note() -> None:
    record = Recorder()
    record.raw(0, "Legacy", {})
    record.raw(1, "Garbled", {FACTS_ANNOTATION: "{not json"})
    record.raw(2, "Future", {FACTS_ANNOTATION: '{"v": 99}'})
    record(3, "Started", Phase.PROGRESSING, 0, FAULTY)
    recorded, notes = read_events(record.events)
    assert [e.reason for e in recorded] == ["Started"]
    assert len(notes) == 3
    assert "Legacy" in notes[0] and "no canary.dev/facts annotation" in notes[0]
    assert "Garbled" in notes[1] and "not JSON" in notes[1]
    assert "Future" in notes[2] and "version 99" in notes[2]


def test_no_events_is_no_run() -> None:
    with pytest.raises(RunNotFound):
        pick_run([])


def test_a_retry_of_the_same_revision_is_a_run_of_its_own() -> None:
    record = Recorder()
    record(0, "Started", Phase.PROGRESSING, 0, FAULTY)
    record(3, "RolledBack", Phase.FAILED, 0, FAULTY, warning=True, message="rolled back by the annotation")
    record(10, "Retry", Phase.PROGRESSING, 0, FAULTY)
    record(13, "Advanced", Phase.PROGRESSING, 20, FAULTY)
    recorded, _ = read_events(record.events)
    assert [[e.reason for e in run] for run in runs(recorded)] == [["Started", "RolledBack"], ["Retry", "Advanced"]]
    retried = timeline(pick_run(recorded, FAULTY))
    assert retried.start == at(10) and retried.rollback is None


def test_the_facts_time_orders_events_within_one_second_against_the_write_order() -> None:
    # A controller writes its own microsecond time into the facts; it wins over the Event's
    # one-second timestamp and over resourceVersion (the API server may list in any order).
    record = Recorder()
    for offset, reason in ((0.7, "Promoting"), (0.2, "Advanced")):
        facts = EventFacts(phase=Phase.PROGRESSING, canary_weight=60, iterations=0, failed_checks=0,
                           revision=HEALTHY, checks=(), time=at(10 + offset))
        record.raw(10, reason, {FACTS_ANNOTATION: facts.to_annotation()})
    recorded, notes = read_events(record.events)
    assert notes == []
    assert [(r.reason, r.time) for r in recorded] == [("Advanced", at(10.2)), ("Promoting", at(10.7))]
