"""Discord webhooks (Execute Webhook): one embed.

Discord's limits: ``content`` 2000 characters, an embed's title 256, description 4096, at most
25 fields of name 256 and value 1024, footer 2048, and 6000 characters over the whole embed.
``allowed_mentions`` with no parse types keeps ``@everyone`` in a check's message from pinging
anyone; Markdown characters are backslash-escaped so text stays text.
"""

from __future__ import annotations

import re
from typing import Any

from canary.notify.message import AlertMessage
from canary.notify.text_limits import clip

__all__ = ["EMBED_TOTAL_LIMIT", "escape", "render"]

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FIELDS_MAX = 25
EMBED_TOTAL_LIMIT = 6000
_MARKUP = re.compile(r"([\\`*_~|>\[\]()#])")


def escape(text: str) -> str:
    return _MARKUP.sub(r"\\\1", text)


def _code(lines: list[str]) -> str:
    # Inside a code block nothing is Markdown; only a closing fence could escape it.
    body = clip("\n".join(line.replace("```", "'''") for line in lines), FIELD_VALUE_LIMIT - 8)
    return f"```\n{body}\n```"


def render(message: AlertMessage, *, username: str) -> dict[str, Any]:
    fields = [{"name": clip(label, FIELD_NAME_LIMIT), "value": escape(clip(value, 200)), "inline": True}
              for label, value in message.fields]
    if message.failing:
        failing = "\n".join(escape(clip(line, 300)) for line in message.failing)
        fields.append({"name": "Failing checks", "value": clip(failing, FIELD_VALUE_LIMIT), "inline": False})
    fields.append({"name": "Roll back, promote, pause", "value": _code([c.kubectl for c in message.commands]),
                   "inline": False})
    fields.append({"name": "With the canary CLI", "value": _code([c.cli for c in message.commands]),
                   "inline": False})
    embed = {
        "title": clip(message.title, TITLE_LIMIT),
        "description": escape(clip(message.summary, 1500)),
        "color": int(message.colour, 16),
        "fields": fields[:FIELDS_MAX],
    }
    return {"username": clip(username, 80), "content": "", "embeds": [embed], "allowed_mentions": {"parse": []}}
