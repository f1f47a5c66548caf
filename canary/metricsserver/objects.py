"""The JSON bodies this server answers with. Pure.

``TrafficMetrics`` follows the SMI specification and the reference server::

    apiVersion: metrics.smi-spec.io/v1alpha1
    kind: TrafficMetrics
    metadata: {name, namespace, creationTimestamp}
    resource: {kind, namespace, name}                    # an ObjectReference
    edge: {direction: from|to, resource: <peer> | null}  # null: all traffic the object received
    timestamp: <RFC 3339, when the numbers were read>
    window: 30s
    metrics:
    - {name: p99_response_latency, unit: ms, value: "73492m"}
    - ...
    - {name: success_count, value: "1187"}
    - {name: failure_count, value: "0"}

The object without an edge describes all traffic the object *received*: ``direction: from`` with
an empty peer, as the specification's example of "all the traffic received" and the reference
server have it (the controller's parser reads only ``metrics``).

No data is never invented: a window without requests gives ``success_count: "0"`` and
``failure_count: "0"`` and **no latency metrics**, and a latency Prometheus could not compute is
left out rather than reported as 0.

Values are Kubernetes quantities in canonical form, with milli precision, as Go's
``resource.NewMilliQuantity(v, DecimalSI).String()`` prints them (``"73492m"``, ``"1500"``, ``"2k"``):
counts are fractional because they come from ``increase()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from canary.domain.durations import format_duration
from canary.metricsserver.queries import FAILURE_COUNT, METRICS, QUANTILES, SUCCESS_COUNT, Direction
from canary.metricsserver.resources import EDGES, GROUP, GROUP_VERSION, KIND, LIST_KIND, VERSION, Kind
from canary.metricsserver.traffic import Traffic

LATENCY_UNIT = "ms"
_SUFFIXES = {-3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_CONTEXT = Context(prec=80)

JsonObject = dict[str, Any]


def format_quantity(value: Decimal | float | int) -> str:
    """``value`` as a canonical decimal-SI Kubernetes quantity, rounded to milli-units."""
    number = value if isinstance(value, Decimal) else Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    milli = int(_CONTEXT.multiply(number, Decimal(1000)).to_integral_value(rounding=ROUND_HALF_EVEN))
    if milli == 0:
        return "0"
    sign = "-" if milli < 0 else ""
    mantissa, exponent = abs(milli), -3
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    # The exponent must be a multiple of 3 (an SI prefix); move the rest into the mantissa.
    rest = exponent % 3
    mantissa, exponent = mantissa * 10**rest, exponent - rest
    if exponent > 18:  # beyond "E": keep the digits in the mantissa
        mantissa, exponent = mantissa * 10 ** (exponent - 18), 18
    return f"{sign}{mantissa}{_SUFFIXES[exponent]}"


def rfc3339(moment: datetime) -> str:
    """UTC, whole seconds, ``Z``: the form Kubernetes writes timestamps in."""
    return moment.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ObjectRef:
    """An ObjectReference: ``kind`` always, ``namespace`` and ``name`` where they apply."""

    kind: str
    namespace: str | None = None
    name: str | None = None

    @classmethod
    def of(cls, kind: Kind, namespace: str | None, name: str | None) -> ObjectRef:
        return cls(kind.info.object_kind, namespace if kind.namespaced else None, name)

    def to_json(self) -> JsonObject:
        out: JsonObject = {"kind": self.kind}
        if self.namespace is not None:
            out["namespace"] = self.namespace
        if self.name is not None:
            out["name"] = self.name
        return out


def metrics(traffic: Traffic | None) -> list[JsonObject]:
    """``metrics[]`` for what an object did; zero counts and no latencies without requests."""
    if traffic is None or traffic.total <= 0:
        return [{"name": SUCCESS_COUNT, "value": "0"}, {"name": FAILURE_COUNT, "value": "0"}]
    out: list[JsonObject] = []
    for name in METRICS:
        if name in QUANTILES:
            latency = traffic.latencies.get(name)
            if latency is not None:
                out.append({"name": name, "unit": LATENCY_UNIT, "value": format_quantity(latency)})
        else:
            out.append({"name": name, "value": format_quantity(traffic.success if name == SUCCESS_COUNT
                                                                else traffic.failure)})
    return out


def traffic_metrics(
    resource: ObjectRef,
    traffic: Traffic | None,
    *,
    timestamp: datetime,
    window: timedelta,
    direction: Direction = Direction.FROM,
    peer: ObjectRef | None = None,
) -> JsonObject:
    """One ``TrafficMetrics``; without ``peer`` it covers all traffic ``resource`` received."""
    metadata: JsonObject = {"name": resource.name, "creationTimestamp": rfc3339(timestamp)}
    if resource.namespace is not None:
        metadata["namespace"] = resource.namespace
    return {
        "apiVersion": GROUP_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "resource": resource.to_json(),
        "edge": {"direction": direction.value, "resource": peer.to_json() if peer is not None else None},
        "timestamp": rfc3339(timestamp),
        "window": format_duration(window),
        "metrics": metrics(traffic),
    }


def traffic_metrics_list(resource: ObjectRef, items: Sequence[JsonObject]) -> JsonObject:
    """A ``TrafficMetricsList``: of a kind (``resource`` without a name) or of an object's edges."""
    return {
        "apiVersion": GROUP_VERSION,
        "kind": LIST_KIND,
        "metadata": {},
        "resource": resource.to_json(),
        "items": list(items),
    }


# --- discovery -----------------------------------------------------------------------------------


def _group_version() -> JsonObject:
    return {"groupVersion": GROUP_VERSION, "version": VERSION}


def api_group() -> JsonObject:
    return {"kind": "APIGroup", "apiVersion": "v1", "name": GROUP, "versions": [_group_version()],
            "preferredVersion": _group_version()}


def api_group_list() -> JsonObject:
    group = api_group()
    del group["kind"], group["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}


def api_resource_list() -> JsonObject:
    """Every kind with get/list, and its ``edges`` subresource with get."""
    resources: list[JsonObject] = []
    for kind in Kind:
        resources.append({"name": kind.value, "singularName": "", "namespaced": kind.namespaced, "kind": KIND,
                          "verbs": ["get", "list"]})
        resources.append({"name": f"{kind.value}/{EDGES}", "singularName": "", "namespaced": kind.namespaced,
                          "kind": KIND, "verbs": ["get"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION, "resources": resources}


# --- errors --------------------------------------------------------------------------------------


def status(code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> JsonObject:
    """A ``Status`` body as the API server writes one for a failed request."""
    body: JsonObject = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = dict(details)
    return body


def not_found(kind: Kind, namespace: str | None, name: str) -> JsonObject:
    """404 for an object that does not exist, in the API server's words and shape."""
    where = f" in namespace {namespace!r}" if namespace is not None else ""
    message = (f'{kind.value}.{GROUP} "{name}" not found: there is no {kind.info.object_kind} '
               f'"{name}"{where} in the cluster')
    return status(404, "NotFound", message, {"name": name, "group": GROUP, "kind": kind.value})
