"""What the controller tells its operators about itself: JSON logs, Prometheus metrics, probes.

Three parts, each usable on its own:

* :func:`configure_logging` makes every line on stdout one JSON object, whether it came from
  structlog (our code) or from stdlib ``logging`` (kopf, aiohttp, kubernetes). Lines about one
  Canary carry ``namespace`` and ``name``: ours through :func:`bind_canary`, kopf's through the
  object reference kopf attaches to its per-object records.
* :class:`ControllerMetrics` holds the controller's own series on a registry it is given, so
  tests and embedders never share the process-wide default registry. Their names are a public
  interface: ``integrations/grafana`` and the chart's PrometheusRule query them.
* :func:`serve_http` exposes ``/metrics``, ``/healthz`` and ``/readyz`` on one port.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Any, TextIO, TypeVar

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from structlog.typing import EventDict, Processor, WrappedLogger

from canary.canary_series import CanarySeries, LabelSets
from canary.domain.machine import RollbackCause
from canary.domain.status import CanaryStatus, CheckKind, CheckResult, ConditionType, Phase

__all__ = [
    "ControllerMetrics",
    "RunResult",
    "bind_canary",
    "configure_logging",
    "serve_http",
]

# --- logging -----------------------------------------------------------------------------------

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _JsonHandler(logging.StreamHandler[TextIO]):
    """Marks the handler we installed, so reconfiguring replaces it instead of adding a second."""


def _kopf_object_ref(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # kopf's per-object loggers attach ``k8s_ref`` (apiVersion, kind, name, uid, namespace) to the
    # record; lifting namespace and name to the top level makes kopf's lines searchable with the
    # same keys as ours.
    record = event_dict.get("_record")
    ref = getattr(record, "k8s_ref", None)
    if isinstance(ref, Mapping):
        for key in ("namespace", "name", "kind"):
            value = ref.get(key)
            if value:
                event_dict.setdefault(key, value)
    return event_dict


def configure_logging(level: str, *, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to one JSON-lines handler on ``stream`` (stdout).

    ``level`` is one of debug, info, warning, error (case-insensitive). Call once at start-up,
    before kopf starts; do not call ``kopf.configure()`` afterwards, as it adds its own text
    handler to the root logger.
    """
    try:
        numeric = _LEVELS[level.lower()]
    except KeyError as exc:
        # A programming or CLI error, not a manifest error: the CLI validates its choices first.
        raise ValueError(f"log level {level!r} is not one of {', '.join(_LEVELS)}") from exc

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _kopf_object_ref],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            # "message" rather than structlog's "event": log stores look for it, and "event"
            # reads like a Kubernetes Event in this domain.
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(default=str),
        ],
    )
    handler = _JsonHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _JsonHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # kopf reports every handler and indexer call ("Handler ... succeeded") at INFO: one line per
    # watch event of every Deployment, Service and route, which buries the controller's own
    # lines. Our own log says what was done; kopf's per-object chatter shows only at debug.
    logging.getLogger("kopf.objects").setLevel(numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a module-level logger used before configure_logging (at import, in tests)
        # would otherwise keep the old configuration for the life of the process.
        cache_logger_on_first_use=False,
    )


def bind_canary(namespace: str, name: str, **context: Any) -> structlog.stdlib.BoundLogger:
    """A logger whose every line names the Canary it is about."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger("canary").bind(
        namespace=namespace, name=name, **context
    )
    return logger


# --- metrics -----------------------------------------------------------------------------------


class RunResult(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    OTHER = "other"


_E = TypeVar("_E", bound=StrEnum)
UNKNOWN_LABEL = "other"


def _bounded(kind: type[_E], value: str, fallback: _E | None) -> str:
    # Free text (an exception message, a user's annotation value) must never become a label
    # value: each distinct value is a new series kept in memory and in Prometheus forever.
    try:
        return kind(value).value
    except ValueError:
        return fallback.value if fallback is not None else UNKNOWN_LABEL


#: The kinds of metric query (canary.metrics.prometheus.QueryKind's values; telemetry does not
#: import the metrics layer).
_QUERY_KINDS = frozenset({"batched", "single"})

#: Runs last from minutes to hours; buckets up to 8h cover slow blue/green soak tests.
_RUN_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0)
# Fine below the 100 ms target (issue 13), coarse beyond it.
_LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

class ControllerMetrics:
    """The controller's series for every Canary it manages.

    Every series but the replica's own (``canary_leader``, tick lateness, shard buckets, dropped
    notifications, metric queries) carries ``namespace`` and ``name``; :meth:`forget` drops all
    of a Canary's series when it is deleted, so a busy cluster does not accumulate dead series.
    The per-Canary series are one compact record per Canary, turned into metric families at
    scrape time (:mod:`canary.canary_series`): as prometheus_client metric objects they cost
    about 20 KiB per Canary.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.canaries = CanarySeries(LabelSets(
            phases=tuple(p.value for p in Phase),
            rollback_reasons=tuple(c.value for c in RollbackCause),
            run_buckets=_RUN_BUCKETS,
        ))
        r.register(self.canaries)
        # Series about the replica rather than a Canary: forget() never touches them.
        # How late a pass the controller planned (an analysis tick, a readiness poll, a judge's
        # look) started: the event loop's backlog, as the Canaries feel it.
        self.tick_lateness = Histogram(
            "canary_tick_lateness_seconds", "How long after its planned moment a planned reconciliation started.",
            buckets=_LATENESS_BUCKETS, registry=r)
        self.leader = Gauge("canary_leader", "1 while this replica holds the leader Lease (sharded: at least one "
                            "bucket Lease), else 0.", registry=r)
        self.shard_buckets = Gauge("canary_shard_buckets", "Hash buckets of Canaries this replica holds the Lease "
                                   "of and acts on (0 without sharding).", registry=r)
        # By chat system only: a drop is about a destination, and per-Canary series would
        # outlive the Canaries they name.
        self.notifications_dropped = Counter(
            "canary_notifications_dropped", "Notifications given up on (retries spent or queue full), by system.",
            ("system",), registry=r)
        # By kind only (batched: one query for several Canaries' builtin check; single: one
        # Canary's); the provider label is the provider type, never an address.
        self.metric_queries = Counter(
            "canary_metric_queries", "PromQL queries sent to metric providers, by provider and kind.",
            ("provider", "kind"), registry=r)
        for kind in sorted(_QUERY_KINDS):
            # Exported at 0 from the start, so that increase() sees the first query.
            self.metric_queries.labels("prometheus", kind)

    def set_phase(self, namespace: str, name: str, phase: Phase) -> None:
        # Exported one-hot over every phase (not just the current one) so that a dashboard can
        # sum by phase without stale 1s from a phase the Canary left.
        self.canaries.set_phase(namespace, name, phase.value)

    def set_weight(self, namespace: str, name: str, weight: int) -> None:
        self.canaries.set_weight(namespace, name, weight)

    def set_failed_checks(self, namespace: str, name: str, failed: int) -> None:
        self.canaries.set_failed_checks(namespace, name, failed)

    def set_check_value(self, namespace: str, name: str, check: str, value: float | None) -> None:
        """Record one metric check; no data is NaN, so a stale value is never mistaken for a fresh one."""
        self.canaries.set_check_value(namespace, name, check, math.nan if value is None else value)

    def observe_checks(self, namespace: str, name: str, checks: Iterable[CheckResult]) -> None:
        """Record a tick's metric checks with their bounds, dropping the series of checks no
        longer in the spec and of bounds a check no longer has."""
        self.canaries.set_checks(namespace, name, [
            (c.name, math.nan if c.value is None else c.value, c.min, c.max)
            for c in checks if c.kind is CheckKind.METRIC
        ])

    def set_stalled(self, namespace: str, name: str, stalled: bool) -> None:
        self.canaries.set_stalled(namespace, name, stalled)

    def observe_status(self, namespace: str, name: str, status: CanaryStatus) -> None:
        """Record every gauge that mirrors the Canary's status, as written after one pass."""
        self._start_counters(namespace, name)
        if status.phase is not None:
            self.set_phase(namespace, name, status.phase)
        self.set_weight(namespace, name, status.canary_weight)
        self.set_failed_checks(namespace, name, status.failed_checks)
        stalled = status.condition(ConditionType.STALLED)
        self.set_stalled(namespace, name, stalled is not None and stalled.status)
        self.observe_checks(namespace, name, status.checks)

    def track_leadership(self, is_leading: Callable[[], bool]) -> None:
        """Read ``canary_leader`` from ``is_leading`` at every scrape.

        Asked at scrape time rather than pushed on each change, so the gauge can never lag
        behind a Lease lost in the election thread.
        """
        self.leader.set_function(lambda: 1.0 if is_leading() else 0.0)

    def track_shards(self, held: Callable[[], int]) -> None:
        """Read ``canary_shard_buckets`` from ``held`` at every scrape; ``canary_leader`` is 1 while
        it is not zero (an alert on no replica leading then means: no replica acts on anything)."""
        self.shard_buckets.set_function(lambda: float(held()))
        self.leader.set_function(lambda: 1.0 if held() > 0 else 0.0)

    def _start_counters(self, namespace: str, name: str) -> None:
        # A counter whose series is born at 1 hides that first event from increase() and
        # rate() (they need a sample before it), so a Canary's first promotion, rollback or
        # error would never show on a dashboard. Every series is exported at 0 from the first
        # pass instead; the reasons are a closed set, so that costs a few series per Canary.
        self.canaries.start_counters(namespace, name)

    def promoted(self, namespace: str, name: str) -> None:
        self.canaries.promoted(namespace, name)

    def rolled_back(self, namespace: str, name: str, reason: RollbackCause | str) -> None:
        """Count a rollback by the decision's :class:`RollbackCause`; anything else is ``other``."""
        self.canaries.rolled_back(namespace, name, _bounded(RollbackCause, str(reason), None))

    def run_finished(self, namespace: str, name: str, result: RunResult | str, duration: timedelta) -> None:
        label = _bounded(RunResult, str(result), RunResult.OTHER)
        self.canaries.run_finished(namespace, name, label, max(duration.total_seconds(), 0.0))

    def tick_late(self, seconds: float) -> None:
        self.tick_lateness.observe(seconds)

    def reconcile_failed(self, namespace: str, name: str) -> None:
        self.canaries.reconcile_failed(namespace, name)

    def notification_dropped(self, system: str) -> None:
        self.notifications_dropped.labels(system).inc()

    def metric_query_sent(self, kind: str, provider: str = "prometheus") -> None:
        """Count one PromQL query; ``kind`` is ``batched`` or ``single``, anything else ``other``."""
        self.metric_queries.labels(provider, kind if kind in _QUERY_KINDS else UNKNOWN_LABEL).inc()

    def forget(self, namespace: str, name: str) -> None:
        """Drop every series of a deleted Canary."""
        self.canaries.forget(namespace, name)


# --- HTTP endpoints ----------------------------------------------------------------------------


async def serve_http(
    registry: CollectorRegistry,
    port: int,
    host: str = "0.0.0.0",
    *,
    is_ready: Callable[[], bool],
) -> web.AppRunner:
    """Start ``/metrics``, ``/healthz`` and ``/readyz``; the caller stops it with ``runner.cleanup()``.

    ``port=0`` picks a free port; read it from ``runner.addresses``. ``/healthz`` answers from
    the event loop itself, so a blocked loop fails the liveness probe; ``/readyz`` asks
    ``is_ready`` (for instance: caches synced and leadership settled).
    """
    log = structlog.stdlib.get_logger(__name__)

    async def metrics(request: web.Request) -> web.Response:
        # OpenMetrics when the scraper asks for it (exemplars, _created), text format otherwise.
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(registry), headers={"Content-Type": content_type})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        try:
            ready = is_ready()
        except Exception:
            log.exception("readiness check raised")
            ready = False
        if ready:
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    # Probes hit these every few seconds; access lines would drown the controller's own logs.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
