"""The arithmetic of the scale bench (``bench.scale``), kept pure so unit tests can check it.

* Quantiles from a Prometheus histogram's cumulative bucket counts, interpolated within the
  bucket as ``histogram_quantile`` does, applied to the difference of two scrapes (so only the
  observations made in the measured window count).
* Percentiles of plain samples (linear between closest ranks).
* From audit records: the controller's requests per minute by verb and resource, and the gaps
  between consecutive status writes of each progressing Canary, which minus the interval are the
  ticks' lateness as the API server saw it.
* The report: one row per figure with its target and a verdict, printed as a table.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from e2e.harness.audit import AuditRecord

#: A sample of an exposition: metric name, then its labels sorted.
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def parse_exposition(text: str) -> dict[SampleKey, float]:
    """Every sample of a Prometheus text exposition, by name and labels."""
    samples: dict[SampleKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return samples


def sum_samples(samples: Mapping[SampleKey, float], name: str, **match: str) -> float | None:
    """The sum of the samples named ``name`` whose labels include ``match``; None if there are none."""
    found = [value for (sample, labels), value in samples.items()
             if sample == name and all(dict(labels).get(k) == v for k, v in match.items())]
    return sum(found) if found else None


def histogram_buckets(samples: Mapping[SampleKey, float], name: str) -> list[tuple[float, float]]:
    """``name``'s cumulative buckets as (upper bound, count), summed over any labels, by bound."""
    by_bound: dict[float, float] = {}
    for (sample, labels), value in samples.items():
        if sample == f"{name}_bucket":
            bound = float(dict(labels)["le"])
            by_bound[bound] = by_bound.get(bound, 0.0) + value
    return sorted(by_bound.items())


def bucket_deltas(before: Sequence[tuple[float, float]],
                  after: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The observations between two scrapes of one histogram (a bound absent before counts from 0)."""
    earlier = dict(before)
    return [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile (0..1) of cumulative ``buckets`` (upper bound, count), interpolated
    linearly within its bucket; the highest finite bound if it falls in +Inf; None if empty."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values``, linear between the closest ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def per_minute(count: float, seconds: float) -> float:
    return count * 60.0 / seconds if seconds > 0 else 0.0


def in_window(records: Iterable[AuditRecord], start: datetime, end: datetime) -> list[AuditRecord]:
    """The records received in [start, end)."""
    return [r for r in records if start <= r.received < end]


def requests_by_verb_and_resource(records: Iterable[AuditRecord]) -> Counter[tuple[str, str]]:
    """How many requests per (verb, resource[/subresource])."""
    counted: Counter[tuple[str, str]] = Counter()
    for record in records:
        resource = record.resource or record.uri.split("?")[0]
        if record.subresource:
            resource = f"{resource}/{record.subresource}"
        counted[(record.verb, resource)] += 1
    return counted


def is_status_write(record: AuditRecord, resource: str = "canaries") -> bool:
    return record.is_write and record.resource == resource and record.subresource == "status"


def is_event_creation(record: AuditRecord) -> bool:
    return record.verb == "create" and record.resource == "events"


def succeeded_status_writes(records: Iterable[AuditRecord], names: Iterable[str]) -> Iterator[AuditRecord]:
    """The status writes of the Canaries in ``names`` that the API server accepted."""
    wanted = set(names)
    return (r for r in records if is_status_write(r) and r.succeeded and r.name in wanted)


def p50_p99_ms(values: Sequence[float]) -> str:
    """``"p50 / p99 ms"`` of ``values`` in seconds, or ``"none"``."""
    if not values:
        return "none"
    return f"{1000 * (percentile(values, 0.5) or 0):.0f} / {1000 * (percentile(values, 0.99) or 0):.0f} ms"


def status_write_gaps(records: Iterable[AuditRecord], names: Iterable[str], interval: float) -> list[float]:
    """Seconds between consecutive status writes of each Canary in ``names``, all Canaries pooled.

    A pass may write status more than once (a step, then the route's outcome); gaps under half the
    interval are such repeats within one tick, not a tick, and are left out.
    """
    times: dict[str, list[datetime]] = {}
    for record in succeeded_status_writes(records, names):
        times.setdefault(record.name or "", []).append(record.received)  # named: it is in ``names``
    gaps: list[float] = []
    for stamps in times.values():
        stamps.sort()
        ticks = [stamps[0]] if stamps else []
        for stamp in stamps[1:]:
            if (stamp - ticks[-1]).total_seconds() >= interval / 2:
                ticks.append(stamp)
        gaps.extend((b - a).total_seconds() for a, b in zip(ticks, ticks[1:]))
    return gaps


def first_writes_of_rounds(records: Iterable[AuditRecord], names: Iterable[str]) -> list[float]:
    """For each round (the Canaries in ``names`` due in the same whole second), seconds from that
    second to the first status write the API server received from it.

    Ticks are planned on whole seconds (status times are stored to the second), so the first
    write of a round is its start seen from outside: the gap of a tick to the next also holds how
    far down its round's queue of writes a Canary came, which changes from round to round. Assumes
    a round's first write lands within its second, as it does when ticks start on time.
    """
    first: dict[datetime, float] = {}
    for record in succeeded_status_writes(records, names):
        second = record.received.replace(microsecond=0)
        offset = (record.received - second).total_seconds()
        first[second] = min(offset, first.get(second, offset))
    return sorted(first.values())


def tick_to_tick(gaps: Iterable[float], interval: float) -> tuple[list[float], int]:
    """The gaps of one tick to the next (under 1.5 intervals), and how many were longer.

    A longer gap is a tick that wrote no status (it held, or its write was refused) or one more
    than half an interval late: counted apart, so one missing write does not read as a 10 s
    lateness in the percentiles or raise the mean gap.
    """
    kept = [g for g in gaps if g < 1.5 * interval]
    return kept, sum(1 for g in gaps if g >= 1.5 * interval)


@dataclass(frozen=True)
class Row:
    """One figure of the report: its value, the target it is held to (if any) and whether it held."""

    figure: str
    value: str
    target: str = ""
    passed: bool | None = None

    @property
    def verdict(self) -> str:
        return "" if self.passed is None else "pass" if self.passed else "FAIL"


def judged(figure: str, value: float | None, unit: str, *, at_most: float, target: str, digits: int = 2) -> Row:
    """A row held to ``value <= at_most``; a figure that could not be measured is a failure."""
    if value is None:
        return Row(figure, "not measured", target, False)
    return Row(figure, f"{value:.{digits}f} {unit}".strip(), target, value <= at_most)


def render_table(rows: Sequence[Row]) -> str:
    header = Row("figure", "value", "target", None)
    widths = [max(len(r.figure) for r in (header, *rows)), max(len(r.value) for r in (header, *rows)),
              max(len(r.target) for r in (header, *rows))]
    lines = [f"{header.figure:<{widths[0]}}  {header.value:>{widths[1]}}  {header.target:<{widths[2]}}  verdict"]
    lines.append("-" * len(lines[0]))
    lines += [f"{r.figure:<{widths[0]}}  {r.value:>{widths[1]}}  {r.target:<{widths[2]}}  {r.verdict}".rstrip()
              for r in rows]
    return "\n".join(lines)


def due_seconds(analysis_times: Iterable[str], interval: float) -> int:
    """How many distinct seconds of the interval the given ticks fall on: the evaluation rounds
    Canaries can share (ticks stay on whole seconds, so at most ``interval`` of them)."""
    phases = set()
    for stamp in analysis_times:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        phases.add(round(when.timestamp()) % max(round(interval), 1))
    return len(phases)
