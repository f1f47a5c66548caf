"""A Canary's reconciler task keeps nothing of the kopf handler call that started it."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, cast

import pytest

from canary.kube.cache import Kind, ObjectKey
from canary.kube.reconciler import CanaryReconciler, Services

#: Stands in for kopf's per-call context variables (the cause, with the event's raw body).
HANDLER_CAUSE: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("handler_cause")


async def test_the_task_does_not_inherit_the_starting_handlers_context(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []
    ran = asyncio.Event()

    async def loop(self: CanaryReconciler) -> None:
        seen.append(HANDLER_CAUSE.get(None))
        ran.set()

    monkeypatch.setattr(CanaryReconciler, "_loop", loop)
    HANDLER_CAUSE.set({"body": {"metadata": {"managedFields": ["..."]}}})
    reconciler = CanaryReconciler(ObjectKey(Kind.CANARY, "ns", "app"), cast(Services, None))
    reconciler.start()
    await ran.wait()
    await reconciler.stop()
    assert seen == [None]
