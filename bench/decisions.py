"""How well the controller decides: seeded Monte-Carlo releases through the real ``decide()``,
probe runner and Prometheus provider, with only the Prometheus HTTP call simulated
(:mod:`bench.releases`, :mod:`bench.traffic`, :mod:`bench.simulated_prometheus`).

Two rules run on the same seeds: Flagger's (a count of failed intervals against absolute
thresholds) and the statistical judge (the same analysis plus ``judge: {}``), the latter only
where this build has it (``analysis.judge`` parsed, a judge probe in ``decide()``). Per scenario and rule it prints P(rollback),
P(promote), P(stuck), the canary's exposure until the decision, the failed requests it served
until then, and then issue 10's targets with PASS or FAIL.

Run: ``make bench`` (after the efficiency figures), or alone:
``.venv/bin/python -m bench.decisions [--runs N] [--seed S] [--jobs J] [--quick] [--only TEXT]
[--watch-echo]``.
Exits non-zero only if a run breaks (an unknown query, an unsafe action); missed targets are
reported, not fatal, since they are what the table is for.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

from bench.releases import PRIMARY, Bench, Outcome, RunResult, Scenario, simulated_prometheus_http
from bench.traffic import Version
from canary.domain.machine import Probe
from canary.domain.spec import CanarySpec
from canary.telemetry import configure_logging
from tests.domain.world import make_spec

#: Issue 10's setting: the analysis Flagger users run, with absolute thresholds.
FLAGGER_ANALYSIS: Mapping[str, Any] = {
    "interval": "1m", "threshold": 5, "stepWeight": 10, "maxWeight": 50,
    "metrics": [
        {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"},
        {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "1m"},
    ],
}
FLAGGER = "flagger"
JUDGE = "judge"
RULES: Mapping[str, Mapping[str, Any]] = {
    FLAGGER: FLAGGER_ANALYSIS,
    JUDGE: {**FLAGGER_ANALYSIS, "judge": {}},
}
DEFAULT_RUNS = 200
QUICK_RUNS = 20
#: Promotions of a regression this large (points) count against the judge once the canary has
#: served this many requests.
GROSS_POINTS = 2.0
ENOUGH_REQUESTS = 200


def _errors(points: float, rps: float) -> Scenario:
    canary = Version(PRIMARY.failure_probability + points / 100.0, PRIMARY.median_ms, PRIMARY.p99_ms)
    return Scenario(f"errors +{points:g}pt @{rps:g}rps", rps, canary, error_points=points)


def _latency(factor: float, rps: float) -> Scenario:
    return Scenario(f"p99 x{factor:g} @{rps:g}rps", rps, PRIMARY.scaled_latency(factor), latency_factor=factor)


SCENARIOS: tuple[Scenario, ...] = (
    *(Scenario(f"healthy @{rps:g}rps", rps, PRIMARY) for rps in (0.2, 1, 10, 100)),
    *(_errors(points, rps) for points in (1, 2, 5, 50) for rps in (1, 10, 100)),
    *(_latency(factor, rps) for factor in (1.2, 2) for rps in (10, 100)),
)


def scenario_index(name: str) -> int:
    """The position of the scenario called ``name`` in SCENARIOS (what ``simulate`` takes)."""
    return next(i for i, s in enumerate(SCENARIOS) if s.name == name)


def rule_spec(rule: str) -> CanarySpec:
    return make_spec(**RULES[rule])


def judge_available() -> bool:
    """Whether this build has the judge: the spec parser knows ``analysis.judge`` (it ignores
    unknown fields) and ``decide()`` can ask for it."""
    return getattr(rule_spec(JUDGE).analysis, "judge", None) is not None and "JUDGE" in Probe.__members__


def seed_for(seed: int, scenario: int, run: int) -> np.random.SeedSequence:
    """The same traffic seed for every rule: the rules differ, never the luck."""
    return np.random.SeedSequence([seed, scenario, run])


@dataclass(frozen=True)
class Block:
    """A unit of work for one process: some runs of one scenario under one rule."""

    rule: str
    scenario: int
    runs: range
    seed: int
    watch_echo: bool = False


async def _run_blocks(blocks: Sequence[Block]) -> list[list[RunResult]]:
    out: list[list[RunResult]] = []
    async with aiohttp.ClientSession() as session:
        bench = Bench(session)
        try:
            with simulated_prometheus_http():
                for block in blocks:
                    spec = rule_spec(block.rule)
                    scenario = SCENARIOS[block.scenario]
                    out.append([await bench.release(spec, scenario, seed_for(block.seed, block.scenario, run),
                                                    watch_echo=block.watch_echo)
                                for run in block.runs])
        finally:
            bench.close()
    return out


def run_blocks(blocks: Sequence[Block]) -> list[list[RunResult]]:
    configure_logging("error")
    return asyncio.run(_run_blocks(blocks))


@dataclass
class Row:
    """One scenario under one rule, over all its runs."""

    scenario: Scenario
    rule: str
    results: list[RunResult] = field(default_factory=list)

    def share(self, predicate: Callable[[RunResult], bool]) -> float:
        return sum(1 for r in self.results if predicate(r)) / len(self.results)

    def p(self, outcome: Outcome) -> float:
        return self.share(lambda r: r.outcome is outcome)

    @property
    def median_exposure(self) -> float | None:
        values = [r.exposure_intervals for r in self.results if r.exposure_intervals is not None]
        return statistics.median(values) if values else None

    @property
    def causes(self) -> Counter[str]:
        return Counter(r.cause or "?" for r in self.results if r.outcome is Outcome.ROLLBACK)

    @property
    def mean_failures(self) -> float:
        return statistics.fmean(r.canary_failures for r in self.results)

    @property
    def rolled_back_within_one_interval(self) -> float:
        return self.share(lambda r: r.outcome is Outcome.ROLLBACK and r.exposure_intervals is not None
                          and r.exposure_intervals <= 1.0)

    @property
    def promoted_with_enough_requests(self) -> int:
        return sum(1 for r in self.results
                   if r.outcome is Outcome.PROMOTE and r.canary_requests >= ENOUGH_REQUESTS)


Results = dict[tuple[str, int], Row]


def simulate(rules: Sequence[str], scenarios: Iterable[int], runs: int, seed: int, jobs: int = 1, *,
             watch_echo: bool = False) -> Results:
    """Every (rule, scenario) pair for ``runs`` seeded releases, over ``jobs`` processes."""
    chunk = max(1, min(runs, 50))
    blocks = [Block(rule, s, range(start, min(start + chunk, runs)), seed, watch_echo)
              for s in scenarios for rule in rules for start in range(0, runs, chunk)]
    if jobs <= 1:
        done = run_blocks(blocks)
    else:
        # Interleaved so each process gets cheap and expensive scenarios alike.
        shares = [blocks[i::jobs] for i in range(jobs)]
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            answers = list(pool.map(run_blocks, shares))
        by_block = {id(b): r for share, answer in zip(shares, answers, strict=True)
                    for b, r in zip(share, answer, strict=True)}
        done = [by_block[id(b)] for b in blocks]
    results: Results = {}
    for block, found in zip(blocks, done, strict=True):
        row = results.setdefault((block.rule, block.scenario), Row(SCENARIOS[block.scenario], block.rule))
        row.results.extend(found)
    return results


# --- the report --------------------------------------------------------------------------------


def _cell(row: Row) -> str:
    exposure = row.median_exposure
    return (f"{row.p(Outcome.ROLLBACK):6.1%} {row.p(Outcome.PROMOTE):6.1%} {row.p(Outcome.STUCK):6.1%} "
            f"{'-' if exposure is None else f'{exposure:.2f}':>5} {row.mean_failures:8.1f}")


def table(results: Results, rules: Sequence[str]) -> str:
    head = " rollbk promote  stuck  expo  failed"
    lines = [f"{'scenario':<24}" + "".join(f" | {rule:^{len(head) - 1}}" for rule in rules),
             f"{'':<24}" + "".join(f" |{head}" for _ in rules)]
    for index, scenario in enumerate(SCENARIOS):
        if all((rule, index) not in results for rule in rules):
            continue
        lines.append(f"{scenario.name:<24}" + "".join(
            f" | {_cell(results[(rule, index)])}" for rule in rules if (rule, index) in results))
    return "\n".join(lines)


@dataclass(frozen=True)
class TargetCheck:
    rule: str
    target: str
    passed: bool
    detail: str


def _rows(results: Results, rule: str, keep: Callable[[Scenario], bool]) -> list[Row]:
    return [row for (r, _), row in results.items() if r == rule and keep(row.scenario)]


def targets(results: Results, rule: str, baseline: str | None) -> list[TargetCheck]:
    """Issue 10's targets for ``rule``; the failed-request ratio needs ``baseline`` (Flagger)."""
    checks: list[TargetCheck] = []

    def add(name: str, rows: list[Row], ok: Callable[[Row], bool], show: Callable[[Row], str]) -> None:
        if rows:
            checks.append(TargetCheck(rule, name, all(ok(r) for r in rows), _detail(rows, ok, show)))

    add("false rollbacks of healthy canaries <= 1% at >= 0.5 rps",
        _rows(results, rule, lambda s: s.healthy and s.rps >= 0.5),
        lambda r: r.p(Outcome.ROLLBACK) <= 0.01, lambda r: f"{r.p(Outcome.ROLLBACK):.1%}")
    add(f"0 promotions of >= {GROSS_POINTS:g}-point regressions after >= {ENOUGH_REQUESTS} canary requests",
        _rows(results, rule, lambda s: s.error_points >= GROSS_POINTS),
        lambda r: r.promoted_with_enough_requests == 0, lambda r: str(r.promoted_with_enough_requests))
    add("50%-error canary rolled back within one interval in >= 99% at >= 1 rps",
        _rows(results, rule, lambda s: s.error_points >= 50 and s.rps >= 1),
        lambda r: r.rolled_back_within_one_interval >= 0.99, lambda r: f"{r.rolled_back_within_one_interval:.1%}")
    add("+100% p99 rolled back in >= 95% at >= 10 rps",
        _rows(results, rule, lambda s: s.latency_factor >= 2 and s.rps >= 10),
        lambda r: r.p(Outcome.ROLLBACK) >= 0.95, lambda r: f"{r.p(Outcome.ROLLBACK):.1%}")
    if baseline is not None:
        pairs = [(row, results[(baseline, index)]) for (r, index), row in results.items()
                 if r == rule and not row.scenario.healthy and (baseline, index) in results]
        theirs = {id(mine): base for mine, base in pairs}
        add(f"failed requests before the decision <= 1/3 of {baseline}'s in every regression row",
            [mine for mine, _ in pairs], lambda r: r.mean_failures <= theirs[id(r)].mean_failures / 3,
            lambda r: f"{r.mean_failures:.1f} vs {theirs[id(r)].mean_failures:.1f}")
    add("never stuck (every run ends within 3x its nominal duration)",
        _rows(results, rule, lambda s: True), lambda r: r.p(Outcome.STUCK) == 0.0,
        lambda r: f"{r.p(Outcome.STUCK):.1%}")
    return checks


def _detail(rows: Sequence[Row], ok: Callable[[Row], bool], show: Callable[[Row], str]) -> str:
    """Each row's figure, misses marked; a long list that all met the target is summarised."""
    if len(rows) > 6 and all(ok(r) for r in rows):
        return f"all {len(rows)} rows met it"
    return ", ".join(f"{r.scenario.name}: {show(r)}{'' if ok(r) else ' (missed)'}" for r in rows)


def report(results: Results, rules: Sequence[str], runs: int, seed: int, elapsed: float, *,
           watch_echo: bool = False) -> str:
    woken = ("after every status change too (--watch-echo)" if watch_echo
             else "only when decide() asked (requeue_after)")
    lines = [
        f"Decisions over whole releases: {runs} seeded runs per scenario (seed {seed}), the controller woken "
        f"{woken}; primary at "
        f"{PRIMARY.failure_probability:.1%} errors, p99 {PRIMARY.p99_ms:g} ms; interval 1m, threshold 5, "
        "stepWeight 10, maxWeight 50, success rate >= 99%, p99 <= 500 ms.",
        "rollbk/promote/stuck: share of runs; expo: median intervals from the canary's first traffic to the "
        "decision; failed: mean failed requests the canary served before the decision.",
        table(results, rules),
        "",
        "Rollback causes:",
    ]
    for rule in rules:
        rows = [row for (r, _), row in sorted(results.items(), key=lambda item: item[0][1]) if r == rule and row.causes]
        lines.append(f"  {rule}: " + "; ".join(
            f"{row.scenario.name} " + ", ".join(f"{cause} {n}" for cause, n in row.causes.most_common())
            for row in rows))
    lines += ["", "Issue 10's targets:"]
    for rule in rules:
        for check in targets(results, rule, FLAGGER if rule != FLAGGER and FLAGGER in rules else None):
            lines.append(f"  [{'PASS' if check.passed else 'FAIL'}] {rule}: {check.target}")
            lines.append(f"         {check.detail}")
    lines.append(f"({elapsed:.0f} s)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decisions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=None, help=f"runs per scenario and rule ({DEFAULT_RUNS})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_RUNS} runs per scenario")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes")
    parser.add_argument("--only", default="", help="the scenarios whose name contains this text")
    parser.add_argument("--watch-echo", action="store_true",
                        help="also run a pass right after every status change, as the real controller's watch "
                             "of its own writes does (default: only when decide() asked to be woken)")
    args = parser.parse_args(argv)
    runs = args.runs or (QUICK_RUNS if args.quick else DEFAULT_RUNS)
    rules = [FLAGGER, JUDGE] if judge_available() else [FLAGGER]
    if JUDGE not in rules:
        print("judge: this build has no analysis.judge or no judge probe in decide() yet; only the Flagger rule runs")
    started = time.perf_counter()
    chosen = [i for i, s in enumerate(SCENARIOS) if args.only in s.name]
    results = simulate(rules, chosen, runs, args.seed, jobs=args.jobs, watch_echo=args.watch_echo)
    print(report(results, rules, runs, args.seed, time.perf_counter() - started, watch_echo=args.watch_echo))
    return 0


if __name__ == "__main__":
    sys.exit(main())
