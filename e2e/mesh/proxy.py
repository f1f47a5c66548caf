"""The weighted L7 proxy: what every meshed client's sidecar does, in one place.

A request names its destination in ``Host`` (``<service>.<namespace>``, optionally followed by
``.svc`` or ``.svc.cluster.local`` and a port). The proxy looks up the Service's route, picks
the rule, then a backend Service at random in proportion to the weights, then one ready Pod of
that backend uniformly, and forwards the request over HTTP to that Pod's server. It answers by
itself, as a mesh proxy fails fast, when there is nothing to forward to:

* 404: the host is not a Service address, the Service does not exist, or no HTTPRoute rule
  matches the request;
* 503: the weights sum to 0 (TrafficSplit), or the chosen backend has no ready Pod or does not
  exist; 500 for an HTTPRoute whose weights sum to 0 or an invalid backendRef (Gateway API);
* 502: the Pod's server could not be reached.

Proxy-generated answers carry the header ``l5d-proxy-error`` with the reason, like Linkerd's.
A client that sends ``x-mesh-client: <namespace>/<workload>[/<pod>]`` counts as meshed, so its
outbound side is reported in the metrics too (the load generator does this).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web

from e2e.mesh.metrics import Client, MeshMetrics, RequestRecord
from e2e.mesh.routing import Endpoint, Route, RoutingTable
from e2e.mesh.stats import Stats

CLIENT_HEADER = "x-mesh-client"
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
        if self._session is not None:
            await self._session.close()

    async def handle(self, request: web.Request) -> web.Response:
        host = request.headers.get("Host", "")
        target = parse_authority(host)
        if target is None:
            return _proxy_error(404, f"host {host!r} is not a Service address (<service>.<namespace>[.svc[.cluster.local]])")
        service, namespace = target
        route = self._table().route(namespace, service)
        if route is None:
            return _proxy_error(404, f"no Service {service} in namespace {namespace}")
        rule_index = route.select(request.method, request.path, request.headers, request.query)
        if rule_index is None:
            return _proxy_error(404, f"no HTTPRoute rule of Service {namespace}/{service} matches {request.method} {request.path}")
        client = parse_client(request.headers.get(CLIENT_HEADER))
        rule = route.rules[rule_index]
        backend = rule.pick(self._rng)
        if backend is None:
            return self._fail(route, rule_index, None, client, host, rule.zero_weight_status, "NR",
                              f"the backend weights of {namespace}/{service} sum to 0")  # fmt: skip
        if backend.problem is not None:
            return self._fail(route, rule_index, backend.service, client, host, backend.problem_status, "NR",
                              backend.problem)  # fmt: skip
        if not backend.endpoints:
            return self._fail(route, rule_index, backend.service, client, host, 503, "UH",
                              f"Service {namespace}/{backend.service} has no ready pods")  # fmt: skip
        endpoint = self._rng.choice(backend.endpoints)
        port = self._port_of(endpoint)
        if port is None:
            return self._fail(route, rule_index, backend.service, client, host, 503, "UH",
                              f"pod {namespace}/{endpoint.name} is not serving")  # fmt: skip
        return await self._forward(request, route, rule_index, backend.service, endpoint, port, client, host)

    async def _forward(
        self,
        request: web.Request,
        route: Route,
        rule_index: int,
        backend: str,
        endpoint: Endpoint,
        port: int,
        client: Client | None,
        host: str,
    ) -> web.Response:
        assert self._session is not None, "the proxy app has not started"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read() if request.can_read_body else None
        url = f"http://{self._backend_host}:{port}{request.rel_url}"
        started = time.perf_counter()
        try:
            async with self._session.request(
                request.method, url, headers=headers, data=body, allow_redirects=False
            ) as answer:
                payload = await answer.read()
                status = answer.status
                content_type = answer.headers.get("Content-Type")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            latency = (time.perf_counter() - started) * 1000.0
            self._record(route, rule_index, backend, None, client, host, 502, latency, "UF")
            return _proxy_error(502, f"pod {endpoint.namespace}/{endpoint.name} could not be reached: {exc!r}")
        latency = (time.perf_counter() - started) * 1000.0
        self._record(route, rule_index, backend, endpoint, client, host, status, latency, "-")
        out_headers = {BACKEND_HEADER: backend, POD_HEADER: endpoint.name}
        if content_type:
            out_headers["Content-Type"] = content_type
        return web.Response(status=status, body=payload, headers=out_headers)

    def _fail(
        self,
        route: Route,
        rule_index: int,
        backend: str | None,
        client: Client | None,
        host: str,
        status: int,
        flag: str,
        reason: str,
    ) -> web.Response:
        self._record(route, rule_index, backend, None, client, host, status, 0.0, flag)
        return _proxy_error(status, reason)

    def _record(
        self,
        route: Route,
        rule_index: int,
        backend: str | None,
        endpoint: Endpoint | None,
        client: Client | None,
        host: str,
        status: int,
        latency_ms: float,
        flag: str,
    ) -> None:
        self._stats.record(route, rule_index, backend, status, time.time())
        self._metrics.record(
            RequestRecord(
                authority=host,
                namespace=route.namespace,
                backend=backend,
                endpoint=endpoint,
                status=status,
                latency_ms=latency_ms,
                client=client,
                proxy_flag=flag,
            )
        )


def _proxy_error(status: int, reason: str) -> web.Response:
    # A header value may hold neither line breaks nor non-Latin-1 text.
    header = " ".join(reason.split()).encode("latin-1", "replace").decode("latin-1")[:300]
    return web.Response(status=status, text=reason + "\n", headers={ERROR_HEADER: header})
