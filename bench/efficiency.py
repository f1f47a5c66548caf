"""Efficiency figures for the controller, measured rather than asserted.

1. API calls per reconciliation across one whole release, on the in-memory API server used by
   the kube tests (real reconciler, executor and routers): the issue's target is at most one
   route write and one status write per step, and zero calls for an idle Canary.
2. Time per ``decide`` call (the pure decision function) for a progressing Canary.
3. Memory held by the watch cache for many Canaries' worth of objects.

Run: ``make bench`` (or ``.venv/bin/python -m bench.efficiency``). Prints a table; exits
non-zero only if the API-call targets are missed, since those are properties, not timings.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from datetime import timedelta

from canary.domain.machine import decide
from canary.domain.status import Phase
from canary.kube.cache import ClusterCache, Kind, ObjectKey
from canary.telemetry import configure_logging
from tests.domain.world import initialized, make_spec
from tests.kube.harness import canary_body, cluster_with_app, config_map, release, target_deployment

WRITE_PREFIXES = ("create_", "replace_", "patch_", "delete_")


async def api_calls_per_step() -> tuple[list[tuple[str, int, Counter[str]]], int]:
    cluster = cluster_with_app()
    rows: list[tuple[str, int, Counter[str]]] = []
    async with release(cluster, canary_body(analysis={
        "interval": "1m", "threshold": 2, "stepWeight": 10, "maxWeight": 50,
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
    })) as r:
        await r.initialize()
        before = len(cluster.calls)
        await r.reconcile()  # idle: initialized, nothing changed
        idle_calls = len(cluster.calls) - before
        r.push("6.0.1")
        for _ in range(40):
            before = len(cluster.calls)
            await r.reconcile()
            made = Counter(c.method for c in cluster.calls[before:] if c.method.startswith(WRITE_PREFIXES))
            rows.append((f"{r.status.phase} {r.status.canary_weight}%", len(cluster.calls) - before, made))
            if r.status.phase is Phase.SUCCEEDED:
                break
            r.advance()
    return rows, idle_calls


def decide_latency(samples: int = 20000) -> tuple[float, float]:
    world = initialized(make_spec(metrics=[{"name": "request-success-rate", "thresholdRange": {"min": 99}}]))
    world.target_rev = "rev2"
    world.advance(timedelta(seconds=1))
    observed = world.observe()
    status = world.status
    now = world.now
    times = []
    for _ in range(samples):
        start = time.perf_counter_ns()
        decide(world.spec, status, observed, now, {})
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000, sorted(times)[int(samples * 0.99)] / 1000


def cache_memory(canaries: int = 1000) -> float:
    tracemalloc.start()
    cache = ClusterCache()
    for i in range(canaries):
        ns = f"team-{i % 50}"
        dep = target_deployment()
        dep["metadata"] = {**dep["metadata"], "name": f"app-{i}", "namespace": ns}
        cache.put(ObjectKey(Kind.DEPLOYMENT, ns, f"app-{i}"), dep)
        cache.put(ObjectKey(Kind.DEPLOYMENT, ns, f"app-{i}-primary"), dep)
        cache.put(ObjectKey(Kind.CANARY, ns, f"app-{i}"), canary_body())
        cache.put(ObjectKey(Kind.CONFIG_MAP, ns, f"app-{i}-config"), config_map({"k": "v" * 4096}))
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return current / canaries / 1024


def main() -> int:
    configure_logging("warning")
    rows, idle = asyncio.run(api_calls_per_step())
    print("API calls per reconciliation during one release (stepWeight 10, maxWeight 50):")
    print(f"  {'after':<24} {'calls':>5}  writes")
    worst_route = worst_status = 0
    for label, calls, writes in rows:
        route = sum(n for m, n in writes.items() if m.endswith("custom_object"))
        status = writes.get("patch_namespaced_custom_object_status", 0)
        worst_route, worst_status = max(worst_route, route), max(worst_status, status)
        detail = ", ".join(f"{m} x{n}" for m, n in sorted(writes.items())) or "-"
        print(f"  {label:<24} {calls:>5}  {detail}")
    print(f"idle Canary, one reconciliation: {idle} API calls")
    median_us, p99_us = decide_latency()
    print(f"decide(): median {median_us:.1f} us, p99 {p99_us:.1f} us per call")
    print(f"watch cache: {cache_memory():.1f} KiB per Canary (target, primary, Canary, a 4 KiB ConfigMap)")
    ok = idle == 0 and worst_route <= 1 and worst_status <= 1
    print("targets (idle 0 calls; <= 1 route write and <= 1 status write per step):", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
