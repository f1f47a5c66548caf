"""What becomes of one Flagger document in ``canary.dev``: the rewritten object and, field by
field, what is refused, what means something else than in Flagger, and what is worth knowing.

Pure: a parsed YAML document in, a :class:`PortedDocument` out. The verdicts come from the
controller's own parser (:mod:`canary.domain.spec`) and the field table
(:mod:`canary.domain.flagger_fields`), never from rules of its own, so ``canary convert`` cannot
accept what the controller refuses. The differences in behaviour it reports (no-data checks,
thresholds, intervals) are Flagger's documented defaults set against ours.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from canary.domain import bounds
from canary.domain.alerts import parse_alert_provider_spec
from canary.domain.durations import format_duration, parse_duration
from canary.domain.flagger_fields import (
    CANARY_FIELDS,
    METRIC_TEMPLATE_FIELDS,
    FieldSupport,
    Support,
    occurrences,
    occurrences_in_canary,
)
from canary.domain.providers import PROVIDERS, RouterKind
from canary.domain.spec import (
    BUILTIN_SUCCESS_RATE,
    AnalysisSpec,
    NoDataPolicy,
    parse_canary_spec,
    parse_metric_template_spec,
)
from canary.errors import SpecError
from canary.routers.factory import route_options_problem, traefik_refusal
from canary.routers.options import RouteOptions

__all__ = [
    "CANARY_API_VERSION",
    "FLAGGER_API_VERSION",
    "Finding",
    "PortOptions",
    "PortedDocument",
    "Severity",
    "port_document",
]

FLAGGER_API_VERSION = "flagger.app/v1beta1"
FLAGGER_GROUP = "flagger.app/"
CANARY_API_VERSION = "canary.dev/v1alpha1"

#: What Flagger does where we differ (its documented defaults).
_FLAGGER_MIN_INTERVAL = timedelta(seconds=10)
_FLAGGER_METRIC_WINDOW = timedelta(minutes=1)
_FLAGGER_DEFAULT_MESH = "istio"
_THRESHOLDS = ("spec.analysis.threshold", "spec.canaryAnalysis.threshold")
#: A parse that keeps failing on new fields stops here: a bound on the work, not on the findings
#: of any real manifest (Flagger's Canary has fewer fields than this).
_MAX_PARSER_ERRORS = 100


class Severity(StrEnum):
    REFUSED = "refused"  # the API server or the controller would refuse the document
    DIFFERS = "differs"  # accepted, but it behaves differently from Flagger unless you act
    NOTE = "note"  # accepted with Flagger's meaning; worth knowing how it is carried out


@dataclass(frozen=True)
class Finding:
    field: str  # concrete path, with indexes: spec.analysis.metrics[0].query
    severity: Severity
    message: str
    #: For refusals the controller's parser reports: its exact error (``field: message``).
    parser: str | None = None


@dataclass(frozen=True)
class PortOptions:
    #: Write ``noDataPolicy: fail`` so that a check without data fails, as in Flagger.
    flagger_no_data: bool = False
    #: The controller's ``--default-provider``, which decides for Canaries without spec.provider.
    default_provider: str = "smi"


@dataclass(frozen=True)
class PortedDocument:
    kind: str
    namespace: str
    name: str
    #: The document to write; ``None`` for an empty YAML document.
    output: Any
    findings: tuple[Finding, ...] = ()
    #: True for Canary and MetricTemplate (checked, apiVersion rewritten); False: passed through.
    checked: bool = False

    @property
    def refused(self) -> bool:
        return any(f.severity is Severity.REFUSED for f in self.findings)

    @property
    def label(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind or '(no kind)'} {where or '(no name)'}"


# --- field paths ---------------------------------------------------------------------------


_INDEX = re.compile(r"\[\d+\]")
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _table_path(concrete: str) -> str:
    """The table's path of a concrete one; Flagger's ``canaryAnalysis`` has ``analysis``'s fields."""
    return _INDEX.sub("[]", concrete).replace("spec.canaryAnalysis.", "spec.analysis.", 1)


def _tokens(concrete: str) -> list[str | int]:
    return [int(i) if i else k for k, i in _TOKEN.findall(concrete)]


def _value_at(spec: Mapping[str, Any], concrete: str) -> object:
    node: object = {"spec": spec}
    for token in _tokens(concrete):
        if isinstance(token, int) and isinstance(node, list) and token < len(node):
            node = node[token]
        elif isinstance(token, str) and isinstance(node, Mapping):
            node = node.get(token)
        else:
            return None
    return node


def _non_positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value <= 0


def _delete(obj: Any, concrete: str, only_scalars: bool) -> bool:
    """Remove the key at ``concrete`` from ``obj``; False when there is none to remove."""
    tokens = _tokens(concrete)
    node = obj
    for token in tokens[:-1]:
        if isinstance(token, int):
            if not isinstance(node, list) or token >= len(node):
                return False
        elif not isinstance(node, Mapping) or token not in node:
            return False
        node = node[token]
    leaf = tokens[-1] if tokens else None
    if not isinstance(leaf, str) or not isinstance(node, dict) or leaf not in node:
        return False
    if only_scalars and isinstance(node[leaf], dict | list):
        return False
    del node[leaf]
    return True


# --- the parser's verdicts -----------------------------------------------------------------


def _parser_errors(spec: Mapping[str, Any], parse: Callable[[Mapping[str, Any]], object],
                   refusable: frozenset[str]) -> list[SpecError]:
    """Every error the parser reports, not just the first: after each one the field it names is
    removed and the parse repeated. Only fields the table refuses and scalar values are removed,
    so an error about a whole section (``spec.analysis``) ends the search instead of hiding the
    rest of that section behind a misleading "is required"."""
    work = {"spec": copy.deepcopy(dict(spec))}
    errors: list[SpecError] = []
    while len(errors) < _MAX_PARSER_ERRORS:
        try:
            parse(work["spec"])
            break
        except SpecError as exc:
            errors.append(exc)
            if not _delete(work, exc.field, only_scalars=_table_path(exc.field) not in refusable):
                break
    return errors


def _refusals(spec: Mapping[str, Any], table: tuple[FieldSupport, ...],
              parse: Callable[[Mapping[str, Any]], object]) -> list[Finding]:
    refused = {f.path: f for f in table if f.support is Support.REFUSED}
    findings: dict[str, Finding] = {}
    for exc in _parser_errors(spec, parse, frozenset(refused)):
        entry = refused.get(_table_path(exc.field))
        message = entry.message if entry is not None else exc.message
        if exc.field in _THRESHOLDS and _non_positive(_value_at(spec, exc.field)):
            message += "; Flagger read a threshold of 0 or less as 1: set threshold: 1 to keep that"
        findings.setdefault(exc.field, Finding(exc.field, Severity.REFUSED, message, parser=str(exc)))
    # The table names every refused field even where the parser stopped before reaching it.
    for entry in refused.values():
        for where in occurrences_in_canary(spec, entry.path):
            findings.setdefault(where, Finding(where, Severity.REFUSED, entry.message))
    return list(findings.values())


# --- Canary --------------------------------------------------------------------------------


def _provider_findings(spec: Mapping[str, Any], options: PortOptions) -> list[Finding]:
    """What the provider means here, and the fields that apply only with some providers."""
    value = spec.get("provider") or None
    name = value if isinstance(value, str) else options.default_provider
    provider = PROVIDERS.get(name)
    if provider is None:
        return []  # refused by the parser already, by name
    findings: list[Finding] = []
    if value is None:
        findings.append(Finding(
            "spec.provider", Severity.DIFFERS,
            f"unset: the controller's --default-provider decides ({name} unless set; judged here as "
            f"{name}: {provider.note}); Flagger used its -mesh-provider flag ({_FLAGGER_DEFAULT_MESH} "
            "unless set). Set spec.provider to say which router you mean"))
    else:
        findings.append(Finding("spec.provider", Severity.NOTE, f"{name!r}: {provider.note}"))
    which = "the controller's default provider" if value is None else "provider"
    for entry in CANARY_FIELDS:
        if entry.support is not Support.PROVIDER:
            continue
        for where in occurrences_in_canary(spec, entry.path):
            if provider.router is RouterKind.GATEWAY_API:
                findings.append(Finding(where, Severity.NOTE, f"{entry.note}; applied only with provider gatewayapi"))
            elif entry.path == SMI_AB_FIELD and provider.router is RouterKind.SMI:
                findings.extend(_smi_match_findings(spec, where, name))
            elif provider.router is RouterKind.TRAEFIK:
                findings.append(Finding(
                    where, Severity.REFUSED,
                    f"{traefik_refusal((entry.path,), name)}; with {which} {name!r} the controller refuses the "
                    "Canary: condition Stalled, reason InvalidSpec"))
            else:
                findings.append(Finding(
                    where, Severity.REFUSED,
                    f"{where} applies only with provider gatewayapi ({entry.note}); with {which} "
                    f"{name!r} the controller refuses the Canary: condition Stalled, reason InvalidSpec"))
    return findings


#: The one provider-dependent field an SMI router applies too: A/B through an HTTPRouteGroup.
SMI_AB_FIELD = "spec.analysis.match"


def _smi_match_findings(spec: Mapping[str, Any], where: str, provider: str) -> list[Finding]:
    """A/B with an SMI provider: header and cookie conditions go into an HTTPRouteGroup that
    TrafficSplit v1alpha3/v1alpha4 names; query parameters have no place there."""
    analysis = spec.get(where.split(".")[1])
    items = analysis.get("match") if isinstance(analysis, Mapping) else None
    refused = [
        Finding(f"{where}[{i}].queryParams", Severity.REFUSED,
                f"{where}[{i}].queryParams: provider {provider!r} does A/B testing with an SMI HTTPRouteGroup, which "
                "matches headers (cookies as the cookie header) but not query parameters; with provider "
                f"{provider!r} the controller refuses the Canary: condition Stalled, reason InvalidSpec")
        for i, item in enumerate(items if isinstance(items, list) else [])
        if isinstance(item, Mapping) and item.get("queryParams")
    ]
    return refused or [Finding(
        where, Severity.DIFFERS,
        f"with provider {provider!r} the conditions go into an SMI HTTPRouteGroup that the TrafficSplit names "
        "while the canary is judged (Flagger's SMI router has no A/B). It needs TrafficSplit v1alpha3 or v1alpha4 "
        "and the paired HTTPRouteGroup CRD; where the cluster serves only v1alpha1/v1alpha2 (Linkerd's and OSM's "
        "SMI) the controller refuses the Canary: condition Stalled")]


def _router_findings(spec: Mapping[str, Any], options: PortOptions) -> list[Finding]:
    """What the Gateway API router itself refuses (hosts on a route attached only to Services, a
    timeout finer than a millisecond), asked of the router factory the controller asks."""
    value = spec.get("provider") or None
    name = value if isinstance(value, str) else options.default_provider
    provider = PROVIDERS.get(name)
    if provider is None or provider.router in (RouterKind.SMI, RouterKind.TRAEFIK):
        return []  # unknown providers, SMI's and Traefik's route options are reported above, field by field
    try:
        parsed = parse_canary_spec(spec)
    except SpecError:
        return []  # the parser's refusals are reported already
    problem = route_options_problem(name, RouteOptions.of(parsed))
    if problem is None:
        return []
    return [Finding(problem.field, Severity.REFUSED,
                    f"{problem.message}; the controller refuses the Canary: condition Stalled, reason {problem.reason}")]


def _analysis_of(spec: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    for key in ("analysis", "canaryAnalysis"):
        if isinstance(spec.get(key), Mapping):
            return f"spec.{key}", spec[key]
    return None


def _duration(value: object, bound: bounds.DurationBound) -> timedelta | None:
    try:
        return parse_duration(value, bound.where, bound)
    except SpecError:
        return None  # the parser reports it


def _analysis_findings(spec: Mapping[str, Any], output_spec: dict[str, Any], options: PortOptions) -> list[Finding]:
    found = _analysis_of(spec)
    if found is None:
        return []
    path, analysis = found
    defaults = AnalysisSpec()
    findings: list[Finding] = []
    if path == "spec.canaryAnalysis":
        findings.append(Finding(path, Severity.NOTE, _note("spec.canaryAnalysis")))

    interval = _duration(analysis.get("interval", format_duration(defaults.interval)), bounds.ANALYSIS_INTERVAL)
    if interval is not None and interval < _FLAGGER_MIN_INTERVAL and analysis.get("interval") is not None:
        findings.append(Finding(
            f"{path}.interval", Severity.DIFFERS,
            f"{analysis['interval']} is honoured here; Flagger silently raised intervals under "
            f"{format_duration(_FLAGGER_MIN_INTERVAL)} to {format_duration(_FLAGGER_MIN_INTERVAL)}"))

    if analysis.get("threshold") is None:
        findings.append(Finding(
            f"{path}.threshold", Severity.DIFFERS,
            f"unset: here {defaults.threshold} failed checks roll the release back (the default); Flagger "
            "rolled back at the first failed check (it reads an unset or non-positive threshold as 1). "
            "Set threshold: 1 to keep that"))

    if analysis.get("stepWeights") and analysis.get("maxWeight") is not None:
        steps = analysis["stepWeights"]
        last = steps[-1] if isinstance(steps, list) else steps
        findings.append(Finding(
            f"{path}.maxWeight", Severity.NOTE,
            f"{analysis['maxWeight']} is not used: with stepWeights the last step ({last}) leads to "
            "promotion, as in Flagger"))

    metrics = analysis.get("metrics")
    metrics = metrics if isinstance(metrics, list) else []
    for i, metric in enumerate(metrics):
        if not isinstance(metric, Mapping):
            continue
        where = f"{path}.metrics[{i}]"
        if metric.get("threshold") is not None and metric.get("thresholdRange") is None:
            bound = "min" if metric.get("name") == BUILTIN_SUCCESS_RATE else "max"
            findings.append(Finding(
                f"{where}.threshold", Severity.NOTE,
                f"read as thresholdRange.{bound}: {metric['threshold']}, as Flagger reads its deprecated "
                "single bound (a minimum for request-success-rate, a maximum otherwise)"))
        if metric.get("interval") is None and interval is not None and interval != _FLAGGER_METRIC_WINDOW:
            findings.append(Finding(
                f"{where}.interval", Severity.DIFFERS,
                f"unset: here the query window is the analysis interval ({format_duration(interval)}); "
                f"Flagger queried the last {format_duration(_FLAGGER_METRIC_WINDOW)}. Set interval: "
                f"{format_duration(_FLAGGER_METRIC_WINDOW)} to keep that"))

    hooks = analysis.get("webhooks")
    for i, hook in enumerate(hooks if isinstance(hooks, list) else []):
        if isinstance(hook, Mapping) and hook.get("muteAlert"):
            findings.append(Finding(f"{path}.webhooks[{i}].muteAlert", Severity.NOTE,
                                    _note("spec.analysis.webhooks[].muteAlert")))

    if analysis.get("consecutiveErrorLimit") is None:
        key = path.removeprefix("spec.")
        if options.flagger_no_data and isinstance(output_spec.get(key), dict):
            output_spec[key]["consecutiveErrorLimit"] = 0
            findings.append(Finding(
                f"{path}.consecutiveErrorLimit", Severity.NOTE,
                "written as 0 (--flagger-no-data): a check whose metrics provider does not answer counts as "
                "failed, as in Flagger"))
        elif metrics:
            findings.append(Finding(
                f"{path}.consecutiveErrorLimit", Severity.DIFFERS,
                f"unset: here a metrics provider that does not answer holds the weight for up to "
                f"{defaults.consecutive_error_limit} ticks in a row before each counts as failed; in Flagger every "
                "such tick counts toward the threshold. Pass --flagger-no-data to write consecutiveErrorLimit: 0 "
                "and keep Flagger's behaviour"))

    if analysis.get("noDataPolicy") is None:
        key = path.removeprefix("spec.")
        if options.flagger_no_data and isinstance(output_spec.get(key), dict):
            output_spec[key]["noDataPolicy"] = NoDataPolicy.FAIL.value
            findings.append(Finding(
                f"{path}.noDataPolicy", Severity.NOTE,
                "written as fail (--flagger-no-data): a check without data counts as failed, as in Flagger"))
        elif metrics:
            findings.append(Finding(
                f"{path}.noDataPolicy", Severity.DIFFERS,
                f"unset: here a check without data holds the weight and counts nothing (noDataPolicy: "
                f"{defaults.no_data_policy.value}); in Flagger it fails and counts toward the threshold. "
                "Pass --flagger-no-data to write noDataPolicy: fail and keep Flagger's behaviour"))
    return findings


def _note(path: str) -> str:
    return next(f.note for f in CANARY_FIELDS if f.path == path)


# --- documents -----------------------------------------------------------------------------

_CHECKED: dict[str, tuple[tuple[FieldSupport, ...], Callable[[Mapping[str, Any]], object]]] = {
    "Canary": (CANARY_FIELDS, parse_canary_spec),
    "MetricTemplate": (METRIC_TEMPLATE_FIELDS, parse_metric_template_spec),
    # Every AlertProvider field means what it meant in Flagger; the parser names any it refuses.
    "AlertProvider": ((), parse_alert_provider_spec),
}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def port_document(doc: object, options: PortOptions) -> PortedDocument:
    """Rewrite one YAML document and say what becomes of it. ``doc`` is not modified."""
    if not isinstance(doc, Mapping):
        return PortedDocument("", "", "", doc)
    kind, api_version = _text(doc.get("kind")), _text(doc.get("apiVersion"))
    meta = doc.get("metadata")
    namespace, name = (_text(meta.get("namespace")), _text(meta.get("name"))) if isinstance(meta, Mapping) else ("", "")
    # Any Flagger version: v1alpha3 manifests (spec.canaryAnalysis) still circulate.
    flagger = api_version.startswith(FLAGGER_GROUP)
    if kind not in _CHECKED or not (flagger or api_version == CANARY_API_VERSION):
        findings: tuple[Finding, ...] = ()
        if flagger:
            findings = (Finding("kind", Severity.REFUSED, _unsupported_kind(kind)),)
        return PortedDocument(kind, namespace, name, doc, findings)

    output = copy.deepcopy(dict(doc))
    output["apiVersion"] = CANARY_API_VERSION
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        refusal = Finding("spec", Severity.REFUSED, f"{kind} needs a spec object", parser=None)
        return PortedDocument(kind, namespace, name, output, (refusal,), checked=True)
    table, parse = _CHECKED[kind]
    found = _refusals(spec, table, parse)
    if kind == "Canary":
        output_spec = output["spec"]
        found += _provider_findings(spec, options)
        found += _router_findings(spec, options)
        found += _analysis_findings(spec, output_spec, options)
    return PortedDocument(kind, namespace, name, output, tuple(found), checked=True)


def _unsupported_kind(kind: str) -> str:
    return f"{kind or 'a document without kind'} is not a Flagger kind this tool knows; written out unchanged"
