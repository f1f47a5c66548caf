"""What a Canary's reconciler keeps alive: nothing of the kopf handler call that started it, and
no failed pass's exception (with its traceback, frames, request and response) while it reports it."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref
from types import SimpleNamespace
from typing import Any, cast

import pytest

from canary.kube.cache import Kind, ObjectKey
from canary.kube.reconciler import CanaryReconciler, Services
from canary.telemetry import ControllerMetrics

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


class Boom(Exception):
    pass


async def test_a_failed_pass_is_reported_after_its_exception_is_released(monkeypatch: pytest.MonkeyPatch) -> None:
    raised: list[weakref.ref[Boom]] = []
    reported: list[tuple[str, bool]] = []

    async def reconcile_once(self: CanaryReconciler, now: object = None) -> None:
        exc = Boom("the API server said no")
        raised.append(weakref.ref(exc))
        raise exc

    async def report_stalled(self: CanaryReconciler, error: str) -> None:
        gc.collect()  # the traceback's frames refer back to the exception: a cycle
        reported.append((error, raised[0]() is None))

    monkeypatch.setattr(CanaryReconciler, "reconcile_once", reconcile_once)
    monkeypatch.setattr(CanaryReconciler, "_report_stalled", report_stalled)
    services = cast(Services, SimpleNamespace(metrics=ControllerMetrics()))
    delay = await CanaryReconciler(ObjectKey(Kind.CANARY, "ns", "app"), services).run_pass()
    assert delay is not None and delay.total_seconds() > 0
    assert reported == [("Boom: the API server said no", True)]
