"""A load generator: steady request streams through the proxy.

A stream is named (by default ``<service>.<namespace>``, so one stream per Service unless the
caller names them) and sends every request alike: its method, path, query parameters, headers
(cookies are a ``Cookie`` header) and ``Host``: the Service's address, or any hostname, which
makes it north-south traffic for an HTTPRoute attached to a Gateway. Two streams with different
headers to one Service are how a test drives A/B traffic. Each request carries the stream's name
(``x-mesh-load``), so the stats count requests per stream and backend; the stream itself also
counts the backends that answered (``x-mesh-backend``).

A stream with ``users`` plays that many browsers in turn (``e2e.mesh.users``), each keeping the
cookies its answers set (``Set-Cookie``, name and value; ``Max-Age`` 0 or less deletes), as
session affinity needs: ``switches`` counts, per user, answers from another backend than the
user's previous one (``"podinfo-primary->podinfo-canary"``). A user waits for its answer before
it sends again, so each of its requests carries the cookies of all its earlier answers. Without
``users`` no cookie is ever kept.

Requests are evenly paced at the stream's rate. At most ``concurrency`` are in flight per
stream, and with ``users`` at most one per user; a request that would exceed either is not sent
and counts as ``dropped`` (a load tester with a fixed pool of workers behaves the same way), so
a slow backend cannot pile up unbounded work.
The rate changes at run time; 0 stops the stream. For Service traffic the generator identifies
itself to the proxy as the meshed workload ``mesh-loadgen`` of the target's namespace, so the
outbound side of its requests is in the metrics as well; north-south traffic comes from outside
the mesh.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from e2e.mesh.proxy import BACKEND_HEADER, CLIENT_HEADER, LOAD_HEADER
from e2e.mesh.users import User, Users

log = logging.getLogger(__name__)

WORKLOAD = "mesh-loadgen"
DEFAULT_CONCURRENCY = 128
MAX_RPS = 5000.0
MAX_HEADERS = 64
MAX_USERS = 10_000
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
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
    name: str = ""
    #: The Host header; "" for the Service's address.
    host: str = ""
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    #: Answers per backend Service (the proxy's ``x-mesh-backend``; "" for the proxy's own).
    backends: Counter[str] = field(default_factory=Counter)
    #: Simulated browsers with their own cookies; 0: none, no cookie is kept.
    users: int = 0
    #: Per user, answers from another backend than the previous one, as "from->to".
    switches: Counter[str] = field(default_factory=Counter)
    _users: Users | None = field(default=None, repr=False)

    def set_users(self, users: int) -> None:
        if users != self.users:
            self.users = users
            self._users = Users(users) if users else None

    @property
    def every_user_waits(self) -> bool:
        """Every user has a request in flight, so none may send now."""
        return self._users is not None and not self._users.idle

    def next_user(self) -> User | None:
        """The user to send the next request as, busy until its :meth:`User.done`; None without
        users (and when every user waits, which the pacer checks first)."""
        return self._users.take() if self._users is not None else None

    def cookie_header(self, user: User | None) -> str | None:
        """The ``Cookie`` header for ``user``: the stream's own cookies, then the user's."""
        pairs = [v for k, v in self.headers.items() if k.lower() == "cookie" and v]
        if user is not None:
            pairs.extend(f"{k}={v}" for k, v in user.jar.items())
        return "; ".join(pairs) or None

    def answered(self, user: User | None, backend: str, set_cookies: list[str]) -> None:
        self.backends[backend] += 1
        if user is None:
            return
        switch = user.answered(backend, set_cookies)
        if switch is not None:
            self.switches[switch] += 1
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
            "name": self.name,
            "host": self.host,
            "method": self.method,
            "headers": dict(self.headers),
            "query": dict(self.query),
            "backends": dict(self.backends),
            "users": self.users,
            "switches": dict(self.switches),
        }

    @property
    def authority(self) -> str:
        return self.host or f"{self.service}.{self.namespace}"

    @property
    def target(self) -> str:
        """The path with the query parameters."""
        if not self.query:
            return self.path
        return self.path + ("&" if "?" in self.path else "?") + urllib.parse.urlencode(self.query)


class LoadGenerator:
    def __init__(self, proxy_url: str) -> None:
        self._proxy_url = proxy_url.rstrip("/")
        self._streams: dict[str, LoadStream] = {}
        self._pacers: dict[str, asyncio.Task[None]] = {}
        self._requests: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def streams(self) -> list[LoadStream]:
        return [self._streams[k] for k in sorted(self._streams)]

    def set(
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
    ) -> LoadStream | None:
        """Start, change or (``rps == 0``) stop the stream ``name`` (by default
        ``service.namespace``) to ``service.namespace``, or to ``host`` when given (then namespace
        and service may be ""). Settings left None keep their current value; ``cookies`` become
        the ``Cookie`` header."""
        if not host and (not namespace or not service):
            raise LoadError("namespace and service are required, unless a host is given")
        if not 0 <= rps <= MAX_RPS:
            raise LoadError(f"rps must be between 0 and {MAX_RPS:g}, got {rps}")
        if concurrency is not None and concurrency < 1:
            raise LoadError(f"concurrency must be at least 1, got {concurrency}")
        if path is not None and not path.startswith("/"):
            raise LoadError(f"path must start with '/', got {path!r}")
        if users is not None and not 0 <= users <= MAX_USERS:
            raise LoadError(f"users must be between 0 and {MAX_USERS}, got {users}")
        if method is not None and method.upper() not in METHODS:
            raise LoadError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        sent_headers = _headers(headers, cookies)
        key = name or (host if host and not service else f"{service}.{namespace}")
        pacer = self._pacers.pop(key, None)
        if pacer is not None:
            pacer.cancel()
        if rps == 0:
            self._streams.pop(key, None)
            log.info("load stream %s stopped", key)
            return None
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = LoadStream(namespace=namespace, service=service, rps=rps, name=key)
        stream.rps = rps
        for attribute, value in (
            ("path", path),
            ("concurrency", concurrency),
            ("host", host),
            ("method", method.upper() if method else None),
            ("headers", sent_headers),
            ("query", dict(query) if query is not None else None),
        ):
            if value is not None:
                setattr(stream, attribute, value)
        if users is not None:
            stream.set_users(users)
        self._pacers[key] = asyncio.get_running_loop().create_task(self._pace(stream))
        log.info("load stream %s to %s: %g rps", key, stream.authority, rps)
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
            if stream.in_flight >= stream.concurrency or stream.every_user_waits:
                stream.dropped += 1
                continue
            # Chosen here, not in the task: the pacer's check above holds only until it yields.
            user = stream.next_user()
            stream.in_flight += 1
            stream.sent += 1
            task = loop.create_task(self._send(stream, user))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)

    async def _send(self, stream: LoadStream, user: User | None) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=1024, limit_per_host=1024)
            # Cookies are the streams' business (``users``), never shared through the session.
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=_REQUEST_TIMEOUT, cookie_jar=aiohttp.DummyCookieJar()
            )
        headers = {k: v for k, v in stream.headers.items() if k.lower() != "cookie"}
        headers.update({"Host": stream.authority, LOAD_HEADER: stream.name})
        if not stream.host and stream.namespace:
            headers[CLIENT_HEADER] = f"{stream.namespace}/{WORKLOAD}/{WORKLOAD}"
        cookie = stream.cookie_header(user)
        if cookie:
            headers["Cookie"] = cookie
        try:
            async with self._session.request(stream.method, self._proxy_url + stream.target, headers=headers) as answer:
                await answer.read()
                stream.statuses[str(answer.status)] += 1
                stream.answered(user, answer.headers.get(BACKEND_HEADER, ""), answer.headers.getall("Set-Cookie", []))
                stream.completed += 1
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            stream.errors += 1
            stream.last_error = repr(exc)
        finally:
            stream.in_flight -= 1
            if user is not None:
                user.done()


def _headers(headers: Mapping[str, str] | None, cookies: Mapping[str, str] | None) -> dict[str, str] | None:
    if headers is None and cookies is None:
        return None
    out = {str(k): str(v) for k, v in (headers or {}).items()}
    reserved = {"host", LOAD_HEADER, CLIENT_HEADER}
    if any(k.lower() in reserved for k in out):
        raise LoadError(f"headers may not set {', '.join(sorted(reserved))}: use host (and name) instead")
    if cookies:
        out["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    if len(out) > MAX_HEADERS:
        raise LoadError(f"at most {MAX_HEADERS} headers, got {len(out)}")
    return out

