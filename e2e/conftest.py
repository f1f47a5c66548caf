"""Fixtures of the end-to-end suite: one environment per run, one namespace and controller per test.

The environment (control plane, mesh CRDs, simulated data plane, Prometheus) starts once per
pytest session because it is the slow part; isolation between scenarios comes from a fresh
namespace each, watched by a controller process of its own.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.harness.controller import Controller, ControllerOptions
from e2e.harness.audit import AuditLog
from e2e.harness.environment import AUDIT_NEEDS_LOCAL_CLUSTER, SMI_NEEDS_LOCAL_CLUSTER, Environment, environment
from e2e.harness.kube import Kube
from e2e.harness.metrics_server import SmiMetrics
from e2e.harness.replicas import Replicas

StartController = Callable[..., Controller]
StartReplicas = Callable[..., Replicas]


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    workdir = Path(os.environ.get("E2E_WORKDIR") or tmp_path_factory.mktemp("e2e"))
    with environment(workdir) as started:
        figures = ", ".join(f"{k} {v:.1f}s" for k, v in started.timings.items())
        print(f"\ne2e environment ready ({figures}); logs in {workdir}", file=sys.stderr)
        yield started


@pytest.fixture(scope="session")
def smi_metrics(env: Environment) -> SmiMetrics:
    """``canary metrics-server`` serving ``metrics.smi-spec.io/v1alpha1`` through the API server.

    Started by the first test that asks for it, stopped with the session. Skipped with
    ``E2E_KUBECONFIG``: the server runs here, and another cluster cannot use it as an endpoint.
    """
    if env.control_plane is None:
        pytest.skip(SMI_NEEDS_LOCAL_CLUSTER)
    return env.smi_metrics()


@pytest.fixture
def kube(env: Environment, request: pytest.FixtureRequest) -> Iterator[Kube]:
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    k = Kube(env.api, f"{slug}-{secrets.token_hex(3)}")
    k.create_namespace()
    yield k
    env.mesh.client.stop_all_load(k.namespace)
    if not (request.node.stash.get(_FAILED, False) and os.environ.get("E2E_KEEP_FAILED")):
        k.delete_namespace()


def _no_denied_requests(env: Environment, controllers: list[Controller]) -> None:
    """The controllers ran with the chart's RBAC: a request it did not allow fails the scenario,
    even one the controller only logged (see :data:`e2e.harness.controller.DENIED`). Refusals
    while a scenario had stopped kube-apiserver and it was not ready again are not the RBAC's."""
    restarts = env.control_plane.apiserver_unready if env.control_plane is not None else []
    denied = [line for ctl in controllers for line in ctl.denied_requests(restarts)]
    assert not denied, ("the chart's RBAC refused requests of the controller (helm/canary/templates/rbac.yaml):\n"
                        + "\n".join(denied[:20]))


@pytest.fixture
def start_controller(env: Environment, kube: Kube, request: pytest.FixtureRequest) -> Iterator[StartController]:
    """Start the controller for this test's namespace; its log is printed if the test fails."""
    started: list[Controller] = []

    def start(**options: Any) -> Controller:
        # The chart's ServiceAccount and RBAC: a verb the chart lacks fails the scenario.
        opts = ControllerOptions(**{"kubeconfig": env.controller_kubeconfig(kube.namespace),
                                    "namespace": kube.namespace, "prometheus_url": env.prometheus.url, **options})
        ctl = Controller(opts, env.workdir / "logs", env.api)
        started.append(ctl)
        return ctl.start()

    yield start
    for ctl in started:
        ctl.stop()
    _no_denied_requests(env, started)
    if request.node.stash.get(_FAILED, False):
        for ctl in started:
            print(f"\n--- controller log ({ctl.process.log_path if ctl.process else '-'}) ---\n{ctl.log_tail(120)}")
        print(f"\n--- mesh routes ---\n{env.mesh.client.routes()}")
        if env.smi is not None:
            print(f"\n--- SMI metrics server ---\n{env.smi.diagnostics()}")


@pytest.fixture
def start_replicas(env: Environment, kube: Kube, request: pytest.FixtureRequest) -> Iterator[StartReplicas]:
    """Start N controller replicas in this test's namespace sharing its Lease (the first leads);
    every replica's log is printed if the test fails. With ``shard_buckets=N`` they share the
    Canaries over bucket Leases instead, and none waits for the leader Lease."""
    started: list[Replicas] = []

    def start(count: int, **options: Any) -> Replicas:
        def make(name: str) -> Controller:
            opts = ControllerOptions(**{"kubeconfig": env.controller_kubeconfig(kube.namespace),
                                        "namespace": kube.namespace, "prometheus_url": env.prometheus.url, **options})
            return Controller(opts, env.workdir / "logs", env.api, name=name)

        replicas = Replicas(make, env.api, kube.namespace)
        started.append(replicas)
        return replicas.start(count, leader=not options.get("shard_buckets"))

    yield start
    for replicas in started:
        replicas.stop()
    _no_denied_requests(env, [ctl for replicas in started for ctl in replicas.members])
    if request.node.stash.get(_FAILED, False):
        for replicas in started:
            for ctl in replicas.members:
                log = ctl.process.log_path if ctl.process else "-"
                print(f"\n--- replica {ctl.name} ({log}) ---\n{ctl.log_tail(80)}")


@pytest.fixture
def audit(env: Environment) -> AuditLog:
    """The API server's audit log of writes; the test is skipped with ``E2E_KUBECONFIG``."""
    if env.audit is None:
        pytest.skip(AUDIT_NEEDS_LOCAL_CLUSTER)
    return env.audit
