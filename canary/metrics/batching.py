"""Builtin checks of Canaries due at the same moment answered by one PromQL query per check.

The controller ticks Canaries on a whole-second grid, so Canaries with the same interval wake
together and ask the same builtin check (``request-success-rate``, ``request-duration``) of the
same Prometheus over the same window within a few milliseconds of each other. The batcher
collects such requests and sends one query for all of them
(:mod:`canary.metrics.batch_queries`), then gives each Canary its share of the answer, read
as its own query's answer would be (:mod:`canary.metrics.readings`). Prometheus's load then grows
with the number of distinct (Prometheus, mesh, check, window, kind of workload) per round, not
with the number of Canaries.

Requests share a batch when they have the same :class:`BatchKey`: the provider (so address and
credentials), the mesh preset, the check, the window as sent, and the workload kind (it picks the
workload label, and OSM selects on it). Namespaces and workloads are not part of the key: the
batched query selects them all.

When a batch is sent:

* :data:`BATCH_WINDOW` after its first request, so that Canaries waking "together" within that
  time share it;
* at once when it reaches :data:`MAX_BATCH_MEMBERS` or its selector would outgrow
  :data:`MAX_SELECTOR_CHARS` (the request then starts the next batch), so the query, its regular
  expressions and its answer stay bounded;
* not before the previous batch of the same key has its answer (unless full): requests that
  arrive while a query is in flight wait for it and go out together in the next one, so a slow
  Prometheus gets fewer, larger queries instead of a pile of small ones.

What each Canary gets is what its own query would give on the same data: the same value, the
same sample count, the same no-data result when it has no series, and the same ``source`` (its
own query's PromQL, which users can paste into Prometheus, and which stays the same from tick to
tick whoever shares the batch). A batch of one sends that Canary's own query. A failed batched
query (Prometheus down after the retries, a refused query) is the failure of every member, with
the same exception types as a single query's.

Not batched, one query per Canary as before: MetricTemplates (a user's query cannot be merged
without understanding it), the SMI source (not PromQL), and the judge's comparison queries. Every
builtin preset (linkerd, istio, osm, traefik) batches exactly; see the argument in
:mod:`canary.metrics.batch_queries`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from canary.config import Mesh
from canary.domain.durations import format_duration
from canary.metrics.base import MeasureRequest, Measurement
from canary.metrics.batch_queries import Member, Term, batched_query, member_terms, selector_chars
from canary.metrics.prometheus import PrometheusProvider, QueryKind
from canary.metrics.queries import MESHES, BuiltinQuery, builtin_query
from canary.metrics.readings import read_builtin

#: Seconds a batch stays open after its first request. Ticks on the whole-second grid start
#: within a few ms of each other on an idle controller and within tens of ms on a busy one;
#: 50 ms collects those, and delays a check by 1/20 of the shortest analysis interval (1 s) at most.
BATCH_WINDOW = 0.05
#: Canaries per batched query at most: 200 bounds the answer (a few series per Canary and check)
#: and the work to fan it out, while 1,000 progressing Canaries still need only 5 queries per check.
MAX_BATCH_MEMBERS = 200
#: Characters of regular expressions per batched query at most. Queries go out as GET, and many
#: proxies in front of Prometheus refuse a request line over 8 KiB (nginx's default buffer);
#: 4,000 characters stay under it after URL encoding, with the rest of the query.
MAX_SELECTOR_CHARS = 4000


@dataclass(frozen=True)
class BatchKey:
    """What requests must share to be answered by one query."""

    provider: PrometheusProvider
    mesh: Mesh
    metric: str
    window: str  # as sent: windows that format alike select the same samples
    target_kind: str


@dataclass
class _Waiter:
    request: MeasureRequest
    member: Member
    single: BuiltinQuery  # the member's own query: its source, and the query of a batch of one
    answer: asyncio.Future[Measurement]


@dataclass
class _Batch:
    key: BatchKey
    waiters: list[_Waiter] = field(default_factory=list)
    terms: set[Term] = field(default_factory=set)
    full: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Lane:
    """The batches of one key: the one collecting requests, and the one whose query is out."""

    open: _Batch | None = None
    in_flight: asyncio.Task[None] | None = None


class BuiltinBatcher:
    """Answers builtin checks asked of Prometheus providers, batching them (module docstring)."""

    def __init__(self, *, window: float = BATCH_WINDOW, max_members: int = MAX_BATCH_MEMBERS,
                 max_selector_chars: int = MAX_SELECTOR_CHARS) -> None:
        self._window = window
        self._max_members = max(1, max_members)
        self._max_selector_chars = max_selector_chars
        self._lanes: dict[BatchKey, _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        """Cancel the batches not yet answered; their callers see CancelledError."""
        for task in list(self._tasks):
            task.cancel()

    async def measure(self, provider: PrometheusProvider, request: MeasureRequest) -> Measurement:
        """``request``'s builtin check (``request.template`` is None). Raises as
        :meth:`PrometheusProvider.measure` does: ``TemplateError`` for an unsafe name,
        ``MetricError`` for a refused query or a name that is no builtin, ``ProviderUnavailable``."""
        mesh = request.mesh or provider.settings.mesh
        # The member's own query first: it validates every name, so an unsafe one fails alone.
        single = builtin_query(
            request.metric.name, mesh, namespace=request.namespace, target=request.target,
            window=request.window, target_kind=request.target_kind, canary_service=request.canary_service,
        )
        name = request.canary_service if MESHES[mesh].by_service and request.canary_service else request.target
        member = Member(namespace=request.namespace, name=name)
        key = BatchKey(provider=provider, mesh=mesh, metric=request.metric.name,
                       window=format_duration(request.window), target_kind=request.target_kind)
        waiter = _Waiter(request=request, member=member, single=single,
                         answer=asyncio.get_running_loop().create_future())
        self._join(key, waiter, member_terms(mesh, member, request.target_kind))
        return await waiter.answer

    def _join(self, key: BatchKey, waiter: _Waiter, terms: frozenset[Term]) -> None:
        lane = self._lanes.setdefault(key, _Lane())
        batch = lane.open
        if batch is not None and selector_chars(key.mesh, batch.terms | terms) > self._max_selector_chars:
            self._close(lane, batch)
            batch = None
        if batch is None:
            batch = _Batch(key)
            lane.open = batch
            task = asyncio.create_task(self._send(lane, batch), name=f"metric-batch-{key.metric}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        batch.waiters.append(waiter)
        batch.terms |= terms
        if len(batch.waiters) >= self._max_members:
            self._close(lane, batch)

    @staticmethod
    def _close(lane: _Lane, batch: _Batch) -> None:
        if lane.open is batch:
            lane.open = None
        batch.full.set()

    async def _send(self, lane: _Lane, batch: _Batch) -> None:
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(batch.full.wait(), self._window)
            await self._after_previous(lane, batch)
            self._close(lane, batch)
            lane.in_flight = asyncio.current_task()
            await self._answer(batch)
        finally:
            for waiter in batch.waiters:
                # Only when this task is cancelled (shutdown): nobody waits for ever.
                if not waiter.answer.done():
                    waiter.answer.cancel()
            if lane.in_flight is asyncio.current_task():
                lane.in_flight = None
            if lane.open is None and lane.in_flight is None and self._lanes.get(batch.key) is lane:
                del self._lanes[batch.key]

    @staticmethod
    async def _after_previous(lane: _Lane, batch: _Batch) -> None:
        """Wait while the lane's previous query is out, unless this batch fills up meanwhile."""
        previous = lane.in_flight
        if previous is None or previous.done() or batch.full.is_set():
            return
        filled = asyncio.ensure_future(batch.full.wait())
        try:
            await asyncio.wait({previous, filled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            filled.cancel()

    async def _answer(self, batch: _Batch) -> None:
        key, waiters = batch.key, batch.waiters
        try:
            if len(waiters) == 1:
                (waiter,) = waiters
                answers = [read_builtin(waiter.single, await key.provider.query(waiter.single.promql))]
            else:
                query = batched_query(key.metric, key.mesh, members=[w.member for w in waiters],
                                      window=waiters[0].request.window, target_kind=key.target_kind)
                shares = query.fan_out(await key.provider.query(query.promql, QueryKind.BATCHED))
                answers = [read_builtin(w.single, share) for w, share in zip(waiters, shares, strict=True)]
        except Exception as exc:  # every member gets the batch's failure, typed as a single query's
            for waiter in waiters:
                if not waiter.answer.done():
                    waiter.answer.set_exception(exc)
            return
        for waiter, answer in zip(waiters, answers, strict=True):
            if not waiter.answer.done():
                waiter.answer.set_result(answer)
