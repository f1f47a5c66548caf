"""Query sets, and their injection-safe rendering into the PromQL behind every answer. Pure.

A query set has two groups of five templates, one per Traffic Metrics metric
(``success_count``, ``failure_count``, ``p99_response_latency``, ``p90_response_latency``,
``p50_response_latency``):

``resource``
    traffic *received* by objects of a kind (a Deployment, a Pod, a namespace ...);
``edges``
    traffic between an object and its peers of the same kind, used in both directions: ``to``
    (where the object sends) and ``from`` (who sends to it).

and, per kind, which series labels name an object (:class:`KindLabels`): as the receiver in the
``resource`` queries, and as the client and the server of the ``edges`` queries.

Every template is batched: it answers for all the objects a request is about in one query,
grouped ``by`` the labels that name them, so a list of 200 Pods costs five queries, not 1000.
Templates have three placeholders, and only these:

``{{ selector }}``
    label matchers picking the object(s): ``namespace="shop", deployment="podinfo"`` for one
    Deployment, ``namespace="shop", deployment!=""`` for all of them; for edges also the
    presence of the peer's name label (``dst_deployment!=""``);
``{{ by }}``
    the labels naming each answer's object: ``namespace, deployment`` (latency templates add
    ``le`` themselves);
``{{ window }}``
    the window as a Prometheus range (``30s``, ``1m30s``).

Injection safety. What a request supplies (namespace, name, window) ends up inside label
matchers, so it is validated first: the namespace as an RFC 1123 DNS label, the name as a DNS
subdomain (the API server enforces the same rules, so real objects always pass), the window
is re-formatted from a parsed duration. Label names from the configuration must be Prometheus
label names and constant label values may only use letters, digits and ``-_.:/``. Nothing that
is rendered can therefore contain a quote, brace, bracket, comma or operator: a value cannot end
its matcher and add PromQL of its own. The templates themselves come from the operator's file,
not from requests, and are checked at start for unknown or missing placeholders.

The defaults per mesh are in :mod:`canary.metricsserver.meshes`, the query file that overrides
them in :mod:`canary.metricsserver.overrides`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from canary.domain.durations import format_duration
from canary.errors import CanaryError
from canary.metrics.templates import validate_dns_label, validate_dns_subdomain
from canary.metricsserver.resources import Kind

SUCCESS_COUNT = "success_count"
FAILURE_COUNT = "failure_count"
P99 = "p99_response_latency"
P90 = "p90_response_latency"
P50 = "p50_response_latency"
#: The latency metrics and the quantile each one asks histogram_quantile for.
QUANTILES: dict[str, str] = {P99: "0.99", P90: "0.9", P50: "0.5"}
METRICS: tuple[str, ...] = (P99, P90, P50, SUCCESS_COUNT, FAILURE_COUNT)

#: ``{{ name }}`` with optional spaces; the names are :data:`PLACEHOLDERS`.
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
PLACEHOLDERS = ("selector", "by", "window")


class UnsupportedKind(CanaryError):
    """The mesh's metrics cannot answer for this kind (or its edges); the message says why."""


class Direction(StrEnum):
    """``to``: traffic the object sends to the peer; ``from``: traffic the peer sends to it."""

    TO = "to"
    FROM = "from"


@dataclass(frozen=True)
class ObjectLabels:
    """The series labels that name an object in one role (receiver, client or server)."""

    name: str
    #: The label holding the object's namespace; None where the object is a namespace.
    namespace: str | None = None
    #: Constant matchers every series of this kind has (OSM: ``destination_kind="Deployment"``).
    match: tuple[tuple[str, str], ...] = ()

    def key_labels(self) -> tuple[str, ...]:
        return (self.namespace, self.name) if self.namespace else (self.name,)

    def identify(self, labels: Mapping[str, str]) -> tuple[str | None, str] | None:
        """``(namespace, name)`` of the object a series is about, or None if it names none."""
        name = labels.get(self.name, "")
        if not name:
            return None
        if self.namespace is None:
            return None, name
        namespace = labels.get(self.namespace, "")
        return (namespace, name) if namespace else None


@dataclass(frozen=True)
class KindLabels:
    #: The object as the receiver, in the ``resource`` queries.
    resource: ObjectLabels
    #: The object as the sender and as the receiver in the ``edges`` queries; None: no edges.
    client: ObjectLabels | None = None
    server: ObjectLabels | None = None


@dataclass(frozen=True)
class QuerySet:
    mesh: str
    resource: Mapping[str, str]
    edges: Mapping[str, str]
    kinds: Mapping[Kind, KindLabels]
    #: Why the mesh cannot answer for a kind that is not in ``kinds``.
    unsupported: Mapping[Kind, str] = field(default_factory=dict)
    #: Peer names that stand for "not a workload" (Istio's ``unknown``) and never become edges.
    ignored_peers: frozenset[str] = frozenset()

    def labels(self, kind: Kind) -> KindLabels:
        found = self.kinds.get(kind)
        if found is None:
            reason = self.unsupported.get(kind, "the query set has no labels for it")
            raise UnsupportedKind(f"{self.mesh} metrics cannot answer for {kind.value}: {reason}")
        return found


@dataclass(frozen=True)
class Query:
    """One rendered query: its PromQL, and the labels that name the object of each answer."""

    metric: str
    promql: str
    key: ObjectLabels


# --- rendering ---------------------------------------------------------------------------------


def resource_queries(
    queries: QuerySet, kind: Kind, *, namespace: str | None, name: str | None, window: timedelta
) -> list[Query]:
    """The five queries about objects of ``kind``: one object when ``name`` is given, else all
    of them in ``namespace`` (``namespace=None``: in every namespace; always None for
    ``Kind.NAMESPACES``).

    Raises :class:`UnsupportedKind`, and ``TemplateError`` for a name unsafe to substitute.
    """
    labels = queries.labels(kind).resource
    selector = _object_selector(labels, kind, namespace, name)
    return _render(queries.resource, selector, labels, window)


def edge_queries(
    queries: QuerySet, kind: Kind, direction: Direction, *, namespace: str | None, name: str, window: timedelta
) -> list[Query]:
    """The five queries about the traffic between one object and its peers in ``direction``.

    ``to``: series where the object is the client, keyed by the server (the peer); ``from``:
    series where the object is the server, keyed by the client.
    """
    labels = queries.labels(kind)
    if labels.client is None or labels.server is None:
        raise UnsupportedKind(f"{queries.mesh} metrics cannot answer for the edges of {kind.value}: "
                              "the query set names no client and server labels for them")
    own, peer = (labels.client, labels.server) if direction is Direction.TO else (labels.server, labels.client)
    selector = _object_selector(own, kind, namespace, name) + _presence(peer)
    return _render(queries.edges, selector, peer, window)


def _object_selector(labels: ObjectLabels, kind: Kind, namespace: str | None, name: str | None) -> list[str]:
    matchers: list[str] = []
    if kind.namespaced:
        if labels.namespace is not None:
            if namespace is not None:
                matchers.append(f'{labels.namespace}="{validate_dns_label(namespace, "namespace")}"')
            else:  # every namespace
                matchers.append(f'{labels.namespace}!=""')
        if name is not None:
            matchers.append(f'{labels.name}="{validate_dns_subdomain(name, "name")}"')
        else:
            matchers.append(f'{labels.name}!=""')
    elif name is not None:
        matchers.append(f'{labels.name}="{validate_dns_label(name, "namespace")}"')
    else:
        matchers.append(f'{labels.name}!=""')
    matchers.extend(f'{label}="{value}"' for label, value in labels.match)
    return matchers


def _presence(peer: ObjectLabels) -> list[str]:
    return [f'{peer.name}!=""', *(f'{label}="{value}"' for label, value in peer.match)]


def _render(templates: Mapping[str, str], selector: Sequence[str], key: ObjectLabels,
            window: timedelta) -> list[Query]:
    values = {"selector": ", ".join(selector), "by": ", ".join(key.key_labels()), "window": format_duration(window)}
    return [
        Query(metric=metric, promql=PLACEHOLDER.sub(lambda m: values[m.group(1)], templates[metric]), key=key)
        for metric in METRICS
    ]

