"""The chart grants the controller exactly what its code needs: nothing missing, nothing in vain.

What it needs is derived from the code (``tests/chart/rbac_needs.py``); what it gets is what
``helm template`` renders from ``templates/rbac.yaml``.
"""

from __future__ import annotations

from typing import Any

import pytest

from e2e.harness.chart import Rendered, render
from tests.chart.rbac_needs import controller_needs, metrics_server_needs
from tests.chart.support import METRICS_SERVER_ON, needs_helm

pytestmark = needs_helm

Grant = tuple[str, str, str]


def _grants(roles: list[dict[str, Any]]) -> dict[Grant, int]:
    """(group, resource, verb) -> how many rules grant it, from ``roles``' rules."""
    granted: dict[Grant, int] = {}
    for role in roles:
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        key = (group, resource, verb)
                        granted[key] = granted.get(key, 0) + 1
    return granted


def _controller_roles(rendered: Rendered) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ClusterRoles and Roles bound to the controller's ServiceAccount."""
    deployment = rendered.one("Deployment", "canary")
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    bound: dict[str, list[dict[str, Any]]] = {"ClusterRole": [], "Role": []}
    for binding in rendered.of_kind("ClusterRoleBinding") + rendered.of_kind("RoleBinding"):
        if any(s["kind"] == "ServiceAccount" and s["name"] == account for s in binding["subjects"]):
            ref = binding["roleRef"]
            bound[ref["kind"]].append(rendered.one(ref["kind"], ref["name"]))
    return bound["ClusterRole"], bound["Role"]


@pytest.fixture(scope="module")
def roles() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return _controller_roles(render())


def _describe(grants: list[Grant]) -> str:
    return "\n".join(f"  {group or 'core'} {resource} {verb}" for group, resource, verb in sorted(grants))


def test_every_verb_the_code_calls_is_granted(roles: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    granted = _grants(roles[0] + roles[1])
    missing = {need: why for need, why in controller_needs().items() if need not in granted}
    assert not missing, "the controller's code needs, and the chart does not grant:\n" + "\n".join(
        f"  {g or 'core'} {r} {v}: {'; '.join(why)}" for (g, r, v), why in sorted(missing.items()))


def test_no_verb_is_granted_in_vain(roles: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    needs = controller_needs()
    unused = [grant for grant in _grants(roles[0] + roles[1]) if grant not in needs]
    assert not unused, "the chart grants what no code of the controller calls:\n" + _describe(unused)


def test_each_permission_is_granted_once_and_without_wildcards(
        roles: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    granted = _grants(roles[0] + roles[1])
    assert not [g for g, count in granted.items() if count > 1]
    assert not [g for g in granted if "*" in g]


def test_leases_only_in_the_release_namespace(roles: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    cluster, namespaced = roles
    assert not [g for g in _grants(cluster) if g[1] == "leases"], "Lease access must not be cluster-wide"
    assert set(_grants(namespaced)) == {need for need in controller_needs() if need[1] == "leases"}
    assert all(role["metadata"]["namespace"] == "canary-system" for role in namespaced)


def test_the_derivation_sees_each_kind_of_call() -> None:
    """The derivation itself: one need of each source, so a scan that silently finds nothing fails."""
    needs = controller_needs()
    one_of_each_source = {
        ("apps", "deployments", "patch"),  # generated client, passed to KubeApi.call
        ("", "configmaps", "update"),  # named in a tuple, called later
        ("canary.dev", "canaries/status", "patch"),  # custom object, constants
        ("keda.sh", "scaledobjects", "create"),  # custom object, a registry's resource
        ("gateway.networking.k8s.io", "gatewayclasses", "get"),  # our wrapper of a custom-object call
        ("coordination.k8s.io", "leases", "update"),  # called on a Protocol the client satisfies
        ("", "events", "create"),  # core/v1's create_namespaced_event, told from events.k8s.io/v1's
        ("canary.dev", "metrictemplates", "watch"),  # a kopf handler
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),  # kopf's own observer
        ("canary.dev", "canaries/finalizers", "update"),  # blockOwnerDeletion
        ("metrics.smi-spec.io", "deployments", "get"),  # KubeApi.get_raw
    }
    assert one_of_each_source <= needs.keys(), one_of_each_source - needs.keys()
    assert ("events.k8s.io", "events", "create") not in needs
    # Only the route objects are deleted (revertOnDeletion), and the membership Leases of shard
    # replicas long gone; companions and scalers are collected.
    deleted = {(g, r) for g, r, v in needs if v == "delete"}
    assert deleted == {("split.smi-spec.io", "trafficsplits"), ("gateway.networking.k8s.io", "httproutes"),
                       ("traefik.io", "traefikservices"), ("coordination.k8s.io", "leases")}


def test_the_metrics_server_is_granted_exactly_its_lists() -> None:
    rendered = render(METRICS_SERVER_ON)
    deployment = rendered.one("Deployment", "canary-metrics-server")
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    roles = [rendered.one("ClusterRole", b["roleRef"]["name"]) for b in rendered.of_kind("ClusterRoleBinding")
             if any(s["name"] == account for s in b["subjects"])]
    granted, needed = set(_grants(roles)), set(metrics_server_needs())
    assert not needed - granted, "the metrics server needs, and the chart does not grant:\n" + _describe(
        sorted(needed - granted))
    assert not granted - needed, "the chart grants the metrics server what it never sends:\n" + _describe(
        sorted(granted - needed))
    [reader] = [b for b in rendered.of_kind("RoleBinding") if any(s["name"] == account for s in b["subjects"])]
    assert (reader["metadata"]["namespace"], reader["roleRef"]["name"]) == (
        "kube-system", "extension-apiserver-authentication-reader")
