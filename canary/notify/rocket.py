"""Rocket.Chat incoming webhooks: ``text`` plus one coloured attachment with fields.

The incoming-webhook integration takes ``alias`` (the name shown), ``channel`` (``#room`` or
``@user``) and Slack-style ``attachments``. Rocket.Chat renders its own Markdown in text, so the
characters that start markup are backslash-escaped.
"""

from __future__ import annotations

import re
from typing import Any

from canary.notify.message import AlertMessage
from canary.notify.text_limits import clip

__all__ = ["escape", "render"]

TEXT_LIMIT = 4000
_MARKUP = re.compile(r"([\\`*_~>\[\]()#<])")


def escape(text: str) -> str:
    return _MARKUP.sub(r"\\\1", text)


def render(message: AlertMessage, *, channel: str, username: str) -> dict[str, Any]:
    fields = [{"short": True, "title": label, "value": escape(clip(value, 200))} for label, value in message.fields]
    if message.failing:
        fields.append({"short": False, "title": "Failing checks",
                       "value": escape(clip("\n".join(message.failing), 2000))})
    commands = "\n".join([c.kubectl for c in message.commands] + [c.cli for c in message.commands])
    fields.append({"short": False, "title": "Commands", "value": f"```\n{commands}\n```"})
    target = channel if channel.startswith(("#", "@")) else f"#{channel}"
    return {
        "alias": username,
        "channel": target,
        "text": escape(clip(message.title, 300)),
        "attachments": [{"title": clip(message.title, 300), "text": escape(clip(message.summary, TEXT_LIMIT)),
                         "color": f"#{message.colour}", "fields": fields}],
    }
