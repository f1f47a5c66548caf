"""The aiohttp application: health endpoints, authentication, routing, and the error answers.

Every request but ``/healthz``, ``/livez`` and ``/readyz`` is authenticated first
(:mod:`canary.metricsserver.auth`); then only GET (and HEAD) is served, because the API is
read-only. Failures are answered with a Kubernetes ``Status`` body, as the API server would:

======================================================  ====  ======================
what                                                    code  reason
======================================================  ====  ======================
no client certificate                                   401   Unauthorized
certificate name not in --requestheader-allowed-names    403   Forbidden
a method other than GET                                 405   MethodNotAllowed
a path this server does not serve                       404   NotFound
a namespace or name that is not a valid Kubernetes name 400   BadRequest
``t`` not a duration, under 1s or over the maximum      400   BadRequest
any other bad input the handlers refuse                 400   BadRequest
the Deployment/Pod/... does not exist                   404   NotFound (+ details)
the mesh's metrics cannot answer for the kind           501   NotImplemented
Prometheus unreachable, failing or refusing a query     503   ServiceUnavailable
the Kubernetes API cannot say what exists               503   ServiceUnavailable
anything else (a bug; logged with its traceback)        500   InternalError
======================================================  ====  ======================

``/openapi/v2`` and ``/openapi/v3`` answer small valid documents (:mod:`canary.metricsserver.openapi`):
the aggregator would tolerate a 404 there, but logs an error about it for ever. Availability
depends only on ``/apis/metrics.smi-spec.io/v1alpha1`` answering 2xx.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import structlog
from aiohttp import web

from canary.domain import bounds
from canary.domain.durations import format_duration, parse_duration
from canary.errors import MetricError, SpecError, TemplateError
from canary.metrics.templates import validate_dns_label, validate_dns_subdomain
from canary.metricsserver import objects, openapi
from canary.metricsserver.auth import AuthError, PeerCertificate, RequestHeaderConfig, authenticate
from canary.metricsserver.health import Readiness
from canary.metricsserver.inventory import Inventory, InventoryUnavailable
from canary.metricsserver.paths import (
    Discovery,
    DiscoveryDoc,
    GetEdges,
    GetObject,
    ListObjects,
    OpenApi,
    OpenApiDoc,
    Target,
    parse_path,
)
from canary.metricsserver.queries import Direction, Query, QuerySet, UnsupportedKind, edge_queries, resource_queries
from canary.metricsserver.resources import Kind, ObjectKey
from canary.metricsserver.tls import peer_certificate
from canary.metricsserver.traffic import QueryRunner, Traffic, collect, without

HEALTH_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
DEFAULT_WINDOW = "30s"
_READ_METHODS = frozenset({"GET", "HEAD"})

_log = structlog.stdlib.get_logger("canary.metricsserver")


class BadRequest(Exception):
    """400: the message names the parameter or path segment."""


@dataclass(frozen=True)
class Backends:
    """What the handlers read from; fakes stand in for them in tests."""

    queries: QuerySet
    prometheus: QueryRunner
    inventory: Inventory
    readiness: Readiness
    auth: RequestHeaderConfig
    #: May only narrow :data:`canary.domain.bounds.METRICS_WINDOW`.
    max_window: timedelta = bounds.METRICS_WINDOW.ceiling
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)


def _peer(request: web.Request) -> PeerCertificate | None:
    transport = request.transport
    return peer_certificate(transport.get_extra_info("ssl_object") if transport is not None else None)


def make_app(backends: Backends, *, peer_of: Callable[[web.Request], PeerCertificate | None] = _peer
             ) -> web.Application:
    handler = _Handler(backends, peer_of)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler.dispatch)
    return app


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers, dumps=json.dumps)


def _status(code: int, reason: str, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return _json(objects.status(code, reason, message), code, headers)


class _Handler:
    def __init__(self, backends: Backends, peer_of: Callable[[web.Request], PeerCertificate | None]) -> None:
        self._b = backends
        self._peer_of = peer_of

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path in HEALTH_PATHS:
            return self._health(request.path)
        started = time.monotonic()
        try:
            user = authenticate(self._peer_of(request), request.headers.items(), self._b.auth)
        except AuthError as exc:
            _log.info("request refused", path=request.path, code=exc.code, error=str(exc))
            return _status(exc.code, exc.reason, str(exc))
        response = await self._serve(request)
        _log.debug("request", user=user.name, groups=list(user.groups), method=request.method,
                   path=request.path_qs, code=response.status, ms=round((time.monotonic() - started) * 1000, 1))
        return response

    def _health(self, path: str) -> web.Response:
        if path != "/readyz":
            return web.Response(text="ok\n")
        problems = self._b.readiness.problems()
        if not problems:
            return web.Response(text="ok\n")
        return web.Response(status=503, text="not ready: " + "; ".join(problems) + "\n")

    async def _serve(self, request: web.Request) -> web.Response:
        if request.method not in _READ_METHODS:
            return _status(405, "MethodNotAllowed", f"{request.method} is not allowed: the Traffic Metrics API is "
                           "read-only (GET)", headers={"Allow": "GET, HEAD"})
        target = parse_path(request.path)
        if target is None:
            return _status(404, "NotFound", "the server could not find the requested resource")
        try:
            return await self._answer(target, request)
        except (BadRequest, TemplateError) as exc:
            return _status(400, "BadRequest", str(exc))
        except UnsupportedKind as exc:
            return _status(501, "NotImplemented", str(exc))
        except InventoryUnavailable as exc:
            _log.warning("Kubernetes API unavailable", path=request.path, error=str(exc))
            return _status(503, "ServiceUnavailable", f"cannot tell which objects exist: the Kubernetes API "
                           f"failed: {exc}")
        except MetricError as exc:
            _log.warning("Prometheus unavailable", path=request.path, error=str(exc))
            return _status(503, "ServiceUnavailable", f"cannot read the metrics from Prometheus: {exc}")
        except Exception:  # a bug: answer like the API server does, and keep serving
            _log.exception("request failed", path=request.path)
            return _status(500, "InternalError", "an error on the server has prevented the request from succeeding")

    async def _answer(self, target: Target, request: web.Request) -> web.Response:
        if isinstance(target, Discovery):
            return _json({
                DiscoveryDoc.GROUP_LIST: objects.api_group_list,
                DiscoveryDoc.GROUP: objects.api_group,
                DiscoveryDoc.RESOURCES: objects.api_resource_list,
            }[target.doc]())
        if isinstance(target, OpenApi):
            return _json({
                OpenApiDoc.V2: openapi.v2,
                OpenApiDoc.V3_ROOT: openapi.v3_root,
                OpenApiDoc.V3_GROUP_VERSION: openapi.v3_group_version,
            }[target.doc]())
        # Checked before anything is done with them: they go into Kubernetes API paths and PromQL.
        if target.namespace is not None:
            validate_dns_label(target.namespace, "namespace")
        if isinstance(target, GetObject | GetEdges):
            if target.kind.namespaced:
                validate_dns_subdomain(target.name, "name")
            else:
                validate_dns_label(target.name, "namespace")
        window = self._window(request.query.getall("t", []))
        if isinstance(target, ListObjects):
            return await self._list(target, window)
        if isinstance(target, GetObject):
            return await self._get(target, window)
        assert isinstance(target, GetEdges)
        return await self._edges(target, window)

    def _window(self, given: Sequence[str]) -> timedelta:
        if len(given) > 1:
            raise BadRequest("query parameter t is given more than once")
        text = given[0] if given else DEFAULT_WINDOW
        try:
            window = parse_duration(text, bounds.METRICS_WINDOW.where, bounds.METRICS_WINDOW)
        except SpecError as exc:
            raise BadRequest(str(exc)) from exc
        if window > self._b.max_window:
            raise BadRequest(f"{bounds.METRICS_WINDOW.where}: {text!r} is longer than this server's maximum "
                             f"{format_duration(self._b.max_window)}")
        return window

    async def _run(self, queries: Sequence[Query]) -> dict[ObjectKey, Traffic]:
        traffic = await collect(self._b.prometheus, queries)
        self._b.readiness.prometheus_answered()
        return traffic

    async def _exists(self, kind: Kind, namespace: str | None, name: str) -> bool:
        found = await self._b.inventory.exists(kind, namespace, name)
        self._b.readiness.kube_answered()
        return found

    async def _get(self, target: GetObject, window: timedelta) -> web.Response:
        kind, namespace, name = target.kind, target.namespace, target.name
        # Rendering first: it validates the names (400) and the kind (501) before any I/O.
        queries = resource_queries(self._b.queries, kind, namespace=namespace, name=name, window=window)
        if not await self._exists(kind, namespace, name):
            return _json(objects.not_found(kind, namespace, name), 404)
        traffic = await self._run(queries)
        return _json(objects.traffic_metrics(objects.ObjectRef.of(kind, namespace, name),
                                             traffic.get((namespace, name)), timestamp=self._b.now(), window=window))

    async def _list(self, target: ListObjects, window: timedelta) -> web.Response:
        kind, namespace = target.kind, target.namespace
        queries = resource_queries(self._b.queries, kind, namespace=namespace, name=None, window=window)
        existing = await self._b.inventory.names(kind, namespace)
        self._b.readiness.kube_answered()
        traffic = await self._run(queries)
        now = self._b.now()
        items = [
            objects.traffic_metrics(objects.ObjectRef.of(kind, ns, name), traffic.get((ns, name)),
                                    timestamp=now, window=window)
            for ns, name in sorted(existing, key=lambda key: (key[0] or "", key[1]))
        ]
        return _json(objects.traffic_metrics_list(objects.ObjectRef(kind.info.object_kind, namespace), items))

    async def _edges(self, target: GetEdges, window: timedelta) -> web.Response:
        kind, namespace, name = target.kind, target.namespace, target.name
        by_direction = {
            direction: edge_queries(self._b.queries, kind, direction, namespace=namespace, name=name, window=window)
            for direction in Direction
        }
        if not await self._exists(kind, namespace, name):
            return _json(objects.not_found(kind, namespace, name), 404)
        answers = await asyncio.gather(*(self._run(q) for q in by_direction.values()))
        resource = objects.ObjectRef.of(kind, namespace, name)
        now = self._b.now()
        items = []
        for direction, traffic in zip(by_direction, answers, strict=True):
            peers = without(traffic, self._b.queries.ignored_peers)
            for peer_ns, peer_name in sorted(peers, key=lambda key: (key[0] or "", key[1])):
                items.append(objects.traffic_metrics(
                    resource, peers[(peer_ns, peer_name)], timestamp=now, window=window, direction=direction,
                    peer=objects.ObjectRef.of(kind, peer_ns, peer_name)))
        return _json(objects.traffic_metrics_list(resource, items))
