"""What one more Canary costs the controller's memory, part by part, measured in one process.

``bench.scale`` gives the controller's RSS at a thousand Canaries: the total, not where it goes.
This script builds the controller's per-Canary state in-process, without a control plane, and
diffs ``tracemalloc`` snapshots taken at two fleet sizes, so every byte that grows with the
number of Canaries is attributed to the source file (``--lines``: the line) that allocated it:

* ``metrics``: :class:`canary.telemetry.ControllerMetrics` after each Canary's passes
  (``observe_status`` with two metric checks and their bounds, as a releasing Canary has; the
  counters started at 0; one finished run).
* ``controller``: the real :class:`ReconcilerRegistry`, :class:`ClusterCache`, executor and
  reconcilers against the in-memory cluster of the unit tests (``tests/kube/fake_cluster``), fed
  every object the way the kopf handlers feed them: per Canary the Canary, its Deployment, and
  what the controller creates (primary Deployment, three Services, a TrafficSplit), with passes
  run until every Canary is Initialized. The fake cluster's own store is left out of the table
  (it stands for the API server); what kopf itself keeps per object is not measured here.
* ``startup``: the same, but the new Canaries' first passes all run at once and are measured
  while each waits for its first write, as at start-up, when every Canary's first pass is in
  flight together (their writes queue for the API worker threads): the heap's peak per Canary.

Allocations are what Python asked for; RSS adds the allocator's slack on top (about 10-30 %).

Run: ``.venv/bin/python -m bench.memory_parts [--canaries 300] [--base 100] [--lines]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import linecache
import tracemalloc
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import aiohttp

from bench.fleet import app_name
from canary.config import Settings
from canary.domain.machine import RollbackCause
from canary.domain.status import CanaryStatus, CheckKind, CheckResult, Phase, Verdict
from canary.kube.api import is_write
from canary.kube.cache import ClusterCache, Kind, ObjectKey
from canary.kube.execute import Executor
from canary.kube.gateway_classes import GatewayClasses
from canary.kube.probes import ProbeRunner
from canary.kube.reconciler import ReconcilerRegistry, Services
from canary.kube.routes import RouterDirectory
from canary.metrics.engine import MetricsEngine
from canary.telemetry import ControllerMetrics, RunResult, configure_logging
from e2e.harness import app
from tests.kube.fake_cluster import FakeCluster
from tests.kube.harness import LINKERD_SMI, T0, FakeEngine

NAMESPACE = "bench"
REPO = Path(__file__).resolve().parent.parent
#: Files that stand for things outside the controller (the API server's store, the test doubles).
NOT_THE_CONTROLLER = ("tests/", "tracemalloc", "bench/memory_parts.py")

#: A single block growing by this much between the snapshots is a table's resize (see ``measure``).
RESIZE = 256 * 1024
#: Frames kept per allocation: a library's allocation is put down to the controller's line that called it.
FRAMES = 12

Build = Callable[[int, int], Awaitable[None]]
"""(first, last): add the Canaries numbered first..last-1 to the state being measured."""


def _status(index: int) -> CanaryStatus:
    checks = (
        CheckResult(name="request-success-rate", kind=CheckKind.METRIC, source="q", verdict=Verdict.PASS, time=T0,
                    value=99.0 + index % 10 / 10, min=99.0),
        CheckResult(name="request-duration", kind=CheckKind.METRIC, source="q", verdict=Verdict.PASS, time=T0,
                    value=100.0 + index % 50, max=500.0),
    )
    return CanaryStatus(phase=Phase.PROGRESSING, canary_weight=index % 100, failed_checks=index % 2, checks=checks)


def metrics_part() -> tuple[Build, list[object]]:
    metrics = ControllerMetrics()

    async def build(first: int, last: int) -> None:
        for i in range(first, last):
            name = app_name(i)
            for _ in range(3):  # later passes change values, not the set of series
                metrics.observe_status(NAMESPACE, name, _status(i))
            if i % 2:
                metrics.promoted(NAMESPACE, name)
                metrics.run_finished(NAMESPACE, name, RunResult.SUCCEEDED, timedelta(minutes=5))
            else:
                metrics.rolled_back(NAMESPACE, name, RollbackCause.THRESHOLD)
                metrics.run_finished(NAMESPACE, name, RunResult.FAILED, timedelta(minutes=2))

    return build, [metrics]


def apply_fleet(cluster: FakeCluster, names: list[str]) -> None:
    """A Deployment and its Canary (SMI, 1% steps, two builtin checks) for each name."""
    for name in names:
        cluster.apply(app.deployment(name, NAMESPACE, annotations=app.behaviour("1"), replicas=1))
        cluster.apply(app.canary(name, NAMESPACE, provider="smi", interval="10s", threshold=5, step_weight=1,
                                 max_weight=99, progress_deadline_seconds=600,
                                 metrics=[app.success_rate_check(99.0, "1m"), app.latency_check(500.0, "1m")]))
    cluster.tick()


def controller_part(session: aiohttp.ClientSession) -> tuple[Build, list[object]]:
    cluster = FakeCluster(served={k: list(v) for k, v in LINKERD_SMI.items()})
    settings = Settings(debounce=timedelta(days=1))  # parks the reconcilers' own loops: passes are run here
    cache = ClusterCache()
    api = cluster.api
    services = Services(
        settings=settings, cache=cache, executor=Executor(api, cache, session),
        probes=ProbeRunner(api, cache, session, cast(MetricsEngine, FakeEngine()), settings.metrics),
        routers=RouterDirectory(api, settings, GatewayClasses(api, clock=lambda: T0.timestamp())),
        metrics=ControllerMetrics(),
    )
    registry = ReconcilerRegistry(services)
    cluster.attach(registry)

    async def build(first: int, last: int) -> None:
        names = [app_name(i) for i in range(first, last)]
        apply_fleet(cluster, names)
        now = T0
        for _ in range(8):
            for name in names:
                reconciler = registry.get(ObjectKey(Kind.CANARY, NAMESPACE, name))
                assert reconciler is not None
                await reconciler.reconcile_once(now=now)
            cluster.tick()
            cluster.calls.clear()  # the fake API server's call log, not the controller's memory
            now += timedelta(seconds=10)
        phases = {(cluster.get("Canary", NAMESPACE, n) or {}).get("status", {}).get("phase") for n in names}
        if phases != {Phase.INITIALIZED.value}:
            raise RuntimeError(f"the Canaries did not initialise: {phases}")

    return build, [registry, cluster]


def startup_part(session: aiohttp.ClientSession) -> tuple[Build, list[object]]:
    """What each Canary's first pass holds while it waits for its first write: at start-up every
    Canary's first pass is in flight at once (the writes queue for the API worker threads), so
    this is held for all of them together, the peak the heap is then sized for."""
    build_fleet, held = controller_part(session)
    registry, cluster = cast(ReconcilerRegistry, held[0]), cast(FakeCluster, held[1])
    api: Any = cluster.api
    send = api.call
    gate = asyncio.Event()
    parked: list[int] = [0]

    async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if is_write(fn) and not gate.is_set():
            parked[0] += 1
            await gate.wait()
        return await send(fn, *args, **kwargs)

    api.call = call

    async def build(first: int, last: int) -> None:
        if first == 0:  # the fleet before the first snapshot runs its passes unhindered
            gate.set()
            await build_fleet(first, last)
            return
        gate.clear()
        parked[0] = 0
        names = [app_name(i) for i in range(first, last)]
        apply_fleet(cluster, names)
        passes: list[asyncio.Future[Any]] = []
        for name in names:
            reconciler = registry.get(ObjectKey(Kind.CANARY, NAMESPACE, name))
            assert reconciler is not None
            passes.append(asyncio.ensure_future(reconciler.reconcile_once(now=T0)))
        while parked[0] < len(names):
            await asyncio.sleep(0)
        # Measured here, every first pass parked at its first write; the passes finish after.
        _parked_passes.append((gate, passes))

    return build, [registry, cluster]


#: The start-up part's parked passes, let go once the second snapshot is taken.
_parked_passes: list[tuple[asyncio.Event, list[asyncio.Future[Any]]]] = []


def _where(filename: str) -> str:
    marker = "site-packages/"
    if marker in filename:
        return filename.split(marker, 1)[1]
    try:
        return str(Path(filename).resolve().relative_to(REPO))
    except ValueError:
        return filename


def measure(build: Build, base: int, total: int, by: str) -> list[tuple[str, float]]:
    """Bytes per Canary by source location, for the Canaries from ``base`` to ``total``."""
    loop = asyncio.get_event_loop()
    loop.run_until_complete(build(0, base))
    gc.collect()
    before = tracemalloc.take_snapshot()
    loop.run_until_complete(build(base, total))
    gc.collect()
    after = tracemalloc.take_snapshot()
    for gate, passes in _parked_passes:
        gate.set()
        loop.run_until_complete(asyncio.gather(*passes))
    _parked_passes.clear()
    added = total - base
    rows: dict[str, float] = {}
    for stat in after.compare_to(before, "traceback"):
        if abs(stat.size_diff) >= RESIZE and abs(stat.count_diff) <= 1:
            # One block that grew by megabytes: a table resized once between the snapshots (the
            # interpreter's interned strings, a big dict), not something each Canary holds.
            where = f"(a table resized once, amortised over later Canaries: {_attribute(stat.traceback, True)})"
        else:
            where = _attribute(stat.traceback, by == "lineno")
        rows[where] = rows.get(where, 0.0) + stat.size_diff / added
    return sorted(rows.items(), key=lambda row: -row[1])


def _ours(filename: str) -> bool:
    where = _where(filename)
    return not where.startswith("/") and "site-packages" not in filename


def _attribute(traceback: tracemalloc.Traceback, lines: bool) -> str:
    """The allocating frame; for an allocation made in a library or the standard library, that
    frame followed by the innermost frame of this repository that led to it."""
    frames = list(reversed(traceback))  # a Traceback runs from the oldest frame to the innermost
    innermost = frames[0]
    caller = next((f for f in frames if _ours(f.filename)), None)

    def show(frame: tracemalloc.Frame) -> str:
        where = _where(frame.filename)
        if lines:
            where = f"{where}:{frame.lineno}  {linecache.getline(frame.filename, frame.lineno).strip()[:60]}"
        return where

    if caller is None or caller is innermost:
        return show(innermost)
    return f"{show(innermost)}  <-  {show(caller)}"


def table(title: str, rows: list[tuple[str, float]], floor: float) -> str:
    ours = [(w, b) for w, b in rows if not any(part in w for part in NOT_THE_CONTROLLER) and not w.startswith("(a table")]
    lines = [f"## {title}", f"{'KiB/Canary':>10}  where"]
    shown = [(w, b) for w, b in ours if abs(b) >= floor]
    lines += [f"{b / 1024:10.2f}  {w}" for w, b in shown]
    rest = sum(b for w, b in ours if abs(b) < floor)
    lines.append(f"{rest / 1024:10.2f}  (everything else)")
    lines.append(f"{sum(b for _, b in ours) / 1024:10.2f}  total")
    lines += [f"{b / 1024:10.2f}  not counted: {w}" for w, b in rows if w.startswith("(a table")]
    left_out = sum(b for w, b in rows if any(part in w for part in NOT_THE_CONTROLLER))
    lines.append(f"{left_out / 1024:10.2f}  not counted: the fake API server and the test doubles")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--canaries", type=int, default=300, help="fleet size at the second snapshot")
    parser.add_argument("--base", type=int, default=100, help="fleet size at the first snapshot")
    parser.add_argument("--lines", action="store_true", help="by source line instead of by file")
    parser.add_argument("--part", choices=("metrics", "controller", "startup"), action="append",
                        help="measure only these parts (default: all)")
    args = parser.parse_args(argv)
    by = "lineno" if args.lines else "filename"
    floor = 16.0 if args.lines else 8.0
    parts = args.part or ["metrics", "controller"]
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # The passes' log lines would be most of the output; errors still show.
    configure_logging("error")
    tracemalloc.start(FRAMES)
    keep: list[Any] = []
    for part in parts:
        if part == "metrics":
            build, held = metrics_part()
        else:
            session = loop.run_until_complete(_session())
            build, held = (controller_part if part == "controller" else startup_part)(session)
            keep.append(session)
        keep.extend(held)
        print(table(f"{part}: {args.base} -> {args.canaries} Canaries", measure(build, args.base, args.canaries, by),
                    floor))
        print()
    for session in keep:
        if isinstance(session, aiohttp.ClientSession):
            loop.run_until_complete(session.close())
    return 0


async def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()


if __name__ == "__main__":
    raise SystemExit(main())
