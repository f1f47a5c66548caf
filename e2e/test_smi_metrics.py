"""The SMI Traffic Metrics API (``canary metrics-server``) as an aggregated API of the real API server.

Every read here goes through the API server, exactly like ``kubectl get --raw`` in a cluster: the
API server authenticates the admin client, then proxies to the metrics server as
``front-proxy-client`` (its requestheader identity), through the APIService
``v1alpha1.metrics.smi-spec.io``, the Service ``canary-system/canary-metrics`` and its
EndpointSlice. Only the refusal tests talk to the server directly, to prove that nothing but the
API server's front-proxy identity can assert a user.

The numbers come from real traffic: the simulated mesh's load generator sends requests to two
Deployments (one with 250 ms of latency, one answering 30% of requests with 500), the mesh's
proxies export Linkerd's metrics, and the session's Prometheus scrapes them. The mesh also counts
every answer itself, which is what the Traffic Metrics counts are checked against.
"""

from __future__ import annotations

import datetime
import re
import secrets
import ssl
import time
import urllib.error
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes.utils.quantity import parse_quantity as _untyped_parse_quantity

from e2e.cluster.pki import FRONT_PROXY_CLIENT_NAME, Authority, KeyPair
from e2e.harness import app
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube, wait_for
from e2e.harness.metrics_server import API_PATH, GROUP, VERSION, MetricsServer, SmiMetrics
from e2e.mesh.client import ApexStats
from e2e.processes import free_port

parse_quantity = cast(Callable[[object], Decimal], _untyped_parse_quantity)

RPS = 20
LOAD_SECONDS = 20.0
SLOW_LATENCY_MS = 250
FLAKY_ERROR_RATE = 0.3
LATENCIES = ("p99_response_latency", "p90_response_latency", "p50_response_latency")
COUNTS = ("success_count", "failure_count")
#: A window wide enough to hold all of the fixture's traffic.
WIDE_WINDOW = "2m"


def _count_tolerance(expected: float) -> float:
    """How far Prometheus's ``increase()`` may be from the mesh's exact count.

    The requests answered before a series' first scrape (up to one 1 s scrape interval of traffic)
    are not in any increase, and ``increase()`` extrapolates by up to half an interval at each
    end of the sampled range; 10% of the count plus one second of traffic covers both.
    """
    return 0.1 * expected + RPS


# -- reading TrafficMetrics ---------------------------------------------------------------------


@dataclass(frozen=True)
class Traffic:
    """One TrafficMetrics object as read off the wire."""

    body: Mapping[str, Any]

    @property
    def metrics(self) -> dict[str, Mapping[str, Any]]:
        return {str(m["name"]): m for m in self.body.get("metrics") or []}

    def value(self, name: str) -> float:
        return float(parse_quantity(self.metrics[name]["value"]))

    def window_seconds(self) -> float:
        return _go_duration_seconds(str(self.body.get("window")))


def _go_duration_seconds(text: str) -> float:
    """``30s``, ``1m``, ``1m0s``, ``1h0m0s``, ``500ms`` as seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise AssertionError(f"window {text!r} is not a duration")
    return sum(float(n) * units[u] for n, u in parts)


def _traffic(smi: SmiMetrics, namespace: str, name: str, window: str | None = None) -> Traffic:
    answer = smi.traffic_metrics(namespace, "deployments", name, window)
    assert answer.status == 200, f"GET {namespace}/deployments/{name}: HTTP {answer.status}: {answer.text()}"
    return Traffic(answer.json())


# -- the workload -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedNamespace:
    """Deployments that received the fixture's traffic, with what the mesh counted for each."""

    namespace: str
    #: Per Deployment (= Service) name: (answers below 500, answers 500 and above), as the mesh saw them.
    mesh_counts: Mapping[str, tuple[int, int]]


def _service(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": app.PORT, "targetPort": "http"}]},
    }


def _mesh_counts(stats: ApexStats, backend: str) -> tuple[int, int]:
    success = failure = 0
    for config in stats.configs:
        for code, count in config.backend_statuses.get(backend, {}).items():
            if code.startswith("5"):
                failure += count
            else:
                success += count
    return success, failure


@pytest.fixture(scope="module")
def loaded(env: Environment, smi_metrics: SmiMetrics) -> Iterator[LoadedNamespace]:
    """``slow`` (250 ms per answer) and ``flaky`` (30% errors) under load for 20 s; ``idle`` never."""
    kube = Kube(env.api, f"smi-metrics-{secrets.token_hex(3)}")
    kube.create_namespace()
    behaviours = {
        "slow": app.behaviour("1", latency_ms=SLOW_LATENCY_MS),
        "flaky": app.behaviour("1", error_rate=FLAKY_ERROR_RATE),
        "idle": app.behaviour("1"),
    }
    try:
        for name, annotations in behaviours.items():
            kube.create(app.deployment(name, kube.namespace, annotations=annotations, replicas=2))
            kube.core.create_namespaced_service(kube.namespace, _service(name, kube.namespace))
        for name in behaviours:
            env.mesh.client.wait_for_pods(kube.namespace, name, 2, timeout=60)
        # A Prometheus started moments ago applies its targets on its first 5 s tick; traffic
        # sent before its first scrape would be missing from every increase().
        env.prometheus.wait_for_series('up{job="e2e"} == 1', timeout=30)
        env.mesh.client.reset_stats(kube.namespace)
        loaded_services = ("slow", "flaky")
        for name in loaded_services:
            # 250 ms answers at 20/s keep about 5 requests in flight.
            env.mesh.client.set_load(kube.namespace, name, RPS, concurrency=20)
        time.sleep(LOAD_SECONDS)
        env.mesh.client.stop_all_load(kube.namespace)

        # Requests still in flight when the load stopped finish a moment later. Once Prometheus's
        # raw counters add up to the mesh's own counts, both are final, and from then on every
        # Traffic Metrics answer covers all of the traffic.
        def final_counts() -> dict[str, tuple[int, int]] | None:
            counts = {name: _mesh_counts(env.mesh.client.stats(kube.namespace, name), name) for name in loaded_services}
            for name, (success, failure) in counts.items():
                found = env.prometheus.query(
                    f'sum(response_total{{direction="inbound", namespace="{kube.namespace}", deployment="{name}"}})'
                )
                if not found or int(float(found[0]["value"][1])) != success + failure:
                    return None
            return counts

        counts = wait_for(final_counts, lambda c: c is not None, timeout=20,
                          what="Prometheus to scrape the mesh's final counts")
        assert counts is not None
        yield LoadedNamespace(namespace=kube.namespace, mesh_counts=counts)
    finally:
        env.mesh.client.stop_all_load(kube.namespace)
        kube.delete_namespace()


# -- (1) discovery and numbers through the API server --------------------------------------------


def test_discovery_lists_the_traffic_metrics_resources(smi_metrics: SmiMetrics) -> None:
    groups = smi_metrics.get("/apis")
    assert groups.status == 200, groups.text()
    listed = {g["name"]: [v["version"] for v in g["versions"]] for g in groups.json()["groups"]}
    assert VERSION in listed.get(GROUP, []), f"{GROUP}/{VERSION} is not in the API server's /apis: {sorted(listed)}"

    answer = smi_metrics.get(API_PATH)
    assert answer.status == 200, answer.text()
    body = answer.json()
    assert body["kind"] == "APIResourceList" and body["groupVersion"] == f"{GROUP}/{VERSION}", body
    resources = {r["name"]: r for r in body["resources"]}
    for name in ("namespaces", "deployments", "pods", "daemonsets", "statefulsets"):
        assert name in resources, f"discovery does not list {name}: {sorted(resources)}"
        assert resources[name]["kind"] == "TrafficMetrics", resources[name]
        assert "get" in resources[name]["verbs"], resources[name]
    assert resources["deployments"]["namespaced"] is True
    assert smi_metrics.available(), smi_metrics.conditions()


def test_counts_match_what_the_mesh_answered(smi_metrics: SmiMetrics, loaded: LoadedNamespace) -> None:
    for name, (success, failure) in loaded.mesh_counts.items():
        traffic = _traffic(smi_metrics, loaded.namespace, name, WIDE_WINDOW)
        body = traffic.body
        assert body["kind"] == "TrafficMetrics" and body["apiVersion"] == f"{GROUP}/{VERSION}", body
        resource = body["resource"]
        assert (resource["kind"], resource["namespace"], resource["name"]) == ("Deployment", loaded.namespace, name)
        assert success + failure >= RPS * LOAD_SECONDS * 0.5, f"the load generator barely ran: {loaded.mesh_counts}"
        for metric, expected in (("success_count", success), ("failure_count", failure)):
            seen = traffic.value(metric)
            print(f"{name} {metric}: Traffic Metrics API {seen:g}, mesh {expected}")
            assert abs(seen - expected) <= _count_tolerance(expected), (
                f"{name} {metric}: the Traffic Metrics API says {seen:g}, the mesh answered {expected}: {body}"
            )


def test_error_rate_annotation_shows_up_as_failures(smi_metrics: SmiMetrics, loaded: LoadedNamespace) -> None:
    flaky = _traffic(smi_metrics, loaded.namespace, "flaky", WIDE_WINDOW)
    failures, successes = flaky.value("failure_count"), flaky.value("success_count")
    assert failures > 0, flaky.body
    share = failures / (failures + successes)
    assert abs(share - FLAKY_ERROR_RATE) <= 0.1, f"{share:.1%} failures for an error rate of {FLAKY_ERROR_RATE:.0%}"
    slow = _traffic(smi_metrics, loaded.namespace, "slow", WIDE_WINDOW)
    assert slow.value("failure_count") == 0 and slow.value("success_count") > 0, slow.body


def test_latencies_in_milliseconds_reflect_the_latency_annotation(smi_metrics: SmiMetrics, loaded: LoadedNamespace) -> None:
    slow = _traffic(smi_metrics, loaded.namespace, "slow", WIDE_WINDOW)
    flaky = _traffic(smi_metrics, loaded.namespace, "flaky", WIDE_WINDOW)
    for traffic in (slow, flaky):
        for name in LATENCIES:
            assert name in traffic.metrics, f"no {name}: {traffic.body}"
            assert traffic.metrics[name].get("unit") == "ms", traffic.metrics[name]
    # Linkerd's histogram has buckets at 200 and 300 ms: quantiles of 250 ms answers interpolate
    # inside that bucket. The median must; the tail is never below the annotation, but how far
    # above it reaches is the busy machine's doing (the proxy's own time is in the measurement:
    # a CI run with both cores saturated put p99 at 666 ms). The tails' ceiling only guards the
    # unit, which a mistake would move a thousandfold.
    unit_guard = 10 * SLOW_LATENCY_MS
    assert 200 <= slow.value("p50_response_latency") <= 300, slow.metrics
    for name in ("p90_response_latency", "p99_response_latency"):
        assert 200 <= slow.value(name) < unit_guard, f"slow {name} = {slow.value(name):g} ms for {SLOW_LATENCY_MS} ms answers"
    assert flaky.value("p50_response_latency") < 50, flaky.metrics
    assert flaky.value("p99_response_latency") < unit_guard, flaky.metrics
    assert slow.value("p50_response_latency") <= slow.value("p90_response_latency") <= slow.value("p99_response_latency")


# -- (2) an unknown Deployment -------------------------------------------------------------------


def test_unknown_deployment_is_a_404_status(smi_metrics: SmiMetrics, loaded: LoadedNamespace) -> None:
    answer = smi_metrics.traffic_metrics(loaded.namespace, "deployments", "does-not-exist")
    assert answer.status == 404, answer.text()
    status = answer.json()
    assert status["kind"] == "Status" and status["code"] == 404 and status["reason"] == "NotFound", status


# -- (3) no traffic ------------------------------------------------------------------------------


def test_deployment_without_traffic_has_zero_counts_and_no_latencies(
    smi_metrics: SmiMetrics, loaded: LoadedNamespace
) -> None:
    idle = _traffic(smi_metrics, loaded.namespace, "idle", WIDE_WINDOW)
    assert idle.value("success_count") == 0 and idle.value("failure_count") == 0, idle.body
    present = [name for name in LATENCIES if name in idle.metrics]
    assert not present, f"a Deployment without requests has no latency, yet the answer has {present}: {idle.body}"


# -- (4) the window ------------------------------------------------------------------------------


def test_t_parameter_sets_the_window(smi_metrics: SmiMetrics, loaded: LoadedNamespace) -> None:
    default = _traffic(smi_metrics, loaded.namespace, "slow")
    minute = _traffic(smi_metrics, loaded.namespace, "slow", "1m")
    assert default.window_seconds() == 30, default.body["window"]
    assert minute.window_seconds() == 60, minute.body["window"]
    stamp = datetime.datetime.fromisoformat(str(minute.body["timestamp"]).replace("Z", "+00:00"))
    assert abs(stamp.timestamp() - time.time()) < 60, minute.body["timestamp"]
    # The load ended a moment ago and lasted 20 s: both windows hold most of it, the wider one at
    # least as much (up to increase()'s extrapolation at the window's start).
    assert default.value("success_count") > 0, default.body
    assert minute.value("success_count") >= 0.95 * default.value("success_count"), (default.body, minute.body)


# -- (5) the server trusts the API server's front-proxy identity only ----------------------------


def _refused(server: MetricsServer, client_cert: KeyPair | None) -> str:
    """What the server did with a request that asserts the admin user: '401', '403', 'refused in TLS
    (...)', or 'not refused: ...'."""
    headers = {"X-Remote-User": "admin", "X-Remote-Group": "system:masters"}
    try:
        answer = server.get(API_PATH + "/namespaces/default/deployments/anything", client_cert=client_cert, headers=headers)
    except (ssl.SSLError, urllib.error.URLError, ConnectionError) as exc:
        # A server may also refuse an untrusted client certificate in the TLS handshake (with
        # TLS 1.3 the client learns of it as a closed connection).
        return f"refused in TLS ({exc})"
    return str(answer.status) if answer.status in (401, 403) else f"not refused: HTTP {answer.status}: {answer.text()}"


def test_requests_not_from_the_api_server_are_refused(env: Environment, smi_metrics: SmiMetrics, tmp_path: Path) -> None:
    assert env.control_plane is not None
    server = smi_metrics.server
    pki = env.control_plane.pki
    assert server.get("/healthz").status == 200, "health needs no client certificate"

    # A certificate named front-proxy-client, from a CA the server was not told about.
    rogue = Authority.create("rogue-ca").issue_pair(tmp_path, "rogue", FRONT_PROXY_CLIENT_NAME, client=True)
    # A certificate from the right CA (the front-proxy CA) under a name that is not allowed.
    unlisted = Authority.load(pki.front_proxy_ca).issue_pair(tmp_path, "unlisted", "someone-else", client=True)
    outcomes = {
        "no client certificate": _refused(server, None),
        "cluster admin certificate (cluster CA, not the front-proxy CA)": _refused(server, pki.admin),
        "front-proxy-client from another CA": _refused(server, rogue),
        "front-proxy CA, name not in --requestheader-allowed-names": _refused(server, unlisted),
    }
    print(outcomes)
    accepted = {what: how for what, how in outcomes.items() if how.startswith("not refused")}
    assert not accepted, f"the server believed X-Remote-User from: {accepted}"
    # Neither the no-certificate case nor a certificate its CA signed may fail at the TLS level:
    # those must be answered, with 401 or 403.
    assert outcomes["no client certificate"] in ("401", "403"), outcomes
    assert outcomes["front-proxy CA, name not in --requestheader-allowed-names"] in ("401", "403"), outcomes

    # The control: the API server's own front-proxy identity is what makes the difference.
    answer = server.get(API_PATH, client_cert=pki.front_proxy_client, headers={"X-Remote-User": "admin"})
    assert answer.status == 200, answer.text()


# -- (6) Prometheus down -------------------------------------------------------------------------


def test_prometheus_down_is_a_503_through_the_api_server(smi_metrics: SmiMetrics, loaded: LoadedNamespace) -> None:
    # Stopping the session's Prometheus would take the data of later scenarios with it. Instead,
    # a second server whose Prometheus address has nothing listening takes the Service's
    # endpoint for the duration of the test; the session's server is put back afterwards.
    dead = smi_metrics.start_instance("metrics-server-dead-prometheus", prometheus_url=f"http://127.0.0.1:{free_port()}")
    path = f"{API_PATH}/namespaces/{loaded.namespace}/deployments/slow"
    try:
        with smi_metrics.served_by(dead, probe_path=path):
            answer = wait_for(
                lambda: smi_metrics.traffic_metrics(loaded.namespace, "deployments", "slow"),
                lambda a: a.status != 200,
                timeout=20,
                what="the API server to route to the server without Prometheus",
            )
            assert answer.status == 503, answer.text()
            status = answer.json()
            assert status["kind"] == "Status" and status["code"] == 503, status
            # The server's own answer, not the aggregator's "service unavailable" for an endpoint
            # it cannot reach: the message names what is missing.
            assert "prometheus" in str(status.get("message", "")).lower(), status
            # Discovery does not depend on Prometheus: the APIService stays available.
            assert smi_metrics.get(API_PATH).status == 200
        assert smi_metrics.traffic_metrics(loaded.namespace, "deployments", "slow").status == 200
    finally:
        dead.stop()
