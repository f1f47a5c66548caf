"""Calling the webhooks of a Canary: gates, rollout checks and fire-and-forget notifications.

The wire contract follows Flagger so that existing gate services (the load tester, approval
bots) work unchanged: a JSON ``POST`` of ``{name, namespace, phase, checksum, metadata}``, and
any status from 200 to 202 means yes. Everything else, including no answer, means no.

Nothing here raises for a failed call: a webhook's answer is a fact the decision function
weighs, so it comes back as a :class:`WebhookOutcome`. Transport problems are raised internally
as :class:`~canary.errors.WebhookError` (chained to the aiohttp cause) only so that the retry
policy can tell them apart from an answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_random_exponential,
)
from yarl import URL

from canary import __version__
from canary.domain.spec import WebhookSpec
from canary.domain.status import CheckKind, CheckResult, Phase, Verdict
from canary.errors import WebhookError

__all__ = [
    "RetryBackoff",
    "WebhookOutcome",
    "WebhookPayload",
    "call_all",
    "call_webhook",
    "notify",
]

#: Flagger treats "up to 202" as success; 203 (non-authoritative) and 204 are deliberately not
#: accepted, so that a proxy answering on the hook's behalf cannot open a gate.
_PASS_STATUSES = range(200, 203)
#: Enough of the answer for a gate to say why it refused, short enough for a status field.
_MESSAGE_BODY_CHARS = 200
#: Read a little more than we show, so whitespace collapsing still leaves 200 characters, but
#: never buffer an arbitrarily large body from a misbehaving endpoint.
_BODY_READ_LIMIT = 4096
_USER_AGENT = f"canary/{__version__}"

_log = structlog.stdlib.get_logger(__name__)


@dataclass(frozen=True)
class WebhookPayload:
    """What the controller tells a webhook about the canary it is deciding on."""

    name: str
    namespace: str
    phase: Phase
    checksum: str  # the revision under analysis (status.lastAppliedSpec)
    metadata: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_event(
        cls, *, name: str, namespace: str, phase: Phase, checksum: str, message: str, event_type: str
    ) -> WebhookPayload:
        """The payload of an ``event`` hook, carrying the Kubernetes event as Flagger does."""
        return cls(name, namespace, phase, checksum, {"eventMessage": message, "eventType": event_type})

    def to_json(self, hook: WebhookSpec | None = None) -> dict[str, Any]:
        """The request body, as a JSON-ready mapping.

        The controller's own metadata wins over the hook's, so a manifest cannot make an event
        hook report a different ``eventType`` than the one that happened.
        """
        metadata = {**(hook.metadata if hook is not None else {}), **self.metadata}
        return {
            "name": self.name,
            "namespace": self.namespace,
            "phase": self.phase.value,
            "checksum": self.checksum,
            "metadata": metadata,
        }


@dataclass(frozen=True)
class WebhookOutcome:
    """The answer of one webhook after its retries. ``status is None``: no HTTP answer at all."""

    passed: bool
    status: int | None
    message: str
    attempts: int
    hook: WebhookSpec

    def as_check(self, now: datetime) -> CheckResult:
        return CheckResult(
            name=self.hook.name,
            kind=CheckKind.WEBHOOK,
            source=self.hook.url,
            verdict=Verdict.PASS if self.passed else Verdict.FAIL,
            time=now,
            message=self.message,
        )


@dataclass(frozen=True)
class RetryBackoff:
    """Pause between attempts: random up to a ceiling that doubles from ``initial`` to ``maximum``.

    Random so that many canaries retrying one shared gate (a load tester) do not retry in
    lockstep. Kept small because a gate is called inside an analysis tick; a slow retry loop
    would delay every other check of the canary.
    """

    initial: timedelta = timedelta(milliseconds=200)
    maximum: timedelta = timedelta(seconds=2)


DEFAULT_BACKOFF = RetryBackoff()


@dataclass(frozen=True)
class _Answer:
    status: int
    body: str
    location: str | None


async def call_webhook(
    session: aiohttp.ClientSession,
    hook: WebhookSpec,
    payload: WebhookPayload,
    *,
    backoff: RetryBackoff = DEFAULT_BACKOFF,
) -> WebhookOutcome:
    """POST ``payload`` to ``hook.url``; retry transport errors and 5xx up to ``hook.retries`` times.

    A 4xx is a deliberate answer (a confirm gate saying "not yet"), so it is never retried:
    retrying would only ask the same question again within the same tick.
    """
    log = _log.bind(namespace=payload.namespace, name=payload.name, webhook=hook.name, url=hook.url)
    problem = _url_problem(hook.url)
    if problem:
        return WebhookOutcome(passed=False, status=None, message=problem, attempts=0, hook=hook)

    body = payload.to_json(hook)
    attempts = 0

    async def attempt() -> _Answer:
        nonlocal attempts
        attempts += 1
        return await _post_once(session, hook, body)

    def before_sleep(state: RetryCallState) -> None:
        log.info("webhook attempt failed, retrying", attempt=state.attempt_number, reason=_describe(state))

    retrying = AsyncRetrying(
        stop=stop_after_attempt(hook.retries + 1),
        wait=wait_random_exponential(multiplier=backoff.initial.total_seconds(), max=backoff.maximum.total_seconds()),
        retry=retry_if_exception_type(WebhookError) | retry_if_result(_is_server_error),
        retry_error_callback=_last_outcome,
        before_sleep=before_sleep,
    )
    try:
        answer: _Answer = await retrying(attempt)
    except WebhookError as exc:
        outcome = WebhookOutcome(
            passed=False, status=None, message=_after(str(exc), attempts), attempts=attempts, hook=hook
        )
    else:
        outcome = WebhookOutcome(
            passed=answer.status in _PASS_STATUSES,
            status=answer.status,
            message=_after(_answer_message(answer), attempts),
            attempts=attempts,
            hook=hook,
        )
    log.debug("webhook called", passed=outcome.passed, status=outcome.status, attempts=outcome.attempts)
    return outcome


async def call_all(
    session: aiohttp.ClientSession,
    hooks: Sequence[WebhookSpec],
    payload: WebhookPayload,
    *,
    backoff: RetryBackoff = DEFAULT_BACKOFF,
) -> list[WebhookOutcome]:
    """Call every hook at once; outcomes come back in the order of ``hooks``.

    Concurrent so that a tick with several gates costs the slowest gate, not their sum.
    """
    return list(await asyncio.gather(*(call_webhook(session, h, payload, backoff=backoff) for h in hooks)))


async def notify(
    session: aiohttp.ClientSession,
    hooks: Sequence[WebhookSpec],
    payload: WebhookPayload,
    *,
    backoff: RetryBackoff = DEFAULT_BACKOFF,
) -> None:
    """Call hooks whose answer decides nothing (post-rollout, event); failures are only logged.

    A broken notification endpoint must never stall or fail a release, hence the broad catch;
    cancellation still propagates so shutdown is not delayed.
    """
    log = _log.bind(namespace=payload.namespace, name=payload.name)
    try:
        outcomes = await call_all(session, hooks, payload, backoff=backoff)
    except Exception:
        log.exception("notification webhooks crashed", hooks=[h.name for h in hooks])
        return
    for outcome in outcomes:
        if not outcome.passed:
            log.warning(
                "notification webhook failed",
                webhook=outcome.hook.name,
                type=outcome.hook.type.value,
                url=outcome.hook.url,
                status=outcome.status,
                attempts=outcome.attempts,
                reason=outcome.message,
            )


# --- one attempt -------------------------------------------------------------------------------


async def _post_once(session: aiohttp.ClientSession, hook: WebhookSpec, body: Mapping[str, Any]) -> _Answer:
    seconds = hook.timeout.total_seconds()
    try:
        async with session.post(
            hook.url,
            json=body,
            headers={"User-Agent": _USER_AGENT},
            timeout=aiohttp.ClientTimeout(total=seconds),
            # A redirected POST turns into a GET without the body on 301-303; a gate that
            # silently receives nothing is worse than a clear failure naming the new address.
            allow_redirects=False,
        ) as resp:
            raw = await _read_capped(resp.content, _BODY_READ_LIMIT)
            return _Answer(resp.status, _excerpt(raw, resp.charset), resp.headers.get("Location"))
    except TimeoutError as exc:  # before ClientError: aiohttp's timeouts are both
        raise WebhookError(f"no answer within {seconds:g}s") from exc
    except aiohttp.ClientError as exc:
        raise WebhookError(f"cannot reach {URL(hook.url).host}: {exc or type(exc).__name__}") from exc


async def _read_capped(stream: aiohttp.StreamReader, limit: int) -> bytes:
    # StreamReader.read(n) returns whatever chunk is ready, which may be far less than n.
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = await stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _excerpt(raw: bytes, charset: str | None) -> str:
    try:
        text = raw.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset name Python does not know
        text = raw.decode("utf-8", errors="replace")
    text = " ".join(text.split())
    if len(text) > _MESSAGE_BODY_CHARS:
        return text[:_MESSAGE_BODY_CHARS] + "…"
    return text


def _url_problem(url: str) -> str:
    try:
        parsed = URL(url)
    except ValueError as exc:
        return f"url {url!r} cannot be parsed: {exc}"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return f"url {url!r} is not an absolute http:// or https:// address"
    return ""


# --- retry policy ------------------------------------------------------------------------------


def _is_server_error(answer: _Answer) -> bool:
    return answer.status >= 500


def _last_outcome(state: RetryCallState) -> _Answer:
    """Once retries are spent, hand back the last answer, or re-raise the last transport error."""
    if state.outcome is None:  # tenacity always sets it before giving up
        raise WebhookError("webhook was never attempted")
    result: _Answer = state.outcome.result()
    return result


def _describe(state: RetryCallState) -> str:
    if state.outcome is None:
        return ""
    exc = state.outcome.exception()
    if exc is not None:
        return str(exc)
    answer: _Answer = state.outcome.result()
    return f"HTTP {answer.status}"


# --- messages ----------------------------------------------------------------------------------


def _answer_message(answer: _Answer) -> str:
    head = f"HTTP {answer.status}"
    if 300 <= answer.status < 400:
        where = f" to {answer.location}" if answer.location else ""
        return f"{head}: redirect{where} not followed; point the webhook url at the final address"
    return f"{head}: {answer.body}" if answer.body else head


def _after(message: str, attempts: int) -> str:
    return f"{message} (after {attempts} attempts)" if attempts > 1 else message
