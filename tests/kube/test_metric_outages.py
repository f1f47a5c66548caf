"""A metrics provider that does not answer holds the release; one that refuses the query fails it."""

from __future__ import annotations

from canary.domain.status import CheckKind, Phase, Verdict
from canary.errors import MetricError, ProviderUnavailable
from tests.kube.harness import FakeEngine, canary_body, cluster_with_app, release


async def test_a_provider_outage_holds_and_is_shown_as_unavailable() -> None:
    cluster = cluster_with_app()
    engine = FakeEngine()
    body = canary_body(analysis={"threshold": 1, "consecutiveErrorLimit": 2})
    async with release(cluster, body, engine=engine) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.run_until(lambda rel: rel.status.canary_weight == 10)
        r.advance()
        engine.failure = ProviderUnavailable("Prometheus at http://prom:9090 did not answer after 3 attempts")
        await r.run_until(lambda rel: rel.status.consecutive_errors == 2)
        held = r.status
        [check] = held.checks
        assert check.verdict is Verdict.UNAVAILABLE
        assert "ProviderUnavailable: Prometheus at http://prom:9090 did not answer" in check.message
        assert (held.phase, held.canary_weight, held.failed_checks) == (Phase.PROGRESSING, 10, 0)
        assert len(cluster.events("MetricsUnavailable")) == 2
        # Past consecutiveErrorLimit the outage counts: threshold 1 rolls back, and says why.
        r.advance()
        await r.run_until_phase(Phase.FAILED)
        assert "the metrics provider was unavailable 3 ticks in a row" in r.status.message


async def test_a_refused_query_is_an_error_that_counts_at_once() -> None:
    cluster = cluster_with_app()
    engine = FakeEngine()
    async with release(cluster, canary_body(analysis={"threshold": 1}), engine=engine) as r:
        await r.initialize()
        r.push("6.0.1")
        await r.run_until(lambda rel: rel.status.canary_weight == 10)
        r.advance()
        engine.failure = MetricError("Prometheus at http://prom:9090 refused the query: HTTP 400 bad_data")
        await r.run_until_phase(Phase.FAILED)
        [check] = r.status.checks
        assert check.verdict is Verdict.ERROR
        assert r.status.consecutive_errors == 0
        assert cluster.events("MetricsUnavailable") == []


async def test_a_provider_outage_holds_the_judge_too() -> None:
    cluster = cluster_with_app()
    engine = FakeEngine()
    async with release(cluster, canary_body(analysis={"threshold": 1, "judge": {}}), engine=engine) as r:
        await r.initialize()
        r.push("6.0.1")
        engine.failure = ProviderUnavailable("Prometheus at http://prom:9090 did not answer after 3 attempts")
        await r.run_until(lambda rel: rel.status.consecutive_errors == 2)
        held = r.status
        judged = [c for c in held.checks if c.kind is CheckKind.JUDGE]
        assert judged and all(c.verdict is Verdict.UNAVAILABLE for c in judged), held.checks
        assert (held.phase, held.failed_checks) == (Phase.PROGRESSING, 0)
