"""Cutting text to a chat API's length limits without breaking its escaping. Pure."""

from __future__ import annotations

__all__ = ["clip"]

_ELLIPSIS = "…"


def clip(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters long, ending in an ellipsis when it was cut.

    Cut before escaping: cutting escaped text could split an entity (``&amp;``) in two.
    """
    if len(text) <= limit:
        return text
    return text[: max(limit - len(_ELLIPSIS), 0)] + _ELLIPSIS
