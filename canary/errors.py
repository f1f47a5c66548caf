"""The project's exception families.

::

    CanaryError
    ├── SpecError              a Canary or MetricTemplate field is wrong (names the field and the fix)
    ├── TemplateError          a MetricTemplate query cannot be rendered safely
    ├── RouterError            a route object could not be read or written
    ├── MetricError            a metric provider failed
    │   └── ProviderUnavailable   the provider stayed unreachable after retries
    ├── WebhookError           a webhook could not be called
    └── DeliveryError          a notification (chat alert, event webhook) was not accepted

Errors raised by libraries are caught at the boundary of each adapter and re-raised as one of
these with ``raise ... from``, so callers never depend on aiohttp, kubernetes or requests types.
"""

from __future__ import annotations


class CanaryError(Exception):
    """Base of every error this project raises on purpose."""


class SpecError(CanaryError):
    """A field of a user's manifest is wrong; ``field`` is its path (``spec.analysis.interval``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class TemplateError(CanaryError):
    """A query template uses an unknown placeholder or a value that is unsafe to substitute."""


class RouterError(CanaryError):
    """Reading or writing a TrafficSplit or HTTPRoute failed."""


class MetricError(CanaryError):
    """A metric provider could not answer."""


class ProviderUnavailable(MetricError):
    """The provider stayed unreachable after bounded retries."""


class WebhookError(CanaryError):
    """A webhook call failed before an HTTP status was received."""


class DeliveryError(CanaryError):
    """A notification was not accepted; ``retryable`` is False for an answer that asking again
    cannot change (a 4xx other than 429: a bad address or token)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class ApiError(CanaryError):
    """The Kubernetes API refused or failed a request; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class NotFound(ApiError):
    """404: the object does not exist."""


class Conflict(ApiError):
    """409: the object exists already, or changed since it was read."""
