"""``canary convert``/``lint`` on a Flagger Canary with ``provider: traefik``."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from canary.cli.errors import ExitCode
from canary.domain.flagger_fields import CANARY_FIELDS, Support
from canary.routers.factory import traefik_refusal
from tests.cli.test_convert import canary, run


def _traefik(**analysis: Any) -> dict[str, Any]:
    doc = canary(**analysis)
    doc["spec"]["provider"] = "traefik"
    return doc


def test_a_weighted_traefik_canary_is_accepted_with_a_note_on_the_traefik_service() -> None:
    code, _, err = run(["lint", "-f", "-"], stdin=yaml.safe_dump(_traefik()))
    assert code == ExitCode.OK, err
    assert ("note spec.provider: 'traefik': as in Flagger: a weighted traefik.io/v1alpha1 TraefikService named "
            "after the apex Service, which your IngressRoute references with kind: TraefikService") in err
    assert " refused " not in err


@pytest.mark.parametrize(("analysis", "service", "fields"), [
    pytest.param({"sessionAffinity": {"cookieName": "c"}}, {}, ["spec.analysis.sessionAffinity"], id="affinity"),
    pytest.param({"iterations": 5, "stepWeight": None, "mirror": True, "mirrorWeight": 10}, {},
                 ["spec.analysis.mirror", "spec.analysis.mirrorWeight"], id="mirror"),
    pytest.param({"iterations": 5, "stepWeight": None, "match": [{"headers": {"x-canary": {"exact": "on"}}}]}, {},
                 ["spec.analysis.match"], id="ab"),
    pytest.param({}, {"hosts": ["app.example.com"], "gatewayRefs": [{"name": "public"}], "timeout": "5s"},
                 ["spec.service.hosts", "spec.service.gatewayRefs", "spec.service.timeout"], id="route-options"),
])
def test_each_option_a_traefik_service_cannot_carry_is_refused_by_name(
        analysis: dict[str, Any], service: dict[str, Any], fields: list[str]) -> None:
    doc = _traefik(**{k: v for k, v in analysis.items() if v is not None})
    for key in [k for k, v in analysis.items() if v is None]:
        del doc["spec"]["analysis"][key]
    doc["spec"]["service"].update(service)
    code, _, err = run(["lint", "-f", "-"], stdin=yaml.safe_dump(doc))
    assert code == ExitCode.REFUSED, err
    for field in fields:
        assert (f"refused {field}: {traefik_refusal((field,))}; with provider 'traefik' the controller refuses "
                "the Canary: condition Stalled, reason InvalidSpec") in err
    assert f"refused ({len(fields)} field{'s' if len(fields) > 1 else ''})" in err


@pytest.mark.parametrize("field", [f.path for f in CANARY_FIELDS if f.support is Support.PROVIDER])
def test_every_provider_dependent_field_has_its_own_reason_with_traefik(field: str) -> None:
    assert "a TraefikService has no place for it" not in traefik_refusal((field,))
