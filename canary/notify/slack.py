"""Slack incoming webhooks: Block Kit blocks inside a coloured attachment.

Slack's limits (Block Kit reference): a header's plain text at most 150 characters, a section's
text at most 3000, at most 10 fields of at most 2000 each, at most 50 blocks; ``text`` is the
notification's fallback and is shown where blocks are not. In ``mrkdwn`` only ``&``, ``<`` and
``>`` are special and are escaped as HTML entities, so a check's message cannot inject a link or
a ``<!channel>`` mention.
"""

from __future__ import annotations

from typing import Any

from canary.notify.message import AlertMessage
from canary.notify.text_limits import clip

__all__ = ["escape", "render"]

HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
FIELDS_MAX = 10


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _lines(heading: str, lines: list[str], fence: bool = False) -> str:
    """A bold heading over escaped lines, dropping whole lines so the result fits a section."""
    head = f"*{heading}*\n"
    wrap = "```" if fence else ""
    kept: list[str] = []
    room = SECTION_LIMIT - len(head) - 2 * len(wrap) - 1
    for line in lines:
        piece = escape(clip(line, FIELD_LIMIT))
        if len(piece) + 1 > room:
            kept.append("…")
            break
        kept.append(piece)
        room -= len(piece) + 1
    return head + wrap + "\n".join(kept) + wrap


def render(message: AlertMessage, *, channel: str, username: str) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(message.title, HEADER_LIMIT), "emoji": False}},
        _section(escape(clip(message.summary, SECTION_LIMIT - 200))),
        {"type": "section", "fields": [_mrkdwn(f"*{escape(label)}*\n{escape(clip(value, FIELD_LIMIT - 200))}")
                                       for label, value in message.fields[:FIELDS_MAX]]},
    ]
    if message.failing:
        blocks.append(_section(_lines("Failing checks", list(message.failing))))
    blocks.append(_section(_lines("Commands", [c.kubectl for c in message.commands]
                                  + [c.cli for c in message.commands], fence=True)))
    return {
        "channel": channel,
        "username": username,
        "text": escape(clip(f"{message.title}: {message.summary}", SECTION_LIMIT)),
        "attachments": [{"color": f"#{message.colour}", "blocks": blocks}],
    }
