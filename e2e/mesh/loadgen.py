"""A load generator: steady request streams through the proxy, one per target Service.

Requests are evenly paced at the stream's rate. At most ``concurrency`` are in flight per
stream; a request that would exceed it is not sent and counts as ``dropped`` (a load tester with
a fixed pool of workers behaves the same way), so a slow backend cannot pile up unbounded work.
The rate changes at run time; 0 stops the stream. The generator identifies itself to the proxy
as the meshed workload ``mesh-loadgen`` of the target's namespace, so the outbound side of its
requests is in the metrics as well.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from e2e.mesh.proxy import CLIENT_HEADER

log = logging.getLogger(__name__)

WORKLOAD = "mesh-loadgen"
DEFAULT_CONCURRENCY = 128
MAX_RPS = 5000.0
# After a stall (a busy loop), pacing restarts from now rather than bursting to catch up.
_MAX_LAG = 1.0
_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)


class LoadError(ValueError):
    """A load setting that cannot be applied; the message says which and why."""


@dataclass
class LoadStream:
    namespace: str
    service: str
    rps: float
    path: str = "/"
    concurrency: int = DEFAULT_CONCURRENCY
    sent: int = 0
    completed: int = 0
    errors: int = 0
    dropped: int = 0
    in_flight: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    last_error: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "service": self.service,
            "rps": self.rps,
            "path": self.path,
            "concurrency": self.concurrency,
            "sent": self.sent,
            "completed": self.completed,
            "errors": self.errors,
            "dropped": self.dropped,
            "inFlight": self.in_flight,
            "statuses": dict(self.statuses),
            "lastError": self.last_error,
        }


class LoadGenerator:
    def __init__(self, proxy_url: str) -> None:
        self._proxy_url = proxy_url.rstrip("/")
        self._streams: dict[tuple[str, str], LoadStream] = {}
        self._pacers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._requests: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def streams(self) -> list[LoadStream]:
        return [self._streams[k] for k in sorted(self._streams)]

    def set(
        self, namespace: str, service: str, rps: float, *, path: str | None = None, concurrency: int | None = None
    ) -> LoadStream | None:
        """Start, change or (``rps == 0``) stop the stream to ``service.namespace``."""
        if not namespace or not service:
            raise LoadError("namespace and service are required")
        if not 0 <= rps <= MAX_RPS:
            raise LoadError(f"rps must be between 0 and {MAX_RPS:g}, got {rps}")
        if concurrency is not None and concurrency < 1:
            raise LoadError(f"concurrency must be at least 1, got {concurrency}")
        if path is not None and not path.startswith("/"):
            raise LoadError(f"path must start with '/', got {path!r}")
        key = (namespace, service)
        pacer = self._pacers.pop(key, None)
        if pacer is not None:
            pacer.cancel()
        if rps == 0:
            self._streams.pop(key, None)
            log.info("load to %s.%s stopped", service, namespace)
            return None
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = LoadStream(namespace=namespace, service=service, rps=rps)
        stream.rps = rps
        if path is not None:
            stream.path = path
        if concurrency is not None:
            stream.concurrency = concurrency
        self._pacers[key] = asyncio.get_running_loop().create_task(self._pace(stream))
        log.info("load to %s.%s: %g rps", service, namespace, rps)
        return stream

    async def close(self) -> None:
        for pacer in self._pacers.values():
            pacer.cancel()
        self._pacers.clear()
        self._streams.clear()
        for task in list(self._requests):
            task.cancel()
        await asyncio.gather(*self._requests, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _pace(self, stream: LoadStream) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / stream.rps
        next_at = loop.time()
        while True:
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += interval
            if next_at < loop.time() - _MAX_LAG:
                next_at = loop.time()
            if stream.in_flight >= stream.concurrency:
                stream.dropped += 1
                continue
            stream.in_flight += 1
            stream.sent += 1
            task = loop.create_task(self._send(stream))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)

    async def _send(self, stream: LoadStream) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=1024, limit_per_host=1024)
            self._session = aiohttp.ClientSession(connector=connector, timeout=_REQUEST_TIMEOUT)
        headers = {
            "Host": f"{stream.service}.{stream.namespace}",
            CLIENT_HEADER: f"{stream.namespace}/{WORKLOAD}/{WORKLOAD}",
        }
        try:
            async with self._session.get(self._proxy_url + stream.path, headers=headers) as answer:
                await answer.read()
                stream.statuses[str(answer.status)] += 1
                stream.completed += 1
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            stream.errors += 1
            stream.last_error = repr(exc)
        finally:
            stream.in_flight -= 1

