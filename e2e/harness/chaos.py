"""How big the fault suite runs: a fast subset inside ``make test``, the whole of it in ``make chaos``.

Fault scenarios are marked ``chaos`` (registered in pyproject.toml). Each takes its size (how many
kills, how long an outage lasts in analysis ticks) from :func:`scaled`, so ``make test`` runs every
fault once at a size that fits its time budget and ``make chaos`` (``E2E_CHAOS=full``) repeats
them until the figures mean something.
"""

from __future__ import annotations

import os

#: ``full`` runs the fault suite at full size; anything else (or unset) runs the fast subset.
CHAOS_ENV = "E2E_CHAOS"


def full_scale() -> bool:
    return os.environ.get(CHAOS_ENV, "").strip().lower() == "full"


def scaled(fast: int, full: int) -> int:
    """``full`` under ``E2E_CHAOS=full``, else ``fast``."""
    return full if full_scale() else fast
