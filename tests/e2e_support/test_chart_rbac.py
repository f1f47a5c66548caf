"""The e2e controller's credentials: a token-only kubeconfig, and how a refused request is told."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import yaml
from kubernetes.client.exceptions import ApiException

from canary.kube.api import _translate
from e2e.harness.chart_rbac import _token_kubeconfig
from e2e.harness.controller import DENIED


def test_the_token_kubeconfig_keeps_the_cluster_and_drops_the_admin(tmp_path: Path) -> None:
    admin = tmp_path / "admin.kubeconfig"
    admin.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "b",
        "clusters": [{"name": "one", "cluster": {"server": "https://127.0.0.1:1"}},
                     {"name": "two", "cluster": {"server": "https://127.0.0.1:2", "certificate-authority-data": "Q0E="}}],
        "users": [{"name": "admin", "user": {"client-certificate-data": "Y2VydA==", "client-key-data": "a2V5"}}],
        "contexts": [{"name": "a", "context": {"cluster": "one", "user": "admin"}},
                     {"name": "b", "context": {"cluster": "two", "user": "admin"}}],
    }))
    written = _token_kubeconfig(admin, tmp_path / "controller.kubeconfig", "t0ken", user="canary-system-canary")
    config = yaml.safe_load(written.read_text())
    assert config["clusters"] == [{"name": "two", "cluster": {"server": "https://127.0.0.1:2",
                                                              "certificate-authority-data": "Q0E="}}]
    assert config["users"] == [{"name": "canary-system-canary", "user": {"token": "t0ken"}}]
    assert config["contexts"][0]["context"] == {"cluster": "two", "user": "canary-system-canary"}
    assert stat.S_IMODE(written.stat().st_mode) == 0o600


def test_a_refused_request_is_told_in_the_log_and_others_are_not() -> None:
    body = {"kind": "Status", "code": 403, "reason": "Forbidden", "message":
            'canaries.canary.dev "web" is forbidden: User "system:serviceaccount:canary-system:canary" cannot '
            'patch resource "canaries" in API group "canary.dev" in the namespace "shop"'}
    refused = ApiException(status=403, reason="Forbidden")
    refused.body = json.dumps(body)
    assert DENIED.search(f"event not recorded error={str(_translate(refused))!r}")
    assert DENIED.search("Not enough permissions to watch for resources: changes will not be noticed")
    missing = ApiException(status=404, reason="Not Found")
    missing.body = json.dumps({"kind": "Status", "code": 404, "message": 'canaries.canary.dev "web" not found'})
    assert not DENIED.search(str(_translate(missing)))
    assert not DENIED.search("action action=SetRoute detail=weights 80/20")
