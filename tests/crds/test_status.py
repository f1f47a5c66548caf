"""The status schema takes exactly what ``CanaryStatus.to_dict`` writes, and keeps kopf's bookkeeping."""

from __future__ import annotations

from typing import Any

import pytest

from canary.domain.status import CanaryStatus
from e2e.harness.kstatus import IN_PROGRESS, compute
from tests.crds.schema_validator import base_canary, full_status, load_crds


def with_status(status: dict[str, Any]) -> dict[str, Any]:
    obj = base_canary()
    obj["status"] = status
    return obj


def status_properties() -> dict[str, Any]:
    props: dict[str, Any] = load_crds()["Canary"].schema["properties"]["status"]["properties"]
    return props


@pytest.mark.parametrize(
    "status",
    [CanaryStatus().to_dict(), full_status()],
    ids=["initial", "every-field-set"],
)
def test_to_dict_is_accepted_unchanged(status: dict[str, Any]) -> None:
    admitted = load_crds()["Canary"].admit(with_status(status))
    assert admitted.pruned == []
    assert admitted.object["status"] == status


def test_round_trip_through_the_schema() -> None:
    stored = load_crds()["Canary"].admit(with_status(full_status())).object["status"]
    assert CanaryStatus.from_dict(stored).to_dict() == full_status()


def test_schema_declares_every_field_to_dict_writes_and_no_other() -> None:
    props = status_properties()
    assert set(props) - {"kopf"} == set(full_status())
    assert set(props["checks"]["items"]["properties"]) == {key for c in full_status()["checks"] for key in c}
    assert set(props["conditions"]["items"]["properties"]) == set(full_status()["conditions"][0])


def test_fields_written_as_null_are_nullable() -> None:
    props = status_properties()
    nulls = {key for key, value in CanaryStatus().to_dict().items() if value is None}
    assert nulls == {"phase", "lastTransitionTime", "lastAnalysisTime", "waitingSince", "runStarted"}
    assert {key for key, node in props.items() if node.get("nullable")} == nulls


def test_check_numbers_are_strings_even_when_not_finite() -> None:
    checks = full_status()["checks"]
    assert checks[1]["value"] == "nan" and checks[1]["max"] == "inf"
    for name in ("value", "min", "max", "samples"):
        assert status_properties()["checks"]["items"]["properties"][name]["type"] == "string"


def test_kopf_bookkeeping_survives_pruning_and_other_unknown_fields_do_not() -> None:
    status = full_status()
    status["kopf"] = {"progress": {"reconcile": {"started": "2025-01-02T03:04:05Z", "retries": 1}}, "dummy": "x"}
    status["legacyField"] = 1
    admitted = load_crds()["Canary"].admit(with_status(status))
    assert admitted.object["status"]["kopf"] == status["kopf"]
    assert "legacyField" not in admitted.object["status"]
    assert admitted.pruned == ["status.legacyField"]


def test_a_canary_without_status_reads_as_generation_zero_observed() -> None:
    # kstatus (Flux) reads a resource without status.observedGeneration as Current; the schema's
    # default makes a Canary the controller has not seen yet read InProgress instead.
    created = base_canary()
    created["metadata"]["generation"] = 1  # what the API server sets on create
    stored = load_crds()["Canary"].admit(created).object
    assert stored["status"] == {"observedGeneration": 0}
    assert CanaryStatus.from_dict(stored["status"]) == CanaryStatus(), "the controller reads it as never seen"
    assert compute(stored).status == IN_PROGRESS


def test_the_status_default_leaves_a_written_status_alone() -> None:
    written = CanaryStatus(observed_generation=3).to_dict()
    assert load_crds()["Canary"].admit(with_status(written)).object["status"] == written
