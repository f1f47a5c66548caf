"""The weighted L7 proxy: what every meshed client's sidecar does, in one place.

A request names its destination in ``Host`` (``<service>.<namespace>``, optionally followed by
``.svc`` or ``.svc.cluster.local`` and a port), or, playing the Gateway, a hostname of an
HTTPRoute attached to a Gateway. The proxy looks up the route, picks the rule by the Gateway
API's precedence, applies the rule's filters (request header modifier, URL rewrite; a copy goes
to each ``RequestMirror`` target, its answer counted and dropped), picks a backend Service at
random in proportion to the weights, then one ready Pod of that backend uniformly, applies the
backendRef's own filters, and forwards the request over HTTP to that Pod's server. Response
header modifiers apply to the answer. It answers by itself, as a mesh proxy fails fast, when
there is nothing to forward to:

* 404: the host is neither a Service address of an existing Service nor a Gateway route's
  hostname, or no HTTPRoute rule matches the request;
* 503: the weights sum to 0 (TrafficSplit), or the chosen backend has no ready Pod or does not
  exist; 500 for an HTTPRoute whose weights sum to 0 or an invalid backendRef (Gateway API);
* 502: the Pod's server could not be reached;
* 504: the rule's ``timeouts`` ran out before the Pod answered.

Proxy-generated answers carry the header ``l5d-proxy-error`` with the reason, like Linkerd's.
A client that sends ``x-mesh-client: <namespace>/<workload>[/<pod>]`` counts as meshed, so its
outbound side is reported in the metrics too (the load generator does this for Service
traffic); ``x-mesh-load: <stream>`` names the load stream in the stats.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from e2e.mesh.filters import Filters
from e2e.mesh.metrics import Client, MeshMetrics, RequestRecord
from e2e.mesh.objects import RouteMatch
from e2e.mesh.routes import Backend, Endpoint, Mirror, Route
from e2e.mesh.routing import RoutingTable
from e2e.mesh.stats import Epoch, Stats

CLIENT_HEADER = "x-mesh-client"
#: The load stream a request belongs to, for the per-stream counts of the stats.
LOAD_HEADER = "x-mesh-load"
ERROR_HEADER = "l5d-proxy-error"
BACKEND_HEADER = "x-mesh-backend"
POD_HEADER = "x-mesh-pod"
_DOMAIN_SUFFIXES = (".svc.cluster.local", ".svc")
_HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade", "content-length")
)  # fmt: skip
# Pod answers are small JSON; a slow Pod (latency annotation) must still answer well within this.
_FORWARD_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=5)


def parse_authority(host: str) -> tuple[str, str] | None:
    """``(service, namespace)`` addressed by a Host header, or None when it is not a Service."""
    name = host.strip().lower()
    if name.startswith("["):
        return None
    name = name.rsplit(":", 1)[0] if ":" in name else name
    name = name.rstrip(".")
    for suffix in _DOMAIN_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    parts = name.split(".")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]


def parse_client(value: str | None) -> Client | None:
    if not value:
        return None
    parts = value.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        return None
    return Client(namespace=parts[0], workload=parts[1], pod=parts[2] if len(parts) == 3 else parts[1])


class Proxy:
    def __init__(
        self,
        *,
        table: Callable[[], RoutingTable],
        port_of: Callable[[Endpoint], int | None],
        metrics: MeshMetrics,
        stats: Stats,
        rng: random.Random | None = None,
        backend_host: str = "127.0.0.1",
    ) -> None:
        self._table = table
        self._port_of = port_of
        self._metrics = metrics
        self._stats = stats
        self._rng = rng or random.Random()
        self._backend_host = backend_host
        self._session: aiohttp.ClientSession | None = None
        #: Mirrored copies in flight: nobody awaits them, so they are kept here.
        self._background: set[asyncio.Task[None]] = set()

    @property
    def mirrors_in_flight(self) -> int:
        """Mirrored copies sent and not yet answered (and so not yet counted)."""
        return len(self._background)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, _: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=256, limit_per_host=64, force_close=False)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=_FORWARD_TIMEOUT, auto_decompress=False, skip_auto_headers=("User-Agent",)
        )

    async def _close(self, _: web.Application) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def handle(self, request: web.Request) -> web.Response:
        host = request.headers.get("Host", "")
        route, why_not = self._route_for(host)
        if route is None:
            return _proxy_error(404, why_not)
        chosen = route.choose(request.method, request.path, request.headers, request.query)
        if chosen is None:
            return _proxy_error(404, f"no HTTPRoute rule of {_describe(route)} matches {request.method} {request.path}")
        rule_index, match = chosen
        rule = route.rules[rule_index]
        sent = _Sent(
            route=route,
            rule_index=rule_index,
            epoch=self._stats.epoch(route, rule_index, time.time()),
            client=parse_client(request.headers.get(CLIENT_HEADER)),
            stream=request.headers.get(LOAD_HEADER) or None,
            host=host,
        )
        outgoing = _Outgoing(
            method=request.method,
            # Forwarded as received (still percent-encoded), like a proxy that only rewrites.
            path=request.rel_url.raw_path,
            query=request.rel_url.raw_query_string,
            host=host,
            headers=CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP),
            body=await request.read() if request.can_read_body else None,
        )
        outgoing.apply(rule.filters, match)
        for mirror in rule.mirrors:
            if self._rng.random() < mirror.fraction:
                self._spawn(self._mirror(sent, mirror, outgoing))
        backend = rule.pick(self._rng)
        if backend is None:
            return self._fail(sent, None, rule.zero_weight_status, "NR", f"the backend weights of {_describe(route)} sum to 0")
        if backend.problem is not None:
            return self._fail(sent, backend, backend.problem_status, "NR", backend.problem)
        namespace = backend.namespace or route.namespace
        if not backend.endpoints:
            return self._fail(sent, backend, 503, "UH", f"Service {namespace}/{backend.service} has no ready pods")
        endpoint = self._rng.choice(backend.endpoints)
        port = self._port_of(endpoint)
        if port is None:
            return self._fail(sent, backend, 503, "UH", f"pod {namespace}/{endpoint.name} is not serving")
        if not backend.filters.empty:
            outgoing = outgoing.copy()
            outgoing.apply(backend.filters, match)
        answer = await self._forward(sent, backend, endpoint, port, outgoing, rule.timeout)
        for filters in (backend.filters, rule.filters):
            if filters.response_headers is not None:
                filters.response_headers.apply(answer.headers)
        return answer

    def _route_for(self, host: str) -> tuple[Route | None, str]:
        """The route of requests sent to ``host``: a Service's when the host is a Service address
        of an existing Service, else the Gateway routes' for that hostname."""
        table = self._table()
        target = parse_authority(host)
        if target is not None:
            service, namespace = target
            route = table.route(namespace, service)
            if route is not None:
                return route, ""
        route = table.for_host(host)
        if route is not None:
            return route, ""
        if target is not None:
            return None, f"no Service {target[0]} in namespace {target[1]}, and no Gateway route for host {host!r}"
        return None, (
            f"host {host!r} is not a Service address (<service>.<namespace>[.svc[.cluster.local]]) "
            "nor a hostname of an HTTPRoute attached to a Gateway"
        )

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _mirror(self, sent: _Sent, mirror: Mirror, outgoing: _Outgoing) -> None:
        """Deliver one mirrored copy; its answer is counted and dropped."""
        if mirror.problem is not None or not mirror.endpoints:
            sent.epoch.count_mirror(mirror.service, 500 if mirror.problem else 503)
            return
        endpoint = self._rng.choice(mirror.endpoints)
        port = self._port_of(endpoint)
        if port is None:
            sent.epoch.count_mirror(mirror.service, 503)
            return
        status, _, latency = await self._exchange(port, outgoing, None)
        sent.epoch.count_mirror(mirror.service, status)
        if status != 502:
            # The receiving Pod's proxy sees the copy like any request; no client proxy does.
            self._metrics.record(
                RequestRecord(
                    authority=outgoing.host,
                    namespace=mirror.namespace,
                    backend=mirror.service,
                    endpoint=endpoint,
                    status=status,
                    latency_ms=latency,
                )
            )

    async def _exchange(
        self, port: int, outgoing: _Outgoing, timeout: float | None
    ) -> tuple[int, tuple[bytes, str | None] | str, float]:
        """Send ``outgoing`` to a Pod: (status, (body, content type) or the failure's reason,
        latency in ms). 502 when the Pod cannot be reached, 504 when ``timeout`` runs out."""
        assert self._session is not None, "the proxy app has not started"
        url = f"http://{self._backend_host}:{port}{outgoing.path}" + (f"?{outgoing.query}" if outgoing.query else "")
        headers = CIMultiDict(outgoing.headers)
        headers["Host"] = outgoing.host
        started = time.perf_counter()
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                async with self._session.request(
                    outgoing.method, url, headers=headers, data=outgoing.body, allow_redirects=False
                ) as answer:
                    payload = await answer.read()
                    result: tuple[int, tuple[bytes, str | None] | str] = (
                        answer.status,
                        (payload, answer.headers.get("Content-Type")),
                    )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            if deadline.expired():
                result = (504, f"the request timed out after {timeout:g}s (HTTPRoute timeouts)")
            else:
                result = (502, f"could not be reached: {exc!r}")
        return result[0], result[1], (time.perf_counter() - started) * 1000.0

    async def _forward(
        self, sent: _Sent, backend: Backend, endpoint: Endpoint, port: int, outgoing: _Outgoing, timeout: float | None
    ) -> web.Response:
        status, outcome, latency = await self._exchange(port, outgoing, timeout)
        if isinstance(outcome, str):
            flag = "UT" if status == 504 else "UF"
            self._record(sent, backend, None, status, latency, flag)
            return _proxy_error(status, f"pod {endpoint.namespace}/{endpoint.name}: {outcome}")
        payload, content_type = outcome
        self._record(sent, backend, endpoint, status, latency, "-")
        out_headers = {BACKEND_HEADER: backend.service, POD_HEADER: endpoint.name}
        if content_type:
            out_headers["Content-Type"] = content_type
        return web.Response(status=status, body=payload, headers=out_headers)

    def _fail(self, sent: _Sent, backend: Backend | None, status: int, flag: str, reason: str) -> web.Response:
        self._record(sent, backend, None, status, 0.0, flag)
        return _proxy_error(status, reason)

    def _record(
        self,
        sent: _Sent,
        backend: Backend | None,
        endpoint: Endpoint | None,
        status: int,
        latency_ms: float,
        flag: str,
    ) -> None:
        sent.epoch.count(backend.service if backend else None, status, time.time(), sent.stream)
        self._metrics.record(
            RequestRecord(
                authority=sent.host,
                namespace=(backend.namespace if backend else "") or sent.route.namespace,
                backend=backend.service if backend else None,
                endpoint=endpoint,
                status=status,
                latency_ms=latency_ms,
                client=sent.client,
                proxy_flag=flag,
            )
        )


@dataclass(frozen=True)
class _Sent:
    """What the proxy knows of a request once it has chosen the rule."""

    route: Route
    rule_index: int
    epoch: Epoch
    client: Client | None
    stream: str | None
    host: str


@dataclass
class _Outgoing:
    """The request as it will leave the proxy, after the filters."""

    method: str
    path: str
    query: str
    host: str
    headers: CIMultiDict[str]
    body: bytes | None

    def copy(self) -> _Outgoing:
        return replace(self, headers=CIMultiDict(self.headers))

    def apply(self, filters: Filters, match: RouteMatch) -> None:
        if filters.request_headers is not None:
            filters.request_headers.apply(self.headers)
        rewrite = filters.rewrite
        if rewrite is not None:
            if rewrite.hostname:
                self.host = rewrite.hostname
            prefix = match.path if match.path_type == "PathPrefix" else None
            self.path = rewrite.path(self.path, prefix)


def _describe(route: Route) -> str:
    return f"host {route.host}" if route.host else f"Service {route.namespace}/{route.service}"


def _proxy_error(status: int, reason: str) -> web.Response:
    # A header value may hold neither line breaks nor non-Latin-1 text.
    header = " ".join(reason.split()).encode("latin-1", "replace").decode("latin-1")[:300]
    return web.Response(status=status, text=reason + "\n", headers={ERROR_HEADER: header})
