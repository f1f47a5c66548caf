"""Every field of Flagger's ``flagger.app/v1beta1`` Canary and MetricTemplate, and what it means here.

A Flagger manifest ports by changing ``apiVersion``, so each of Flagger's fields is either
implemented with Flagger's meaning, or refused with a message that names it, says why and what to
use instead. Nothing is accepted and ignored. This table is the one home of that promise:

* :func:`refuse_flagger_only_fields` makes the parser refuse what the table refuses;
* the CRD declares every field (so kubectl's strict validation knows them) and refuses the same
  ones with a CEL rule carrying the same message (``tests/crds/test_flagger_fields.py`` compares);
* docs/api.md's field table and ``canary convert`` are generated from / checked against it.

Paths use ``[]`` for "each item of the list", as in ``spec.analysis.metrics[].query``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from canary.errors import SpecError

__all__ = [
    "CANARY_FIELDS",
    "METRIC_TEMPLATE_FIELDS",
    "FieldSupport",
    "Support",
    "occurrences",
    "occurrences_in_canary",
    "refuse_flagger_only_fields",
    "refused",
]


class Support(StrEnum):
    IMPLEMENTED = "implemented"  # Flagger's meaning
    PROVIDER = "depends on provider"  # implemented with gatewayapi; refused (Stalled) with smi unless the note says
    REFUSED = "refused"  # present at all: refused, with the message below


@dataclass(frozen=True)
class FieldSupport:
    path: str
    support: Support
    #: For IMPLEMENTED/PROVIDER: how it behaves. For REFUSED: why, and what to use instead.
    note: str

    @property
    def message(self) -> str:
        """The refusal as the API server and the controller word it."""
        return f"{self.path} is not supported: {self.note}"


def _ok(path: str, note: str) -> FieldSupport:
    return FieldSupport(path, Support.IMPLEMENTED, note)


def _gw(path: str, note: str) -> FieldSupport:
    return FieldSupport(path, Support.PROVIDER, note)


def _no(path: str, note: str) -> FieldSupport:
    return FieldSupport(path, Support.REFUSED, note)


_ISTIO = "it configures an Istio VirtualService/DestinationRule, which this controller does not write"
_NOT_YET = "not implemented yet (issue 9 continues)"

CANARY_FIELDS: tuple[FieldSupport, ...] = (
    _ok("spec.provider", "the router (and the builtin checks' mesh): smi, smi:v1alphaN, gatewayapi, "
                         "gatewayapi:v1, gatewayapi:v1beta1, linkerd, osm, traefik (a weighted TraefikService, "
                         "weights only), kubernetes (blue/green with iterations only, no route object); other "
                         "meshes are refused by name"),
    _ok("spec.metricsServer", "the Prometheus this Canary's builtin checks ask, instead of the controller's "
                              "--prometheus-address"),
    _ok("spec.targetRef.apiVersion", "apps/v1"),
    _ok("spec.targetRef.kind", "Deployment or DaemonSet (scaled to zero by a node selector no node matches, "
                               "as Flagger does)"),
    _ok("spec.targetRef.name", "the workload released"),
    _ok("spec.autoscalerRef", "the target's HorizontalPodAutoscaler (autoscaling/v2) or KEDA ScaledObject "
                              "(keda.sh/v1alpha1): the primary gets a copy, NAME-primary scaling "
                              "TARGET-primary, created at initialization and updated at each promotion; "
                              "refused with a DaemonSet target, which has no replicas to scale"),
    _ok("spec.autoscalerRef.primaryScalerQueries", "ScaledObject trigger name -> the query the primary's copy "
                                                   "runs instead"),
    _ok("spec.autoscalerRef.primaryScalerReplicas", "minReplicas/maxReplicas of the primary's copy, instead "
                                                    "of the target scaler's"),
    _no("spec.ingressRef", "NGINX Ingress canaries are not written; use spec.provider: gatewayapi with "
                           "spec.service.gatewayRefs"),
    _no("spec.routeRef", "APISIX routes are not written; use spec.provider: gatewayapi with spec.service.gatewayRefs"),
    _no("spec.upstreamRef", "Gloo upstreams are not written; use spec.provider: gatewayapi with "
                            "spec.service.gatewayRefs"),
    _ok("spec.service.name", "the apex Service's name (default: targetRef.name)"),
    _ok("spec.service.port", "the Services' port"),
    _ok("spec.service.portName", "the Service port's name (default http)"),
    _ok("spec.service.targetPort", "the container port number or name"),
    _ok("spec.service.appProtocol", "the Service port's appProtocol"),
    _ok("spec.service.portDiscovery", "every other container port of the pod template is added to the Services"),
    _gw("spec.service.timeout", "HTTPRoute rule timeouts.request"),
    _gw("spec.service.backendTimeout", "HTTPRoute rule timeouts.backendRequest"),
    _no("spec.service.gateways", _ISTIO + "; use spec.service.gatewayRefs with spec.provider: gatewayapi"),
    _gw("spec.service.gatewayRefs", "the HTTPRoute's parentRefs (a Gateway for north-south; the apex Service "
                                    "when unset, for GAMMA mesh routing)"),
    _gw("spec.service.hosts", "the HTTPRoute's hostnames; needs gatewayRefs to a Gateway (a mesh ignores "
                              "hostnames on a route attached to a Service)"),
    _no("spec.service.delegation", _ISTIO),
    _no("spec.service.trafficPolicy", _ISTIO + "; configure load balancing and TLS in your mesh or gateway"),
    _no("spec.service.match", _ISTIO + "; use spec.analysis.match for A/B testing"),
    _gw("spec.service.rewrite", "an HTTPRoute URLRewrite filter (uri: path prefix, authority: hostname)"),
    _no("spec.service.retries", "the Gateway API standard HTTPRoute has no retry policy; configure retries in "
                                "your gateway or mesh"),
    _gw("spec.service.headers", "HTTPRoute RequestHeaderModifier/ResponseHeaderModifier filters"),
    _no("spec.service.corsPolicy", "the Gateway API standard HTTPRoute has no CORS filter; configure CORS in "
                                   "your gateway or the app"),
    _no("spec.service.meshName", "AWS App Mesh is not supported"),
    _no("spec.service.backends", "AWS App Mesh is not supported"),
    _ok("spec.service.apex", "labels and annotations added to the apex Service"),
    _ok("spec.service.primary", "labels and annotations added to the -primary Service"),
    _ok("spec.service.canary", "labels and annotations added to the -canary Service"),
    _ok("spec.analysis", "how a release advances"),
    _ok("spec.canaryAnalysis", "Flagger's deprecated name of spec.analysis, read when spec.analysis is unset"),
    _ok("spec.progressDeadlineSeconds", "default 600"),
    _ok("spec.skipAnalysis", "promote without analysis"),
    _ok("spec.revertOnDeletion", "give traffic back to the target when the Canary is deleted"),
    _ok("spec.suspend", "the controller leaves the Canary alone"),
    _ok("spec.analysis.interval", "time between ticks (default 1m)"),
    _ok("spec.analysis.iterations", "blue/green (or A/B with match): checks before promotion"),
    _gw("spec.analysis.mirror", "blue/green with an HTTPRoute RequestMirror filter copying requests to the canary"),
    _gw("spec.analysis.mirrorWeight", "the percentage of requests mirrored (default 100)"),
    _ok("spec.analysis.maxWeight", "the weight at which a passing tick promotes; not used with stepWeights, as "
                                   "in Flagger"),
    _ok("spec.analysis.stepWeight", "weight added per passing tick"),
    _ok("spec.analysis.stepWeights", "explicit weights per step; the last one leads to promotion"),
    _ok("spec.analysis.stepWeightPromotion", "weight moved back per interval during promotion"),
    _ok("spec.analysis.threshold", "failed checks before rollback"),
    _ok("spec.analysis.primaryReadyThreshold", "percent of the primary's pods that must be available (default 100)"),
    _ok("spec.analysis.canaryReadyThreshold", "percent of the canary's pods that must be available (default 100)"),
    _ok("spec.analysis.alerts", "chat alerts through a canary.dev AlertProvider (name, severity info|warn|error, "
                                "providerRef); without alerts, the controller's default provider (--slack-url, "
                                "--msteams-url)"),
    _ok("spec.analysis.metrics", "metric checks"),
    _ok("spec.analysis.webhooks", "gates, checks and notifications"),
    _gw("spec.analysis.match", "A/B: requests matching these header, cookie or query conditions go to the "
                               "canary (HTTPRoute matches); with smi, header and cookie conditions only, through "
                               "an HTTPRouteGroup named by TrafficSplit v1alpha3/v1alpha4 `matches`"),
    _gw("spec.analysis.sessionAffinity", "cookie-based stickiness to the canary (cookieName, maxAge, "
                                         "primaryCookieName)"),
    _ok("spec.analysis.metrics[].name", "a builtin or any name with templateRef"),
    _ok("spec.analysis.metrics[].interval", "the query window"),
    _ok("spec.analysis.metrics[].threshold", "Flagger's deprecated single bound: a minimum for "
                                             "request-success-rate, a maximum otherwise; read when "
                                             "thresholdRange is unset"),
    _ok("spec.analysis.metrics[].thresholdRange", "min and/or max"),
    _no("spec.analysis.metrics[].query", "inline queries (deprecated in Flagger) are not run; move the query "
                                         "into a MetricTemplate and reference it with templateRef"),
    _ok("spec.analysis.metrics[].templateRef", "a MetricTemplate (name, namespace)"),
    _ok("spec.analysis.metrics[].templateVariables", "values for {{ variables.NAME }}"),
    _ok("spec.analysis.webhooks[].type", "when the hook runs"),
    _ok("spec.analysis.webhooks[].name", "names the hook"),
    _ok("spec.analysis.webhooks[].url", "where it is POSTed"),
    _ok("spec.analysis.webhooks[].timeout", "per attempt (default 10s)"),
    _ok("spec.analysis.webhooks[].metadata", "sent in the payload"),
    _ok("spec.analysis.webhooks[].muteAlert", "a gate of this hook that holds the release sends no warn "
                                              "alert"),
)

METRIC_TEMPLATE_FIELDS: tuple[FieldSupport, ...] = (
    _ok("spec.provider.type", "prometheus or smi; Flagger's other providers (datadog, cloudwatch, newrelic, "
                              "graphite, influxdb, dynatrace, keptn, stackdriver, splunk) are refused by name"),
    _ok("spec.provider.address", "the Prometheus address"),
    _ok("spec.provider.secretRef", "credentials (username/password, token, CA)"),
    _ok("spec.provider.insecureSkipVerify", "skip TLS verification"),
    _no("spec.provider.region", "regions belong to cloud providers (CloudWatch, Stackdriver) this controller "
                                "does not query; use a Prometheus that scrapes those metrics"),
    _ok("spec.query", "the query with {{ }} placeholders"),
)


def refused(fields: tuple[FieldSupport, ...]) -> tuple[FieldSupport, ...]:
    return tuple(f for f in fields if f.support is Support.REFUSED)


def occurrences(obj: object, path: str) -> Iterator[str]:
    """The concrete paths (``a.b[2].c``) at which the table path ``path`` (``a.b[].c``) is set in
    ``obj``. ``null`` and ``false`` are not uses of a field: both are Flagger's "off"."""
    yield from _walk(obj, path.split("."), "")


def _walk(obj: object, parts: list[str], prefix: str) -> Iterator[str]:
    head, rest = parts[0], parts[1:]
    key = head.removesuffix("[]")
    if not isinstance(obj, Mapping) or obj.get(key) is None or obj.get(key) is False:
        return
    here = f"{prefix}.{key}" if prefix else key
    value = obj[key]
    if not rest:
        yield here
    elif head.endswith("[]") and isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, rest, f"{here}[{i}]")
    else:
        yield from _walk(value, rest, here)


def occurrences_in_canary(spec: Mapping[str, Any], path: str) -> Iterator[str]:
    """:func:`occurrences` of a Canary's table path in its ``spec``, also under Flagger's
    deprecated ``spec.canaryAnalysis``, which holds the same fields as ``spec.analysis``."""
    yield from occurrences({"spec": spec}, path)
    if path.startswith("spec.analysis."):
        yield from occurrences({"spec": spec}, path.replace("spec.analysis.", "spec.canaryAnalysis.", 1))


def refuse_flagger_only_fields(spec: Mapping[str, Any], fields: tuple[FieldSupport, ...]) -> None:
    """Raise :class:`SpecError` for the first refused field set in ``spec``."""
    for f in refused(fields):
        for where in occurrences_in_canary(spec, f.path):
            raise SpecError(where, f"is not supported: {f.note}")
