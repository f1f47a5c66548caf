"""The controller at scale on the local control plane: memory, CPU, API and PromQL cost, tick timing.

Issue 13's targets, measured on a real API server (with kwok Nodes and Pods), the real
Prometheus and the controller as a process of its own, running as the chart's ServiceAccount:

1. N Deployments with a Canary each (``--canaries``, 1000) are created, then the controller is
   started; the time until every Canary is ``Initialized`` is the initialisation figure.
2. M of them (``--progressing``, 100) get a new version. Their Canaries have ``interval``
   ``--interval`` (10 s) and steps of 1 % up to 99 %, so every tick passes its checks and moves
   the weight: each tick makes a route write and a status write, and no release ends during the
   window.
3. For ``--seconds`` the bench samples the controller's RSS and CPU time and, at both ends,
   the controller's ``/metrics`` (``canary_tick_lateness_seconds``,
   ``canary_metric_queries_total`` when the running code has them) and Prometheus's own
   ``/metrics`` (``prometheus_http_requests_total`` per handler).
4. The API server's audit log (reads included, see ``e2e/cluster/audit.py``) gives the
   controller's requests in the window by verb and resource, its status writes and the Events it
   created, the first status write of each round (the Canaries due in the same second) and the
   gaps between consecutive status writes of each progressing Canary.

**Metrics for the progressing Canaries.** Their builtin checks run the controller's real
Linkerd queries against the real Prometheus, but the series come from
:mod:`bench.synthetic_mesh`, an exposition with the simulated mesh's Linkerd names and labels
whose counters grow at a fixed rate per workload, not from HTTP sent through the simulated mesh
(``e2e.mesh``): that would start a loopback server per ready Pod (2N+M of them) and proxy hundreds
of requests a second on the 2 cores the measured controller shares with the API server, etcd and
kwok. The controller cannot tell the difference: it sees the same Prometheus answers. The mesh's
route objects (TrafficSplits) are still written by the controller; nobody reads them.

Figures are printed as a table with issue 13's targets: RSS at most 186 MiB (1.5× Flagger's 124
at 1000 Canaries), tick lateness p99 at most 100 ms, builtin-metric queries per evaluation round
O(1) per metric (held to at most one per metric per second of the interval: one batch per
whole-second slot in which Canaries fall due, whatever M is; unbatched it is M). The machine is
shared, so CPU and lateness figures move with whatever else runs on it.

Tick lateness is judged on the controller's histogram: from each tick's planned instant to the
moment its pass starts. The audit log shows the same from outside, unjudged: every round's first
status write should sit at a steady offset from its second (the batch window, the query and the
write), and the mean gap between a Canary's ticks should be the interval (nothing accumulates).
The gap's spread is not lateness: a Canary's write waits behind those of the Canaries of its round
that were answered first, and that order and the round's speed change from round to round.

Run: ``.venv/bin/python -m bench.scale [--canaries 1000] [--progressing 100] [--interval 10]
[--seconds 180] [--source DIR] [--strict]``. ``--source DIR`` runs the controller from another
checkout (before/after). Exits 2 if the bench could not measure, 1 with ``--strict`` if a target
is missed, else 0.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client

from bench.fleet import (REPO, analysis_times, canary_phases, canary_weights, cpu_seconds, create_workloads,
                         nodes_for, phase_counts, rss_mib, start_controller, stop_controller)
from bench.scale_figures import (Row, SampleKey, bucket_deltas, due_seconds, first_writes_of_rounds,
                                 histogram_buckets, histogram_quantile, in_window, is_event_creation,
                                 is_status_write, judged, p50_p99_ms, parse_exposition, per_minute,
                                 render_table, requests_by_verb_and_resource, status_write_gaps,
                                 sum_samples, tick_to_tick)
from bench.synthetic_mesh import SyntheticMesh, SyntheticTraffic, Workload
from e2e.cluster.control_plane import ControlPlane
from e2e.crds.install import switch_flavour
from e2e.harness import app
from e2e.harness.audit import AuditLog, AuditRecord
from e2e.harness.chart_rbac import install_chart_identity
from e2e.prometheus import Prometheus
from e2e.processes import free_port

NAMESPACE = "bench"
USER_AGENT = "canary-bench"
RSS_TARGET_MIB = 186.0
LATENESS_P99_TARGET_S = 0.100
LATENESS_HISTOGRAM = "canary_tick_lateness_seconds"
QUERY_COUNTER = "canary_metric_queries_total"
BUILTIN_METRICS = 2  # request-success-rate and request-duration, each one query per Canary unbatched
#: The checks' window: several scrapes, so increase() has data from the first tick.
CHECK_WINDOW = "1m"
SCRAPE_INTERVAL = "2s"
#: Steps of margin beyond the window, so no release reaches its last step while measured: the
#: first Canaries to step are ahead of the last by the time the window opens (a minute and
#: more on a loaded machine).
SPARE_STEPS = 30
MAX_WEIGHT = 99


def bench_canary(interval_seconds: int) -> Callable[[str, str], dict[str, Any]]:
    def body(name: str, namespace: str) -> dict[str, Any]:
        return app.canary(name, namespace, interval=f"{interval_seconds}s", threshold=5, step_weight=1,
                          max_weight=MAX_WEIGHT, progress_deadline_seconds=600,
                          metrics=[app.success_rate_check(99.0, CHECK_WINDOW), app.latency_check(500.0, CHECK_WINDOW)])
    return body


class RssSampler(threading.Thread):
    """Samples a process's RSS every half second: (monotonic time, MiB)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.wait(0.5):
            rss = rss_mib(self.pid)
            if rss > 0:
                self.samples.append((time.monotonic(), rss))

    def between(self, start: float, end: float) -> list[float]:
        return [rss for at, rss in self.samples if start <= at <= end]


class BenchError(Exception):
    """The bench could not set up or measure what it needs; the message says what."""


def _scrape(url: str) -> dict[SampleKey, float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return parse_exposition(response.read().decode())


def _wait(what: str, done: Callable[[], bool], timeout: float, *, every: float = 2.0) -> float:
    """Poll ``done`` until true; the seconds it took. BenchError after ``timeout``."""
    began = time.monotonic()
    while not done():
        if time.monotonic() - began > timeout:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - began


def _trigger(api: client.ApiClient, names: list[str]) -> None:
    apps: Any = client.AppsV1Api(api)
    patch = {"spec": {"template": {"metadata": {"annotations": app.behaviour("2")}}}}
    for name in names:
        apps.patch_namespaced_deployment(name, NAMESPACE, patch)


@dataclass
class Snapshot:
    """What the bench reads at each end of the measured window."""

    monotonic: float
    wall: datetime
    cpu: float
    controller: dict[SampleKey, float]
    prometheus: dict[SampleKey, float]


def _snapshot(pid: int, controller_metrics: str, prometheus_metrics: str) -> Snapshot:
    return Snapshot(time.monotonic(), datetime.now(UTC), cpu_seconds(pid), _scrape(controller_metrics),
                    _scrape(prometheus_metrics))


def _delta(before: dict[SampleKey, float], after: dict[SampleKey, float], name: str, **match: str) -> float | None:
    end = sum_samples(after, name, **match)
    return None if end is None else end - (sum_samples(before, name, **match) or 0.0)


@dataclass
class Measured:
    args: argparse.Namespace
    init_seconds: float
    rss_peak: float
    rss_steady: float | None
    start: Snapshot
    end: Snapshot
    records: list[AuditRecord]
    progressing: list[str]
    phases_at_end: dict[str, int]
    #: Distinct seconds of the interval the progressing Canaries' ticks fall on at the end.
    due_seconds: int = 0

    @property
    def seconds(self) -> float:
        return self.end.monotonic - self.start.monotonic

    def rows(self) -> list[Row]:
        a, seconds = self.args, self.seconds
        rounds = seconds / a.interval
        cpu = per_minute(self.end.cpu - self.start.cpu, seconds)
        status_writes = sum(1 for r in self.records if is_status_write(r))
        events = sum(1 for r in self.records if is_event_creation(r))
        conflicts = sum(1 for r in self.records if r.is_write and r.code == 409)
        prom_queries = _delta(self.start.prometheus, self.end.prometheus, "prometheus_http_requests_total",
                              handler="/api/v1/query")
        own_queries = _delta(self.start.controller, self.end.controller, QUERY_COUNTER)
        lateness = bucket_deltas(histogram_buckets(self.start.controller, LATENESS_HISTOGRAM),
                                 histogram_buckets(self.end.controller, LATENESS_HISTOGRAM))
        gaps, long_gaps = tick_to_tick(status_write_gaps(self.records, self.progressing, a.interval), a.interval)
        late = [g - a.interval for g in gaps]
        first = first_writes_of_rounds(self.records, self.progressing)
        # Per interval the count follows how many seconds the releases were started over (one
        # round per due second), so it is shown, not judged; the per-round figure below is judged.
        query_target = f"one per round (due second) per metric; unbatched {a.progressing}"
        rows = [
            Row("Canaries / progressing / interval", f"{a.canaries} / {a.progressing} / {a.interval}s"),
            Row("measured window", f"{seconds:.0f} s ({rounds:.1f} rounds)"),
            Row("time to initialise all Canaries", f"{self.init_seconds:.0f} s"),
            judged("controller RSS, peak", self.rss_peak, "MiB", at_most=RSS_TARGET_MIB, target="<= 186 MiB",
                   digits=0),
            judged("controller RSS, steady (median in window)", self.rss_steady, "MiB", at_most=RSS_TARGET_MIB,
                   target="<= 186 MiB", digits=0),
            Row("controller CPU", f"{cpu:.2f} CPU-s/min"),
            Row("API requests by the controller", f"{per_minute(len(self.records), seconds):.0f} /min"),
            Row("status writes", f"{per_minute(status_writes, seconds):.1f} /min",
                f"{a.progressing * 60 / a.interval:.0f}/min = one per progressing tick"),
            Row("Events created", f"{per_minute(events, seconds):.1f} /min"),
            Row("writes refused as stale (409)", f"{per_minute(conflicts, seconds):.1f} /min"),
        ]
        if prom_queries is not None:
            rows.append(Row("PromQL instant queries per interval per metric (Prometheus)",
                            f"{prom_queries / rounds / BUILTIN_METRICS:.2f}", query_target))
        else:
            rows.append(Row("PromQL queries (Prometheus)", "not measured", query_target, False))
        if own_queries is not None:
            rows.append(Row(f"queries per interval per metric ({QUERY_COUNTER})",
                            f"{own_queries / rounds / BUILTIN_METRICS:.2f}", query_target))
        else:
            rows.append(Row(f"queries per round ({QUERY_COUNTER})", "not exported by this controller"))
        if prom_queries is not None and self.due_seconds:
            # A round is the Canaries due in the same second: the batcher's unit of sharing.
            rows.append(Row("evaluation rounds per interval (distinct due seconds)", f"{self.due_seconds}",
                            f"<= {a.interval:.0f}"))
            rows.append(judged("PromQL queries per evaluation round per metric (Prometheus)",
                               prom_queries / rounds / BUILTIN_METRICS / self.due_seconds, "", at_most=2.0,
                               target=f"<= 2 (1, or 2 when a round spreads past the 50 ms batch window); "
                                      f"unbatched {a.progressing / self.due_seconds:.0f}"))
        if lateness and lateness[-1][1] > 0:
            rows.append(Row(f"tick lateness p50 ({LATENESS_HISTOGRAM})",
                            f"{1000 * (histogram_quantile(0.5, lateness) or 0):.0f} ms"))
            rows.append(judged(f"tick lateness p99 ({LATENESS_HISTOGRAM})", histogram_quantile(0.99, lateness), "s",
                               at_most=LATENESS_P99_TARGET_S, target="<= 0.100 s", digits=3))
            rows.append(Row("ticks observed by the histogram", f"{lateness[-1][1]:.0f}"))
        else:
            rows.append(Row(f"tick lateness ({LATENESS_HISTOGRAM})", "not exported by this controller"))
        # From outside, a tick's start is its round's first status write; how far down the round's
        # queue of writes a Canary comes (the rest of its gap) is the round's throughput, shown.
        rows.append(Row("first status write of a round after its second, p50 / p99",
                        f"{p50_p99_ms(first)} ({len(first)} rounds)", "steady: ticks start on time"))
        rows.append(Row("status-write gap - interval, p50 / p99", p50_p99_ms(late),
                        "shown: a Canary's place in its round's writes"))
        rows.append(Row("mean gap between ticks (status writes)",
                        "none" if not gaps else f"{statistics.fmean(gaps):.3f} s ({len(gaps)} gaps)",
                        f"{a.interval:.3f} s (no accumulation)"))
        rows.append(Row("status-write gaps over 1.5 intervals (left out above)", f"{long_gaps}"))
        rows.append(Row("Canary phases at end", ", ".join(f"{k} {v}" for k, v in self.phases_at_end.items())))
        return rows

    def requests_table(self) -> str:
        counted = requests_by_verb_and_resource(self.records)
        lines = [f"{'verb':<8} {'resource':<40} {'per min':>9}"]
        lines += [f"{verb:<8} {resource:<40} {per_minute(n, self.seconds):>9.1f}"
                  for (verb, resource), n in counted.most_common()]
        return "\n".join(lines)


def run(args: argparse.Namespace, workdir: Path) -> Measured:
    pods = 2 * args.canaries + args.progressing
    with ControlPlane.start(workdir / "cluster", nodes=nodes_for(pods), audit_reads=True) as plane:
        api = plane.api_client()
        api.user_agent = USER_AGENT
        assert plane.audit_log is not None
        audit = AuditLog(plane.audit_log)
        plane.install_manifests([REPO / "crds"])
        switch_flavour(api, "linkerd")
        identity = install_chart_identity(api, plane.kubeconfig, workdir / "chart")

        began = time.monotonic()
        names = create_workloads(api, NAMESPACE, args.canaries, bench_canary(args.interval))
        identity.grant_lease(api, NAMESPACE)
        progressing = names[: args.progressing]
        print(f"created {args.canaries} Deployments and Canaries in {time.monotonic() - began:.0f}s", flush=True)

        traffic = SyntheticTraffic([Workload(NAMESPACE, name) for name in progressing])
        with SyntheticMesh(traffic) as mesh, \
                Prometheus.start(workdir / "prometheus", scrape_targets=[mesh.address],
                                 scrape_interval=SCRAPE_INTERVAL) as prometheus, \
                (workdir / "controller.log").open("w") as log:
            metrics_port = free_port()
            controller = start_controller(args.source, kubeconfig=identity.kubeconfig, namespace=NAMESPACE,
                                          prometheus_url=prometheus.url, metrics_port=metrics_port, log=log,
                                          extra=["--mesh", "linkerd", "--log-level", "info"])
            sampler = RssSampler(controller.pid)
            try:
                sampler.start()
                def alive() -> None:
                    if controller.poll() is not None:
                        raise BenchError(f"the controller exited with code {controller.returncode}; "
                                         f"see {workdir / 'controller.log'}")

                def all_in(phase: str, which: list[str]) -> Callable[[], bool]:
                    def check() -> bool:
                        alive()
                        phases = canary_phases(api, NAMESPACE)
                        return all(phases.get(name) == phase for name in which)
                    return check

                init_seconds = _wait(f"{args.canaries} Canaries to be Initialized", all_in("Initialized", names),
                                     timeout=max(600.0, args.canaries * 1.2))
                print(f"all {args.canaries} Canaries Initialized {init_seconds:.0f}s after the controller started",
                      flush=True)
                _trigger(api, progressing)
                _wait(f"{args.progressing} Canaries to be Progressing", all_in("Progressing", progressing),
                      timeout=120.0 + args.progressing)

                def stepping() -> bool:
                    alive()
                    weights = canary_weights(api, NAMESPACE)
                    return all(weights.get(name, 0) > 0 for name in progressing)

                # Only once every one has taken its first step (its canary Pods are ready) does
                # each tick move the weight and write status: the window starts there.
                _wait(f"{args.progressing} Canaries to take their first step", stepping,
                      timeout=300.0 + args.progressing)

                controller_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
                prometheus_metrics = f"{prometheus.url}/metrics"
                mark = audit.mark()
                start = _snapshot(controller.pid, controller_metrics, prometheus_metrics)
                print(f"measuring for {args.seconds:.0f}s", flush=True)
                time.sleep(args.seconds)
                alive()
                end = _snapshot(controller.pid, controller_metrics, prometheus_metrics)
                # The audit log is written when a request completes: give the last ones a moment.
                time.sleep(2)
                mine = [r for r in audit.records(mark)
                        if r.user == identity.user or r.controller_identity is not None]
                phases_at_end = phase_counts(canary_phases(api, NAMESPACE))
                times = analysis_times(api, NAMESPACE)
                due = due_seconds([times[name] for name in progressing if name in times], args.interval)
            finally:
                sampler.stop_flag.set()
                stop_controller(controller)
    steady = sampler.between(start.monotonic, end.monotonic)
    return Measured(
        args=args, init_seconds=init_seconds,
        rss_peak=max((rss for _, rss in sampler.samples), default=0.0),
        rss_steady=statistics.median(steady) if steady else None,
        start=start, end=end, records=in_window(mine, start.wall, end.wall), progressing=progressing,
        phases_at_end=phases_at_end, due_seconds=due,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--canaries", type=int, default=1000, help="Canaries (and Deployments) created")
    parser.add_argument("--progressing", type=int, default=100, help="of which releasing during the window")
    parser.add_argument("--interval", type=int, default=10, help="the Canaries' analysis interval, seconds")
    parser.add_argument("--seconds", type=float, default=180.0, help="length of the measured window")
    parser.add_argument("--source", type=Path, default=REPO, help="checkout whose canary package runs")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--workdir", type=Path, help="keep the cluster's, Prometheus's and the controller's files "
                                                     "here (default: a temporary directory, removed)")
    args = parser.parse_args(argv)
    if not 0 < args.progressing <= args.canaries:
        parser.error("--progressing must be between 1 and --canaries")
    if not 1 <= args.interval <= 3600:
        parser.error("--interval must be between 1 and 3600 seconds")
    # The release must outlast the wait for every first step, and the window.
    steps = math.ceil(args.seconds / args.interval) + SPARE_STEPS
    if steps > MAX_WEIGHT:
        parser.error(f"--seconds {args.seconds:.0f} needs {steps} steps of 1% at --interval {args.interval}, more than "
                     f"{MAX_WEIGHT}: shorten the window or lengthen the interval")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="canary-scale-") as tmp:
        try:
            measured = run(args, args.workdir.resolve() if args.workdir else Path(tmp))
        except BenchError as exc:
            print(f"bench failed: {exc}")
            return 2
    rows = measured.rows()
    print(f"\ncontroller from {args.source.resolve()}; the machine is shared: CPU and timing figures include "
          "whatever else ran on it\n")
    print(render_table(rows))
    print("\nAPI requests by the controller in the window (audit log), by verb and resource:\n")
    print(measured.requests_table())
    missed = [r.figure for r in rows if r.passed is False]
    if missed:
        print(f"\ntargets missed: {'; '.join(missed)}")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    raise SystemExit(main())
