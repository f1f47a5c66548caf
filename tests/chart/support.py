"""What the chart tests share: the skip when helm is not built, and values toggles."""

from __future__ import annotations

from typing import Any

import pytest

from e2e.harness.chart import helm_binary

needs_helm = pytest.mark.skipif(
    helm_binary() is None, reason="helm is not built; `bash e2e/cluster/build.sh` (run by make test) builds it",
)

#: The metrics server needs a TLS Secret and a way to trust it; the smallest values that render it.
METRICS_SERVER_ON: dict[str, Any] = {
    "metricsServer": {"enabled": True, "tls": {"secretName": "canary-metrics-server-tls"},
                      "apiService": {"insecureSkipTLSVerify": True}},
}

#: Every optional object rendered at once.
EVERYTHING_ON: dict[str, Any] = {
    **METRICS_SERVER_ON,
    "serviceMonitor": {"enabled": True, "additionalLabels": {"release": "kube-prometheus-stack"}},
    "prometheusRule": {"enabled": True, "additionalLabels": {"release": "kube-prometheus-stack"}},
}

#: Each values toggle the chart has, by a name for test ids: every one must lint and render.
TOGGLES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "everything-on": EVERYTHING_ON,
    "metrics-server": METRICS_SERVER_ON,
    "service-monitor": {"serviceMonitor": {"enabled": True}},
    "prometheus-rule": {"prometheusRule": {"enabled": True}},
    "no-pdb": {"podDisruptionBudget": {"enabled": False}},
    "one-replica-no-election": {"replicaCount": 1, "leaderElection": {"enabled": False}},
    "watch-namespaces": {"watchNamespaces": ["shop", "payments"]},
    "sharding": {"replicaCount": 3, "sharding": {"enabled": True, "buckets": 12}},
    "slack": {"slack": {"url": "https://hooks.slack.com/services/T0/B0/x", "channel": "#releases", "user": "rollouts",
                        "proxy": "http://proxy.infra:3128"}},
    "slack-secret": {"slack": {"existingSecret": "chat-hooks", "existingSecretKey": "slack"}},
    "msteams": {"msteams": {"url": "https://example.webhook.office.com/webhookb2/x", "proxy": "https://proxy.infra"}},
    "msteams-secret": {"msteams": {"existingSecret": "chat-hooks"}},
    "name-override": {**EVERYTHING_ON, "nameOverride": "rollouts"},
    "fullname-override": {**EVERYTHING_ON, "fullnameOverride": "ctl"},
    "placement": {
        **METRICS_SERVER_ON,
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["infra"]}]}]}}},
        "imagePullSecrets": [{"name": "regcred"}],
        "priorityClassName": "system-cluster-critical",
        "podAnnotations": {"team": "delivery"},
        "podLabels": {"team": "delivery"},
    },
}
