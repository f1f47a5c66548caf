"""The per-Canary series of :class:`canary.telemetry.ControllerMetrics`, one small record per Canary.

prometheus_client's own metric objects keep every labelled series as a child object with its
own lock and value objects: about 21 series per Canary (a one-hot phase gauge, a counter per
rollback reason, a histogram per run result with a dozen buckets, ...), some 20 KiB per Canary,
which at a thousand Canaries was the largest part of the controller's memory that grows with
them. Here each Canary is one :class:`_Record` of plain values, and :class:`CanarySeries` (a
prometheus_client collector) builds the metric families from the records at scrape time. The
exposition is the same, name for name and label for label; the families are only built while
a scrape runs.

A value of ``None`` in a record means the series does not exist (it is not exported), which is
how the record keeps the old rule that a series appears when first set and disappears when
dropped. Every counter and histogram series of a Canary reports one ``_created`` time, the
moment its record was made, where prometheus_client had one per series: the series that came
later (a rollback reason first counted in a later run) were at zero since that moment, so the
time is still one from which the series counted up from zero.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

__all__ = ["CanarySeries", "CheckSeries", "LabelSets"]

_KEY = ("namespace", "name")
#: How prometheus_client writes a bucket's ``le`` (untyped in the library).
_go_float = cast(Callable[[float], str], floatToGoString)


@dataclass(frozen=True)
class LabelSets:
    """The closed sets of label values the series are exported over (the telemetry layer knows
    the domain's enums; this module does not need to)."""

    phases: tuple[str, ...]
    rollback_reasons: tuple[str, ...]
    run_buckets: tuple[float, ...]


#: One metric check's series: its measured value (NaN: no data) and its bounds; None: absent.
CheckSeries = tuple[str, float | None, float | None, float | None]


class _Record:
    """What one Canary's series say. Slotted and flat: there is one per Canary."""

    __slots__ = ("phase", "weight", "failed_checks", "stalled", "checks", "promotions", "reconcile_errors",
                 "rollbacks", "rollback_reasons_started", "runs", "created")

    def __init__(self) -> None:
        self.phase: str | None = None
        self.weight: float | None = None
        self.failed_checks: float | None = None
        self.stalled: float | None = None
        self.checks: tuple[CheckSeries, ...] = ()
        self.promotions: float | None = None
        self.reconcile_errors: float | None = None
        #: Counted rollbacks by reason; the reasons not in it are at 0 once started, else absent.
        self.rollbacks: dict[str, float] | None = None
        self.rollback_reasons_started = False
        #: By run result: per bucket (not cumulative, the last one +Inf) the count, then the sum.
        self.runs: dict[str, list[float]] | None = None
        self.created = time.time()


class CanarySeries:
    """A prometheus_client collector of every Canary's series; register it on a registry."""

    def __init__(self, names: LabelSets) -> None:
        self._names = names
        self._les = tuple(_go_float(b) for b in (*names.run_buckets, math.inf))
        self._records: dict[tuple[str, str], _Record] = {}
        # Writes come from the event loop, scrapes from the HTTP server (the same loop) or a test's
        # thread, releasing a shard from its coordinator: the dict is guarded, not each value.
        self._lock = threading.Lock()

    def _record(self, namespace: str, name: str) -> _Record:
        with self._lock:
            record = self._records.get((namespace, name))
            if record is None:
                record = self._records[(namespace, name)] = _Record()
            return record

    # --- writers (ControllerMetrics's setters call these) ---------------------------------------

    def set_phase(self, namespace: str, name: str, phase: str) -> None:
        self._record(namespace, name).phase = phase

    def set_weight(self, namespace: str, name: str, weight: float) -> None:
        self._record(namespace, name).weight = float(weight)

    def set_failed_checks(self, namespace: str, name: str, failed: float) -> None:
        self._record(namespace, name).failed_checks = float(failed)

    def set_stalled(self, namespace: str, name: str, stalled: bool) -> None:
        self._record(namespace, name).stalled = 1.0 if stalled else 0.0

    def set_check_value(self, namespace: str, name: str, check: str, value: float) -> None:
        record = self._record(namespace, name)
        others = tuple(c for c in record.checks if c[0] != check)
        old = next((c for c in record.checks if c[0] == check), None)
        low, high = (old[2], old[3]) if old is not None else (None, None)
        record.checks = (*others, (check, value, low, high))

    def set_checks(self, namespace: str, name: str, checks: Sequence[CheckSeries]) -> None:
        """Replace every check series of the Canary: those of checks not in ``checks`` go."""
        self._record(namespace, name).checks = tuple(checks)

    def start_counters(self, namespace: str, name: str) -> None:
        """Export the Canary's counters at 0 (see ``ControllerMetrics._start_counters``); once."""
        record = self._record(namespace, name)
        if record.promotions is not None:
            return
        record.promotions = 0.0
        if record.reconcile_errors is None:
            record.reconcile_errors = 0.0
        record.rollback_reasons_started = True

    def promoted(self, namespace: str, name: str) -> None:
        record = self._record(namespace, name)
        record.promotions = (record.promotions or 0.0) + 1

    def reconcile_failed(self, namespace: str, name: str) -> None:
        record = self._record(namespace, name)
        record.reconcile_errors = (record.reconcile_errors or 0.0) + 1

    def rolled_back(self, namespace: str, name: str, reason: str) -> None:
        record = self._record(namespace, name)
        if record.rollbacks is None:
            record.rollbacks = {}
        record.rollbacks[reason] = record.rollbacks.get(reason, 0.0) + 1

    def run_finished(self, namespace: str, name: str, result: str, seconds: float) -> None:
        record = self._record(namespace, name)
        if record.runs is None:
            record.runs = {}
        counts = record.runs.get(result)
        if counts is None:
            counts = record.runs[result] = [0.0] * (len(self._les) + 1)
        bucket = next((i for i, bound in enumerate(self._names.run_buckets) if seconds <= bound),
                      len(self._names.run_buckets))
        counts[bucket] += 1
        counts[-1] += seconds

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._records.pop((namespace, name), None)

    # --- the collector --------------------------------------------------------------------------

    def describe(self) -> Iterable[Metric]:
        # Names only, so that the registry refuses a second collector exporting them.
        return _Families().all()

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            records = list(self._records.items())
        f = _Families()
        for (namespace, name), r in records:
            key = [namespace, name]
            if r.phase is not None:
                for candidate in self._names.phases:
                    f.phase.add_metric([*key, candidate], 1.0 if candidate == r.phase else 0.0)
            if r.weight is not None:
                f.weight.add_metric(key, r.weight)
            if r.failed_checks is not None:
                f.failed_checks.add_metric(key, r.failed_checks)
            if r.stalled is not None:
                f.stalled.add_metric(key, r.stalled)
            for check, value, minimum, maximum in r.checks:
                for family, number in ((f.check_value, value), (f.check_min, minimum), (f.check_max, maximum)):
                    if number is not None:
                        family.add_metric([*key, check], number)
            if r.promotions is not None:
                f.promotions.add_metric(key, r.promotions, created=r.created)
            if r.reconcile_errors is not None:
                f.reconcile_errors.add_metric(key, r.reconcile_errors, created=r.created)
            for reason, count in self._rollbacks(r):
                f.rollbacks.add_metric([*key, reason], count, created=r.created)
            for result, counts in (r.runs or {}).items():
                self._add_run(f.run_duration, [*key, result], counts, r.created)
        return f.all()

    def _rollbacks(self, record: _Record) -> Iterator[tuple[str, float]]:
        counted = record.rollbacks or {}
        if record.rollback_reasons_started:
            for reason in self._names.rollback_reasons:
                yield reason, counted.get(reason, 0.0)
        for reason, count in counted.items():
            if not record.rollback_reasons_started or reason not in self._names.rollback_reasons:
                yield reason, count

    def _add_run(self, family: HistogramMetricFamily, labels: list[str], counts: list[float], created: float) -> None:
        cumulative, buckets = 0.0, []
        for le, count in zip(self._les, counts):
            cumulative += count
            buckets.append((le, cumulative))
        family.add_metric(labels, buckets, counts[-1])
        family.samples.append(Sample(family.name + "_created", dict(zip(("namespace", "name", "result"), labels)),
                                     created, None))


class _Families:
    """The metric families of one scrape (or of ``describe``: the names, without samples)."""

    def __init__(self) -> None:
        check = (*_KEY, "check")
        self.phase = GaugeMetricFamily("canary_phase", "1 for the Canary's current phase, 0 for the others.",
                                       labels=(*_KEY, "phase"))
        self.weight = GaugeMetricFamily("canary_weight", "Percent of traffic routed to the canary.", labels=_KEY)
        self.check_value = GaugeMetricFamily("canary_check_value", "Last value measured by a metric check.",
                                             labels=check)
        self.failed_checks = GaugeMetricFamily("canary_failed_checks", "Failed checks counted in the current run.",
                                               labels=_KEY)
        self.promotions = CounterMetricFamily("canary_promotions", "Runs that ended in promotion.", labels=_KEY)
        self.rollbacks = CounterMetricFamily("canary_rollbacks", "Runs rolled back, by bounded reason.",
                                             labels=(*_KEY, "reason"))
        self.run_duration = HistogramMetricFamily("canary_run_duration_seconds", "Duration of finished runs.",
                                                  labels=(*_KEY, "result"))
        self.reconcile_errors = CounterMetricFamily("canary_reconcile_errors", "Reconciliations that raised.",
                                                    labels=_KEY)
        self.stalled = GaugeMetricFamily("canary_stalled", "1 while the Canary's Stalled condition is True, else 0.",
                                         labels=_KEY)
        self.check_min = GaugeMetricFamily("canary_check_min", "Lower bound of a metric check; absent when it has "
                                           "none.", labels=check)
        self.check_max = GaugeMetricFamily("canary_check_max", "Upper bound of a metric check; absent when it has "
                                           "none.", labels=check)

    def all(self) -> list[Metric]:
        # In the order the metric objects used to be registered in, so the exposition reads the same.
        return [self.phase, self.weight, self.check_value, self.failed_checks, self.promotions, self.rollbacks,
                self.run_duration, self.reconcile_errors, self.stalled, self.check_min, self.check_max]
