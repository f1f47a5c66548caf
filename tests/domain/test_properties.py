"""Property: a spec the CRD admits and the parser accepts never makes ``decide`` raise, and every
release it drives stays safe and ends.

Specs are generated from the CRD's own bounds (read from the YAML by tests/crds/crd_bounds.py, so
a ceiling raised in the CRD is generated here at once), admitted by the schema, parsed, then run
through a whole release in the simulated cluster (tests/domain/world.py) while a generated script
plays metric and webhook verdicts, readiness flips, on-call annotations, new revisions and time
jumps. After the script the world turns calm (ready, passing, no annotations) and the release must
end within a number of reconciliations computed from the spec.

Deterministic: ``derandomize`` makes the examples a function of the test's code, and there is no
example database, so CI and a laptop run the same cases.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canary.domain.machine import PROBLEM_POLL, READINESS_POLL, Decision, Probe
from canary.domain.observed import Observed
from canary.domain.spec import CanarySpec, WebhookType, parse_canary_spec
from canary.domain.status import Annotation, CheckKind, CheckResult, Phase, Verdict
from canary.domain.weights import max_weight
from canary.kube.reconciler import IDLE_RECHECK
from tests.crds.crd_bounds import duration_ranges, exact_text, integer_ranges, list_limits
from tests.crds.schema_validator import load_crds
from tests.domain.world import T0, World, assert_safe, initialized

A = "spec.analysis"
INTS = integer_ranges()
DURATIONS = duration_ranges()
LISTS = list_limits()
FINAL = (Phase.SUCCEEDED, Phase.FAILED)

PROPERTY_SETTINGS = settings(
    derandomize=True, database=None, max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


# --- specs, from the CRD's bounds ------------------------------------------------------------


def count(where: str) -> st.SearchStrategy[int]:
    """Any value the CRD admits, the edges often."""
    lo, hi = INTS[where]
    assert lo is not None and hi is not None, where
    return st.one_of(st.just(lo), st.just(hi), st.integers(lo, hi))


def duration(where: str) -> st.SearchStrategy[str]:
    crd = DURATIONS[where]
    lo, hi = (int(d / timedelta(microseconds=1)) for d in (crd.floor, crd.ceiling))
    value = st.one_of(st.just(lo), st.just(hi), st.integers(lo, hi), st.integers(lo, min(hi, lo + 5_000_000)))
    return value.map(lambda us: exact_text(timedelta(microseconds=us)))


@st.composite
def weights(draw: st.DrawFn) -> dict[str, Any]:
    mode = draw(st.sampled_from(["stepWeight", "stepWeights", "stepWeight", "stepWeights", "iterations"]))
    out: dict[str, Any] = {}
    if mode == "stepWeight":
        step = draw(count(f"{A}.stepWeight"))
        # The CRD: maxWeight (50 when unset) at least stepWeight.
        if step > 50 or draw(st.booleans()):
            lo, hi = INTS[f"{A}.maxWeight"]
            assert hi is not None
            out["maxWeight"] = draw(st.integers(max(step, lo or 1), hi))
        out["stepWeight"] = step
    elif mode == "stepWeights":
        lo, hi = INTS[f"{A}.stepWeights[]"]
        _min_items, most = LISTS[f"{A}.stepWeights"]
        assert lo is not None and hi is not None and most is not None
        steps = sorted(draw(st.sets(st.integers(lo, hi), min_size=1, max_size=most)))
        out["stepWeights"] = steps
        if draw(st.booleans()):
            out["maxWeight"] = draw(st.integers(steps[-1], INTS[f"{A}.maxWeight"][1] or 100))
    else:
        out["iterations"] = draw(st.one_of(st.integers(1, 12), count(f"{A}.iterations")))
    if draw(st.booleans()):
        out["stepWeightPromotion"] = draw(count(f"{A}.stepWeightPromotion"))
    return out


@st.composite
def canaries(draw: st.DrawFn) -> dict[str, Any]:
    analysis: dict[str, Any] = {
        "interval": draw(duration(f"{A}.interval")),
        "threshold": draw(st.one_of(st.integers(1, 5), count(f"{A}.threshold"))),
        "noDataPolicy": draw(st.sampled_from(["hold", "fail"])),
        "minSampleSize": draw(count(f"{A}.minSampleSize")),
        **draw(weights()),
    }
    metrics = []
    for _ in range(draw(st.integers(0, 2))):
        metric: dict[str, Any] = {"name": "request-success-rate", "thresholdRange": {"min": 99}}
        if draw(st.booleans()):
            metric["interval"] = draw(duration(f"{A}.metrics[].interval"))
        metrics.append(metric)
    analysis["metrics"] = metrics
    hooks = []
    for kind in draw(st.lists(st.sampled_from([t.value for t in WebhookType]), max_size=4, unique=True)):
        hooks.append({"name": kind, "type": kind, "url": f"http://hooks.test/{kind}",
                      "timeout": draw(duration(f"{A}.webhooks[].timeout")),
                      "retries": draw(count(f"{A}.webhooks[].retries"))})
    analysis["webhooks"] = hooks
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": draw(count("spec.service.port"))},
            "progressDeadlineSeconds": draw(st.one_of(st.integers(1, 120), count("spec.progressDeadlineSeconds"))),
            "skipAnalysis": draw(st.integers(0, 9)) == 0,
            "analysis": analysis,
        },
    }


# --- the script ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """What happens before one reconciliation."""

    #: None: wake when the controller asked to (``requeue_after``, else the idle recheck).
    jump: timedelta | None
    canary_healthy: bool
    annotate: tuple[Annotation, str | None] | None
    push: bool


moves = st.builds(
    Move,
    jump=st.one_of(
        st.none(), st.none(),
        st.integers(0, 90_000_000).map(lambda ms: timedelta(milliseconds=ms)),
        st.integers(0, 3 * 86_400).map(lambda s: timedelta(seconds=s)),
    ),
    canary_healthy=st.booleans() | st.just(True),
    annotate=st.one_of(
        st.none(), st.none(), st.none(),
        st.tuples(st.sampled_from(list(Annotation)),
                  st.one_of(st.none(), st.sampled_from(["true", "false", "x", "y"]))),
    ),
    push=st.integers(0, 15).map(lambda n: n == 0),
)
verdicts = st.lists(st.sampled_from(list(Verdict)), min_size=4, max_size=80)


class Answers:
    """Plays the generated verdicts to the probes in order, then passes everything."""

    def __init__(self, script: list[Verdict]) -> None:
        self._script: Iterator[Verdict] = iter(script)
        self.calm = False

    def __call__(self, probe: Probe, world: World) -> tuple[CheckResult, ...]:
        verdict = Verdict.PASS if self.calm else next(self._script, Verdict.PASS)
        kind = CheckKind.METRIC if probe is Probe.METRICS else CheckKind.WEBHOOK
        return (CheckResult(name=probe.value, kind=kind, source="script", verdict=verdict, time=world.now),)


# --- the properties ---------------------------------------------------------------------------


def longest_wait(spec: CanarySpec) -> timedelta:
    """The longest the controller may sleep between two reconciliations of an active release."""
    # A series of ticks starts on the next whole second: its first wait is up to a second longer.
    return max(spec.analysis.interval + timedelta(seconds=1), READINESS_POLL, PROBLEM_POLL, IDLE_RECHECK)


def reconciles_to_finish(spec: CanarySpec) -> int:
    """Reconciliations a calm world needs at most to end a release of ``spec``, from any state."""
    analysis = spec.analysis
    if analysis.blue_green:
        ticks = analysis.iterations or 0
    elif analysis.step_weights:
        ticks = len(analysis.step_weights) + 1
    else:
        ticks = math.ceil(max_weight(analysis) / (analysis.step_weight or 1)) + 1
    promotion = math.ceil(100 / analysis.step_weight_promotion) if analysis.step_weight_promotion else 1
    # Each tick or promotion step may wait one reconciliation for readiness (the slow world),
    # plus starting, promoting, finalising and a confirm-rollout re-ask.
    return 2 * (ticks + promotion) + 12


def check_decision(world: World, decision: Decision, observed: Observed) -> None:
    assert_safe(decision, observed)
    status = decision.status
    assert 0 <= status.canary_weight <= 100
    route = world.route.weights
    if route is not None:
        assert route.primary + route.canary == 100 and 0 <= route.canary <= 100
        if route.canary > 0:
            assert observed.target.ready, f"{route} stays on a canary seen unready"
    assert world.violations == []
    if status.phase not in FINAL and decision.requeue_after is not None:
        assert timedelta(0) <= decision.requeue_after <= longest_wait(world.spec)


def step(world: World, jump: timedelta | None) -> Decision:
    last = world.decisions[-1] if world.decisions else None
    wait = jump if jump is not None else ((last.requeue_after if last else None) or IDLE_RECHECK)
    world.now += wait
    observed = world.observe()
    decision = world.reconcile()
    check_decision(world, decision, observed)
    return decision


@PROPERTY_SETTINGS
@given(manifest=canaries(), script=st.lists(moves, min_size=8, max_size=60), plays=verdicts, slow=st.booleans())
def test_decide_never_raises_and_every_release_ends_safely(
    manifest: dict[str, Any], script: list[Move], plays: list[Verdict], slow: bool,
) -> None:
    admitted = load_crds()["Canary"].admit(manifest).object  # the generator stays inside the CRD
    spec = parse_canary_spec(admitted["spec"])
    answers = Answers(plays)
    world = initialized(spec, slow=slow, answer=answers)
    world.decisions.clear()
    world.push("rev2")
    revision = 2

    for move in script:
        world.canary_healthy = move.canary_healthy
        if move.annotate is not None:
            key, value = move.annotate
            if value is None:
                world.annotations.pop(key.value, None)
            else:
                world.annotations[key.value] = value
        if move.push:
            revision += 1
            world.push(f"rev{revision}")
        step(world, move.jump)

    # Calm: the canary is healthy, every probe passes, nobody annotates. It must end, soon.
    answers.calm = True
    world.canary_healthy = True
    world.annotations.clear()
    limit = reconciles_to_finish(spec)
    started = world.now
    for _ in range(limit):
        if world.status.phase in FINAL:
            break
        step(world, None)
    assert world.status.phase in FINAL, (
        f"still {world.status.phase} at {world.status.canary_weight}% after {limit} calm reconciliations"
    )
    assert world.now - started <= limit * longest_wait(spec)
    if world.status.phase is Phase.SUCCEEDED:
        assert world.primary.checksum == world.status.last_promoted_spec
    assert world.route.weights is None or world.route.weights.canary == 0
    assert world.violations == []


def test_the_release_bound_is_finite_at_the_ceilings() -> None:
    # The calm bound above is computed from the spec; at the CRD's ceilings it stays a number a
    # test can run, which is what makes "every release ends" checkable at all.
    lo, most = INTS[f"{A}.iterations"]
    assert most is not None
    spec = parse_canary_spec({
        "targetRef": {"name": "podinfo"}, "service": {"port": 80},
        "analysis": {"iterations": most, "interval": exact_text(DURATIONS[f"{A}.interval"].ceiling),
                     "stepWeightPromotion": 1},
    })
    assert reconciles_to_finish(spec) == 2 * (most + 100) + 12
    assert reconciles_to_finish(spec) * longest_wait(spec) < timedelta(days=5000)
    assert T0 + reconciles_to_finish(spec) * longest_wait(spec) > T0
