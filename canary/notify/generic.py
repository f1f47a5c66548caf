"""The ``generic`` provider: a JSON POST of the event, its severity, its facts and the commands.

For receivers that are programs rather than chat rooms (an incident tool, a bridge): the facts
are the ``canary.dev/facts`` annotation's JSON, so one parser reads both.
"""

from __future__ import annotations

import json
from typing import Any

from canary.notify.base import Notice
from canary.notify.message import AlertMessage

__all__ = ["render"]


def render(message: AlertMessage, notice: Notice) -> dict[str, Any]:
    return {
        "name": notice.name,
        "namespace": notice.namespace,
        "phase": notice.facts.phase.value if notice.facts.phase is not None else None,
        "reason": notice.reason,
        "message": notice.message,
        "eventType": "Warning" if notice.warning else "Normal",
        "severity": message.severity.value,
        "time": notice.time.isoformat(),
        "facts": json.loads(notice.facts.to_annotation()),
        "failing": list(message.failing),
        "commands": {c.action: {"kubectl": c.kubectl, "canary": c.cli} for c in message.commands},
    }
