"""The probes name the canary's and the primary's Services to the metrics, for a gateway's
metrics (Traefik) that count requests per backend Service instead of per workload."""

from __future__ import annotations

from canary.errors import ProviderUnavailable
from tests.kube.harness import FakeEngine, canary_body, cluster_with_app, release


async def test_builtin_checks_and_the_judge_are_given_the_services_of_the_apex_name() -> None:
    cluster = cluster_with_app()
    # A provider outage answers both probes (the fake engine scripts no comparison): the release
    # holds, and what was asked is recorded either way.
    engine = FakeEngine(failure=ProviderUnavailable("down"))
    body = canary_body(analysis={"threshold": 1, "judge": {}})
    body["spec"]["service"]["name"] = "web"  # an apex name other than the target's, so neither can stand for the other
    async with release(cluster, body, engine=engine) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.run_until(lambda rel: bool(engine.asked) and bool(engine.compared))
    assert {req.canary_service for asked in engine.asked for req in asked} == {"web-canary"}
    assert {req.target for asked in engine.asked for req in asked} == {"podinfo"}
    assert {(req.target, req.primary, req.services) for req in engine.compared} == {
        ("podinfo", "podinfo-primary", ("web-canary", "web-primary"))
    }
