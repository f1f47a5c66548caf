"""Issue 9's promise on the real API server: every Flagger-style corpus document, ported with
``canary convert``, is stored with kubectl's default (strict) field validation and taken by the
controller, or refused with a message naming the field: by the API server where its schema can
say it, else by the controller (``Stalled``, reason ``InvalidSpec``).

The documents and their expected outcomes are tests/flagger_corpus/ (see its README); the unit
tests check the same declarations against the converter and the parser.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from canary.cli.porting import PortOptions, port_document
from e2e.conftest import StartController
from e2e.harness.environment import Environment
from e2e.harness.kube import GROUP, VERSION, Kube, wait_for
from tests.flagger_corpus.expectations import CorpusDocument, Outcome, checked

PLURALS = {"Canary": "canaries", "MetricTemplate": "metrictemplates"}
#: The controller reports on a new Canary within a few ticks; this bounds a broken one.
VERDICT_TIMEOUT = 60.0

CHECKED = checked()
RULES_SKIPPED = "some validation rules were not checked because the object was invalid"


def _ported(doc: CorpusDocument, namespace: str) -> dict[str, Any]:
    out: dict[str, Any] = port_document(doc.document, PortOptions()).output
    out["metadata"]["namespace"] = namespace
    return out


def _create(kube: Kube, manifest: dict[str, Any]) -> None:
    # Strict is what kubectl apply/create send by default: unknown fields are an error, not a warning.
    kube.custom.create_namespaced_custom_object(GROUP, VERSION, kube.namespace, PLURALS[manifest["kind"]], manifest,
                                                field_validation="Strict")


def _stalled(kube: Kube, name: str) -> dict[str, Any]:
    """The Canary's Stalled condition once the controller has written one."""
    status = wait_for(
        lambda: kube.status(name),
        lambda st: any(c.get("type") == "Stalled" for c in st.get("conditions") or []),
        timeout=VERDICT_TIMEOUT,
        what=f"the controller to report on Canary {kube.namespace}/{name}",
    )
    condition: dict[str, Any] = next(c for c in status["conditions"] if c["type"] == "Stalled")
    return condition


def _read(kube: Kube, doc: CorpusDocument) -> dict[str, Any] | None:
    return kube.custom_object(GROUP, VERSION, PLURALS[doc.kind], doc.name)


@pytest.mark.parametrize("doc", [d for d in CHECKED if d.outcome is Outcome.ACCEPTED], ids=lambda d: d.id)
def test_accepted_documents_are_stored_and_taken_by_the_controller(
        env: Environment, kube: Kube, start_controller: StartController, doc: CorpusDocument) -> None:
    manifest = _ported(doc, kube.namespace)
    _create(kube, manifest)
    stored = _read(kube, doc)
    assert stored is not None
    # Nothing the user wrote was dropped on the way in.
    for key, value in manifest["spec"].items():
        assert key in stored["spec"], f"spec.{key} was not stored"
        if not isinstance(value, dict | list):
            assert stored["spec"][key] == value
    if doc.kind != "Canary":
        return
    start_controller()
    # No Deployment exists, so the controller stalls on the target; what matters is that its
    # parser took the stored object (defaults applied by the API server) without InvalidSpec.
    condition = _stalled(kube, doc.name)
    assert condition.get("reason") != "InvalidSpec", condition


@pytest.mark.parametrize("doc", [d for d in CHECKED if d.outcome is Outcome.REFUSED_AT_ADMISSION], ids=lambda d: d.id)
def test_refused_documents_are_refused_at_admission_naming_each_field(
        env: Environment, kube: Kube, doc: CorpusDocument) -> None:
    with pytest.raises(ApiException) as refused:
        _create(kube, _ported(doc, kube.namespace))
    assert refused.value.status == 422, refused.value.body
    body = str(refused.value.body)
    first, *rest = doc.refused_fields
    assert first in body, f"the refusal must name {first}: {body}"
    # The API server runs the CEL rules only on an object its schema accepted, and says so; then
    # only the schema's refusals (listed first in the annotation) are named.
    if RULES_SKIPPED not in body:
        for field in rest:
            assert field in body, f"the refusal must name {field}: {body}"
    assert _read(kube, doc) is None, "nothing was stored"


@pytest.mark.parametrize("doc", [d for d in CHECKED if d.outcome is Outcome.REFUSED_BY_CONTROLLER], ids=lambda d: d.id)
def test_provider_dependent_refusals_stall_the_canary_naming_the_field(
        env: Environment, kube: Kube, start_controller: StartController, doc: CorpusDocument) -> None:
    _create(kube, _ported(doc, kube.namespace))
    assert _read(kube, doc) is not None, "the schema cannot tell, so the API server stores it"
    start_controller()
    condition = _stalled(kube, doc.name)
    assert condition.get("status") == "True" and condition.get("reason") == "InvalidSpec", condition
    assert doc.refused_fields[0] in condition.get("message", ""), condition
