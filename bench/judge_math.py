"""Throughput of the judge's statistics: the decision benchmark evaluates them at every look of
every simulated release, millions of times, so their cost per call decides how long it runs.

Figures (calls per second, best of a few repeats so a busy neighbour on the machine skews less):
the latency test over Linkerd's 25 finite buckets, the error test, and the bare conditional
e-value. Figures only: nothing here passes or fails.

Run: ``.venv/bin/python -m bench.judge_math``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from canary.domain.judge_math import StepEvents, conditional_log_evidence, joint_error_log_evidence, latency_log_evidence
from canary.domain.samples import Histogram

#: Linkerd's response_latency_ms buckets: 25 finite bounds and +Inf.
LINKERD_BOUNDS = (1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 100.0, 200.0, 300.0, 400.0,
                  500.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 10000.0, 20000.0, 30000.0, 40000.0,
                  50000.0, math.inf)


def _histogram(latencies_ms: np.ndarray) -> Histogram:
    counts = [float(np.count_nonzero(latencies_ms <= bound)) for bound in LINKERD_BOUNDS]
    return Histogram(LINKERD_BOUNDS, tuple(counts))


def _calls_per_second(call: Callable[[], object], calls: int, repeats: int = 5) -> float:
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, time.perf_counter() - started)
    return calls / best


def bench_figures() -> dict[str, float]:
    """Calls per second of each statistic on a typical look (a 10% canary, 2,000 requests, the
    canary 1.5x slower and failing 2% against 1%), printed and returned."""
    rng = np.random.default_rng(1)
    canary = _histogram(rng.lognormal(math.log(75.0), 0.6, 200))
    primary = _histogram(rng.lognormal(math.log(50.0), 0.6, 1800))
    figures = {
        "latency_log_evidence (25 bounds)": _calls_per_second(lambda: latency_log_evidence(canary, primary, 0.5), 2000),
        # Five finished steps and the current one, as at the end of a stepWeight-10 release.
        "joint_error_log_evidence (6 steps)": _calls_per_second(
            lambda: joint_error_log_evidence([StepEvents.of(4.0, 18.0, 200.0, 1800.0)] * 6, 0.2), 5000),
        "conditional_log_evidence": _calls_per_second(lambda: conditional_log_evidence(4.0, 18.0, 0.1, 0.2), 20000),
    }
    for name, rate in figures.items():
        print(f"{name:<34} {rate:>10,.0f} calls/s  ({1e6 / rate:.1f} us per call)")
    return figures


if __name__ == "__main__":
    bench_figures()
