from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
import structlog.testing

from canary.domain.spec import WebhookSpec, WebhookType
from canary.domain.status import CheckKind, Phase, Verdict
from canary.notify.webhooks import (
    DEFAULT_BACKOFF,
    RetryBackoff,
    WebhookOutcome,
    WebhookPayload,
    call_all,
    call_webhook,
    notify,
)
from tests.notify.conftest import HookServer, Reply

NO_WAIT = RetryBackoff(initial=timedelta(0), maximum=timedelta(0))
PAYLOAD = WebhookPayload(name="podinfo", namespace="test", phase=Phase.PROGRESSING, checksum="abc123")


def hook(
    url: str,
    *,
    name: str = "gate",
    kind: WebhookType = WebhookType.CONFIRM_PROMOTION,
    retries: int = 0,
    timeout: timedelta = timedelta(seconds=5),
    metadata: dict[str, str] | None = None,
) -> WebhookSpec:
    return WebhookSpec(name=name, type=kind, url=url, timeout=timeout, retries=retries, metadata=metadata or {})


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


# --- the request ------------------------------------------------------------------------------


async def test_body_is_exactly_flaggers_shape(hook_server: HookServer, session: aiohttp.ClientSession) -> None:
    url = hook_server.script("/gate", Reply(200))
    await call_webhook(session, hook(url, metadata={"cmd": "hey -z 1m http://podinfo-canary"}), PAYLOAD)

    [request] = hook_server.received
    assert request.method == "POST"
    assert request.content_type == "application/json"
    assert request.body == {
        "name": "podinfo",
        "namespace": "test",
        "phase": "Progressing",
        "checksum": "abc123",
        "metadata": {"cmd": "hey -z 1m http://podinfo-canary"},
    }


async def test_event_metadata_merges_and_controller_keys_win(
    hook_server: HookServer, session: aiohttp.ClientSession
) -> None:
    url = hook_server.script("/events", Reply(202))
    payload = WebhookPayload.for_event(
        name="podinfo", namespace="test", phase=Phase.FAILED, checksum="abc123",
        message="Canary analysis failed", event_type="Warning",
    )
    spec = hook(url, kind=WebhookType.EVENT, metadata={"team": "payments", "eventType": "spoofed"})
    outcome = await call_webhook(session, spec, payload)

    assert outcome.passed
    assert hook_server.bodies("/events") == [{
        "name": "podinfo",
        "namespace": "test",
        "phase": "Failed",
        "checksum": "abc123",
        "metadata": {"team": "payments", "eventType": "Warning", "eventMessage": "Canary analysis failed"},
    }]


def test_to_json_without_a_hook_carries_only_payload_metadata() -> None:
    payload = WebhookPayload("a", "b", Phase.WAITING, "c", {"k": "v"})
    assert payload.to_json() == {"name": "a", "namespace": "b", "phase": "Waiting", "checksum": "c", "metadata": {"k": "v"}}
    assert json.loads(json.dumps(payload.to_json())) == payload.to_json()


# --- what counts as a yes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "passed"),
    [
        pytest.param(200, True, id="200-ok"),
        pytest.param(201, True, id="201-created"),
        pytest.param(202, True, id="202-accepted"),
        pytest.param(203, False, id="203-non-authoritative"),
        pytest.param(204, False, id="204-no-content"),
        pytest.param(400, False, id="400"),
        pytest.param(403, False, id="403"),
        pytest.param(404, False, id="404"),
        pytest.param(500, False, id="500"),
        pytest.param(503, False, id="503"),
    ],
)
async def test_status_decides(
    hook_server: HookServer, session: aiohttp.ClientSession, status: int, passed: bool
) -> None:
    url = hook_server.script("/gate", Reply(status))
    outcome = await call_webhook(session, hook(url), PAYLOAD, backoff=NO_WAIT)
    assert (outcome.passed, outcome.status, outcome.attempts) == (passed, status, 1)
    assert outcome.message.startswith(f"HTTP {status}")


async def test_refusal_message_carries_the_body(hook_server: HookServer, session: aiohttp.ClientSession) -> None:
    url = hook_server.script("/gate", Reply(403, "  not approved:\n  change freeze until Monday \n"))
    outcome = await call_webhook(session, hook(url), PAYLOAD)
    assert outcome.message == "HTTP 403: not approved: change freeze until Monday"


async def test_long_body_is_cut_to_200_characters(hook_server: HookServer, session: aiohttp.ClientSession) -> None:
    url = hook_server.script("/gate", Reply(400, "x" * 10_000))
    outcome = await call_webhook(session, hook(url), PAYLOAD)
    assert outcome.message == "HTTP 400: " + "x" * 200 + "…"


async def test_redirect_is_not_followed(hook_server: HookServer, session: aiohttp.ClientSession) -> None:
    url = hook_server.script("/old", Reply(302, headers={"Location": hook_server.url("/new")}))
    outcome = await call_webhook(session, hook(url), PAYLOAD)
    assert not outcome.passed and outcome.status == 302
    assert hook_server.url("/new") in outcome.message
    assert [r.path for r in hook_server.received] == ["/old"]


async def test_timeout_fails(hook_server: HookServer, session: aiohttp.ClientSession) -> None:
    url = hook_server.script("/slow", Reply(200, delay=2))
    # The reply comes after 2 s: had the call waited for it, the outcome would be a pass.
    outcome = await call_webhook(session, hook(url, timeout=timedelta(milliseconds=200)), PAYLOAD)
    assert outcome == WebhookOutcome(
        passed=False, status=None, message="no answer within 0.2s", attempts=1,
        hook=hook(url, timeout=timedelta(milliseconds=200)),
    )


async def test_connection_refused_fails(session: aiohttp.ClientSession) -> None:
    outcome = await call_webhook(session, hook(closed_port_url(), retries=1), PAYLOAD, backoff=NO_WAIT)
    assert (outcome.passed, outcome.status, outcome.attempts) == (False, None, 2)
    assert outcome.message.startswith("cannot reach 127.0.0.1")
    assert outcome.message.endswith("(after 2 attempts)")


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/x", "/relative/path"])
async def test_unusable_url_fails_without_a_call(session: aiohttp.ClientSession, url: str) -> None:
    outcome = await call_webhook(session, hook(url, retries=3), PAYLOAD)
    assert (outcome.passed, outcome.status, outcome.attempts) == (False, None, 0)
    assert "url" in outcome.message


# --- retries ----------------------------------------------------------------------------------


async def test_retries_5xx_then_succeeds(hook_server: HookServer, session: aiohttp.ClientSession) -> None:
    url = hook_server.script("/gate", Reply(503), Reply(502), Reply(200, "go"))
    # Default back-off on purpose: it is a property that its waits stay small enough for an
    # analysis tick (checked on the policy, not on the clock of a possibly busy machine).
    assert DEFAULT_BACKOFF.maximum <= timedelta(seconds=2)
    outcome = await call_webhook(session, hook(url, retries=2), PAYLOAD)
    assert (outcome.passed, outcome.status, outcome.attempts) == (True, 200, 3)
    assert outcome.message == "HTTP 200: go (after 3 attempts)"
    assert len(hook_server.bodies("/gate")) == 3


async def test_gives_up_after_retries(hook_server: HookServer, session: aiohttp.ClientSession) -> None:
    url = hook_server.script("/gate", Reply(500, "boom"))
    outcome = await call_webhook(session, hook(url, retries=2), PAYLOAD, backoff=NO_WAIT)
    assert (outcome.passed, outcome.status, outcome.attempts) == (False, 500, 3)
    assert outcome.message == "HTTP 500: boom (after 3 attempts)"


async def test_retries_a_timeout(hook_server: HookServer, session: aiohttp.ClientSession) -> None:
    url = hook_server.script("/gate", Reply(200, delay=2), Reply(200))
    spec = hook(url, retries=1, timeout=timedelta(milliseconds=200))
    outcome = await call_webhook(session, spec, PAYLOAD, backoff=NO_WAIT)
    assert (outcome.passed, outcome.attempts) == (True, 2)


@pytest.mark.parametrize("status", [400, 403, 404, 409])
async def test_never_retries_a_clean_no(hook_server: HookServer, session: aiohttp.ClientSession, status: int) -> None:
    url = hook_server.script("/gate", Reply(status), Reply(200))
    outcome = await call_webhook(session, hook(url, retries=3), PAYLOAD, backoff=NO_WAIT)
    assert (outcome.passed, outcome.status, outcome.attempts) == (False, status, 1)
    assert len(hook_server.received) == 1


# --- as a check -------------------------------------------------------------------------------


@pytest.mark.parametrize(("passed", "verdict"), [(True, Verdict.PASS), (False, Verdict.FAIL)])
def test_as_check(passed: bool, verdict: Verdict) -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    spec = hook("http://loadtester.test/gate", name="load-test", kind=WebhookType.ROLLOUT)
    check = WebhookOutcome(passed=passed, status=200 if passed else 500, message="HTTP x", attempts=1, hook=spec).as_check(now)
    assert (check.name, check.kind, check.source, check.verdict, check.time, check.message) == (
        "load-test", CheckKind.WEBHOOK, "http://loadtester.test/gate", verdict, now, "HTTP x",
    )
    assert check.value is None


# --- several hooks ----------------------------------------------------------------------------


async def test_call_all_runs_concurrently_and_keeps_order(
    hook_server: HookServer, session: aiohttp.ClientSession
) -> None:
    hooks = [
        hook(hook_server.script("/a", Reply(200, delay=0.4)), name="a"),
        hook(hook_server.script("/b", Reply(403, delay=0.4)), name="b"),
        hook(hook_server.script("/c", Reply(202, delay=0.4)), name="c"),
    ]
    outcomes = await call_all(session, hooks, PAYLOAD)

    assert [(o.hook.name, o.passed) for o in outcomes] == [("a", True), ("b", False), ("c", True)]
    # Concurrency shown by the server, not by a stopwatch: all three were in flight at once.
    assert hook_server.max_in_flight == 3


async def test_call_all_without_hooks(session: aiohttp.ClientSession) -> None:
    assert await call_all(session, [], PAYLOAD) == []


async def test_notify_logs_failures_and_never_raises(hook_server: HookServer, session: aiohttp.ClientSession) -> None:
    hooks = [
        hook(hook_server.script("/ok", Reply(200)), name="ok", kind=WebhookType.POST_ROLLOUT),
        hook(hook_server.script("/down", Reply(500)), name="down", kind=WebhookType.POST_ROLLOUT),
        hook(closed_port_url(), name="gone", kind=WebhookType.EVENT),
        hook("nonsense", name="typo", kind=WebhookType.EVENT),
    ]
    with structlog.testing.capture_logs() as logs:
        await notify(session, hooks, PAYLOAD, backoff=NO_WAIT)
    warned = [e for e in logs if e["log_level"] == "warning"]
    assert sorted(e["webhook"] for e in warned) == ["down", "gone", "typo"]
    assert all((e["namespace"], e["name"]) == ("test", "podinfo") for e in warned)


async def test_notify_survives_a_broken_session(hook_server: HookServer) -> None:
    async with aiohttp.ClientSession() as closed:
        pass
    # A closed session raises RuntimeError, not a transport error: notify still must not raise.
    with structlog.testing.capture_logs() as logs:
        await notify(closed, [hook(hook_server.url("/x"), kind=WebhookType.EVENT)], PAYLOAD)
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["notification webhooks crashed"]


async def test_notify_propagates_cancellation(hook_server: HookServer, session: aiohttp.ClientSession) -> None:
    url = hook_server.script("/slow", Reply(200, delay=5))
    task = asyncio.create_task(notify(session, [hook(url, kind=WebhookType.POST_ROLLOUT)], PAYLOAD))
    async with asyncio.timeout(30):
        while not hook_server.received:  # cancelled while the call is in flight
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- network faults (docs/analysis.md, "Retries and timeouts" of webhooks) -----------------------


async def _raw_server(answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
                      ) -> tuple[asyncio.Server, str, list[int]]:
    """A server that reads one request head and then misbehaves; counts the connections it got."""
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(1)
        await reader.readuntil(b"\r\n\r\n")
        try:
            await answer(reader, writer)
        except ConnectionError:
            pass  # the client gave up first, which is what these tests want
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/hook", seen


async def test_a_reset_connection_is_retried_then_fails(session: aiohttp.ClientSession) -> None:
    async def reset(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server, url, seen = await _raw_server(reset)
    async with server:
        outcome = await call_webhook(session, hook(url, retries=2), PAYLOAD, backoff=NO_WAIT)
    assert (outcome.passed, outcome.status, outcome.attempts, len(seen)) == (False, None, 3, 3)
    assert outcome.message.startswith("cannot reach 127.0.0.1") and outcome.message.endswith("(after 3 attempts)")


async def test_a_body_slower_than_the_timeout_is_no_answer(session: aiohttp.ClientSession) -> None:
    finished = asyncio.Event()

    async def trickle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A 200 whose body would take an hour: the status alone must not count as a yes.
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3600\r\n\r\n")
        for _ in range(3600):
            writer.write(b"y")
            await writer.drain()
            await asyncio.sleep(1)
        finished.set()

    server, url, seen = await _raw_server(trickle)
    async with server:
        spec = hook(url, retries=1, timeout=timedelta(milliseconds=300))
        outcome = await call_webhook(session, spec, PAYLOAD, backoff=NO_WAIT)
    assert (outcome.passed, outcome.status, outcome.attempts, len(seen)) == (False, None, 2, 2)
    assert outcome.message == "no answer within 0.3s (after 2 attempts)"
    assert not finished.is_set()
