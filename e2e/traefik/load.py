"""Real HTTP load at a steady rate, for sending through a gateway's entrypoint.

:class:`Load` sends ``rps`` requests a second to one URL, evenly spaced, from a background thread
with its own event loop, with a ``Host`` header (how Traefik picks a route) and optional headers
and cookies (A/B matches). It never lets a slow backend slow the rate down: a request due while
``concurrency`` requests are already in flight is dropped and counted, not queued, so the rate a
test asked for is the rate it gets or the stats say how far from it it was.

:meth:`Load.snapshot` counts answers by status, by the ``x-canary-version`` and ``x-canary-pod``
headers the pod servers set (:mod:`e2e.podnet.servers`), and connection failures, and keeps the
latest latency samples; :meth:`LoadStats.minus` gives what happened between two snapshots.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp

POD_HEADER = "x-canary-pod"
VERSION_HEADER = "x-canary-version"

#: Bounds of the settings; the same numbers are enforced at run time (:meth:`Load.set_rate`).
MAX_RPS = 5000.0
MAX_CONCURRENCY = 4096
#: The most recent latency samples kept (a few minutes at a few hundred requests a second).
LATENCY_SAMPLES = 100_000
#: The longest the pacer sleeps at once, so a stop or a rate change is noticed within it.
TICK_SECONDS = 0.05
#: Behind schedule by more than this, the schedule restarts from now rather than bursting to catch up.
MAX_LAG_SECONDS = 0.5


class LoadError(ValueError):
    """A load setting out of its bounds."""


@dataclass(frozen=True)
class LoadStats:
    #: Requests sent (answered, failed or still in flight).
    sent: int = 0
    #: Requests due while ``concurrency`` were in flight, so never sent.
    dropped: int = 0
    by_status: Mapping[int, int] = field(default_factory=dict)
    by_version: Mapping[str, int] = field(default_factory=dict)
    by_pod: Mapping[str, int] = field(default_factory=dict)
    #: Requests that got no HTTP answer (refused, reset, timed out), by exception name.
    errors: Mapping[str, int] = field(default_factory=dict)
    #: Latencies (ms) of the latest answered requests, oldest first.
    latencies_ms: tuple[float, ...] = ()
    #: How many latency samples were ever taken (the tuple keeps only the latest ones).
    latency_count: int = 0
    #: The number (1 = the first ever sent) of the oldest request still waiting for its answer;
    #: None when none is. A fast backend's answers overtake a slow one's, so only this tells
    #: that every request sent before some moment has been answered.
    oldest_in_flight: int | None = None

    def answered_all_sent_by(self, earlier: LoadStats) -> bool:
        """Whether every request sent by the time of ``earlier`` has had its answer (or error)."""
        return self.oldest_in_flight is None or self.oldest_in_flight > earlier.sent

    @property
    def answered(self) -> int:
        return sum(self.by_status.values())

    @property
    def failed(self) -> int:
        """Requests with no answer or a 5xx answer."""
        return sum(self.errors.values()) + sum(n for code, n in self.by_status.items() if code >= 500)

    def share(self, version: str) -> float:
        """The share (0..1) of answers that came from ``version``; 0 with no answer."""
        total = sum(self.by_version.values())
        return self.by_version.get(version, 0) / total if total else 0.0

    def minus(self, earlier: LoadStats) -> LoadStats:
        """What happened after ``earlier`` (a snapshot of the same load)."""
        new_samples = self.latency_count - earlier.latency_count
        return LoadStats(
            sent=self.sent - earlier.sent,
            dropped=self.dropped - earlier.dropped,
            by_status=_minus(self.by_status, earlier.by_status),
            by_version=_minus(self.by_version, earlier.by_version),
            by_pod=_minus(self.by_pod, earlier.by_pod),
            errors=_minus(self.errors, earlier.errors),
            latencies_ms=self.latencies_ms[len(self.latencies_ms) - min(new_samples, len(self.latencies_ms)):],
            latency_count=new_samples,
            oldest_in_flight=self.oldest_in_flight,
        )


K = TypeVar("K")


def _minus(now: Mapping[K, int], then: Mapping[K, int]) -> dict[K, int]:
    return {key: count - then.get(key, 0) for key, count in now.items() if count - then.get(key, 0)}


def _check_rate(rps: float) -> float:
    if not 0.0 <= rps <= MAX_RPS:
        raise LoadError(f"rps must be between 0 and {MAX_RPS:g}, not {rps}")
    return float(rps)


class Load:
    def __init__(
        self,
        url: str,
        *,
        host: str,
        rps: float,
        headers: Mapping[str, str] | None = None,
        path: str = "/",
        concurrency: int = 64,
        cookies: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise LoadError(f"concurrency must be between 1 and {MAX_CONCURRENCY}, not {concurrency}")
        if not 0.1 <= timeout <= 300.0:
            raise LoadError(f"timeout must be between 0.1 and 300 seconds, not {timeout}")
        self.url = url.rstrip("/") + "/" + path.lstrip("/")
        self._rps = _check_rate(rps)
        self._headers = {"Host": host, **(headers or {})}
        if cookies:
            self._headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        self._concurrency = concurrency
        self._timeout = timeout
        self._lock = threading.Lock()
        self._sent = self._dropped = self._latency_count = 0
        self._in_flight = 0
        self._outstanding: set[int] = set()
        self._by_status: Counter[int] = Counter()
        self._by_version: Counter[str] = Counter()
        self._by_pod: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._rate_changed: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load-{host}", daemon=True)
        self._failure: BaseException | None = None

    # -- control (any thread) ----------------------------------------------------------------

    def start(self) -> Load:
        self._thread.start()
        self._started.wait()
        if self._failure is not None:
            raise self._failure
        return self

    def stop(self) -> None:
        """Stop sending and wait for requests in flight (at most the timeout). Idempotent."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(stopping.set)
        if self._thread.is_alive():
            self._thread.join(self._timeout + 5.0)

    def set_rate(self, rps: float) -> None:
        """Change the rate now; the spacing restarts from the moment of the change."""
        rate = _check_rate(rps)
        with self._lock:
            self._rps = rate
        loop, changed = self._loop, self._rate_changed
        if loop is not None and changed is not None:
            loop.call_soon_threadsafe(changed.set)

    @property
    def rps(self) -> float:
        return self._rps

    def snapshot(self) -> LoadStats:
        with self._lock:
            return LoadStats(
                sent=self._sent,
                dropped=self._dropped,
                by_status=dict(self._by_status),
                by_version=dict(self._by_version),
                by_pod=dict(self._by_pod),
                errors=dict(self._errors),
                latencies_ms=tuple(self._latencies),
                latency_count=self._latency_count,
                oldest_in_flight=min(self._outstanding, default=None),
            )

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- the load's own thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to start() or kept for the reader
            self._failure = exc
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping, self._rate_changed = asyncio.Event(), asyncio.Event()
        connector = aiohttp.TCPConnector(limit=self._concurrency, limit_per_host=0)
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(),
                                         auto_decompress=False) as session:
            self._started.set()
            tasks: set[asyncio.Task[None]] = set()
            await self._pace(session, tasks)
            if tasks:
                await asyncio.wait(tasks, timeout=self._timeout)

    async def _pace(self, session: aiohttp.ClientSession, tasks: set[asyncio.Task[None]]) -> None:
        assert self._stopping is not None and self._rate_changed is not None
        stopping, changed = self._stopping, self._rate_changed
        while not stopping.is_set():
            changed.clear()
            rps = self._rps
            began, sent = time.monotonic(), 0
            while not stopping.is_set() and not changed.is_set():
                if rps <= 0:
                    await asyncio.sleep(TICK_SECONDS)
                    continue
                delay = began + sent / rps - time.monotonic()
                if delay > 0:
                    # Plain sleeps: waiting on the events with a timeout would cost tasks per request.
                    await asyncio.sleep(min(delay, TICK_SECONDS))
                    continue
                if -delay > MAX_LAG_SECONDS:
                    # The loop was starved (a busy machine): restart the spacing instead of a burst.
                    began, sent = time.monotonic(), 0
                    continue
                sent += 1
                self._fire(session, tasks)

    def _fire(self, session: aiohttp.ClientSession, tasks: set[asyncio.Task[None]]) -> None:
        with self._lock:
            if self._in_flight >= self._concurrency:
                self._dropped += 1
                return
            self._in_flight += 1
            self._sent += 1
            number = self._sent
            self._outstanding.add(number)
        task = asyncio.get_running_loop().create_task(self._request(session, number))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _request(self, session: aiohttp.ClientSession, number: int) -> None:
        began = time.perf_counter()
        try:
            async with session.get(self.url, headers=self._headers, allow_redirects=False) as response:
                await response.read()
                status = response.status
                version = response.headers.get(VERSION_HEADER)
                pod = response.headers.get(POD_HEADER)
            elapsed_ms = (time.perf_counter() - began) * 1000.0
            with self._lock:
                self._by_status[status] += 1
                if version is not None:
                    self._by_version[version] += 1
                if pod is not None:
                    self._by_pod[pod] += 1
                self._latencies.append(elapsed_ms)
                self._latency_count += 1
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            with self._lock:
                self._errors[type(exc).__name__] += 1
        finally:
            with self._lock:
                self._in_flight -= 1
                self._outstanding.discard(number)
