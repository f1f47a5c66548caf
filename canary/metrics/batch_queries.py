r"""One builtin check's PromQL for many Canaries at once, and the fan-out of its answer.

Each Canary's own query (:func:`canary.metrics.queries.builtin_query`) sums one workload's series
by outcome (or by ``le``). The batched query selects every member's workload with regular
expressions and keeps the labels that tell the workloads apart in its grouping; with Linkerd,
two Canaries and a 1 m window::

    sum by (namespace, deployment, classification) (increase(response_total{namespace=~"a|b",
        deployment=~"api|web\\.v2", direction="inbound"}[1m]))

Why the answers are the same. A group of the batched answer, say ``(a, web.v2, success)``, sums
exactly the series the member's own query sums into its ``success`` group: the same metric, the
same fixed matchers, namespace ``a`` and workload ``web.v2``. The regular expressions may select
more (their cross product: ``b``/``web.v2`` too), but such a group belongs to no member and is
dropped. Each member's groups are then summed by outcome (or ``le``) in Python and read by the
very function that reads a single answer (:func:`canary.metrics.readings.read_builtin`), so no
data, NaN, a missing ``+Inf`` bucket and the sample count come out as they do for one Canary.
Sums may differ from Prometheus's in the last bits of a float (addition order), nothing more.

Traefik names backend Services, not workloads, and one Service can show up under several
values (ports, providers); its query groups by ``service`` and each value is given back to the
member whose base it has (:func:`canary.metrics.traefik_services.base_of`), summing the values
of one member as the single query's ``sum by (code)`` does.

Safety: every value comes from the same validation and escaping as the single queries
(namespaces are RFC 1123 labels, workloads subdomains with ``.`` escaped, Traefik's Services
labels), and PromQL anchors a regular expression at both ends, so ``web`` does not select
``web-old``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from canary.config import Mesh
from canary.domain.durations import format_duration
from canary.domain.spec import BUILTIN_DURATION, BUILTIN_SUCCESS_RATE
from canary.errors import MetricError
from canary.metrics.comparison_queries import promql_string
from canary.metrics.queries import MESHES, Series, arm_pattern
from canary.metrics.templates import validate_dns_label
from canary.metrics.traefik_services import base_of, service_base, services_pattern


@dataclass(frozen=True)
class Member:
    """One Canary's place in a batch: its namespace and the name its series carry (its workload,
    or its canary Service for a mesh whose series name Services)."""

    namespace: str
    name: str


#: One label's alternatives in a batched selector: ``(label, regular expression)``.
Term = tuple[str, str]


def member_terms(mesh: Mesh, member: Member, target_kind: str) -> frozenset[Term]:
    """What ``member`` adds to the batched selector's regular expressions. Raises ``TemplateError``
    for a name that is unsafe to put into a query, as the member's own query would."""
    m = MESHES[mesh]
    if m.namespace_label is None:
        return frozenset({(m.workload_label, service_base(member.namespace, member.name))})
    return frozenset({
        (m.namespace_label, validate_dns_label(member.namespace, "namespace")),
        (m.workload_label_for(target_kind), arm_pattern(mesh, namespace=member.namespace, name=member.name)),
    })


def _alternation(values: Iterable[str]) -> str:
    return promql_string("|".join(sorted(set(values))))


@dataclass(frozen=True)
class BatchedQuery:
    """The batched PromQL and how to give each member its share of the answer."""

    promql: str
    mesh: Mesh
    members: tuple[Member, ...]
    #: The label the member's own query groups by: the outcome label, or ``le``.
    value_label: str
    namespace_label: str | None
    workload_label: str

    def fan_out(self, series: Sequence[Series]) -> list[list[Series]]:
        """Each member's answer, in the order of ``members``, as its own query would group it:
        one series per value of ``value_label``, labelled with that value only."""
        by_key: dict[tuple[str, str], list[int]] = {}
        for index, member in enumerate(self.members):
            by_key.setdefault(self._member_key(member), []).append(index)
        sums: list[dict[str, float]] = [{} for _ in self.members]
        for labels, value in series:
            key = self._series_key(labels)
            if key is None:
                continue
            outcome = labels.get(self.value_label, "")
            for index in by_key.get(key, ()):
                sums[index][outcome] = sums[index].get(outcome, 0.0) + value
        return [[({self.value_label: outcome}, total) for outcome, total in member_sums.items()]
                for member_sums in sums]

    def _member_key(self, member: Member) -> tuple[str, str]:
        if self.namespace_label is None:
            return ("", service_base(member.namespace, member.name))
        return (member.namespace, member.name)

    def _series_key(self, labels: Mapping[str, str]) -> tuple[str, str] | None:
        if self.namespace_label is None:
            base = base_of(labels.get(self.workload_label, ""))
            return None if base is None else ("", base)
        return (labels.get(self.namespace_label, ""), labels.get(self.workload_label, ""))


def selector_chars(mesh: Mesh, terms: Iterable[Term]) -> int:
    """How long the regular expressions of a batch with ``terms`` are, as sent."""
    regexes, services = _regexes(mesh, terms)
    return len(services) + sum(len(regex) for regex in regexes.values())


def _regexes(mesh: Mesh, terms: Iterable[Term]) -> tuple[dict[str, str], str]:
    """The namespace and workload regular expressions of ``terms`` (PromQL string escaping
    applied): ``({label: regex}, "")``, or for a Service-naming mesh ``({}, service regex)``."""
    by_label: dict[str, list[str]] = {}
    for label, value in terms:
        by_label.setdefault(label, []).append(value)
    if MESHES[mesh].namespace_label is None:
        # Service bases hold letters, digits and '-' only: nothing to escape for PromQL's string.
        bases = next(iter(by_label.values()), [])
        return {}, services_pattern(bases)
    return {label: _alternation(values) for label, values in by_label.items()}, ""


def batched_query(metric: str, mesh: Mesh, *, members: Sequence[Member], window: timedelta,
                  target_kind: str) -> BatchedQuery:
    """The one query answering builtin ``metric`` for every member (``target_kind`` workloads in
    one window). Raises ``TemplateError`` for an unsafe name, ``MetricError`` for a name that is
    not a builtin, as the members' own queries would."""
    m = MESHES[mesh]
    workload_label = m.workload_label_for(target_kind)
    terms = frozenset().union(*(member_terms(mesh, member, target_kind) for member in members))
    regexes, services = _regexes(mesh, terms)
    if m.namespace_label is None:
        selector = m.render_matchers(namespace_matcher="", target_kind=target_kind,
                                     workload_matcher=f'=~"{services}"')
        group = [workload_label]
    else:
        selector = m.render_matchers(
            namespace_matcher=f'=~"{regexes[m.namespace_label]}"', target_kind=target_kind,
            workload_matcher=f'=~"{regexes[workload_label]}"',
        )
        group = [m.namespace_label, workload_label]
    w = format_duration(window)
    if metric == BUILTIN_SUCCESS_RATE:
        value_label, series = m.outcome_label, m.requests
    elif metric == BUILTIN_DURATION:
        value_label, series = "le", m.latency_bucket
    else:
        raise MetricError(f"{metric!r} is not a builtin metric; it needs a templateRef")
    promql = f"sum by ({', '.join([*group, value_label])}) (increase({series}{{{selector}}}[{w}]))"
    return BatchedQuery(promql=promql, mesh=mesh, members=tuple(members), value_label=value_label,
                        namespace_label=m.namespace_label, workload_label=workload_label)
