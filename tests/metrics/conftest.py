"""A real HTTP server on 127.0.0.1 speaking Prometheus's query API and the Traffic Metrics API.

Tests script its replies and read back what it received, so assertions are about the exact
query or path that went over the wire.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from canary.config import MetricsSettings
from canary.domain.spec import (
    MetricSpec,
    MetricTemplateSpec,
    ProviderSpec,
    ProviderType,
    TemplateRef,
    ThresholdRange,
)
from canary.metrics.base import MeasureRequest
from canary.metrics.smi import FetchError, SmiFetch


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: object = None  # JSON-encoded unless it is a str
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    params: Mapping[str, str]
    headers: Mapping[str, str]

    @property
    def query(self) -> str:
        return self.params["query"]


@dataclass
class FakeServer:
    """Replies are taken in order; the last one repeats. ``route`` overrides them when set."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=lambda: [Reply(404, {"status": "error"})])
    route: Callable[[Received], Reply] | None = None
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def respond(self, *replies: Reply) -> None:
        self.replies = list(replies)

    def next_reply(self, request: Received) -> Reply:
        with self.lock:
            self.received.append(request)
            if self.route is not None:
                return self.route(request)
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    @property
    def queries(self) -> list[str]:
        return [r.query for r in self.received]


def _handler_for(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            if self.command == "POST":
                length = int(self.headers.get("Content-Length") or 0)
                params.update({k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()})
            request = Received(self.command, parts.path, params, {k.lower(): v for k, v in self.headers.items()})
            reply = server.next_reply(request)
            with server.lock:
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                data = payload.encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)
            finally:
                with server.lock:
                    server.in_flight -= 1

        do_GET = _serve
        do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def start_server() -> Iterator[Callable[[], FakeServer]]:
    """Starts as many servers as a test needs; all are stopped afterwards."""
    running: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start() -> FakeServer:
        fake = FakeServer()
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(fake))
        httpd.daemon_threads = True
        fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        running.append((httpd, thread))
        return fake

    try:
        yield start
    finally:
        for httpd, thread in running:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)


@pytest.fixture
def server(start_server: Callable[[], FakeServer]) -> FakeServer:
    return start_server()


@pytest.fixture
def closed_port_url() -> str:
    """An address where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def make_settings(address: str = "http://unused.invalid", **overrides: Any) -> MetricsSettings:
    values: dict[str, Any] = {
        "prometheus_address": address,
        "retry_attempts": 3,
        "retry_max_wait": timedelta(milliseconds=1),
        "query_timeout": timedelta(seconds=5),
    }
    values.update(overrides)
    return MetricsSettings(**values)


@pytest.fixture
def settings(server: FakeServer) -> MetricsSettings:
    return make_settings(server.url)


# --- wire formats -----------------------------------------------------------------------------

TS = 1_700_000_000.123


def vector(*series: tuple[Mapping[str, str], str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": dict(m), "value": [TS, v]} for m, v in series]},
    }


def scalar(value: str) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "scalar", "result": [TS, value]}}


def prom_error(error_type: str, error: str) -> dict[str, Any]:
    return {"status": "error", "errorType": error_type, "error": error}


def traffic_metrics(
    namespace: str, name: str, metrics: Sequence[Mapping[str, str]], window: str = "1m"
) -> dict[str, Any]:
    return {
        "kind": "TrafficMetrics",
        "apiVersion": "metrics.smi-spec.io/v1alpha1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
        "timestamp": "2024-05-01T10:00:00Z",
        "window": window,
        "resource": {"kind": "Deployment", "namespace": namespace, "name": name},
        "edge": {"direction": "from", "resource": None},
        "metrics": [dict(m) for m in metrics],
    }


# --- requests ---------------------------------------------------------------------------------


def builtin_request(
    metric: str, *, namespace: str = "shop", target: str = "podinfo", window: timedelta = timedelta(minutes=1)
) -> MeasureRequest:
    return MeasureRequest(
        metric=MetricSpec(name=metric, threshold_range=ThresholdRange(min=99)),
        namespace=namespace,
        name="podinfo-canary",
        target=target,
        service="podinfo",
        window=window,
    )


def template_request(
    query: str,
    *,
    provider: ProviderType = ProviderType.PROMETHEUS,
    address: str | None = None,
    secret: str | None = None,
    variables: Mapping[str, str] | None = None,
    window: timedelta = timedelta(minutes=1),
) -> MeasureRequest:
    return MeasureRequest(
        metric=MetricSpec(
            name="custom",
            threshold_range=ThresholdRange(max=1),
            template_ref=TemplateRef(name="tmpl"),
            template_variables=dict(variables or {}),
        ),
        namespace="shop",
        name="podinfo-canary",
        target="podinfo",
        service="podinfo",
        window=window,
        template=MetricTemplateSpec(provider=ProviderSpec(type=provider, address=address, secret_ref=secret), query=query),
    )


def http_fetch(base_url: str) -> SmiFetch:
    """An SmiFetch over plain HTTP, mapping answers to the FetchError contract."""

    async def fetch(path: str) -> Mapping[str, Any]:
        try:
            async with aiohttp.ClientSession() as session, session.get(base_url + path) as response:
                if response.status != 200:
                    raise FetchError(response.status, await response.text())
                body: Mapping[str, Any] = await response.json()
                return body
        except aiohttp.ClientConnectionError as exc:
            raise FetchError(None, str(exc)) from exc

    return fetch
