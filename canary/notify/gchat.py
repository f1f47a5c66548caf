"""Google Chat incoming webhooks: a ``cardsV2`` card with a plain ``text`` fallback.

A card's ``textParagraph`` and ``decoratedText`` take a small HTML subset, so ``&``, ``<`` and
``>`` are escaped as entities; the plain ``text`` uses Chat's own formatting, where ``*``, ``_``,
``~`` and backticks are markup, and is kept to the title. Chat refuses text over 4096 characters.
"""

from __future__ import annotations

import html
from typing import Any

from canary.notify.message import AlertMessage
from canary.notify.text_limits import clip

__all__ = ["escape", "render"]

TEXT_LIMIT = 4096
WIDGET_TEXT_LIMIT = 2000


def escape(text: str) -> str:
    return html.escape(text, quote=False)


def _paragraph(text: str) -> dict[str, Any]:
    return {"textParagraph": {"text": text}}


def render(message: AlertMessage) -> dict[str, Any]:
    facts = [{"decoratedText": {"topLabel": label, "text": escape(clip(value, 300))}}
             for label, value in message.fields]
    sections: list[dict[str, Any]] = [
        {"widgets": [_paragraph(escape(clip(message.summary, WIDGET_TEXT_LIMIT)))]},
        {"header": "Release", "widgets": facts},
    ]
    if message.failing:
        sections.append({"header": "Failing checks", "widgets": [
            _paragraph(escape(clip(line, 500))) for line in message.failing[:20]]})
    commands = [c.kubectl for c in message.commands] + [c.cli for c in message.commands]
    sections.append({"header": "Roll back, promote, pause", "widgets": [
        _paragraph("<br>".join(f"<font color=\"#444444\">{escape(c)}</font>" for c in commands))]})
    plain = "".join(ch if ch not in "*_~`" else " " for ch in message.title)
    return {
        "text": clip(plain, TEXT_LIMIT),
        "cardsV2": [{
            "cardId": f"canary-{message.namespace}-{message.name}",
            "card": {"header": {"title": clip(message.title, 200),
                                "subtitle": f"severity {message.severity.value}"},
                     "sections": sections},
        }],
    }
