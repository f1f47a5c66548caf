"""``--queries-file``: overrides of the mesh's query set, checked at start. Pure but for reading the file.

``--queries-file`` names a YAML mapping whose keys override the mesh's defaults; anything it
does not name keeps the default::

    resource:
      success_count: 'sum by ({{ by }}) (increase(my_requests_total{ {{ selector }}, ok="true"}[{{ window }}]))'
    edges:
      failure_count: '...'
    kinds:
      pods:                       # teach the server a label the mesh does not have by default
        resource: {name: destination_pod, namespace: destination_workload_namespace}
        client: {name: source_pod, namespace: source_workload_namespace}
        server: {name: destination_pod, namespace: destination_workload_namespace}
      daemonsets: null            # refuse a kind (501)
    ignored_peers: [unknown]      # peer names that are not workloads

Each ``kinds`` entry takes ``name`` (the label holding the object's name), ``namespace`` (the
label holding its namespace; omit it for ``namespaces``) and ``match`` (constant matchers, e.g.
``{destination_kind: Deployment}``). Without ``client`` and ``server``, edges of that kind are
answered with 501.

Every mistake (an unknown key, metric, kind or placeholder, a missing placeholder, a label name
that is not a Prometheus label name, an unsafe constant value) is a :class:`ConfigError` naming
where it is, so the server stops at start instead of answering wrong numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import yaml

from canary.config import Mesh
from canary.metricsserver.config import ConfigError
from canary.metricsserver.meshes import default_query_set
from canary.metricsserver.queries import PLACEHOLDER, PLACEHOLDERS, METRICS, KindLabels, ObjectLabels, QuerySet
from canary.metricsserver.resources import Kind

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.:/-]*")


def load_query_set(mesh: Mesh, path: str | None) -> QuerySet:
    """The mesh's defaults, overridden by the YAML file at ``path``; raises ConfigError."""
    base = default_query_set(mesh)
    if path is None:
        return base
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--queries-file {path}: cannot read it: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"--queries-file {path}: not valid YAML: {exc}") from exc
    try:
        return with_overrides(base, data if data is not None else {})
    except ConfigError as exc:
        raise ConfigError(f"--queries-file {path}: {exc}") from exc


def with_overrides(base: QuerySet, data: object) -> QuerySet:
    """``base`` with the overrides of a parsed query file (see the module docstring). Pure."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping with resource, edges, kinds or ignored_peers, got {_kind_of(data)}")
    unknown = sorted(set(map(str, data)) - {"resource", "edges", "kinds", "ignored_peers"})
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}; known: resource, edges, kinds, ignored_peers")
    result = base
    if data.get("resource") is not None:
        result = replace(result, resource={**result.resource, **_templates(data["resource"], "resource")})
    if data.get("edges") is not None:
        result = replace(result, edges={**result.edges, **_templates(data["edges"], "edges")})
    if data.get("kinds") is not None:
        result = _with_kinds(result, data["kinds"])
    if data.get("ignored_peers") is not None:
        peers = data["ignored_peers"]
        if not isinstance(peers, list) or not all(isinstance(p, str) for p in peers):
            raise ConfigError("ignored_peers: expected a list of strings")
        result = replace(result, ignored_peers=frozenset(peers))
    return result


def _templates(raw: object, where: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of metric name to query, got {_kind_of(raw)}")
    out: dict[str, str] = {}
    for metric, template in raw.items():
        if metric not in METRICS:
            raise ConfigError(f"{where}.{metric}: not a Traffic Metrics metric; known: {', '.join(METRICS)}")
        if not isinstance(template, str) or not template.strip():
            raise ConfigError(f"{where}.{metric}: expected a query, got {_kind_of(template)}")
        check_template(template, f"{where}.{metric}")
        out[str(metric)] = template
    return out


def check_template(template: str, where: str) -> None:
    """Refuse unknown placeholders, unclosed ``{{`` and templates missing a required placeholder."""
    used = {m.group(1) for m in PLACEHOLDER.finditer(template)}
    unknown = sorted(used - set(PLACEHOLDERS))
    if unknown:
        raise ConfigError(f"{where}: unknown placeholder(s) {', '.join(unknown)}; known: "
                          + ", ".join("{{ %s }}" % p for p in PLACEHOLDERS))
    if "{{" in PLACEHOLDER.sub("", template):
        raise ConfigError(f"{where}: unclosed or malformed placeholder")
    missing = [p for p in PLACEHOLDERS if p not in used]
    if missing:
        # Without the selector a query would answer for every object in the cluster, without
        # "by" its answers could not be told apart, without the window it would ignore ?t=.
        raise ConfigError(f"{where}: the query must use " + ", ".join("{{ %s }}" % p for p in missing))


def _with_kinds(base: QuerySet, raw: object) -> QuerySet:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"kinds: expected a mapping of kind to labels, got {_kind_of(raw)}")
    kinds = dict(base.kinds)
    unsupported = dict(base.unsupported)
    for key, value in raw.items():
        try:
            kind = Kind(key)
        except ValueError as exc:
            raise ConfigError(f"kinds.{key}: unknown kind; known: {', '.join(k.value for k in Kind)}") from exc
        if value is None:
            kinds.pop(kind, None)
            unsupported[kind] = "it is switched off in --queries-file"
            continue
        if not isinstance(value, Mapping) or "resource" not in value:
            raise ConfigError(f"kinds.{key}: expected a mapping with resource (and client, server)")
        extra = sorted(set(map(str, value)) - {"resource", "client", "server"})
        if extra:
            raise ConfigError(f"kinds.{key}: unknown key(s) {', '.join(extra)}; known: resource, client, server")
        if ("client" in value) != ("server" in value):
            raise ConfigError(f"kinds.{key}: edges need both client and server labels, or neither")
        sides = {
            side: _object_labels(value[side], f"kinds.{key}.{side}", namespaced=kind.namespaced)
            for side in ("resource", "client", "server") if value.get(side) is not None
        }
        kinds[kind] = KindLabels(**sides)
        unsupported.pop(kind, None)
    return replace(base, kinds=kinds, unsupported=unsupported)


def _object_labels(raw: object, where: str, *, namespaced: bool) -> ObjectLabels:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with name, namespace and match")
    extra = sorted(set(map(str, raw)) - {"name", "namespace", "match"})
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(extra)}; known: name, namespace, match")
    name = _label_name(raw.get("name"), f"{where}.name")
    namespace: str | None = None
    if namespaced:
        namespace = _label_name(raw.get("namespace"), f"{where}.namespace")
    elif raw.get("namespace") is not None:
        raise ConfigError(f"{where}.namespace: a namespace is named by its name label alone")
    match_raw = raw.get("match") or {}
    if not isinstance(match_raw, Mapping):
        raise ConfigError(f"{where}.match: expected a mapping of label to value")
    match = []
    for label, value in match_raw.items():
        if not isinstance(value, str) or not _SAFE_VALUE.fullmatch(value):
            raise ConfigError(f"{where}.match.{label}: {value!r} may only contain letters, digits and '-_.:/'")
        match.append((_label_name(label, f"{where}.match"), value))
    return ObjectLabels(name=name, namespace=namespace, match=tuple(match))


def _label_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not _LABEL_NAME.fullmatch(value):
        raise ConfigError(f"{where}: {value!r} is not a Prometheus label name")
    return value


def _kind_of(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


