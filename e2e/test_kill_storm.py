"""Fault suite: the controller is SIGKILLed at random moments across many releases.

Releases run in rounds of up to :data:`PARALLEL` apps at once in one namespace, healthy and
faulty mixed, each app with its own analysis shape (interval, threshold, step and max weight).
During a round the controller is SIGKILLed 1 to 3 times at random moments, and restarted the
way its Deployment would restart it (the new process waits for the dead one's Lease to expire).
Every release of the round that has not ended when a kill lands counts that kill.

Judged from a recording of every write to the Canaries, their routes and Deployments
(:mod:`e2e.harness.route_watch`) by the rules in :mod:`e2e.harness.storm`: the outcome, the
route's weights at every recorded state, and the time each release took against a bound
computed from its spec and its kills.

Size: ``CANARY_CHAOS_RELEASES`` (default 3, 20 under ``E2E_CHAOS=full`` as ``make chaos`` sets);
seed: ``CANARY_CHAOS_SEED`` (printed; random when unset).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict

import pytest

from e2e.conftest import StartController
from e2e.harness import app
from e2e.harness.controller import Controller
from e2e.harness.environment import Environment
from e2e.harness.kube import GROUP, PLURAL, VERSION, Kube, wait_for
from e2e.harness.release import SMI_GROUP, install_app, ship
from e2e.harness.route_watch import Change, ChangeRecorder, custom, deployments
from e2e.harness.storm import (
    ReleasePlan,
    ReleaseResult,
    StormFigures,
    phases_of,
    primary_versions,
    route_states,
    route_violations,
    storm_releases,
    storm_seed,
)

#: Releases in flight at once: enough to make a few kills hit many releases, few enough that
#: the data plane and Prometheus stay responsive on two cores.
PARALLEL = 5
RPS = 20
#: A kill lands at a random moment this many seconds at most after the round starts or the
#: controller is back: early in a run, mid-step, during promotion or after a rollback.
KILL_WINDOW_SECONDS = 10.0
#: The first kill of a round comes sooner, so that it lands in every release of the round (a
#: faulty one with a 1 s interval can end a few seconds after it starts).
FIRST_KILL_WINDOW_SECONDS = 2.0
TERMINAL = ("Succeeded", "Failed")

pytestmark = pytest.mark.chaos


def _plan_apps(rng: random.Random, names: list[str]) -> dict[str, tuple[int, int, int, int]]:
    """Each app's (interval s, threshold, stepWeight, maxWeight); intervals alternate between
    1 s and 2 s (from a random start) so every run has both."""
    shapes: dict[str, tuple[int, int, int, int]] = {}
    first = rng.choice((0, 1))
    for index, name in enumerate(names):
        step = rng.choice((20, 25, 30, 50))
        shapes[name] = ((1, 2)[(first + index) % 2], rng.choice((2, 3)), step,
                        rng.choice([m for m in (50, 60, 80) if m >= step]))
    return shapes


def _status_of(kube: Kube, result: ReleaseResult) -> dict[str, object]:
    status = kube.status(result.plan.app)
    return status if status.get("lastAppliedSpec") == result.revision else {}


def _ended(kube: Kube, result: ReleaseResult) -> bool:
    return _status_of(kube, result).get("phase") in TERMINAL


def _run_round(kube: Kube, controller: Controller, rng: random.Random, plans: list[ReleasePlan],
               figures: StormFigures) -> list[ReleaseResult]:
    # Shipped together and taken up together, so the first kill can land early in every release.
    results = []
    previous = []
    for plan in plans:
        previous.append(kube.status(plan.app).get("lastAppliedSpec"))
        ship(kube, plan.app, plan.version, error_rate=plan.error_rate, wait=False)
        results.append(ReleaseResult(plan=plan, shipped_at=time.monotonic()))
    for result, before in zip(results, previous, strict=True):
        name = result.plan.app
        taken = wait_for(lambda: kube.status(name), lambda st: st.get("lastAppliedSpec") != before,  # noqa: B023
                         timeout=60, what=f"the controller to start the release of {name}")
        result.revision = str(taken["lastAppliedSpec"])

    for number in range(rng.randint(1, 3)):
        window = FIRST_KILL_WINDOW_SECONDS if number == 0 else KILL_WINDOW_SECONDS
        moment = time.monotonic() + rng.uniform(0.0, window)
        # Chaos scheduling, not an assertion: the kill waits for its random moment unless
        # every release of the round has already ended.
        while time.monotonic() < moment and not all(_ended(kube, r) for r in results):
            time.sleep(0.1)
        if all(_ended(kube, r) for r in results):
            break
        controller.kill()
        figures.kills += 1
        # The process is dead (kill() reaped it), so a release not ended now was hit by it.
        for result in results:
            if not _ended(kube, result):
                result.kills += 1
        controller.start()  # waits for the dead controller's Lease to expire, then for /readyz

    for result in results:
        deadline = result.shipped_at + result.bound
        while not _ended(kube, result) and time.monotonic() < deadline:
            time.sleep(0.2)
    return results


def _ended_at(history: list[Change], result: ReleaseResult) -> tuple[float | None, str]:
    """When the release's terminal status was written (as recorded), and which it was."""
    for change in history:
        status = change.body.get("status") or {}
        if (change.kind == "Canary" and change.name == result.plan.app
                and status.get("lastAppliedSpec") == result.revision and status.get("phase") in TERMINAL):
            return change.at, str(status["phase"])
    return None, str(_last_phase(history, result))


def _last_phase(history: list[Change], result: ReleaseResult) -> str:
    phases = phases_of(history, result.plan.app, result.revision)
    return phases[-1] if phases else ""


def test_sigkill_storm_across_releases(env: Environment, kube: Kube, start_controller: StartController) -> None:
    env.use_flavour("linkerd")
    seed = storm_seed()
    rng = random.Random(seed)
    total = storm_releases()
    print(f"\nkill storm: seed {seed}, {total} releases")
    names = [f"storm-{chr(ord('a') + i)}" for i in range(min(total, PARALLEL))]
    shapes = _plan_apps(rng, names)
    # Half faulty (at least one of each when there are two or more), in a random order.
    faulty = [i < total // 2 for i in range(total)]
    rng.shuffle(faulty)

    controller = start_controller()
    # progressDeadlineSeconds well above three kills' dead time (3 x ~35 s), which counts
    # against it: the storm judges outcomes under kills, not the deadline.
    for name in names:
        interval, threshold, step, maximum = shapes[name]
        install_app(kube, name, interval=f"{interval}s", threshold=threshold, step_weight=step, max_weight=maximum,
                    metrics=[app.success_rate_check(), app.latency_check(maximum_ms=1000)],
                    progress_deadline_seconds=300)
        env.mesh.client.set_load(kube.namespace, name, RPS)

    figures = StormFigures(seed=seed)
    route_version = env.route_provider.split(":", 1)[1]
    kinds = [deployments(env.api), custom(env.api, "TrafficSplit", SMI_GROUP, route_version, "trafficsplits"),
             custom(env.api, "Canary", GROUP, VERSION, PLURAL)]
    with ChangeRecorder(env.api, kube.namespace, kinds) as recorder:
        shipped = 0
        version = 1
        while shipped < total:
            version += 1
            batch = names[: min(PARALLEL, total - shipped)]
            plans = []
            for name in batch:
                interval, threshold, step, maximum = shapes[name]
                bad = faulty[shipped]
                shipped += 1
                plans.append(ReleasePlan(app=name, version=str(version), faulty=bad,
                                         error_rate=rng.choice((0.3, 0.6, 1.0)) if bad else 0.0,
                                         interval_s=interval, threshold=threshold, step_weight=step,
                                         max_weight=maximum))
            figures.releases += _run_round(kube, controller, rng, plans, figures)
        history = recorder.history()
    figures.watch_gaps = recorder.gaps

    for name in names:
        figures.violations += route_violations(history, name)
        states, weighted = route_states(history, name)
        figures.route_states += states
        figures.weighted_states += weighted
        for config in env.mesh.client.stats(kube.namespace, name).configs:
            figures.canary_503s += int(config.backend_statuses.get(f"{name}-canary", {}).get("503", 0))
    for result in figures.releases:
        result.ended_at, result.final_phase = _ended_at(history, result)
        result.phases = phases_of(history, result.plan.app, result.revision)
        result.judge(primary_versions(history, result.plan.app))

    report = figures.report()
    print(report)
    (env.workdir / f"kill-storm-{seed}.json").write_text(json.dumps({
        "summary": figures.summary(),
        "releases": [{**asdict(r.plan), "kills": r.kills, "duration": r.duration, "bound": r.bound,
                      "phase": r.final_phase, "problems": r.problems} for r in figures.releases],
        "violations": [str(v) for v in figures.violations],
        "watchErrors": recorder.errors,
    }, indent=2))
    assert recorder.gaps == 0, f"the recording missed changes (410 Gone or errors: {recorder.errors}); " + report
    assert figures.weighted_states > 0, "no route state gave a canary weight: the safety rule judged nothing\n" + report
    assert figures.wrong_outcomes == 0 and not figures.violations, report
