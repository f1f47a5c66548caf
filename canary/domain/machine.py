"""The release state machine: the one function that decides everything the controller does.

``decide`` is pure. It takes the parsed spec, the status (the controller's only memory), what
the Kubernetes layer observed, the time, and the results of any probes (webhook gates and metric
checks) it asked for. It returns either ``NeedProbes`` (run these, then call me again with their
results, at the same ``now``) or a ``Decision``: the next status, the actions that bring the
cluster in line with it, events to record and when to look again.

Crash safety comes from the shape, not from care at each call site: the Kubernetes layer writes
the status first and then carries out the actions, and the actions are recomputed from
status + observation on every call (``converge``). A controller killed between the two writes
finds the new status on restart and derives the same actions again; nothing is skipped or done
twice, and the route only gives the canary traffic while the canary is observed ready.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from canary.domain.actions import (
    Action, EnsurePrimary, EnsurePrimaryScaler, EnsureServices, Event, Notify, PauseTargetScaler, PromotePrimary,
    RestoreTarget, ScaleCanary, SetFinalizer, SetRoute,
)
from canary.domain.analysis import TickOutcome, gate_open, judge_tick, summarize_failures
from canary.domain.conditions import derive_conditions
from canary.domain.judge import carry, judge_checks, without_judge_checks
from canary.domain.observed import Observed, Problem
from canary.domain.schedule import next_in, planned_time, until_due
from canary.domain.spec import CanarySpec, WebhookType
from canary.domain.status import Annotation, CanaryStatus, CheckResult, ConditionType, JudgeState, Phase, Verdict
from canary.domain.weights import ALL_PRIMARY, Weights, next_promotion_weight, next_weight

#: How often to look again while waiting on something that also produces watch events
#: (a Deployment becoming ready). Events normally wake the controller first; this is the backstop.
READINESS_POLL = timedelta(seconds=10)
PROBLEM_POLL = timedelta(seconds=30)

_ANALYSING = frozenset({Phase.PROGRESSING, Phase.WAITING_PROMOTION})
_CANARY_SERVES = frozenset({Phase.PROGRESSING, Phase.WAITING_PROMOTION, Phase.PROMOTING})
#: While the canary is judged (not once the primary is being replaced), A/B and mirroring apply.
_CANARY_EXPERIMENTS = frozenset({Phase.PROGRESSING, Phase.WAITING_PROMOTION})
_CANARY_SCALED_DOWN = frozenset({Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED, Phase.WAITING, Phase.FINALISING})


class Probe(StrEnum):
    """Things the shell must ask the outside world before some decisions can be made."""

    CONFIRM_ROLLOUT = "confirm-rollout"
    PRE_ROLLOUT = "pre-rollout"
    ROLLBACK = "rollback"
    ROLLOUT_HOOKS = "rollout"
    METRICS = "metrics"
    CONFIRM_TRAFFIC_INCREASE = "confirm-traffic-increase"
    CONFIRM_PROMOTION = "confirm-promotion"
    JUDGE = "judge"  # the canary against the primary (spec.analysis.judge)


#: Which webhooks each gate-like probe calls.
PROBE_HOOKS: Mapping[Probe, WebhookType] = {
    Probe.CONFIRM_ROLLOUT: WebhookType.CONFIRM_ROLLOUT,
    Probe.PRE_ROLLOUT: WebhookType.PRE_ROLLOUT,
    Probe.ROLLBACK: WebhookType.ROLLBACK,
    Probe.ROLLOUT_HOOKS: WebhookType.ROLLOUT,
    Probe.CONFIRM_TRAFFIC_INCREASE: WebhookType.CONFIRM_TRAFFIC_INCREASE,
    Probe.CONFIRM_PROMOTION: WebhookType.CONFIRM_PROMOTION,
}

ProbeResults = Mapping[Probe, tuple[CheckResult, ...]]


class RollbackCause(StrEnum):
    """Bounded label values for the rollbacks counter."""

    THRESHOLD = "threshold"
    ANNOTATION = "annotation"
    DEADLINE = "deadline"
    WEBHOOK = "webhook"
    JUDGE = "judge"  # the judge found conclusive evidence against the canary (an early abort)


@dataclass(frozen=True)
class RunOutcome:
    promoted: bool
    cause: RollbackCause | None  # None when promoted
    started: datetime | None


@dataclass(frozen=True)
class NeedProbes:
    probes: frozenset[Probe]


@dataclass(frozen=True)
class Decision:
    status: CanaryStatus
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = ()
    requeue_after: timedelta | None = None
    outcome: RunOutcome | None = None


class _NeedProbes(Exception):
    def __init__(self, probes: frozenset[Probe]) -> None:
        super().__init__(", ".join(sorted(probes)))
        self.probes = probes


@dataclass
class _Step:
    """Mutable scratch space for one decision; never escapes ``decide``."""

    spec: CanarySpec
    observed: Observed
    now: datetime
    probes: ProbeResults
    status: CanaryStatus
    events: list[Event] = field(default_factory=list)
    extra_actions: list[Action] = field(default_factory=list)
    requeue: timedelta | None = None
    outcome: RunOutcome | None = None
    paused: bool = False

    def update(self, **changes: Any) -> None:
        self.status = self.status.with_(**changes)

    def transition(self, phase: Phase, **changes: Any) -> None:
        if self.status.phase is not phase:
            changes["last_transition_time"] = self.now
        self.update(phase=phase, **changes)

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        self.events.append(Event(reason, message, warning))

    def wake_in(self, delay: timedelta) -> None:
        delay = max(delay, timedelta(0))
        self.requeue = delay if self.requeue is None else min(self.requeue, delay)

    def hooks(self, kind: WebhookType) -> bool:
        return bool(self.spec.analysis.hooks(kind))

    def probe(self, *wanted: Probe) -> ProbeResults:
        """Results of ``wanted`` probes that have webhooks/metrics configured; asks for the rest."""
        missing = frozenset(p for p in wanted if p not in self.probes)
        if missing:
            raise _NeedProbes(missing)
        return {p: self.probes[p] for p in wanted}

    @property
    def deadline(self) -> timedelta:
        return timedelta(seconds=self.spec.progress_deadline_seconds)

    @property
    def name(self) -> str:
        return self.spec.target_ref.name


def decide(
    spec: CanarySpec,
    status: CanaryStatus,
    observed: Observed,
    now: datetime,
    probes: ProbeResults | None = None,
) -> Decision | NeedProbes:
    step = _Step(spec=spec, observed=observed, now=now, probes=probes or {}, status=status)
    try:
        _dispatch(step)
    except _NeedProbes as need:
        return NeedProbes(need.probes)
    return _finish(step, status)


def decide_invalid(status: CanaryStatus, problem: Problem, generation: int, now: datetime, *,
                   deleting_with_finalizer: bool = False) -> Decision:
    """A spec the controller cannot use: report it, change nothing in the cluster. A Canary being
    deleted is let go: what its spec asked to revert cannot be read, and holding the deletion
    until someone fixes a spec they are deleting would never end."""
    new = status.with_(observed_generation=generation)
    new = new.with_(conditions=derive_conditions(new, now, problem=problem))
    events: tuple[Event, ...] = (
        () if _same_problem(status, problem) else (Event(problem.reason, problem.message, warning=True),))
    if deleting_with_finalizer:
        events += (Event("Terminated", "the spec cannot be read, so nothing is reverted; letting the deletion "
                                       "proceed", warning=True),)
        return Decision(status=new, actions=(SetFinalizer(False),), events=events)
    return Decision(status=new, events=events)


def _same_problem(status: CanaryStatus, problem: Problem) -> bool:
    stalled = status.condition(ConditionType.STALLED)
    return stalled is not None and stalled.status and stalled.message == problem.message


def _finish(step: _Step, old: CanaryStatus) -> Decision:
    observed = step.observed
    new = step.status.with_(observed_generation=observed.generation)
    actions: tuple[Action, ...] = ()
    # While deleting without revertOnDeletion, garbage collection removes what the controller made;
    # converging would recreate it. Suspend does not hold back a deletion.
    hands_off = step.spec.suspend if not observed.deleting else not step.spec.revert_on_deletion
    if observed.target.exists and not hands_off:
        actions = converge(new, observed, experiment=uses_experiment_route(step.spec))
        route_now = observed.route
        restored = next((a.weights for a in actions if isinstance(a, SetRoute)), None)
        if (
            route_now.exists and restored is not None and old.phase is not None
            and old.phase is not Phase.TERMINATING and not observed.fresh_start
            # A spec edit (hosts, headers, ...) changes the route the controller wants, not
            # someone else's doing.
            and observed.generation == old.observed_generation
            # Readiness flips and revision changes move the route without a status change, so
            # only a route none of our own decisions for ``old`` could have written is drift.
            and route_now.weights not in {_route_for(old, serving, experiment=uses_experiment_route(step.spec))
                                          for serving in (True, False)}
        ):
            found = str(route_now.weights) if route_now.weights else "an unrecognised shape"
            step.event(
                "RouteRestored",
                f"the traffic route was changed outside the controller (found {found}, "
                f"expected {restored}); putting it back",
                warning=True,
            )
    actions = actions + tuple(step.extra_actions) + _finalizer(step.spec, new, observed)
    new = new.with_(conditions=derive_conditions(
        new, step.now, problem=observed.problem, suspended=step.spec.suspend, paused=step.paused,
    ))
    return Decision(status=new, actions=actions, events=tuple(step.events), requeue_after=step.requeue,
                    outcome=step.outcome)


def _finalizer(spec: CanarySpec, status: CanaryStatus, observed: Observed) -> tuple[Action, ...]:
    """The finalizer is there exactly while a deletion has something to give back: added with
    ``revertOnDeletion``, removed once the target serves again (or when the option is dropped)."""
    if observed.deleting:
        done = not spec.revert_on_deletion or status.phase is Phase.TERMINATED
        return (SetFinalizer(False),) if observed.finalizer and done else ()
    if spec.revert_on_deletion != observed.finalizer:
        return (SetFinalizer(spec.revert_on_deletion),)
    return ()


# --- what the cluster should look like for a given status ---------------------------------


def uses_experiment_route(spec: CanarySpec) -> bool:
    """A/B (``match``) or mirroring: blue/green analysis in which the canary still sees requests."""
    analysis = spec.analysis
    return analysis.blue_green and bool(analysis.match or analysis.mirror)


def desired_route(status: CanaryStatus, observed: Observed, *, experiment: bool = False) -> Weights:
    """Traffic split for ``status``; the canary only gets traffic while observed ready and, during
    a release, only while it still runs the revision under analysis (a push after the primary
    copy must not be exposed unanalysed)."""
    serving = observed.target.ready and (
        status.phase is Phase.TERMINATING or observed.target.checksum == status.last_applied_spec
    )
    return _route_for(status, serving, experiment=experiment)


def _route_for(status: CanaryStatus, serving: bool, *, experiment: bool = False) -> Weights:
    if status.phase is Phase.TERMINATING:
        return Weights(primary=0, canary=100) if serving else ALL_PRIMARY
    if experiment and serving and status.phase in _CANARY_EXPERIMENTS:
        return Weights(primary=100, canary=0, experiment=True)
    if status.phase in _CANARY_SERVES and serving:
        return Weights.canary_at(status.canary_weight)
    return ALL_PRIMARY


def converge(status: CanaryStatus, observed: Observed, *, experiment: bool = False) -> tuple[Action, ...]:
    """The idempotent actions that bring the cluster in line with ``status``, in a safe order:
    workloads before routes, routes away from the canary before scaling it down."""
    phase = status.phase
    actions: list[Action] = []
    if phase is Phase.TERMINATED:
        return ()
    if phase is Phase.TERMINATING:
        # The target serves again: its ScaledObject must not hold it at zero.
        actions.extend(_pause_target_scaler(observed, paused=False))
        if observed.target.replicas == 0:
            actions.append(ScaleCanary(max(status.primary_replicas, 1)))
        # Services adopted before the route existed must be handed back too, or they go with the
        # Canary's garbage collection.
        if observed.target.ready and (observed.route.exists or observed.services_ready):
            wanted = desired_route(status, observed, experiment=experiment)
            if observed.route.exists and observed.route.weights != wanted:
                actions.append(SetRoute(wanted))
            actions.append(RestoreTarget())
        return tuple(actions)

    if not observed.primary.exists:
        actions.append(EnsurePrimary(max(status.primary_replicas, 1)))
    # Before the template copy: once the primary runs the new revision the promotion may move
    # on, and the copy of the scaler must not be left behind by a crash in between.
    scaler = observed.scaler
    if scaler is not None and scaler.target_exists and (
        not scaler.primary_exists or (phase is Phase.PROMOTING and not scaler.primary_in_sync)
    ):
        actions.append(EnsurePrimaryScaler())
    primary_usable = observed.primary.exists and (observed.primary.ready or phase not in (None, Phase.INITIALIZING))
    if primary_usable and not observed.services_ready:
        actions.append(EnsureServices())
    if (
        phase is Phase.PROMOTING
        and observed.primary.checksum != status.last_applied_spec
        and observed.target.checksum == status.last_applied_spec
    ):
        actions.append(PromotePrimary(status.last_applied_spec))
    if primary_usable and (observed.services_ready or observed.route.exists):
        wanted = desired_route(status, observed, experiment=experiment)
        if not observed.route.exists or observed.route.weights != wanted:
            actions.append(SetRoute(wanted))
    # The scaler is let go before the canary is scaled up, and held before it is scaled down,
    # so neither write is undone by the scaler in between.
    if phase in _CANARY_SERVES:
        actions.extend(_pause_target_scaler(observed, paused=False))
        if observed.target.replicas == 0:
            actions.append(ScaleCanary(max(status.primary_replicas, 1)))
    elif phase in _CANARY_SCALED_DOWN:
        actions.extend(_pause_target_scaler(observed, paused=True))
        if observed.target.replicas != 0:
            actions.append(ScaleCanary(0))
    return tuple(actions)


def _pause_target_scaler(observed: Observed, *, paused: bool) -> tuple[Action, ...]:
    scaler = observed.scaler
    if scaler is None or not scaler.pausable or not scaler.target_exists or scaler.target_paused == paused:
        return ()
    return (PauseTargetScaler(paused),)


# --- transitions ------------------------------------------------------------------------------


def _dispatch(step: _Step) -> None:
    observed = step.observed
    if observed.deleting:
        _terminate(step)
        return
    if step.spec.suspend:
        return
    if not observed.target.exists:
        step.wake_in(PROBLEM_POLL)
        return
    # On-call annotations still work while something else is wrong (a MetricTemplate deleted
    # mid-run must not block an emergency rollback).
    if _on_call(step):
        return
    if observed.problem is not None:
        step.wake_in(PROBLEM_POLL)
        return
    phase = step.status.phase
    if phase in (None, Phase.INITIALIZING):
        _initialize(step)
    elif phase in (Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED, Phase.WAITING):
        _idle(step)
    elif phase in _ANALYSING:
        _analyse(step)
    elif phase is Phase.PROMOTING:
        _promote(step)
    elif phase is Phase.FINALISING:
        _finalise(step)
    # Terminating/Terminated without a deletion timestamp cannot happen; nothing to do.


def _on_call(step: _Step) -> bool:
    """Apply on-call annotations, each once per value. Returns True when one moved the phase."""
    present = step.observed.annotations
    handled = dict(step.status.handled_annotations)
    was_paused = handled.get(Annotation.PAUSE.short, "").lower() == "true"
    fresh: dict[Annotation, str] = {}
    for key in Annotation:
        value = present.get(key.value)
        if value is None:
            handled.pop(key.short, None)
        elif handled.get(key.short) != value:
            fresh[key] = value
            handled[key.short] = value
    step.paused = present.get(Annotation.PAUSE.value, "").lower() == "true"
    if was_paused and not step.paused:
        step.event("Resumed", "the canary.dev/pause annotation was removed or no longer says \"true\"; resuming")
    if handled != step.status.handled_annotations:
        step.update(handled_annotations=handled)
    if Annotation.PAUSE in fresh and step.paused:
        step.event("Paused", f"paused by the canary.dev/pause annotation at {step.status.canary_weight}%")

    phase = step.status.phase
    # At most one annotation moves the phase per decision; the others set with it are ignored
    # (and say so), since they were meant for a phase that no longer holds.
    acted: str | None = None
    if Annotation.ROLLBACK in fresh:
        reason = fresh[Annotation.ROLLBACK] or "no reason given"
        if phase in _ANALYSING:
            _rollback(step, RollbackCause.ANNOTATION, f"rolled back by the canary.dev/rollback annotation: {reason}")
            acted = Annotation.ROLLBACK.value
        else:
            step.event("RollbackIgnored",
                       f"canary.dev/rollback ({reason}) ignored: no release is being analysed ({phase})")
    if Annotation.PROMOTE in fresh:
        if acted:
            step.event("PromoteIgnored", f"canary.dev/promote ignored: {acted} acted first")
        elif _promote_requested(fresh[Annotation.PROMOTE]) and phase in _ANALYSING and step.observed.target.ready:
            step.event("PromotedManually", "the canary.dev/promote annotation skips the rest of the analysis")
            # Promotion steps (stepWeightPromotion) start one interval from the request.
            step.update(last_analysis_time=step.now)
            _start_promotion(step)
            acted = Annotation.PROMOTE.value
        else:
            step.event("PromoteIgnored",
                       f"canary.dev/promote ignored: it needs a value other than \"false\", a release under analysis "
                       f"and a ready canary ({phase})")
    if Annotation.RETRY in fresh:
        if acted:
            step.event("RetryIgnored", f"canary.dev/retry ignored: {acted} acted first")
        elif phase is Phase.FAILED:
            step.event("Retry", f"canary.dev/retry: running revision {step.status.last_applied_spec} again")
            _start_run(step, step.status.last_applied_spec)
            acted = Annotation.RETRY.value
        else:
            step.event("RetryIgnored", f"canary.dev/retry ignored: only a Failed release can be retried ({phase})")
    return acted is not None


def _promote_requested(value: str) -> bool:
    # Any value but "false" or empty, so a later promote can write a fresh value (a timestamp):
    # the controller acts once per value, and "true" may already be handled from a past release.
    return value.strip().lower() not in ("", "false")


def _initialize(step: _Step) -> None:
    observed = step.observed
    if step.status.phase is None:
        step.transition(Phase.INITIALIZING, primary_replicas=max(observed.target.replicas, 1))
        step.event("Initializing", f"creating {step.name}-primary from {step.name}")
    ready = (
        observed.primary.ready and observed.services_ready and observed.route.weights == ALL_PRIMARY
    )
    if ready:
        revision = observed.primary.checksum
        step.transition(Phase.INITIALIZED, last_applied_spec=revision, last_promoted_spec=revision, waiting_since=None,
                        message="")
        step.event("Initialized", f"initialization done: {step.name}-primary serves all traffic; {step.name} scaled to zero")
        return
    if _wait_for_readiness(step, f"{step.name}-primary", on_deadline=None):
        # The primary is ready but the Services or the route are not yet observed.
        step.wake_in(READINESS_POLL)


def _idle(step: _Step) -> None:
    revision = step.observed.target.checksum
    status = step.status
    if revision == status.last_applied_spec and status.phase is not Phase.WAITING:
        return
    if revision == status.last_promoted_spec:
        if status.phase in (Phase.WAITING, Phase.FAILED):
            step.transition(Phase.SUCCEEDED, message="the target is back on the promoted revision")
        step.update(last_applied_spec=revision)
        step.event("RevisionUnchanged", f"revision {revision} is what the primary runs; nothing to analyse")
        return
    if step.paused:
        return
    if step.hooks(WebhookType.CONFIRM_ROLLOUT):
        if status.phase is Phase.WAITING and not _due(step):
            return
        gate = step.probe(Probe.CONFIRM_ROLLOUT)[Probe.CONFIRM_ROLLOUT]
        if not gate_open(gate):
            if status.phase is not Phase.WAITING:
                step.transition(Phase.WAITING)
                step.event("Waiting", f"revision {revision} waits for the confirm-rollout webhook")
            planned = _tick_time(step)
            step.update(last_analysis_time=planned, checks=gate)
            step.wake_in(next_in(step.now, planned, step.spec.analysis.interval))
            return
    _start_run(step, revision)


def _start_run(step: _Step, revision: str) -> None:
    restarting = step.status.phase in _CANARY_SERVES
    step.transition(
        Phase.PROGRESSING,
        last_applied_spec=revision, canary_weight=0, failed_checks=0, consecutive_errors=0, consecutive_no_data=0,
        iterations=0, checks=(),
        run_started=step.now, last_analysis_time=None, waiting_since=None, message="",
        primary_replicas=max(step.observed.primary.replicas, 1), judge=JudgeState(),
    )
    if restarting:
        step.event("Restarted", f"new revision {revision} during the analysis: traffic back to the primary, "
                                "starting over")
    else:
        step.event("Started", f"new revision {revision} detected: scaling up {step.name}")
    step.wake_in(READINESS_POLL)


def _analyse(step: _Step) -> None:
    status = step.status
    revision = step.observed.target.checksum
    if revision != status.last_applied_spec:
        _new_revision(step, revision)
        return
    if step.paused:
        return
    if not _wait_for_readiness(step, step.name, on_deadline=RollbackCause.DEADLINE):
        return
    if step.spec.skip_analysis:
        step.event("SkipAnalysis", "spec.skipAnalysis is true: promoting without analysis")
        step.update(last_analysis_time=_tick_time(step))
        _start_promotion(step)
        return
    if not _due(step):
        _look(step)
        return
    _tick(step)
    judge = step.spec.analysis.judge
    if judge is not None and step.status.phase in _ANALYSING and _judging(step):
        step.wake_in(judge.look_every)  # the first look of the new step, well before the next tick


def _judging(step: _Step) -> bool:
    """The judge compares the versions whenever the canary serves traffic, as the metrics do."""
    analysis = step.spec.analysis
    return analysis.judge is not None and (analysis.blue_green or step.status.canary_weight > 0)


def _look(step: _Step) -> None:
    """Between two ticks: the judge alone, every lookEvery, so a gross failure ends the run early.
    Nothing advances here; only a rejection acts."""
    judge = step.spec.analysis.judge
    if judge is None or not _judging(step):
        return
    state = step.status.judge
    wait = until_due(step.now, state.last_look, judge.look_every)
    if wait > timedelta(0):
        step.wake_in(wait)
        return
    found = step.probe(Probe.JUDGE)[Probe.JUDGE]
    planned = planned_time(step.now, state.last_look, judge.look_every)
    step.update(checks=without_judge_checks(step.status.checks) + found,
                judge=replace(state, last_look=planned))
    step.wake_in(next_in(step.now, planned, judge.look_every))
    _abort_if_rejected(step, found)


def _abort_if_rejected(step: _Step, checks: tuple[CheckResult, ...]) -> bool:
    rejected = [c for c in judge_checks(checks) if c.verdict is Verdict.FAIL]
    if not rejected:
        return False
    _rollback(step, RollbackCause.JUDGE, "aborted by the judge: " + summarize_failures(rejected), reason="Aborted")
    return True


def _new_revision(step: _Step, revision: str) -> None:
    """The target moved away from the revision under way: cancel or start over."""
    if revision == step.status.last_promoted_spec:
        step.transition(Phase.SUCCEEDED, last_applied_spec=revision, canary_weight=0, waiting_since=None,
                        message="the target went back to the promoted revision; release cancelled")
        step.event("Cancelled", "the target went back to the promoted revision; release cancelled")
    else:
        _start_run(step, revision)


def _tick(step: _Step) -> None:
    analysis = step.spec.analysis
    status = step.status
    wanted = []
    if step.hooks(WebhookType.ROLLBACK):
        wanted.append(Probe.ROLLBACK)
    if step.hooks(WebhookType.PRE_ROLLOUT) and status.canary_weight == 0 and status.iterations == 0:
        wanted.append(Probe.PRE_ROLLOUT)
    if step.hooks(WebhookType.ROLLOUT):
        wanted.append(Probe.ROLLOUT_HOOKS)
    # Metrics mean nothing until the canary gets traffic; blue/green tests the canary directly.
    if analysis.metrics and (analysis.blue_green or status.canary_weight > 0):
        wanted.append(Probe.METRICS)
    if _judging(step):
        wanted.append(Probe.JUDGE)
    results = step.probe(*wanted)

    rollback_votes = results.get(Probe.ROLLBACK, ())
    if any(c.verdict is Verdict.PASS for c in rollback_votes):
        _rollback(step, RollbackCause.WEBHOOK, "rolled back by a rollback webhook")
        return
    checks = tuple(c for p in wanted if p is not Probe.ROLLBACK for c in results[p])
    judged = judge_tick(checks, analysis, consecutive_errors=status.consecutive_errors,
                        consecutive_no_data=status.consecutive_no_data)
    outcome = judged.outcome
    planned = _tick_time(step)
    step.update(checks=checks + tuple(rollback_votes), last_analysis_time=planned,
                consecutive_errors=judged.consecutive_errors, consecutive_no_data=judged.consecutive_no_data)
    if Probe.JUDGE in results:
        step.update(judge=replace(status.judge, last_look=step.now))
        if _abort_if_rejected(step, results[Probe.JUDGE]):
            return
    step.wake_in(next_in(step.now, planned, analysis.interval))

    if outcome is TickOutcome.FAIL:
        failed = status.failed_checks + 1
        step.update(failed_checks=failed)
        reason = summarize_failures(checks)
        if judged.limit_reached:
            reason = f"{judged.limit_reached}: {reason}"
        if failed >= analysis.threshold:
            _rollback(step, RollbackCause.THRESHOLD,
                      f"{failed} failed checks reached the threshold {analysis.threshold}: {reason}")
        else:
            step.event("CheckFailed", f"halting advancement ({failed}/{analysis.threshold} failed checks): {reason}",
                       warning=True)
        return
    if outcome is TickOutcome.OUTAGE:
        step.event("MetricsUnavailable",
                   f"the metrics provider is unavailable, which says nothing about the canary: holding at "
                   f"{status.canary_weight}% ({judged.consecutive_errors}/{analysis.consecutive_error_limit} "
                   f"ticks in a row before each counts as failed): {summarize_failures(checks)}", warning=True)
        return
    if outcome is TickOutcome.HOLD:
        step.event("NoTraffic", f"the canary received no traffic: holding at {status.canary_weight}% "
                                f"(noDataPolicy hold, {judged.consecutive_no_data}/"
                                f"{analysis.consecutive_no_data_limit} ticks in a row before each counts as "
                                f"failed): {summarize_failures(checks)}", warning=True)
        return

    if analysis.blue_green:
        iterations = status.iterations + 1
        step.update(iterations=iterations)
        finished = iterations >= (analysis.iterations or 0)
        if not finished:
            step.event("Advanced", f"iteration {iterations}/{analysis.iterations} passed")
            return
    else:
        target = next_weight(analysis, status.canary_weight)
        finished = target is None
        if target is not None:
            if step.hooks(WebhookType.CONFIRM_TRAFFIC_INCREASE):
                gate = step.probe(Probe.CONFIRM_TRAFFIC_INCREASE)[Probe.CONFIRM_TRAFFIC_INCREASE]
                step.update(checks=step.status.checks + gate)
                if not gate_open(gate):
                    step.event("Waiting", f"confirm-traffic-increase webhook holds the weight at {status.canary_weight}%")
                    return
            # A new weight is a new step for the judge: its evidence so far is carried over.
            step.update(canary_weight=target, judge=carry(judge_checks(checks), step.status.judge, step.now))
            step.event("Advanced", f"canary weight {status.canary_weight}% -> {target}%")
            return
    if finished:
        if step.hooks(WebhookType.CONFIRM_PROMOTION):
            gate = step.probe(Probe.CONFIRM_PROMOTION)[Probe.CONFIRM_PROMOTION]
            step.update(checks=step.status.checks + gate)
            if not gate_open(gate):
                if status.phase is not Phase.WAITING_PROMOTION:
                    step.transition(Phase.WAITING_PROMOTION)
                    step.event("WaitingPromotion", "analysis passed; waiting for the confirm-promotion webhook")
                return
        _start_promotion(step)


def _start_promotion(step: _Step) -> None:
    step.transition(Phase.PROMOTING, waiting_since=None)
    step.event("Promoting", f"copying {step.name}'s template into {step.name}-primary")
    step.wake_in(READINESS_POLL)


def _promote(step: _Step) -> None:
    observed = step.observed
    status = step.status
    if observed.primary.checksum != status.last_applied_spec:
        if observed.target.checksum != status.last_applied_spec:
            # A newer push arrived before the copy: never promote a revision nobody analysed.
            _new_revision(step, observed.target.checksum)
            return
    if step.paused:
        return
    if observed.primary.checksum != status.last_applied_spec or not observed.primary.ready:
        if status.waiting_since is None:
            step.update(waiting_since=step.now)
        elif step.now - status.waiting_since > step.deadline:
            step.transition(Phase.FAILED, canary_weight=0, waiting_since=None,
                            message=f"{step.name}-primary did not become ready within progressDeadlineSeconds")
            step.event("PromotionFailed", step.status.message, warning=True)
            step.outcome = RunOutcome(False, RollbackCause.DEADLINE, status.run_started)
            step.extra_actions.append(Notify(WebhookType.POST_ROLLOUT))
            return
        step.wake_in(READINESS_POLL)
        return
    step.update(waiting_since=None)
    analysis = step.spec.analysis
    if analysis.step_weight_promotion is not None and status.canary_weight > 0:
        if not _due(step):
            return
        lower = next_promotion_weight(analysis, status.canary_weight)
        planned = _tick_time(step)
        step.update(canary_weight=lower, last_analysis_time=planned)
        step.event("Advanced", f"primary weight {100 - status.canary_weight}% -> {100 - lower}%")
        if lower > 0:
            step.wake_in(next_in(step.now, planned, analysis.interval))
            return
    step.transition(Phase.FINALISING, canary_weight=0)
    step.event("Finalising", f"routing all traffic to {step.name}-primary and scaling {step.name} to zero")
    step.wake_in(READINESS_POLL)


def _finalise(step: _Step) -> None:
    observed = step.observed
    if observed.route.weights == ALL_PRIMARY and observed.target.replicas == 0:
        status = step.status
        step.transition(Phase.SUCCEEDED, last_promoted_spec=status.last_applied_spec, message="promoted")
        step.event("Succeeded", f"promotion completed: {step.name}-primary runs revision {status.last_applied_spec}")
        step.outcome = RunOutcome(True, None, status.run_started)
        step.extra_actions.append(Notify(WebhookType.POST_ROLLOUT))
        return
    step.wake_in(READINESS_POLL)


def _rollback(step: _Step, cause: RollbackCause, message: str, *, reason: str = "RolledBack") -> None:
    started = step.status.run_started
    step.transition(Phase.FAILED, canary_weight=0, waiting_since=None, message=message)
    step.event(reason, f"{message}; all traffic back to {step.name}-primary, {step.name} scaled to zero",
               warning=True)
    step.outcome = RunOutcome(False, cause, started)
    step.extra_actions.append(Notify(WebhookType.POST_ROLLOUT))


def _terminate(step: _Step) -> None:
    if not step.spec.revert_on_deletion:
        return
    if step.status.phase is Phase.TERMINATED:
        return
    if not step.observed.target.exists:
        # Deleted together with its Canary: waiting for it would hold the deletion forever.
        step.transition(Phase.TERMINATED)
        step.event("Terminated", f"{step.name} no longer exists; nothing to give traffic back to")
        return
    if step.status.phase is not Phase.TERMINATING:
        step.transition(Phase.TERMINATING)
        step.event("Terminating", f"revertOnDeletion: giving traffic back to {step.name}")
    if step.observed.target.ready and not step.observed.route.exists and not step.observed.services_ready:
        step.transition(Phase.TERMINATED)
        step.event("Terminated", f"{step.name} serves the apex Service again")
        return
    step.wake_in(READINESS_POLL)


# --- helpers ----------------------------------------------------------------------------------


def _due(step: _Step) -> bool:
    wait = until_due(step.now, step.status.last_analysis_time, step.spec.analysis.interval)
    if wait > timedelta(0):
        step.wake_in(wait)
        return False
    return True


def _tick_time(step: _Step) -> datetime:
    """The time this tick records: when it was planned (see ``canary.domain.schedule``)."""
    return planned_time(step.now, step.status.last_analysis_time, step.spec.analysis.interval)


def _wait_for_readiness(step: _Step, what: str, on_deadline: RollbackCause | None) -> bool:
    """True when the workload this phase waits on is ready; applies the progress deadline."""
    observed = step.observed
    workload = observed.primary if step.status.phase is Phase.INITIALIZING else observed.target
    if workload.ready:
        if step.status.waiting_since is not None:
            step.update(waiting_since=None)
        return True
    since = step.status.waiting_since
    if since is None:
        step.update(waiting_since=step.now)
        step.wake_in(min(READINESS_POLL, step.deadline))
        return False
    waited = step.now - since
    if waited > step.deadline:
        message = f"{what} not ready after progressDeadlineSeconds ({step.spec.progress_deadline_seconds}s)"
        if workload.message:
            message += f": {workload.message}"
        if on_deadline is None:
            if step.status.message != message:
                step.update(message=message)
                step.event("NotReady", message, warning=True)
            step.wake_in(READINESS_POLL)
        else:
            _rollback(step, on_deadline, message)
        return False
    step.wake_in(min(READINESS_POLL, step.deadline - waited))
    return False


__all__ = [
    "PROBE_HOOKS", "Decision", "NeedProbes", "Probe", "ProbeResults", "RollbackCause", "RunOutcome",
    "converge", "decide", "decide_invalid", "desired_route", "uses_experiment_route",
]
