"""The kopf wiring: what is watched, and through which kind of handler."""

from __future__ import annotations

from unittest.mock import MagicMock

import kopf

from canary.kube.handlers import WATCHED, register


def _registry() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    register(registry, MagicMock())
    return registry


def test_every_watched_resource_fills_the_cache_through_an_indexing_handler() -> None:
    # Indexing handlers are what make kopf hold the Canary handlers until the caches are listed.
    ids = {str(h.id) for h in _registry()._indexing.get_all_handlers()}
    assert ids == {f"cache-{plural}" for _, plural, _ in WATCHED}


def test_deletions_and_canaries_arrive_as_watch_events_not_change_handlers() -> None:
    registry = _registry()
    ids = {str(h.id) for h in registry._watching.get_all_handlers()}
    assert {f"deleted-{plural}" for _, plural, _ in WATCHED} <= ids
    assert any("canary_event" in i for i in ids)
    # No change-handlers at all: kopf would write its bookkeeping and finalizers unfenced. The
    # revertOnDeletion finalizer is the reconciler's (SetFinalizer).
    assert list(registry._changing.get_all_handlers()) == []
