"""The e2e suite's copy of kstatus's generic rules (e2e/harness/kstatus.py), on hand-made objects."""

from __future__ import annotations

from typing import Any

import pytest

from e2e.harness.kstatus import CURRENT, FAILED, IN_PROGRESS, TERMINATING, compute


def canary(generation: int = 1, status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"kind": "Canary", "metadata": {"name": "podinfo", "generation": generation, **meta}}
    if status is not None:
        obj["status"] = status
    return obj


def condition(kind: str, value: str, message: str = "") -> dict[str, str]:
    return {"type": kind, "status": value, "reason": "R", "message": message}


def test_without_status_a_resource_is_current() -> None:
    # The gap the CRD's status default closes: kstatus has nothing to go on and says Current.
    assert compute(canary()).status == CURRENT


def test_an_unobserved_generation_is_in_progress() -> None:
    got = compute(canary(generation=2, status={"observedGeneration": 1}))
    assert got.status == IN_PROGRESS
    assert got.message == "Canary generation is 2, but latest observed generation is 1"
    assert compute(canary(status={"observedGeneration": 0})).status == IN_PROGRESS


def test_deletion_comes_first() -> None:
    obj = canary(status={"observedGeneration": 0}, deletionTimestamp="2026-01-01T00:00:00Z")
    assert compute(obj).status == TERMINATING


@pytest.mark.parametrize("conditions, expected", [
    ([condition("Ready", "False"), condition("Reconciling", "True", "weight 20%")], IN_PROGRESS),
    ([condition("Stalled", "True", "rolled back"), condition("Reconciling", "False")], FAILED),
    ([condition("Ready", "True"), condition("Stalled", "False"), condition("Reconciling", "False")], CURRENT),
], ids=["reconciling", "stalled", "ready"])
def test_observed_generation_then_conditions(conditions: list[dict[str, str]], expected: str) -> None:
    got = compute(canary(status={"observedGeneration": 1, "conditions": conditions}))
    assert got.status == expected
    if expected != CURRENT:
        assert got.message == next(c["message"] for c in conditions if c["status"] == "True")
