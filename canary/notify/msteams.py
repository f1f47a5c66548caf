"""Microsoft Teams incoming webhooks (Workflows and the older connectors): an Adaptive Card.

The body is a ``message`` with one attachment of content type
``application/vnd.microsoft.card.adaptive``, as Teams documents for incoming webhooks; version
1.4 renders in every Teams client. A TextBlock's text is a small Markdown subset, so the
characters that start markup are backslash-escaped: a check's message stays text. Teams refuses
messages over about 28 KB; every text here is clipped so a card stays far below.
"""

from __future__ import annotations

import re
from typing import Any

from canary.domain.alerts import Severity
from canary.notify.message import AlertMessage
from canary.notify.text_limits import clip

__all__ = ["CARD_CONTENT_TYPE", "escape", "render"]

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
TEXT_LIMIT = 2000
LINES_MAX = 20
_COLOURS = {Severity.INFO: "Good", Severity.WARN: "Warning", Severity.ERROR: "Attention"}
#: Inline markup only: '-' and '+' start a list only at a line's start, where our texts never
#: put them, and escaping them would litter check names (``error\-rate``).
_MARKUP = re.compile(r"([\\`*_\[\]()#>~|<])")


def escape(text: str) -> str:
    return _MARKUP.sub(r"\\\1", text)


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def render(message: AlertMessage) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        _text(escape(clip(message.title, 200)), size="Medium", weight="Bolder", color=_COLOURS[message.severity]),
        _text(escape(clip(message.summary, TEXT_LIMIT))),
        {"type": "FactSet", "facts": [{"title": label, "value": escape(clip(value, 500))}
                                      for label, value in message.fields]},
    ]
    if message.failing:
        body.append(_text("Failing checks", weight="Bolder"))
        body += [_text(escape(clip(line, 500))) for line in message.failing[:LINES_MAX]]
    body.append(_text("Commands", weight="Bolder"))
    # The commands are ours and hold no markup characters: unescaped, they copy and paste as is.
    body += [_text(c.kubectl, fontType="Monospace") for c in message.commands]
    body += [_text(c.cli, fontType="Monospace") for c in message.commands]
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    return {"type": "message", "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None,
                                                "content": card}]}
