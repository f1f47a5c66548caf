"""The builtin-check batcher against a fake Prometheus: who shares a query, what each Canary gets.

Batches here close by size or by the batcher being handed every request before its first query
goes out (``measure_all`` starts them all before the batch's timer can fire), never by a clock;
the real-Prometheus equality of batched and single answers is in e2e/test_batched_metrics.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from canary.config import Mesh, MetricsSettings
from canary.domain.spec import BUILTIN_DURATION, BUILTIN_SUCCESS_RATE
from canary.errors import MetricError, ProviderUnavailable, TemplateError
from canary.metrics.base import MeasureRequest, Measurement
from canary.metrics.batching import BuiltinBatcher
from canary.metrics.engine import MetricsEngine
from canary.metrics.prometheus import PrometheusProvider, QueryKind
from canary.metrics.queries import builtin_query
from canary.metrics.readings import read_builtin
from canary.metrics.traefik_services import CRD_PROVIDER, service_label

from .conftest import FakeServer, Received, Reply, builtin_request, make_settings, prom_error, template_request, vector

#: Long enough that no batch in these tests is closed by its timer before all requests joined it.
NEVER = 3600.0


def engine_for(settings: MetricsSettings, kinds: list[QueryKind], **batcher: Any) -> MetricsEngine:
    return MetricsEngine(settings, on_query=kinds.append, batcher=BuiltinBatcher(**batcher))


def canaries(metric: str, *targets: tuple[str, str]) -> list[MeasureRequest]:
    return [builtin_request(metric, namespace=ns, target=target) for ns, target in targets]


async def test_canaries_asking_together_share_one_query_and_get_their_own_answers(
    server: FakeServer, settings: MetricsSettings
) -> None:
    server.respond(Reply(body=vector(
        ({"namespace": "shop", "deployment": "a", "classification": "success"}, "90"),
        ({"namespace": "shop", "deployment": "a", "classification": "failure"}, "10"),
        ({"namespace": "shop", "deployment": "b", "classification": "success"}, "5"),
        # The regular expressions' cross product: selected, but nobody's.
        ({"namespace": "pay", "deployment": "a", "classification": "failure"}, "1000"),
    )))
    kinds: list[QueryKind] = []
    requests = canaries(BUILTIN_SUCCESS_RATE, ("shop", "a"), ("shop", "b"), ("pay", "web.v2"))
    a, b, idle = await engine_for(settings, kinds).measure_all(requests)

    (query,) = server.queries
    assert kinds == [QueryKind.BATCHED]
    assert query == (
        "sum by (namespace, deployment, classification) (increase(response_total{namespace=~\"pay|shop\", "
        "deployment=~\"a|b|web\\\\.v2\", direction=\"inbound\"}[1m]))"
    )
    assert isinstance(a, Measurement) and (a.value, a.samples) == (90.0, 100.0)
    assert isinstance(b, Measurement) and (b.value, b.samples) == (100.0, 5.0)
    # No series of its own: exactly what its own query's empty answer gives.
    single = builtin_query(BUILTIN_SUCCESS_RATE, Mesh.LINKERD, namespace="pay", target="web.v2",
                           window=timedelta(minutes=1))
    assert idle == read_builtin(single, [])
    assert isinstance(idle, Measurement) and idle.value is None and idle.samples == 0


async def test_each_canary_shows_its_own_query_as_source(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=vector()))
    requests = canaries(BUILTIN_DURATION, ("shop", "a"), ("shop", "b"))
    results = await engine_for(settings, []).measure_all(requests)
    for request, result in zip(requests, results, strict=True):
        assert isinstance(result, Measurement)
        own = builtin_query(BUILTIN_DURATION, Mesh.LINKERD, namespace=request.namespace, target=request.target,
                            window=request.window)
        assert result.source == own.promql


async def test_a_canary_alone_sends_its_own_query(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=vector(({"classification": "success"}, "10"))))
    kinds: list[QueryKind] = []
    (result,) = await engine_for(settings, kinds).measure_all(canaries(BUILTIN_SUCCESS_RATE, ("shop", "a")))
    own = builtin_query(BUILTIN_SUCCESS_RATE, Mesh.LINKERD, namespace="shop", target="a", window=timedelta(minutes=1))
    assert server.queries == [own.promql]
    assert kinds == [QueryKind.SINGLE]
    assert isinstance(result, Measurement) and result.value == 100.0


async def test_latency_buckets_are_fanned_out_per_canary(server: FakeServer, settings: MetricsSettings) -> None:
    def buckets(target: str, counts: tuple[str, str, str]) -> list[tuple[dict[str, str], str]]:
        return [({"namespace": "shop", "deployment": target, "le": le}, count)
                for le, count in zip(("100", "500", "+Inf"), counts, strict=True)]

    server.respond(Reply(body=vector(*buckets("a", ("50", "100", "100")), *buckets("b", ("0", "0", "10")))))
    a, b = await engine_for(settings, []).measure_all(canaries(BUILTIN_DURATION, ("shop", "a"), ("shop", "b")))
    assert server.queries[0].startswith("sum by (namespace, deployment, le) (increase(response_latency_ms_bucket{")
    assert isinstance(a, Measurement) and a.samples == 100 and a.value == pytest.approx(100 + 400 * 0.98)
    assert isinstance(b, Measurement) and b.samples == 10 and b.value == 500.0  # in +Inf: the last finite bound


async def test_traefik_services_are_summed_over_ports_and_providers_per_canary(
    start_server: Callable[[], FakeServer],
) -> None:
    server = start_server()
    settings = make_settings(server.url, mesh=Mesh.TRAEFIK)
    server.respond(Reply(body=vector(
        ({"service": service_label("shop", "a-canary", 80), "le": "0.1"}, "3"),
        ({"service": service_label("shop", "a-canary", 80), "le": "+Inf"}, "4"),
        ({"service": service_label("shop", "a-canary", 8080, CRD_PROVIDER), "le": "0.1"}, "5"),
        ({"service": service_label("shop", "a-canary", 8080, CRD_PROVIDER), "le": "+Inf"}, "6"),
        ({"service": service_label("shop", "a-canary-primary", 80), "le": "+Inf"}, "1000"),
    )))
    requests = [replace(r, canary_service=f"{r.target}-canary")
                for r in canaries(BUILTIN_DURATION, ("shop", "a"), ("shop", "b"))]
    a, b = await engine_for(settings, []).measure_all(requests)
    assert 'service=~"(?:shop-a-canary|shop-b-canary)-http-[0-9]+@kubernetesgateway|' in server.queries[0]
    assert server.queries[0].startswith("sum by (service, le) (")
    assert isinstance(a, Measurement) and a.samples == 10  # 4 + 6: both of its values, not the primary's
    assert isinstance(b, Measurement) and b.value is None and b.samples is None


async def test_different_checks_and_windows_go_in_different_queries(
    server: FakeServer, settings: MetricsSettings
) -> None:
    server.respond(Reply(body=vector()))
    two_minutes = [replace(r, window=timedelta(minutes=2)) for r in canaries(BUILTIN_SUCCESS_RATE, ("s", "a"), ("s", "b"))]
    requests = [*canaries(BUILTIN_SUCCESS_RATE, ("s", "a"), ("s", "b")), *canaries(BUILTIN_DURATION, ("s", "a"), ("s", "b")),
                *two_minutes]
    kinds: list[QueryKind] = []
    await engine_for(settings, kinds).measure_all(requests)
    assert kinds == [QueryKind.BATCHED] * 3
    assert sorted(q[q.index("[") + 1:q.rindex("]")] for q in server.queries) == ["1m", "1m", "2m"]


async def test_templates_are_never_batched(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=vector(({}, "1"))))
    kinds: list[QueryKind] = []
    await engine_for(settings, kinds).measure_all([template_request("sum(x)"), template_request("sum(y)")])
    assert sorted(server.queries) == ["sum(x)", "sum(y)"]
    assert kinds == [QueryKind.SINGLE, QueryKind.SINGLE]


@pytest.mark.parametrize(("status", "error"), [(503, ProviderUnavailable), (400, MetricError)])
async def test_a_failed_batch_is_every_members_failure_with_the_single_type(
    server: FakeServer, settings: MetricsSettings, status: int, error: type[Exception]
) -> None:
    server.respond(Reply(status, prom_error("bad_data", "no")))
    results = await engine_for(settings, []).measure_all(canaries(BUILTIN_SUCCESS_RATE, ("s", "a"), ("s", "b")))
    assert [type(r) for r in results] == [error, error]
    # And a single query fails the same way on the same answer.
    with pytest.raises(error):
        await PrometheusProvider(server.url, settings).measure(canaries(BUILTIN_SUCCESS_RATE, ("s", "a"))[0])


async def test_an_unsafe_name_fails_alone(server: FakeServer, settings: MetricsSettings) -> None:
    server.respond(Reply(body=vector(({"namespace": "s", "deployment": "a", "classification": "success"}, "1"))))
    a, bad, b = await engine_for(settings, []).measure_all(
        canaries(BUILTIN_SUCCESS_RATE, ("s", "a"), ("s", 'x"}or vector(1)'), ("s", "b")))
    assert isinstance(bad, TemplateError)
    assert isinstance(a, Measurement) and a.value == 100.0
    assert isinstance(b, Measurement) and b.value is None
    (query,) = server.queries
    assert "vector(1)" not in query


async def test_a_full_batch_goes_out_and_the_next_request_starts_another(
    server: FakeServer, settings: MetricsSettings
) -> None:
    server.respond(Reply(body=vector()))
    kinds: list[QueryKind] = []
    engine = engine_for(settings, kinds, window=NEVER, max_members=2)
    await engine.measure_all(canaries(BUILTIN_SUCCESS_RATE, ("s", "a"), ("s", "b"), ("s", "c"), ("s", "d")))
    assert kinds == [QueryKind.BATCHED, QueryKind.BATCHED]
    assert sorted(q.split("deployment=~")[1].split(",")[0] for q in server.queries) == ['"a|b"', '"c|d"']


async def test_a_batch_whose_selector_would_grow_too_long_goes_out(
    server: FakeServer, settings: MetricsSettings
) -> None:
    server.respond(Reply(body=vector()))
    kinds: list[QueryKind] = []
    long_a, long_b = "a" * 60, "b" * 60
    # Room for the namespace and one long name, not two; the last batch closes by its size.
    engine = engine_for(settings, kinds, window=NEVER, max_members=2, max_selector_chars=100)
    await engine.measure_all(canaries(BUILTIN_SUCCESS_RATE, ("s", long_a), ("s", long_b), ("s", "c")))
    assert sorted(kinds) == [QueryKind.BATCHED, QueryKind.SINGLE]
    single, batched = sorted(server.queries, key=lambda q: "=~" in q.split("deployment")[1])
    assert f'deployment="{long_a}"' in single
    assert f'deployment=~"{long_b}|c"' in batched


async def test_requests_arriving_while_a_query_is_out_wait_and_go_out_together(
    server: FakeServer, settings: MetricsSettings
) -> None:
    release = threading.Event()
    first_arrived = threading.Event()

    def route(request: Received) -> Reply:
        if not first_arrived.is_set():
            first_arrived.set()
            release.wait(timeout=30)
        return Reply(body=vector())

    server.route = route
    engine = engine_for(settings, [], window=0.0)
    first = asyncio.ensure_future(engine.measure_all(canaries(BUILTIN_SUCCESS_RATE, ("s", "a"))))
    await asyncio.to_thread(first_arrived.wait, 30)
    # The first query is held by the server; these find its batch gone and start the next one,
    # whose zero-length window runs out at once: it must still wait for the first answer.
    later = [asyncio.ensure_future(engine.measure_all(canaries(BUILTIN_SUCCESS_RATE, ("s", name))))
             for name in ("b", "c", "d")]
    for _ in range(20):
        await asyncio.sleep(0)  # let every later request join a batch and its timer expire
    release.set()
    await asyncio.gather(first, *later)
    assert len(server.queries) == 2
    assert 'deployment=~"b|c|d"' in server.queries[1]
