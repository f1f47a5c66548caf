"""A typed, synchronous client of the mesh's control API (and, optionally, its proxy).

Synchronous on purpose: e2e scenarios are plain pytest functions that poll and assert. In async
code, call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: How long a teardown call may take (see ``MeshClient.stop_all_load``).
TEARDOWN_CALL_TIMEOUT = 120.0


class MeshClientError(RuntimeError):
    """The control API could not be reached or refused a request; the message says which."""


class MeshTimeout(MeshClientError):
    """A wait ran out of time; the message says what was expected and what was seen last."""


@dataclass(frozen=True)
class SourceInfo:
    kind: str
    api_version: str
    name: str
    generation: int | None
    resource_version: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SourceInfo:
        return cls(
            kind=data["kind"],
            api_version=data["apiVersion"],
            name=data["name"],
            generation=data.get("generation"),
            resource_version=data.get("resourceVersion") or "",
        )


@dataclass(frozen=True)
class BackendInfo:
    service: str
    weight: float
    percent: float
    endpoints: tuple[str, ...]
    problem: str | None


@dataclass(frozen=True)
class MirrorInfo:
    service: str
    percent: float
    endpoints: tuple[str, ...]
    problem: str | None


@dataclass(frozen=True)
class RuleInfo:
    matches: tuple[Mapping[str, Any], ...]
    backends: tuple[BackendInfo, ...]
    zero_weight_status: int
    mirrors: tuple[MirrorInfo, ...] = ()
    #: The rule's filters as the control API shows them (``requestHeaders``, ``responseHeaders``,
    #: ``urlRewrite``, ``ignored``).
    filters: Mapping[str, Any] = field(default_factory=dict)
    timeout_seconds: float | None = None


@dataclass(frozen=True)
class RouteInfo:
    namespace: str
    service: str
    sources: tuple[SourceInfo, ...]
    #: The first rule's weights, as written in the object (``0.8`` for a v1alpha1 ``"800m"``).
    weights: Mapping[str, float]
    rules: tuple[RuleInfo, ...]
    since: float
    warnings: tuple[str, ...]
    #: The hostname a north-south route serves ("" for a Service's route).
    host: str = ""

    @property
    def source(self) -> SourceInfo:
        return self.sources[0]

    @property
    def percent(self) -> dict[str, float]:
        """The first rule's weights as percentages of their sum."""
        return normalise(self.weights)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RouteInfo:
        return cls(
            namespace=data["namespace"],
            service=data["service"],
            sources=tuple(SourceInfo.from_json(s) for s in data["sources"]),
            weights=dict(data["weights"]),
            rules=tuple(
                RuleInfo(
                    matches=tuple(r["matches"]),
                    backends=tuple(
                        BackendInfo(
                            service=b["service"],
                            weight=b["weight"],
                            percent=b["percent"],
                            endpoints=tuple(b["endpoints"]),
                            problem=b.get("problem"),
                        )
                        for b in r["backends"]
                    ),
                    zero_weight_status=r["zeroWeightStatus"],
                    mirrors=tuple(
                        MirrorInfo(
                            service=m["service"],
                            percent=m["percent"],
                            endpoints=tuple(m["endpoints"]),
                            problem=m.get("problem"),
                        )
                        for m in r.get("mirrors") or ()
                    ),
                    filters=dict(r.get("filters") or {}),
                    timeout_seconds=r.get("timeoutSeconds"),
                )
                for r in data["rules"]
            ),
            since=data["since"],
            warnings=tuple(data.get("warnings") or ()),
            host=data.get("host") or "",
        )


@dataclass(frozen=True)
class ConfigStats:
    """Requests routed while one routing configuration (sources + weights of one rule) applied."""

    sources: tuple[SourceInfo, ...]
    rule: int
    weights: Mapping[str, float]
    percent: Mapping[str, float]
    since: float
    first: float
    last: float
    total: int
    requests: Mapping[str, int]
    statuses: Mapping[str, int]
    backend_statuses: Mapping[str, Mapping[str, int]]
    unrouted: int
    #: Per load stream, requests per backend ("(unrouted)" when none could be picked).
    streams: Mapping[str, Mapping[str, int]]
    #: Copies sent by RequestMirror filters, per mirror backend; not in ``requests``.
    mirrored: Mapping[str, int]
    mirror_statuses: Mapping[str, Mapping[str, int]]

    def share(self, backend: str) -> float:
        """The fraction of this configuration's routed requests that went to ``backend``."""
        routed = sum(self.requests.values())
        return self.requests.get(backend, 0) / routed if routed else 0.0

    def failures(self, backend: str | None = None) -> int:
        """5xx answers, of one backend or of all."""
        statuses = self.statuses if backend is None else self.backend_statuses.get(backend, {})
        return sum(n for code, n in statuses.items() if code.startswith("5"))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConfigStats:
        return cls(
            sources=tuple(SourceInfo.from_json(s) for s in data["sources"]),
            rule=data["rule"],
            weights=dict(data["weights"]),
            percent=dict(data["percent"]),
            since=data["since"],
            first=data["first"],
            last=data["last"],
            total=data["total"],
            requests=dict(data["requests"]),
            statuses=dict(data["statuses"]),
            backend_statuses={k: dict(v) for k, v in data["backendStatuses"].items()},
            unrouted=data["unrouted"],
            streams={k: dict(v) for k, v in (data.get("streams") or {}).items()},
            mirrored=dict(data.get("mirrored") or {}),
            mirror_statuses={k: dict(v) for k, v in (data.get("mirrorStatuses") or {}).items()},
        )


@dataclass(frozen=True)
class ApexStats:
    namespace: str
    service: str
    total: int
    requests: Mapping[str, int]
    statuses: Mapping[str, int]
    configs: tuple[ConfigStats, ...]
    #: Copies sent by RequestMirror filters, per mirror backend, over every configuration.
    mirrored: Mapping[str, int]
    #: Per load stream, requests per backend, over every configuration.
    streams: Mapping[str, Mapping[str, int]]

    def stream(self, name: str) -> Mapping[str, int]:
        """Requests of load stream ``name`` per backend (empty when it sent none here)."""
        return self.streams.get(name, {})

    def configs_of_rule(self, rule: int) -> list[ConfigStats]:
        return [c for c in self.configs if c.rule == rule]

    def configs_with(self, weights: Mapping[str, float]) -> list[ConfigStats]:
        """The configurations whose weights are proportional to ``weights``."""
        return [c for c in self.configs if same_shares(c.weights, weights)]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApexStats:
        return cls(
            namespace=data["namespace"],
            service=data["service"],
            total=data["total"],
            requests=dict(data["requests"]),
            statuses=dict(data["statuses"]),
            configs=tuple(ConfigStats.from_json(c) for c in data["configs"]),
            mirrored=dict(data.get("mirrored") or {}),
            streams={k: dict(v) for k, v in (data.get("streams") or {}).items()},
        )


@dataclass(frozen=True)
class LoadStreamInfo:
    namespace: str
    service: str
    rps: float
    path: str
    concurrency: int
    sent: int
    completed: int
    errors: int
    dropped: int
    in_flight: int
    statuses: Mapping[str, int]
    last_error: str
    name: str = ""
    host: str = ""
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    #: Answers per backend Service ("" for answers the proxy gave by itself).
    backends: Mapping[str, int] = field(default_factory=dict)
    users: int = 0
    #: With ``users``: per user, answers from another backend than the previous, "from->to".
    switches: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoadStreamInfo:
        return cls(
            namespace=data["namespace"],
            service=data["service"],
            rps=data["rps"],
            path=data["path"],
            concurrency=data["concurrency"],
            sent=data["sent"],
            completed=data["completed"],
            errors=data["errors"],
            dropped=data["dropped"],
            in_flight=data["inFlight"],
            statuses=dict(data["statuses"]),
            last_error=data.get("lastError") or "",
            name=data.get("name") or "",
            host=data.get("host") or "",
            method=data.get("method") or "GET",
            headers=dict(data.get("headers") or {}),
            query=dict(data.get("query") or {}),
            backends=dict(data.get("backends") or {}),
            users=data.get("users") or 0,
            switches=dict(data.get("switches") or {}),
        )


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    deployment: str
    port: int
    error_rate: float
    latency_ms: float
    failure_status: int
    problems: tuple[str, ...]
    served: Mapping[str, int]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PodInfo:
        behaviour = data["behaviour"]
        return cls(
            namespace=data["namespace"],
            name=data["name"],
            deployment=data["deployment"],
            port=data["port"],
            error_rate=behaviour["errorRate"],
            latency_ms=behaviour["latencyMs"],
            failure_status=behaviour["failureStatus"],
            problems=tuple(data.get("problems") or ()),
            served=dict(data.get("served") or {}),
        )


@dataclass(frozen=True)
class ProxyAnswer:
    status: int
    body: bytes
    backend: str | None
    pod: str | None
    proxy_error: str | None

    def json(self) -> Any:
        return json.loads(self.body)


def normalise(weights: Mapping[str, float]) -> dict[str, float]:
    """Relative weights as percentages of their sum (all 0 when they sum to 0)."""
    total = sum(weights.values())
    return {k: (v * 100.0 / total if total else 0.0) for k, v in weights.items()}


def same_shares(a: Mapping[str, float], b: Mapping[str, float], tolerance: float = 1e-6) -> bool:
    """Whether two weight maps name the same backends in the same proportions."""
    if set(a) != set(b):
        return False
    na, nb = normalise(a), normalise(b)
    return all(abs(na[k] - nb[k]) <= tolerance for k in na)


class MeshClient:
    def __init__(self, base_url: str, *, proxy_url: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.proxy_url = proxy_url.rstrip("/") if proxy_url else None
        self.timeout = timeout
        # Loopback servers: an http_proxy from the environment must not be consulted.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # --- health -----------------------------------------------------------------------------

    def healthz(self) -> dict[str, Any]:
        """The health answer, whether 200 or 503."""
        return self._call("GET", "/healthz", ok_statuses=(200, 503))

    def healthy(self) -> bool:
        try:
            return bool(self.healthz().get("ok"))
        except MeshClientError:
            return False

    def wait_healthy(self, timeout: float = 30.0) -> None:
        self._wait(self.healthy, timeout, "the mesh to finish its initial lists", lambda: self.healthz())

    # --- load -------------------------------------------------------------------------------

    def set_load(
        self,
        namespace: str,
        service: str,
        rps: float,
        *,
        path: str | None = None,
        concurrency: int | None = None,
        name: str | None = None,
        host: str | None = None,
        method: str | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        users: int | None = None,
    ) -> LoadStreamInfo | None:
        """Send ``rps`` requests/second to ``service.namespace`` through the proxy; 0 stops.

        The stream is ``name`` (default ``service.namespace``): name two streams to send two
        kinds of request to one Service at once (``headers={"x-canary": "insider"}`` and none).
        ``host`` replaces the Service address in ``Host`` (north-south traffic to a Gateway
        route's hostname; namespace and service may then be ""). ``cookies`` become the
        ``Cookie`` header, ``query`` the query string. ``users`` simulated browsers keep the
        cookies their answers set (session affinity; see ``LoadStreamInfo.switches``). Settings
        left None keep their value."""
        body: dict[str, Any] = {"namespace": namespace, "service": service, "rps": rps}
        for key, value in (
            ("path", path),
            ("concurrency", concurrency),
            ("name", name),
            ("host", host),
            ("method", method),
            ("headers", dict(headers) if headers is not None else None),
            ("cookies", dict(cookies) if cookies is not None else None),
            ("query", dict(query) if query is not None else None),
            ("users", users),
        ):
            if value is not None:
                body[key] = value
        stream = self._call("PUT", "/load", body)["stream"]
        return LoadStreamInfo.from_json(stream) if stream else None

    def set_host_load(
        self,
        host: str,
        rps: float,
        *,
        namespace: str = "",
        name: str | None = None,
        path: str | None = None,
        concurrency: int | None = None,
        method: str | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        users: int | None = None,
    ) -> LoadStreamInfo | None:
        """North-south load: ``rps`` requests/second with ``Host: host``, routed by the
        HTTPRoutes attached to a Gateway that list the host. The stream is ``name`` (default
        ``host``); 0 stops it. ``namespace`` only marks the stream as a test's, so that
        :meth:`stop_all_load` of that namespace stops it (the requests stay unmeshed)."""
        return self.set_load(
            namespace, "", rps, path=path, concurrency=concurrency, name=name, host=host, method=method,
            headers=headers, cookies=cookies, query=query, users=users,
        )  # fmt: skip

    def stop_load(self, namespace: str, service: str, *, name: str | None = None) -> None:
        self.set_load(namespace, service, 0, name=name)

    def stop_all_load(self, namespace: str | None = None) -> None:
        """Stop every load stream, or those to ``namespace``.

        Given longer than other calls: every scenario's teardown makes it, and with thousands of
        ready Pods (the sharding scenario at full size) the mesh's loop, which serves them all,
        answered ``GET /load`` in over 10 s."""
        for stream in self.loads(timeout=max(self.timeout, TEARDOWN_CALL_TIMEOUT)):
            if namespace is None or stream.namespace == namespace:
                self.set_load(stream.namespace, stream.service, 0, name=stream.name, host=stream.host or None)

    def loads(self, *, timeout: float | None = None) -> list[LoadStreamInfo]:
        return [LoadStreamInfo.from_json(s) for s in self._call("GET", "/load", timeout=timeout)["streams"]]

    # --- stats ------------------------------------------------------------------------------

    def stats(self, namespace: str, service: str) -> ApexStats:
        query = urllib.parse.urlencode({"namespace": namespace, "service": service})
        return ApexStats.from_json(self._call("GET", f"/stats?{query}"))

    def host_stats(self, host: str) -> ApexStats:
        """The counts of north-south requests sent to ``host`` (a Gateway route's hostname)."""
        return ApexStats.from_json(self._call("GET", f"/stats?{urllib.parse.urlencode({'host': host})}"))

    def reset_stats(self, namespace: str | None = None, service: str | None = None, *, host: str | None = None) -> None:
        params = {k: v for k, v in (("namespace", namespace), ("service", service), ("host", host)) if v}
        self._call("DELETE", "/stats" + (f"?{urllib.parse.urlencode(params)}" if params else ""))

    # --- routes and pods ----------------------------------------------------------------------

    def routes(self) -> list[RouteInfo]:
        return [RouteInfo.from_json(r) for r in self._call("GET", "/routes")["routes"]]

    def rejected(self) -> list[dict[str, str]]:
        """Objects that route nothing, each with ``kind``, ``namespace``, ``name``, ``reason``."""
        rejected: list[dict[str, str]] = self._call("GET", "/routes")["rejected"]
        return rejected

    def route(self, namespace: str, service: str) -> RouteInfo | None:
        return next((r for r in self.routes() if (r.namespace, r.service) == (namespace, service)), None)

    def host_routes(self) -> list[RouteInfo]:
        """The north-south routes of every hostname a Gateway route names (not wildcards)."""
        return [RouteInfo.from_json(r) for r in self._call("GET", "/routes").get("hosts") or ()]

    def host_route(self, host: str) -> RouteInfo | None:
        return next((r for r in self.host_routes() if r.host == host.lower()), None)

    def wait_for_route(
        self,
        namespace: str,
        service: str,
        weights: Mapping[str, float],
        timeout: float = 10.0,
        *,
        source_kind: str | None = None,
    ) -> RouteInfo:
        """Wait until ``service``'s first rule routes to exactly the backends of ``weights``, in the
        same proportions (``{"a": 80, "b": 20}`` equals ``{"a": 0.8, "b": 0.2}``), and, if given,
        comes from an object of ``source_kind`` (``TrafficSplit``, ``HTTPRoute``, ``Service``)."""
        found: list[RouteInfo | None] = [None]

        def check() -> bool:
            route = found[0] = self.route(namespace, service)
            return (
                route is not None
                and same_shares(route.weights, weights)
                and (source_kind is None or route.source.kind == source_kind)
            )

        def seen() -> object:
            route = found[0]
            return "no route" if route is None else f"{route.source.kind} {route.source.name}: {dict(route.weights)}"

        self._wait(check, timeout, f"route {service}.{namespace} with weights {dict(weights)}", seen)
        route = found[0]
        assert route is not None
        return route

    def wait_for_share(
        self, namespace: str, service: str, backend: str, share: float, timeout: float = 10.0
    ) -> RouteInfo:
        """Wait until ``service``'s first rule sends ``share`` (0..1) of requests to ``backend``
        (a backend absent from the route has share 0)."""
        found: list[RouteInfo | None] = [None]

        def current() -> float | None:
            route = found[0] = self.route(namespace, service)
            if route is None:
                return None
            return route.percent.get(backend, 0.0) / 100.0

        def check() -> bool:
            value = current()
            return value is not None and abs(value - share) <= 1e-6

        self._wait(check, timeout, f"{share:.0%} of {service}.{namespace} on {backend}", current)
        route = found[0]
        assert route is not None
        return route

    def pods(self) -> list[PodInfo]:
        return [PodInfo.from_json(p) for p in self._call("GET", "/pods")["pods"]]

    def wait_for_pods(self, namespace: str, deployment: str, count: int, timeout: float = 30.0) -> list[PodInfo]:
        """Wait until exactly ``count`` ready Pods of ``deployment`` are being served."""

        def matching() -> list[PodInfo]:
            return [p for p in self.pods() if p.namespace == namespace and p.deployment == deployment]

        self._wait(
            lambda: len(matching()) == count,
            timeout,
            f"{count} serving pods of deployment {namespace}/{deployment}",
            lambda: [p.name for p in matching()],
        )
        return matching()

    # --- the proxy --------------------------------------------------------------------------

    def send(
        self,
        namespace: str,
        service: str,
        path: str = "/",
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
    ) -> ProxyAnswer:
        """One request to ``service.namespace`` through the proxy (needs ``proxy_url``)."""
        if self.proxy_url is None:
            raise MeshClientError("this MeshClient was made without a proxy_url")
        request = urllib.request.Request(
            self.proxy_url + path, method=method, headers={"Host": f"{service}.{namespace}", **(headers or {})}
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                return _proxy_answer(answer.status, answer.read(), answer.headers)
        except urllib.error.HTTPError as exc:
            return _proxy_answer(exc.code, exc.read(), exc.headers)
        except (urllib.error.URLError, OSError) as exc:
            raise MeshClientError(f"cannot reach the mesh proxy at {self.proxy_url}: {exc}") from exc

    # --- plumbing ---------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, body: object = None, *, ok_statuses: tuple[int, ...] = (200,),
        timeout: float | None = None,
    ) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with self._opener.open(request, timeout=self.timeout if timeout is None else timeout) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise MeshClientError(f"cannot reach the mesh control API at {self.base_url}: {exc}") from exc
        try:
            decoded = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            decoded = {"error": raw[:200].decode("utf-8", "replace")}
        if status not in ok_statuses:
            error = decoded.get("error", decoded) if isinstance(decoded, dict) else decoded
            raise MeshClientError(f"{method} {path}: HTTP {status}: {error}")
        if not isinstance(decoded, dict):
            raise MeshClientError(f"{method} {path}: the answer is not a JSON object")
        return decoded

    @staticmethod
    def _wait(check: Callable[[], bool], timeout: float, what: str, seen: Callable[[], object]) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            try:
                if check():
                    return
            except MeshClientError as exc:
                last_error = exc
            if time.monotonic() >= deadline:
                try:
                    last = seen()
                except MeshClientError as exc:
                    last = f"(unavailable: {exc})"
                detail = f"; last error: {last_error}" if last_error else ""
                raise MeshTimeout(f"timed out after {timeout:g}s waiting for {what}; last seen: {last}{detail}")
            time.sleep(0.1)


def _proxy_answer(status: int, body: bytes, headers: Any) -> ProxyAnswer:
    return ProxyAnswer(
        status=status,
        body=body,
        backend=headers.get("x-mesh-backend"),
        pod=headers.get("x-mesh-pod"),
        proxy_error=headers.get("l5d-proxy-error"),
    )
