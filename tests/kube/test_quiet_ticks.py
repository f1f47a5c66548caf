"""Quiet passes write nothing, or one status write per QUIET_WRITE_EVERY of them; a repeated
Event raises the count of the last one. Counted in API calls over whole releases against the
in-memory cluster: a closed confirm-traffic-increase gate, and the judge looking between ticks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from canary.domain.quiet import QUIET_WRITE_EVERY as N
from canary.domain.samples import ArmSample, Comparison
from canary.domain.status import Phase
from canary.kube.api import MERGE_PATCH
from canary.metrics.base import CompareRequest
from canary.report.timeline import pick_run, read_events, timeline
from tests.kube.fake_cluster import FakeCluster
from tests.kube.harness import NS, FakeEngine, Release, canary_body, cluster_with_app, release
from tests.kube.webhook_gate import Gate, serve_gate

INTERVAL = timedelta(minutes=1)
STATUS_WRITE = "patch_namespaced_custom_object_status"


@dataclass(frozen=True)
class Writes:
    status: int
    event_creates: int
    event_patches: int


def writes_since(cluster: FakeCluster, start: int) -> Writes:
    methods = [c.method for c in cluster.calls[start:]]
    return Writes(methods.count(STATUS_WRITE), methods.count("create_namespaced_event"),
                  methods.count("patch_namespaced_event"))


def waiting_events(cluster: FakeCluster) -> list[dict[str, Any]]:
    return [e for e in cluster.events("Waiting") if "confirm-traffic-increase" in e["message"]]


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    async with serve_gate() as found:
        yield found


@pytest.fixture
async def held(gate: Gate) -> AsyncIterator[Release]:
    """A release whose first weight step the confirm-traffic-increase gate refuses, right after
    the gate was asked for the first time."""
    hooks = [{"name": "approve", "type": "confirm-traffic-increase", "url": gate.url, "timeout": "2s"}]
    async with release(cluster_with_app(), canary_body(analysis={"webhooks": hooks})) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.run_until(lambda _: len(gate.received) == 1)
        assert r.status.canary_weight == 0 and len(waiting_events(r.cluster)) == 1
        assert r.last_delay == INTERVAL
        yield r


async def tick(r: Release) -> None:
    """The next tick, then a watch wake-up at the same instant (our own write coming back)."""
    r.advance(INTERVAL)
    await r.reconcile()
    assert r.last_delay == INTERVAL
    await r.reconcile()


async def test_a_closed_gate_writes_status_and_its_event_once_per_n_ticks(held: Release, gate: Gate) -> None:
    r = held
    start = len(r.cluster.calls)
    ticks = 3 * N + 2
    for i in range(1, ticks):
        await tick(r)
        # Each tick asks the gate once: the unwritten tick is what the next pass decides from.
        assert len(gate.received) == i + 1
        stored = r.status
        assert stored.last_analysis_time is not None and r.now - stored.last_analysis_time < N * INTERVAL
        assert (stored.phase, stored.canary_weight, stored.failed_checks) == (Phase.PROGRESSING, 0, 0)
    written = (ticks - 1) // N
    assert writes_since(r.cluster, start) == Writes(status=written, event_creates=0, event_patches=written)
    [event] = waiting_events(r.cluster)
    assert event["count"] == 1 + written * N
    assert event["firstTimestamp"] <= event["lastTimestamp"]

    gate.status = 200
    start = len(r.cluster.calls)
    await tick(r)
    assert r.status.canary_weight == 10
    # The weight step: its status, the last repeats counted into the waiting Event, and its own.
    assert writes_since(r.cluster, start) == Writes(status=1, event_creates=1, event_patches=1)
    [event] = waiting_events(r.cluster)
    assert event["count"] == ticks
    assert len(r.cluster.events("Advanced")) == 1


async def test_the_folded_event_carries_the_facts_of_its_latest_occurrence_for_the_report(
        held: Release, gate: Gate) -> None:
    r = held
    for _ in range(N + 1):
        await tick(r)
    last_wait = r.now
    gate.status = 200
    await tick(r)
    recorded, notes = read_events(r.cluster.events())
    assert notes == []
    run = timeline(pick_run(recorded))
    [waiting] = [e for e in run.events if e.reason == "Waiting"]
    [gate_check] = [c for c in waiting.facts.checks if c.name == "approve"]
    assert gate_check.time == last_wait
    # The wait sits between the run's start and the weight step, at 0%.
    reasons = [e.reason for e in run.events]
    assert reasons.index("Started") < reasons.index("Waiting") < reasons.index("Advanced")
    assert [w.weight for w in run.weights] == [0, 10]
    [gate_series] = [s for s in run.checks if s.name == "approve"]
    assert gate_series.points[-1].time == r.now and gate_series.points[-2].time == last_wait


async def test_a_restarted_controller_evaluates_at_most_once_early_and_changes_nothing_hard(
        held: Release, gate: Gate) -> None:
    r = held
    for _ in range(N - 1):
        await tick(r)
    before = r.status
    asked = len(gate.received)
    r.advance(timedelta(seconds=5))
    await r.restart()
    await r.reconcile()
    # The unwritten ticks are forgotten: the stored lastAnalysisTime is old, so the gate is
    # asked at once, one early re-evaluation, and nothing but soft fields moves.
    assert len(gate.received) == asked + 1
    after = r.status
    assert (after.phase, after.canary_weight, after.failed_checks, after.iterations) == (
        before.phase, before.canary_weight, before.failed_checks, before.iterations)
    assert r.last_delay == INTERVAL
    await r.reconcile()
    assert len(gate.received) == asked + 1
    r.advance(INTERVAL)
    await r.reconcile()
    assert len(gate.received) == asked + 2


async def test_a_status_written_by_someone_else_replaces_the_unwritten_one(held: Release, gate: Gate) -> None:
    r = held
    await tick(r)
    asked = len(gate.received)
    # A label by hand: a new resourceVersion, the same status. The unwritten tick still counts.
    body = r.canary
    body["metadata"].setdefault("labels", {})["team"] = "web"
    r.cluster.apply(body)
    await r.reconcile()
    assert len(gate.received) == asked
    # A status write by someone else: what the API server stores is what the next pass starts from.
    r.cluster._patch_status("Canary", NS, "podinfo", {"status": {"message": "written by hand"}}, MERGE_PATCH)
    await r.reconcile()
    assert len(gate.received) == asked + 1
    assert r.status.message == "written by hand"


async def test_an_expired_event_is_recorded_anew_with_the_repeats_since(held: Release) -> None:
    r = held
    [first] = waiting_events(r.cluster)
    r.cluster.delete("Event", NS, first["metadata"]["name"])
    for _ in range(N - 1):
        await tick(r)
    assert waiting_events(r.cluster) == []
    await tick(r)
    [anew] = waiting_events(r.cluster)
    assert anew["count"] == N


class JudgedEngine(FakeEngine):
    """Compares a healthy canary with the primary: the judge passes at every look."""

    async def compare(self, request: CompareRequest) -> Comparison:
        self.compared.append(request)
        return Comparison(canary=ArmSample(requests=500, failures=0), primary=ArmSample(requests=5000, failures=1),
                          source=f"error rate over {request.window}")


async def test_judge_looks_between_ticks_are_written_once_per_n_looks() -> None:
    look_every = timedelta(seconds=10)
    engine = JudgedEngine()
    body = canary_body(analysis={"judge": {"errorRate": {}, "lookEvery": "10s"}})
    async with release(cluster_with_app(), body, engine=engine) as r:
        await r.initialize()
        r.push("6.0.1")
        quiet_run = looks_written = looks = 0
        for _ in range(200):
            hard_before = (r.status.phase, r.status.canary_weight)
            compared, start = len(engine.compared), len(r.cluster.calls)
            await r.reconcile()
            wrote = writes_since(r.cluster, start).status
            if (r.status.phase, r.status.canary_weight) != hard_before:
                assert wrote == 1
                quiet_run = 0
            elif len(engine.compared) > compared:
                looks += 1
                quiet_run = 0 if wrote else quiet_run + 1
                looks_written += wrote
                assert wrote == 0 or quiet_run == 0
            if r.status.judge.last_look is not None and r.status.phase is Phase.PROGRESSING:
                # What `kubectl canary status` shows is at most N looks old.
                assert r.now - r.status.judge.last_look < N * look_every
            if r.status.phase is Phase.SUCCEEDED:
                break
            r.advance()
        assert r.status.phase is Phase.SUCCEEDED
        # Five looks between two ticks (1m / 10s - 1): the fifth of each is written.
        intervals = 5  # stepWeight 10 up to maxWeight 50: the ticks at 10, 20, 30, 40 and 50%
        assert looks == intervals * 5
        assert looks_written == intervals * (5 // N)
        assert all("judge" not in e["message"] for e in r.cluster.events())


async def test_a_failed_fold_loses_no_tick_and_the_next_fold_writes_the_whole_count(held: Release) -> None:
    r = held
    r.cluster.fail_next("patch_namespaced_event")
    for _ in range(N):
        await tick(r)
    [event] = waiting_events(r.cluster)
    assert event["count"] == 1
    assert r.status.last_analysis_time == r.now
    for _ in range(N):
        await tick(r)
    [event] = waiting_events(r.cluster)
    assert event["count"] == 1 + 2 * N
