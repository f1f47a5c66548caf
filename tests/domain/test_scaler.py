"""``autoscalerRef``: when the primary's copy of the target's autoscaler is created or synced."""

from __future__ import annotations

from dataclasses import replace

import pytest

from canary.domain.actions import EnsurePrimary, EnsurePrimaryScaler, PauseTargetScaler, PromotePrimary, ScaleCanary
from canary.domain.machine import Decision, converge, decide
from canary.domain.observed import ScalerState
from canary.domain.autoscaler_spec import AutoscalerRef, ScalerKind, parse_autoscaler_ref
from canary.domain.status import CanaryStatus, Phase
from canary.domain.weights import Weights
from canary.errors import SpecError
from tests.domain.world import NOW, make_spec, running, seen

LIVE = [p for p in Phase if p not in (Phase.TERMINATING, Phase.TERMINATED)]


def _scaler(target: bool = True, primary: bool = True, in_sync: bool = True) -> ScalerState:
    return ScalerState(target_exists=target, primary_exists=primary, primary_in_sync=primary and in_sync)


@pytest.mark.parametrize("in_sync", [True, False], ids=["in-sync", "differs"])
@pytest.mark.parametrize("primary", [True, False], ids=["copy-exists", "copy-missing"])
@pytest.mark.parametrize("target", [True, False], ids=["scaler-exists", "scaler-missing"])
@pytest.mark.parametrize("phase", LIVE, ids=str)
def test_the_copy_is_made_when_missing_and_synced_only_while_promoting(phase: Phase, target: bool, primary: bool,
                                                                       in_sync: bool) -> None:
    observed = replace(seen(), scaler=_scaler(target, primary, in_sync))
    ensured = [a for a in converge(running(phase, 0), observed) if isinstance(a, EnsurePrimaryScaler)]
    wanted = target and (not primary or (phase is Phase.PROMOTING and not in_sync))
    assert ensured == ([EnsurePrimaryScaler()] if wanted else [])


@pytest.mark.parametrize("phase", list(Phase), ids=str)
def test_without_autoscaler_ref_nothing_is_asked(phase: Phase) -> None:
    assert not any(isinstance(a, EnsurePrimaryScaler) for a in converge(running(phase, 0), seen()))


@pytest.mark.parametrize("phase", [Phase.TERMINATING, Phase.TERMINATED], ids=str)
def test_a_deletion_leaves_the_copy_to_garbage_collection(phase: Phase) -> None:
    observed = replace(seen(), scaler=_scaler(primary=False))
    assert not any(isinstance(a, EnsurePrimaryScaler) for a in converge(running(phase, 0), observed))


def test_the_scaler_is_synced_before_the_template_is_promoted() -> None:
    # Once the primary runs the new revision the promotion moves on; the scaler must not be
    # left for later (a crash in between would skip it for good).
    observed = replace(seen(rev="rev2", primary_rev="rev1", route=Weights.canary_at(50)),
                       scaler=_scaler(in_sync=False))
    actions = list(converge(running(Phase.PROMOTING, 50), observed))
    kinds = [type(a) for a in actions]
    assert kinds.index(EnsurePrimaryScaler) < kinds.index(PromotePrimary)


def test_initialization_creates_the_copy_after_the_primary() -> None:
    spec = make_spec(_spec={"autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                                              "name": "podinfo"}})
    observed = replace(seen(primary_exists=False, services=False, route=None), scaler=_scaler(primary=False))
    decision = decide(spec, CanaryStatus(), observed, NOW)
    assert isinstance(decision, Decision)
    assert decision.status.phase is Phase.INITIALIZING
    assert list(decision.actions[:2]) == [EnsurePrimary(2), EnsurePrimaryScaler()]


SERVING = {Phase.PROGRESSING, Phase.WAITING_PROMOTION, Phase.PROMOTING, Phase.TERMINATING}
SCALED_DOWN = {Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED, Phase.WAITING, Phase.FINALISING}


@pytest.mark.parametrize("paused", [True, False], ids=["held", "free"])
@pytest.mark.parametrize("pausable", [True, False], ids=["scaledobject", "hpa"])
@pytest.mark.parametrize("phase", list(Phase), ids=str)
def test_a_scaled_object_holds_the_canary_at_zero_exactly_while_it_is_scaled_down(phase: Phase, pausable: bool,
                                                                                  paused: bool) -> None:
    scaler = replace(_scaler(), pausable=pausable, target_paused=paused and pausable)
    observed = replace(seen(), scaler=scaler)
    pauses = [a for a in converge(running(phase, 0), observed) if isinstance(a, PauseTargetScaler)]
    if not pausable:
        wanted = []
    elif phase in SERVING:
        wanted = [PauseTargetScaler(False)] if paused else []
    elif phase in SCALED_DOWN:
        wanted = [] if paused else [PauseTargetScaler(True)]
    else:
        wanted = []  # before initialization nothing is scaled; after termination nothing is touched
    assert pauses == wanted


@pytest.mark.parametrize("phase, replicas, first, then", [
    (Phase.PROGRESSING, 0, PauseTargetScaler(False), ScaleCanary(2)),
    (Phase.SUCCEEDED, 2, PauseTargetScaler(True), ScaleCanary(0)),
], ids=["scale-up", "scale-down"])
def test_the_scaler_is_let_go_or_held_before_the_canary_is_scaled(phase: Phase, replicas: int,
                                                                  first: PauseTargetScaler, then: ScaleCanary) -> None:
    scaler = replace(_scaler(), pausable=True, target_paused=not first.paused)
    actions = [a for a in converge(running(phase, 0), replace(seen(replicas=replicas), scaler=scaler))
               if isinstance(a, PauseTargetScaler | ScaleCanary)]
    assert actions == [first, then]


def test_parsed_with_flaggers_meaning() -> None:
    ref = parse_autoscaler_ref({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo-so",
        "primaryScalerQueries": {"prom": "sum(rate(http_requests_total{app='podinfo-primary'}[1m]))"},
        "primaryScalerReplicas": {"minReplicas": 2, "maxReplicas": 5},
    })
    assert ref == AutoscalerRef(name="podinfo-so", kind=ScalerKind.SCALED_OBJECT,
                                primary_scaler_queries={"prom": "sum(rate(http_requests_total"
                                                                "{app='podinfo-primary'}[1m]))"},
                                primary_min_replicas=2, primary_max_replicas=5)
    assert ref.primary_name == "podinfo-so-primary"
    assert ref.api_version == "keda.sh/v1alpha1"


@pytest.mark.parametrize("raw, field", [
    ({"apiVersion": "autoscaling/v2beta2", "kind": "HorizontalPodAutoscaler", "name": "p"}, "apiVersion"),
    ({"apiVersion": "autoscaling/v2", "kind": "ScaledObject", "name": "p"}, "apiVersion"),
    ({"apiVersion": "autoscaling/v2", "kind": "VerticalPodAutoscaler", "name": "p"}, "kind"),
    ({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": ""}, "name"),
    ({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "p",
      "primaryScalerQueries": {"t": "up"}}, "primaryScalerQueries"),
    ({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "p",
      "primaryScalerReplicas": {"minReplicas": 3, "maxReplicas": 2}}, "primaryScalerReplicas"),
], ids=["v2beta2", "scaledobject-as-autoscaling", "unknown-kind", "empty-name", "queries-on-hpa", "min-above-max"])
def test_refusals_name_the_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_autoscaler_ref(raw)
    assert info.value.field == f"spec.autoscalerRef.{field}"
