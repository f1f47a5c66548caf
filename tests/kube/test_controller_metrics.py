"""What the reconciler tells ``ControllerMetrics`` after each pass, through the in-memory cluster:
the series the dashboard and the chart's alerts read."""

from __future__ import annotations

from canary.domain.status import Phase
from tests.kube.harness import NS, FakeEngine, Release, canary_body, cluster_with_app, release


def sample(r: Release, series: str, **labels: str) -> float | None:
    return r.services.metrics.registry.get_sample_value(series, {"namespace": NS, "name": "podinfo", **labels})


async def test_a_rollback_shows_the_check_its_bounds_stalled_and_the_cause() -> None:
    async with release(cluster_with_app(), engine=FakeEngine(value=97.5)) as r:
        await r.initialize()
        assert sample(r, "canary_stalled") == 0
        assert sample(r, "canary_rollbacks_total", reason="threshold") == 0
        r.push("6.0.1")
        await r.run_until_phase(Phase.FAILED)

        assert sample(r, "canary_check_value", check="request-success-rate") == 97.5
        assert sample(r, "canary_check_min", check="request-success-rate") == 99
        assert sample(r, "canary_check_max", check="request-success-rate") is None  # the check has no max
        assert sample(r, "canary_stalled") == 1
        assert sample(r, "canary_rollbacks_total", reason="threshold") == 1
        assert sample(r, "canary_phase", phase="Failed") == 1


async def test_an_invalid_spec_is_stalled_in_the_metrics_too() -> None:
    async with release(cluster_with_app(), canary_body(analysis={"stepWeight": 60, "maxWeight": 50})) as r:
        await r.reconcile()
        assert sample(r, "canary_stalled") == 1


async def test_a_deleted_canary_leaves_no_series() -> None:
    cluster = cluster_with_app()
    async with release(cluster, engine=FakeEngine(value=97.5)) as r:
        await r.initialize()
        assert sample(r, "canary_stalled") == 0
        await r.registry.canary_deleted(r.reconciler.key)
        for series in ("canary_stalled", "canary_weight", "canary_promotions_total"):
            assert sample(r, series) is None, series
