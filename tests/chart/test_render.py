"""``helm lint --strict`` and ``helm template`` for every values toggle, asserting on the objects."""

from __future__ import annotations

from typing import Any

import pytest

from canary.cli.args import build_parser, settings_from_args
from e2e.harness.chart import HelmError, Rendered, lint, render
from tests.chart.support import EVERYTHING_ON, METRICS_SERVER_ON, TOGGLES, needs_helm

pytestmark = needs_helm

STANDARD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                   "app.kubernetes.io/component", "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of",
                   "helm.sh/chart")
OPTIONAL_KINDS = {"ServiceMonitor", "PrometheusRule", "APIService"}


def _pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"]["labels"])


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _controller(rendered: Rendered) -> dict[str, Any]:
    [deployment] = [d for d in rendered.of_kind("Deployment")
                    if d["metadata"]["labels"]["app.kubernetes.io/component"] == "controller"]
    return deployment


def _args(deployment: dict[str, Any]) -> list[str]:
    return list(deployment["spec"]["template"]["spec"]["containers"][0]["args"])


@pytest.mark.parametrize("values", TOGGLES.values(), ids=TOGGLES.keys())
def test_every_toggle_lints_strictly(values: dict[str, Any]) -> None:
    assert "0 chart(s) failed" in lint(values)


@pytest.mark.parametrize("values", TOGGLES.values(), ids=TOGGLES.keys())
def test_every_object_carries_the_standard_labels(values: dict[str, Any]) -> None:
    for obj in render(values):
        labels = obj["metadata"].get("labels") or {}
        missing = [k for k in STANDARD_LABELS if k not in labels]
        assert not missing, f"{obj['kind']} {obj['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/instance"] == "canary"


@pytest.mark.parametrize("values", TOGGLES.values(), ids=TOGGLES.keys())
def test_every_reference_names_a_rendered_object(values: dict[str, Any]) -> None:
    """Bindings, Pods and Services point at objects of the same render (names follow the overrides)."""
    rendered = render(values)
    names = {(o["kind"], o["metadata"]["name"]) for o in rendered}
    for binding in rendered.of_kind("ClusterRoleBinding") + rendered.of_kind("RoleBinding"):
        ref = binding["roleRef"]
        # The metrics server reads the requestheader CA through a Role Kubernetes ships.
        if ref["name"] != "extension-apiserver-authentication-reader":
            assert (ref["kind"], ref["name"]) in names
        for subject in binding["subjects"]:
            assert ("ServiceAccount", subject["name"]) in names
    for deployment in rendered.of_kind("Deployment"):
        pod = deployment["spec"]["template"]
        assert ("ServiceAccount", pod["spec"]["serviceAccountName"]) in names
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    for service in rendered.of_kind("Service"):
        targets = [d for d in rendered.of_kind("Deployment") if _selects(service["spec"]["selector"], _pod_labels(d))]
        assert len(targets) == 1, f"Service {service['metadata']['name']} selects {len(targets)} Deployments"
        container_ports = {p["name"] for p in targets[0]["spec"]["template"]["spec"]["containers"][0]["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports


def test_the_defaults_render_no_optional_object() -> None:
    rendered = render()
    assert rendered.kinds() == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                                "Deployment", "Service", "PodDisruptionBudget"}
    assert not rendered.kinds() & OPTIONAL_KINDS


def test_everything_on_renders_each_optional_object_once() -> None:
    rendered = render(EVERYTHING_ON)
    for kind in OPTIONAL_KINDS:
        assert len(rendered.of_kind(kind)) == 1, kind


def test_selector_labels_are_the_ones_earlier_releases_had() -> None:
    # A Deployment's selector is immutable: a change would make every `helm upgrade` fail.
    rendered = render(METRICS_SERVER_ON)
    selectors = {d["metadata"]["name"]: d["spec"]["selector"]["matchLabels"] for d in rendered.of_kind("Deployment")}
    assert selectors == {
        "canary": {"app.kubernetes.io/name": "canary", "app.kubernetes.io/instance": "canary"},
        "canary-metrics-server": {"app.kubernetes.io/name": "canary-metrics-server",
                                  "app.kubernetes.io/instance": "canary"},
    }


@pytest.mark.parametrize(("release", "values", "fullname"), [
    ("canary", {}, "canary"),
    ("prod", {}, "prod-canary"),
    ("canary-eu", {}, "canary-eu"),
    ("prod", {"nameOverride": "rollouts"}, "prod-rollouts"),
    ("prod", {"fullnameOverride": "ctl"}, "ctl"),
])
def test_object_names_follow_name_and_fullname_overrides(release: str, values: dict[str, Any], fullname: str) -> None:
    rendered = render({**EVERYTHING_ON, **values}, release=release)
    names = {(o["kind"], o["metadata"]["name"]) for o in rendered}
    assert {("Deployment", fullname), ("ServiceAccount", fullname), ("ClusterRole", fullname),
            ("Role", f"{fullname}-leader-election"), ("Service", f"{fullname}-metrics"),
            ("Deployment", f"{fullname}-metrics-server"), ("PodDisruptionBudget", fullname),
            ("ServiceMonitor", fullname), ("PrometheusRule", fullname)} <= names
    name = values.get("nameOverride", "canary")
    assert _controller(rendered)["metadata"]["labels"]["app.kubernetes.io/name"] == name


def test_a_long_fullname_is_cut_to_a_dns_label_keeping_each_suffix() -> None:
    rendered = render({**EVERYTHING_ON, "fullnameOverride": "c" * 63})
    for obj in rendered:
        if obj["kind"] != "APIService":
            assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]
    assert rendered.one("Service", "c" * 55 + "-metrics")
    assert rendered.one("Role", "c" * 47 + "-leader-election")


def test_placement_and_pull_secrets_reach_both_pods() -> None:
    values = TOGGLES["placement"]
    rendered = render(values)
    deployments = rendered.of_kind("Deployment")
    assert len(deployments) == 2
    for deployment in deployments:
        pod = deployment["spec"]["template"]
        assert pod["spec"]["nodeSelector"] == values["nodeSelector"]
        assert pod["spec"]["tolerations"] == values["tolerations"]
        assert pod["spec"]["affinity"] == values["affinity"]
        assert pod["spec"]["imagePullSecrets"] == values["imagePullSecrets"]
    controller = _controller(rendered)["spec"]["template"]
    assert controller["spec"]["priorityClassName"] == "system-cluster-critical"
    assert controller["metadata"]["annotations"]["team"] == "delivery"
    assert controller["metadata"]["labels"]["team"] == "delivery"


def test_without_placement_values_the_pods_have_no_such_fields() -> None:
    pod = _controller(render())["spec"]["template"]["spec"]
    assert not {"nodeSelector", "tolerations", "affinity", "imagePullSecrets", "priorityClassName"} & pod.keys()


# --- PodDisruptionBudget ---------------------------------------------------------------------


def test_the_pdb_keeps_one_controller_replica_and_only_those() -> None:
    rendered = render(METRICS_SERVER_ON)
    pdb = rendered.one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    selected = [d["metadata"]["name"] for d in rendered.of_kind("Deployment")
                if _selects(pdb["spec"]["selector"]["matchLabels"], _pod_labels(d))]
    assert selected == ["canary"]


def test_sharding_passes_the_bucket_count_and_the_controller_takes_it() -> None:
    off = _args(_controller(render({})))
    assert not [a for a in off if a.startswith("--shard-buckets")], "off by default: one leader acts"
    args = _args(_controller(render({"replicaCount": 3, "sharding": {"enabled": True, "buckets": 12}})))
    assert "--shard-buckets=12" in args
    assert settings_from_args(build_parser().parse_args(args), env={}).sharding.buckets == 12


@pytest.mark.parametrize("values", [
    {"podDisruptionBudget": {"enabled": False}},
    {"replicaCount": 1},
    {"replicaCount": 1, "leaderElection": {"enabled": False}},
], ids=["disabled", "one-replica", "one-replica-no-election"])
def test_no_pdb_when_off_or_with_one_replica(values: dict[str, Any]) -> None:
    assert not render(values).of_kind("PodDisruptionBudget")


def test_a_pdb_that_would_block_every_drain_is_refused() -> None:
    with pytest.raises(HelmError, match=r"minAvailable \(3\) must be below replicaCount \(3\)"):
        render({"replicaCount": 3, "podDisruptionBudget": {"enabled": True, "minAvailable": 3}})
    assert render({"replicaCount": 3, "podDisruptionBudget": {"enabled": True, "minAvailable": "50%"}}).one(
        "PodDisruptionBudget")["spec"]["minAvailable"] == "50%"


# --- metrics Service and ServiceMonitor --------------------------------------------------------


def test_the_metrics_service_exposes_the_controllers_metrics_port() -> None:
    rendered = render({"metricsPort": 9102})
    service = rendered.one("Service", "canary-metrics")
    [port] = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("http-metrics", 9102, "http-metrics")
    controller = _controller(rendered)
    assert _selects(service["spec"]["selector"], _pod_labels(controller))
    assert "--metrics-port=9102" in _args(controller)
    assert controller["spec"]["template"]["spec"]["containers"][0]["ports"] == [
        {"name": "http-metrics", "containerPort": 9102}]
    # The standby and a leader not yet ready are scraped too (canary_leader 0 is a signal).
    assert service["spec"]["publishNotReadyAddresses"] is True


def test_the_service_monitor_scrapes_only_the_controllers_metrics_service() -> None:
    rendered = render(EVERYTHING_ON)
    monitor = rendered.one("ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    matched = [s["metadata"]["name"] for s in rendered.of_kind("Service") if _selects(selector, s["metadata"]["labels"])]
    assert matched == ["canary-metrics"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["canary-system"]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http-metrics" and endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True  # the Canary's own `namespace` label must survive
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_the_service_monitor_can_live_in_prometheus_namespace() -> None:
    monitor = render({"serviceMonitor": {"enabled": True, "namespace": "monitoring"}}).one("ServiceMonitor")
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["canary-system"]}


# --- PrometheusRule --------------------------------------------------------------------------

ALERTS = {"controllerDown": "CanaryControllerDown", "leaderLost": "CanaryLeaderLost",
          "releaseFailed": "CanaryReleaseFailed", "analysisStalled": "CanaryAnalysisStalled"}


def _rules(rendered: Rendered) -> dict[str, dict[str, Any]]:
    [group] = rendered.one("PrometheusRule")["spec"]["groups"]
    return {rule["alert"]: rule for rule in group["rules"]}


def test_the_rule_has_the_four_alerts_scoped_to_the_metrics_services_job() -> None:
    rules = _rules(render({"prometheusRule": {"enabled": True}, "fullnameOverride": "ctl"}))
    assert set(rules) == set(ALERTS.values())
    for rule in rules.values():
        assert 'job="ctl-metrics"' in rule["expr"], rule["expr"]
    assert 'phase="Failed"' in rules["CanaryReleaseFailed"]["expr"]
    assert "canary_leader" in rules["CanaryLeaderLost"]["expr"]
    assert "canary_stalled" in rules["CanaryAnalysisStalled"]["expr"]
    assert (rules["CanaryLeaderLost"]["for"], rules["CanaryAnalysisStalled"]["for"]) == ("1m", "5m")


def test_the_job_can_be_named_for_another_scrape_setup() -> None:
    rules = _rules(render({"prometheusRule": {"enabled": True, "job": "kubernetes-pods"}}))
    assert all('job="kubernetes-pods"' in rule["expr"] for rule in rules.values())


@pytest.mark.parametrize("key", ALERTS)
def test_each_alert_can_be_turned_off_or_retuned(key: str) -> None:
    off = _rules(render({"prometheusRule": {"enabled": True, "alerts": {key: {"enabled": False}}}}))
    assert set(off) == set(ALERTS.values()) - {ALERTS[key]}
    tuned = _rules(render({"prometheusRule": {"enabled": True, "alerts": {key: {"for": "17m", "severity": "page"}}}}))
    assert tuned[ALERTS[key]]["for"] == "17m"
    assert tuned[ALERTS[key]]["labels"] == {"severity": "page"}
