"""The bounded exponential back-off every metric provider uses for transient errors."""

from __future__ import annotations

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from canary.config import MetricsSettings

#: First pause between attempts; it doubles up to ``settings.retry_max_wait``.
FIRST_BACKOFF_SECONDS = 0.25


def retrying(settings: MetricsSettings, transient: type[BaseException]) -> AsyncRetrying:
    """Retry only ``transient`` errors, at most ``settings.retry_attempts`` times in all, then
    re-raise the last one so the caller can turn it into ``ProviderUnavailable``."""
    return AsyncRetrying(
        stop=stop_after_attempt(max(1, settings.retry_attempts)),
        wait=wait_exponential(multiplier=FIRST_BACKOFF_SECONDS, max=settings.retry_max_wait),
        retry=retry_if_exception_type(transient),
        reraise=True,
    )
