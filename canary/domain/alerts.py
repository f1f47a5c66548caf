"""Chat alerts as Flagger defines them: which events alert, how loudly, and who hears them. Pure.

A Canary lists ``spec.analysis.alerts``; each names an ``AlertProvider`` (a chat system and its
address) and a severity threshold. An event of the release alerts at one severity (:func:`severity_of`):

- ``info``: the release started, was initialised, promoted (Flagger: "new revision detected",
  "promotion finished");
- ``warn``: the release waits on a confirm gate (Flagger's "waiting for approval"), unless every
  refusing gate has ``muteAlert: true``;
- ``error``: the release was rolled back or its promotion failed.

An alert hears an event at its own severity or a more severe one (:func:`hears`): ``info`` hears
everything, ``warn`` the waits and the failures, ``error`` only the failures. That is Flagger's
documented meaning ("warn: alert when waiting on manual confirmation or if the analysis fails").
A Canary without alerts goes to the controller-wide default provider (flags), as in Flagger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from canary.domain import bounds
from canary.domain.event_facts import EventFacts
from canary.domain.fields import http_url, items, mapping, text
from canary.domain.status import CheckKind
from canary.errors import SpecError

__all__ = [
    "ALERT_KEYS",
    "AlertProviderSpec",
    "AlertSpec",
    "ProviderRef",
    "ProviderType",
    "Severity",
    "hears",
    "parse_alert",
    "parse_alert_provider_spec",
    "parse_alerts",
    "severity_of",
]


class Severity(StrEnum):
    INFO = "info"
    WARN = "warn"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Severity.INFO: 0, Severity.WARN: 1, Severity.ERROR: 2}


class ProviderType(StrEnum):
    """Flagger's AlertProvider types, plus ``generic``: a JSON POST of the event and its facts
    (Flagger has no such type; the name is the one Flux's notification-controller uses)."""

    SLACK = "slack"
    MSTEAMS = "msteams"
    DISCORD = "discord"
    ROCKET = "rocket"
    GCHAT = "gchat"
    GENERIC = "generic"


@dataclass(frozen=True)
class ProviderRef:
    name: str
    #: Empty: the Canary's namespace.
    namespace: str = ""


@dataclass(frozen=True)
class AlertSpec:
    name: str
    provider_ref: ProviderRef
    severity: Severity = Severity.INFO


@dataclass(frozen=True)
class AlertProviderSpec:
    type: ProviderType
    #: Flagger's defaults: channel "general", username "flagger" (here "canary").
    channel: str = "general"
    username: str = "canary"
    address: str = ""
    proxy: str = ""
    #: A Secret in the provider's namespace whose ``address``, ``token`` and ``proxy`` keys win
    #: over the fields above.
    secret_name: str = ""


#: Keys each object may have; anything else is refused by name rather than silently ignored.
ALERT_KEYS = frozenset({"name", "severity", "providerRef"})
_PROVIDER_REF_KEYS = frozenset({"name", "namespace"})
_PROVIDER_KEYS = frozenset({"type", "channel", "username", "address", "proxy", "secretRef"})
_SECRET_REF_KEYS = frozenset({"name"})

#: Reasons of the Events that alert, by severity. Reasons are the machine-readable half of an
#: Event (``kubectl get events --field-selector reason=...``), so keying on them is keying on an API.
_INFO_REASONS = frozenset({"Initialized", "Started", "Restarted", "SkipAnalysis", "PromotedManually", "Succeeded"})
_GATE_REASONS = frozenset({"Waiting", "WaitingPromotion"})
_ERROR_REASONS = frozenset({"RolledBack", "Aborted", "PromotionFailed"})


def severity_of(reason: str, facts: EventFacts, muted_hooks: frozenset[str]) -> Severity | None:
    """The severity an Event with ``reason`` alerts at, or None when it does not alert.

    A gate wait is muted when every gate that refused (the failing webhook checks of ``facts``)
    is in ``muted_hooks``: the names of the hooks with ``muteAlert: true``.
    """
    if reason in _ERROR_REASONS:
        return Severity.ERROR
    if reason in _GATE_REASONS:
        refusing = {c.name for c in facts.failing_checks if c.kind is CheckKind.WEBHOOK}
        if refusing and refusing <= muted_hooks:
            return None
        return Severity.WARN
    if reason in _INFO_REASONS:
        return Severity.INFO
    return None


def hears(alert: Severity, event: Severity) -> bool:
    """Whether an alert with threshold ``alert`` is sent an event of severity ``event``."""
    return event.rank >= alert.rank


# --- parsing -----------------------------------------------------------------------------------


def _refuse_unknown(raw: Mapping[str, Any], known: frozenset[str], path: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SpecError(f"{path}.{unknown[0]}",
                        f"is not a field of this object (known: {', '.join(sorted(known))})")


def _severity(raw: object, path: str) -> Severity:
    try:
        return Severity(str(raw))
    except ValueError as exc:
        raise SpecError(path, f"{raw!r} is not one of info, warn, error") from exc


def parse_alert(raw: Mapping[str, Any], path: str) -> AlertSpec:
    _refuse_unknown(raw, ALERT_KEYS, path)
    ref = mapping(raw.get("providerRef"), f"{path}.providerRef")
    _refuse_unknown(ref, _PROVIDER_REF_KEYS, f"{path}.providerRef")
    namespace = ref.get("namespace") or ""
    if not isinstance(namespace, str):
        raise SpecError(f"{path}.providerRef.namespace", "must be a string")
    return AlertSpec(
        name=text(raw.get("name"), f"{path}.name"),
        provider_ref=ProviderRef(text(ref.get("name"), f"{path}.providerRef.name"), namespace),
        severity=_severity(raw.get("severity", Severity.INFO.value), f"{path}.severity"),
    )


def parse_alerts(value: object, path: str) -> tuple[AlertSpec, ...]:
    alerts = tuple(parse_alert(mapping(a, f"{path}[{i}]"), f"{path}[{i}]")
                   for i, a in enumerate(items(value, path, bounds.ALERTS_ITEMS)))
    names = [a.name for a in alerts]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise SpecError(f"{path}[{i}].name", f"{name!r} is used by an earlier alert; names must be unique")
    return alerts


def _optional_text(raw: Mapping[str, Any], key: str, path: str) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SpecError(f"{path}.{key}", "must be a string")
    return value


def _optional_url(raw: Mapping[str, Any], key: str, path: str) -> str:
    return "" if raw.get(key) is None else http_url(raw[key], f"{path}.{key}")


def parse_alert_provider_spec(raw: Mapping[str, Any], path: str = "spec") -> AlertProviderSpec:
    """An AlertProvider's spec; Flagger's manifests parse unchanged (its defaults included)."""
    _refuse_unknown(raw, _PROVIDER_KEYS, path)
    kind_raw = raw.get("type")
    try:
        kind = ProviderType(str(kind_raw))
    except ValueError as exc:
        allowed = ", ".join(t.value for t in ProviderType)
        raise SpecError(f"{path}.type", f"{kind_raw!r} is not one of {allowed}") from exc
    secret = mapping(raw.get("secretRef"), f"{path}.secretRef")
    _refuse_unknown(secret, _SECRET_REF_KEYS, f"{path}.secretRef")
    secret_name = text(secret.get("name"), f"{path}.secretRef.name") if raw.get("secretRef") is not None else ""
    address = _optional_url(raw, "address", path)
    if not address and not secret_name:
        raise SpecError(f"{path}.address", "set address, or secretRef naming a Secret with an address key")
    return AlertProviderSpec(
        type=kind,
        channel=_optional_text(raw, "channel", path) or AlertProviderSpec.channel,
        username=_optional_text(raw, "username", path) or AlertProviderSpec.username,
        address=address,
        proxy=_optional_url(raw, "proxy", path),
        secret_name=secret_name,
    )

