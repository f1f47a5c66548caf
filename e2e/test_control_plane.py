"""The local control plane itself: Pods scheduled by the real scheduler run on kwok Nodes, and
no process outlives the plane, whether it is stopped, detached and brought down, or orphaned.

Self-contained for now (each test module starts its own plane in a temporary directory); skipped
when the binaries have not been built (``python -m e2e.cluster build``).
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from e2e.cluster import ControlPlane, E2ESetupError, find_binaries
from e2e.cluster.control_plane import NODE_NAME_PREFIX, SERVICE_CLUSTER_IP_RANGE, read_state
from e2e.cluster.kwok_config import POD_DELETE_DELAY_ANNOTATION
from e2e.processes import wait_until

REPO_ROOT = Path(__file__).resolve().parents[1]

try:
    find_binaries()
except E2ESetupError as _missing:
    pytest.skip(f"control-plane binaries are not built: {_missing}", allow_module_level=True)


def pids_with_argument(text: str) -> list[int]:
    """Pids of processes whose command line mentions ``text`` (a workdir is unique to one plane)."""
    result = subprocess.run(["pgrep", "-f", text], capture_output=True, text=True, check=False)
    return [int(pid) for pid in result.stdout.split() if int(pid) != os.getpid()]


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if _running(pid)]
    return alive


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with ControlPlane.start(tmp_path_factory.mktemp("plane")) as started:
        yield started


@pytest.fixture
def api(plane: ControlPlane) -> Iterator[k8s.ApiClient]:
    with plane.api_client() as client:
        yield client


def test_starts_within_seconds(plane: ControlPlane) -> None:
    assert plane.startup_seconds is not None
    print(f"control plane ready in {plane.startup_seconds:.1f}s")
    assert plane.startup_seconds < 30


def test_deployment_runs_ready_pods_on_kwok_nodes(plane: ControlPlane, api: k8s.ApiClient) -> None:
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    labels = {"app": "pause"}
    apps.create_namespaced_deployment(
        "default",
        k8s.V1Deployment(
            metadata=k8s.V1ObjectMeta(name="pause"),
            spec=k8s.V1DeploymentSpec(
                replicas=2,
                selector=k8s.V1LabelSelector(match_labels=labels),
                template=k8s.V1PodTemplateSpec(
                    metadata=k8s.V1ObjectMeta(labels=labels),
                    spec=k8s.V1PodSpec(
                        containers=[
                            k8s.V1Container(
                                name="pause",
                                image="registry.k8s.io/pause:3.10",
                                ports=[k8s.V1ContainerPort(container_port=8080)],
                            )
                        ]
                    ),
                ),
            ),
        ),
    )

    def deployment_ready() -> bool:
        status = apps.read_namespaced_deployment("pause", "default").status
        return status is not None and status.ready_replicas == 2

    wait_until(deployment_ready, timeout=60, what="Deployment pause to have 2 ready replicas")

    pods = core.list_namespaced_pod("default", label_selector="app=pause").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.spec is not None and pod.status is not None
        assert (pod.spec.node_name or "").startswith(NODE_NAME_PREFIX)
        assert pod.status.phase == "Running"
        ready = [c for c in pod.status.conditions or [] if c.type == "Ready"]
        assert ready and ready[0].status == "True"
        # The plane's own range, which no other running plane on this machine hands out.
        assert ipaddress.IPv4Address(pod.status.pod_ip or "0.0.0.0") in plane.pod_cidr

    core.create_namespaced_service(
        "default",
        k8s.V1Service(
            metadata=k8s.V1ObjectMeta(name="pause"),
            spec=k8s.V1ServiceSpec(
                selector=labels,
                ports=[k8s.V1ServicePort(port=80, target_port=8080)],
            ),
        ),
    )
    service = core.read_namespaced_service("pause", "default")
    assert service.spec is not None
    service_range = ipaddress.IPv4Network(SERVICE_CLUSTER_IP_RANGE)
    assert ipaddress.IPv4Address(service.spec.cluster_ip or "0.0.0.0") in service_range

    discovery = k8s.DiscoveryV1Api(api)

    def service_has_both_pods() -> bool:
        slices = discovery.list_namespaced_endpoint_slice(
            "default", label_selector="kubernetes.io/service-name=pause"
        ).items
        ready = [
            e
            for s in slices
            for e in s.endpoints or []
            if e.conditions is not None and e.conditions.ready
        ]
        return len(ready) == 2

    wait_until(service_has_both_pods, timeout=30, what="EndpointSlice of Service pause to list 2 ready pods")


def _running_pod(core: k8s.CoreV1Api, name: str, *, grace: int, annotations: dict[str, str]) -> None:
    """Create a Pod and wait until kwok runs it: only a Pod bound to a Node is deleted gracefully."""
    core.create_namespaced_pod(
        "default",
        k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(name=name, annotations=annotations),
            spec=k8s.V1PodSpec(
                termination_grace_period_seconds=grace,
                containers=[k8s.V1Container(name="pause", image="registry.k8s.io/pause:3.10")],
            ),
        ),
    )

    def running() -> bool:
        status = core.read_namespaced_pod(name, "default").status
        return status is not None and status.phase == "Running"

    wait_until(running, timeout=60, what=f"Pod {name} to run")


def _pod_gone(core: k8s.CoreV1Api, name: str) -> Callable[[], bool]:
    def gone() -> bool:
        try:
            core.read_namespaced_pod(name, "default")
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    return gone


def test_pods_are_deleted_at_once_unless_they_ask_for_a_shutdown_delay(api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    # A long grace period: were kwok to wait any part of it (its general delete stage jitters up
    # to the deletionTimestamp), the plain Pod would outlive the delayed one.
    _running_pod(core, "plain", grace=120, annotations={})
    _running_pod(core, "draining", grace=3, annotations={POD_DELETE_DELAY_ANNOTATION: "3s"})

    for name in ("draining", "plain"):
        core.delete_namespaced_pod(name, "default")
    wait_until(_pod_gone(core, "plain"), timeout=30, what="Pod plain to be deleted")

    # The plain Pod is gone; the one that asked for 3 s of shutdown is still there, Terminating,
    # as a real Pod in its preStop sleep is (and stays served by e2e.podnet meanwhile).
    draining = core.read_namespaced_pod("draining", "default")
    assert draining.metadata is not None and draining.metadata.deletion_timestamp is not None
    wait_until(_pod_gone(core, "draining"), timeout=60, what="Pod draining to be deleted after its delay")


def test_install_manifests_serves_the_project_crds(plane: ControlPlane, api: k8s.ApiClient) -> None:
    applied = plane.install_manifests([REPO_ROOT / "crds"])
    assert "CustomResourceDefinition/canaries.canary.dev" in applied
    # Applying again is a no-op, not a conflict.
    assert plane.install_manifests([REPO_ROOT / "crds"]) == applied
    listing = k8s.CustomObjectsApi(api).list_namespaced_custom_object(
        "canary.dev", "v1alpha1", "default", "canaries"
    )
    assert isinstance(listing, dict) and listing["items"] == []


WIDGETS = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, properties: {size: {type: integer}}}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: small, namespace: widgets}
spec: {size: 1}
"""


def test_install_manifests_applies_a_crd_and_its_objects_together(
    plane: ControlPlane, api: k8s.ApiClient, tmp_path: Path
) -> None:
    # The Widget comes before its Namespace and right after its CRD: install_manifests must
    # order and wait, as kubectl apply would not.
    (tmp_path / "a-widgets.yaml").write_text(WIDGETS)
    (tmp_path / "b-namespace.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: widgets}\n")
    applied = plane.install_manifests([tmp_path])
    assert applied == [
        "CustomResourceDefinition/widgets.example.com",
        "Namespace/widgets",
        "Widget/widgets/small",
    ]
    widget = k8s.CustomObjectsApi(api).get_namespaced_custom_object(
        "example.com", "v1", "widgets", "widgets", "small"
    )
    assert isinstance(widget, dict) and widget["spec"] == {"size": 1}


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    plane = ControlPlane.start(tmp_path, nodes=1)
    pids = [process.pid for process in plane.processes.values()]
    assert len(pids) == 5 and pids_with_argument(str(tmp_path))
    plane.stop()
    assert wait_gone(pids, 1) == []
    assert pids_with_argument(str(tmp_path)) == []
    plane.stop()  # idempotent


def test_components_die_with_a_sigkilled_parent(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from e2e.cluster import ControlPlane
        plane = ControlPlane.start(Path({str(tmp_path)!r}), nodes=1)
        print("ready", flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "ready"
        state = read_state(tmp_path)
        assert state is not None
        pids = [record.pid for record in state.running()]
        assert len(pids) == 5
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(5)
        assert wait_gone(pids, 2) == [], "components outlived their SIGKILLed parent"
        assert pids_with_argument(str(tmp_path)) == []
    finally:
        parent.kill()
        parent.wait(5)
        ControlPlane.stop_detached(tmp_path)


def test_cli_up_outlives_itself_and_down_stops_it(tmp_path: Path) -> None:
    env = {**os.environ, "CANARY_E2E_WORKDIR": str(tmp_path)}
    cli = [sys.executable, "-m", "e2e.cluster"]
    try:
        up = subprocess.run(
            [*cli, "up", "--nodes", "1"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert up.returncode == 0, up.stderr
        lines = up.stdout.strip().splitlines()
        assert lines[-1] == f"export KUBECONFIG={tmp_path.resolve() / 'kubeconfig'}"
        assert any(line.startswith("control plane ready in ") for line in lines)

        status = subprocess.run([*cli, "status"], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        assert status.returncode == 0, status.stdout
        state = read_state(tmp_path)
        assert state is not None and len(state.running()) == 5
        pids = [record.pid for record in state.processes]

        # `up` again replaces the running plane rather than starting a second one beside it.
        again = subprocess.run(
            [*cli, "up", "--nodes", "1"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert again.returncode == 0, again.stderr
        assert wait_gone(pids, 1) == []
        state = read_state(tmp_path)
        assert state is not None
        pids = [record.pid for record in state.processes]

        down = subprocess.run([*cli, "down"], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        assert down.returncode == 0
        assert len([line for line in down.stdout.splitlines() if line.startswith("stopped ")]) == 5
        assert wait_gone(pids, 1) == []
        assert pids_with_argument(str(tmp_path)) == []
        assert (tmp_path / "logs" / "kube-apiserver.log").stat().st_size > 0
    finally:
        ControlPlane.stop_detached(tmp_path)
