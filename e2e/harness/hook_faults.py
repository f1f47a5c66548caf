"""A webhook endpoint on 127.0.0.1 that fails the way networks and overloaded services do.

Each path is given a :class:`Fault`; every connection to it is recorded as an :class:`Attempt`,
with what the server did and how the connection ended, so a scenario can count the controller's
attempts per gate call and see that it gave up on its own (it closed the connection) rather
than the server ending the exchange.

It speaks just enough HTTP/1.1 by hand on raw sockets, because a framework would not let it
misbehave: hold a request forever, reset the connection, or send a body slower than any timeout.
"""

from __future__ import annotations

import enum
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field


class Fault(enum.Enum):
    #: Read the request, never answer; wait for the client to give up and close.
    HANG = "hang"
    #: Read the request, then reset the connection (RST, not FIN).
    RESET = "reset"
    #: Answer 200 with a Content-Length, then send the body one byte every SLOW_BYTE_SECONDS.
    SLOW_BODY = "slow-body"
    #: 503 on every odd attempt to the path, 200 on every even one: "5xx, then success on retry".
    FLAKY = "flaky"


SLOW_BODY_BYTES = 64
SLOW_BYTE_SECONDS = 0.25  # the whole body takes 16 s, far beyond any timeout the scenarios set


@dataclass
class Attempt:
    path: str
    fault: Fault
    started: float
    ended: float = 0.0
    #: What ended the exchange: "client closed" (the caller gave up), "answered", "reset",
    #: "body sent" (a slow body the caller waited out to the end), "server stopped".
    end: str = ""
    status: int | None = None


@dataclass
class FaultyHookServer:
    faults: dict[str, Fault]
    attempts: list[Attempt] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _sock: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    port: int = 0

    def __enter__(self) -> FaultyHookServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.settimeout(0.2)
        self._sock = sock
        self.port = sock.getsockname()[1]
        accept = threading.Thread(target=self._accept, name="hook-faults", daemon=True)
        accept.start()
        self._threads.append(accept)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(5)
        if self._sock is not None:
            self._sock.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def of(self, path: str) -> list[Attempt]:
        with self._lock:
            return [a for a in self.attempts if a.path == path]

    # --- serving -------------------------------------------------------------------------
    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            path = _read_request(conn)
            if path is None:
                return
            fault = self.faults.get(path)
            if fault is None:
                conn.sendall(_response(404, b"no fault configured for this path"))
                return
            attempt = Attempt(path=path, fault=fault, started=time.monotonic())
            with self._lock:
                self.attempts.append(attempt)
                number = sum(1 for a in self.attempts if a.path == path)
            try:
                attempt.end, attempt.status = self._misbehave(conn, fault, number)
            except OSError:
                attempt.end = "client closed"
            attempt.ended = time.monotonic()

    def _misbehave(self, conn: socket.socket, fault: Fault, number: int) -> tuple[str, int | None]:
        if fault is Fault.HANG:
            return self._wait_for_close(conn), None
        if fault is Fault.RESET:
            # SO_LINGER with a zero timeout turns close() into a RST.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return "reset", None
        if fault is Fault.SLOW_BODY:
            conn.sendall(_head(200, SLOW_BODY_BYTES))
            for _ in range(SLOW_BODY_BYTES):
                if self._stop.wait(SLOW_BYTE_SECONDS):
                    return "server stopped", 200
                conn.sendall(b"y")
            return "body sent", 200
        status = 503 if number % 2 == 1 else 200
        conn.sendall(_response(status, b"overloaded" if status == 503 else b"ok"))
        return "answered", status

    def _wait_for_close(self, conn: socket.socket) -> str:
        while not self._stop.is_set():
            readable, _, _ = select.select([conn], [], [], 0.2)
            if readable and not conn.recv(4096):
                return "client closed"
        return "server stopped"


def _read_request(conn: socket.socket) -> str | None:
    """The request's path, after reading its head and its Content-Length body; None if cut short."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    parts = lines[0].split(" ")
    return parts[1] if len(parts) >= 2 else None


def _head(status: int, length: int) -> bytes:
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}.get(status, "")
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {length}\r\n"
            f"Connection: close\r\n\r\n").encode()


def _response(status: int, body: bytes) -> bytes:
    return _head(status, len(body)) + body
