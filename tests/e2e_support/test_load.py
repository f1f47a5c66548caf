"""The load generator against a loopback server: what it sends, counts and drops."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from e2e.traefik.load import Load, LoadError, LoadStats


def wait(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@dataclass
class Backend:
    url: str = ""
    seen: list[dict[str, str]] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    status: int = 200

    def __post_init__(self) -> None:
        self.hold.set()


@pytest.fixture
def backend() -> Iterator[Backend]:
    state = Backend()
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    async def handle(request: web.Request) -> web.Response:
        state.seen.append({"host": request.host, "cookie": request.headers.get("Cookie", ""),
                           "x-user": request.headers.get("x-user", ""), "path": request.path})
        while not state.hold.is_set():
            await asyncio.sleep(0.005)
        version = "v2" if len(state.seen) % 2 else "v1"
        return web.Response(status=state.status, headers={"x-canary-version": version, "x-canary-pod": f"ns/{version}"})

    async def serve() -> web.AppRunner:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        state.url = f"http://127.0.0.1:{port}"
        return runner

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(serve())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait()
    yield state
    state.hold.set()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_sends_host_headers_cookies_and_path_and_counts_answers(backend: Backend) -> None:
    with Load(backend.url, host="app.example", rps=200, headers={"x-user": "beta"}, path="/api",
              cookies={"canary": "always", "id": "7"}) as load:
        wait(lambda: load.snapshot().answered >= 20, "20 answers")
    stats = load.snapshot()
    assert backend.seen[0] == {"host": "app.example", "cookie": "canary=always; id=7", "x-user": "beta", "path": "/api"}
    assert stats.by_status == {200: stats.answered}
    assert sum(stats.by_version.values()) == stats.answered == sum(stats.by_pod.values())
    assert set(stats.by_version) == {"v1", "v2"} and set(stats.by_pod) == {"ns/v1", "ns/v2"}
    assert len(stats.latencies_ms) == stats.latency_count == stats.answered
    assert stats.errors == {} and stats.failed == 0


def test_a_request_beyond_the_concurrency_is_dropped_not_queued(backend: Backend) -> None:
    backend.hold.clear()
    with Load(backend.url, host="x", rps=100, concurrency=2) as load:
        wait(lambda: load.snapshot().dropped >= 3, "requests to be dropped while two hang")
        assert load.snapshot().sent == 2
        backend.hold.set()
        wait(lambda: load.snapshot().answered >= 4, "answers once the backend is released")


def test_connection_failures_are_counted_as_errors() -> None:
    with Load("http://127.0.0.1:9", host="x", rps=100) as load:  # the discard port: nothing listens
        wait(lambda: sum(load.snapshot().errors.values()) >= 3, "3 connection errors")
    stats = load.snapshot()
    assert stats.answered == 0 and stats.failed == sum(stats.errors.values())


def test_a_rate_of_zero_sends_nothing_until_raised(backend: Backend) -> None:
    with Load(backend.url, host="x", rps=0) as load:
        load.set_rate(100)
        wait(lambda: load.snapshot().answered >= 3, "answers after the rate was raised")
    with pytest.raises(LoadError):
        load.set_rate(-1)


def test_failures_count_5xx_answers(backend: Backend) -> None:
    backend.status = 503
    with Load(backend.url, host="x", rps=100) as load:
        wait(lambda: load.snapshot().answered >= 3, "3 answers")
    stats = load.snapshot()
    assert stats.failed == stats.answered == stats.by_status[503]


def test_minus_is_what_happened_between_two_snapshots() -> None:
    earlier = LoadStats(sent=5, dropped=1, by_status={200: 4}, by_version={"v1": 4}, by_pod={"p": 4},
                        latencies_ms=(1.0, 2.0, 3.0, 4.0), latency_count=4)
    later = LoadStats(sent=9, dropped=1, by_status={200: 6, 500: 2}, by_version={"v1": 6, "v2": 2},
                      by_pod={"p": 6, "q": 2}, errors={"ClientOSError": 1},
                      latencies_ms=(3.0, 4.0, 5.0, 6.0, 7.0, 8.0), latency_count=8)
    diff = later.minus(earlier)
    assert (diff.sent, diff.dropped) == (4, 0)
    assert diff.by_status == {200: 2, 500: 2} and diff.by_version == {"v1": 2, "v2": 2}
    assert diff.by_pod == {"p": 2, "q": 2} and diff.errors == {"ClientOSError": 1}
    assert diff.latencies_ms == (5.0, 6.0, 7.0, 8.0) and diff.latency_count == 4
    assert diff.share("v2") == 0.5 and LoadStats().share("v2") == 0.0


def test_settings_out_of_bounds_are_refused() -> None:
    with pytest.raises(LoadError):
        Load("http://127.0.0.1:1", host="x", rps=1e9)
    with pytest.raises(LoadError):
        Load("http://127.0.0.1:1", host="x", rps=1, concurrency=0)


def test_only_the_oldest_request_in_flight_says_everything_sent_earlier_was_answered() -> None:
    # Requests 1..10 sent; 9 and 10 answered (fast), 3 still waiting (slow): the answered count
    # alone would say "all done", the oldest in flight says request 3 is not.
    earlier = LoadStats(sent=10)
    assert not LoadStats(sent=12, by_status={200: 11}, oldest_in_flight=3).answered_all_sent_by(earlier)
    assert LoadStats(sent=12, by_status={200: 11}, oldest_in_flight=11).answered_all_sent_by(earlier)
    assert LoadStats(sent=12, by_status={200: 12}).answered_all_sent_by(earlier)
    assert LoadStats(sent=12, oldest_in_flight=3).minus(earlier).oldest_in_flight == 3
