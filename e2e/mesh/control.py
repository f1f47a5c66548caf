"""The control API: JSON over HTTP for tests, the demo and people debugging a run.

=====================  ==========================================================================
``GET /healthz``       200 once every watched resource has been listed (or found absent), else 503
``GET /routes``        the routing table: per apex Service, its sources, rules, weights, endpoints;
                       ``hosts``: the same per hostname named by a Gateway route
``GET /pods``          the backend servers running, one per ready Pod, with their behaviour
``GET /load``          the load streams
``PUT /load``          ``{"namespace", "service", "rps", "path"?, "concurrency"?, "name"?,
                       "host"?, "method"?, "headers"?, "cookies"?, "query"?, "users"?}``; rps 0 stops
                       the stream ``name`` (default ``service.namespace``); with ``host`` the
                       namespace and service may be omitted (north-south traffic)
``GET /stats``         ``?namespace=&service=``, or ``?host=`` for a Gateway hostname: counts per
                       backend, per routing configuration, per load stream, and mirrored copies
``DELETE /stats``      reset all counts, or those of ``?namespace=[&service=]`` or ``?host=``
=====================  ==========================================================================

Errors are ``{"error": "..."}`` with status 400 (bad request) or 404 (unknown path).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from e2e.mesh.backends import BackendPool
from e2e.mesh.hostnames import normalise_host
from e2e.mesh.loadgen import LoadError, LoadGenerator
from e2e.mesh.routing import RoutingTable, route_json
from e2e.mesh.stats import Stats

Health = Callable[[], tuple[bool, Mapping[str, Any]]]


def control_app(
    *,
    table: Callable[[], RoutingTable],
    stats: Stats,
    loadgen: LoadGenerator,
    backends: BackendPool,
    health: Health,
) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        ok, detail = health()
        return web.json_response({"ok": ok, **detail}, status=200 if ok else 503)

    async def routes(_: web.Request) -> web.Response:
        current = table()
        return web.json_response(
            {
                "routes": [route_json(current.routes[k]) for k in sorted(current.routes)],
                "hosts": [route_json(current.hosts[h]) for h in sorted(current.hosts)],
                "rejected": [r.as_json() for r in current.rejected],
                **health()[1],
            }
        )

    async def pods(_: web.Request) -> web.Response:
        return web.json_response({"pods": [s.as_json() for s in backends.servers()]})

    async def get_load(_: web.Request) -> web.Response:
        return web.json_response({"streams": [s.as_json() for s in loadgen.streams()]})

    async def put_load(request: web.Request) -> web.Response:
        body = await _json_body(request)
        rps = body.get("rps")
        if isinstance(rps, bool) or not isinstance(rps, (int, float)) or not math.isfinite(rps):
            raise _bad_request("rps must be a number")
        concurrency = body.get("concurrency")
        if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int)):
            raise _bad_request("concurrency must be an integer")
        host = _optional_string(body, "host")
        namespace = _string(body, "namespace") if not host or body.get("namespace") else ""
        service = _string(body, "service") if not host or body.get("service") else ""
        try:
            stream = loadgen.set(
                namespace,
                service,
                float(rps),
                path=_optional_string(body, "path"),
                concurrency=concurrency,
                name=_optional_string(body, "name"),
                host=host,
                method=_optional_string(body, "method"),
                headers=_string_map(body, "headers"),
                cookies=_string_map(body, "cookies"),
                query=_string_map(body, "query"),
                users=_optional_int(body, "users"),
            )
        except LoadError as exc:
            raise _bad_request(str(exc)) from exc
        return web.json_response({"stream": stream.as_json() if stream else None})

    async def get_stats(request: web.Request) -> web.Response:
        host = request.query.get("host")
        if host:
            return web.json_response(stats.snapshot("", normalise_host(host)))
        namespace = request.query.get("namespace")
        service = request.query.get("service")
        if namespace and service:
            return web.json_response(stats.snapshot(namespace, service))
        if namespace or service:
            raise _bad_request("give both namespace and service, or neither (for every apex)")
        return web.json_response({"apexes": [stats.snapshot(ns, svc) for ns, svc in stats.apexes()]})

    async def delete_stats(request: web.Request) -> web.Response:
        host = request.query.get("host")
        if host:
            stats.reset("", normalise_host(host))
        else:
            stats.reset(request.query.get("namespace") or None, request.query.get("service") or None)
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[_json_errors])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/routes", routes)
    app.router.add_get("/pods", pods)
    app.router.add_get("/load", get_load)
    app.router.add_put("/load", put_load)
    app.router.add_get("/stats", get_stats)
    app.router.add_delete("/stats", delete_stats)
    return app


@web.middleware
async def _json_errors(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        return web.json_response({"error": exc.reason}, status=exc.status)


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad_request(f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise _bad_request("the body must be a JSON object")
    return body


def _string(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise _bad_request(f"{key} must be a non-empty string")
    return value


def _optional_string(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise _bad_request(f"{key} must be a string")
    return value or None


def _string_map(body: Mapping[str, Any], key: str) -> dict[str, str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _bad_request(f"{key} must be an object of strings")
    return value


def _optional_int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise _bad_request(f"{key} must be an integer")
    return value
