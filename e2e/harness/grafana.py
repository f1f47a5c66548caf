"""The PromQL a Grafana dashboard file would send, made concrete enough for Prometheus to run.

Grafana fills in template variables and its own interval macros before it queries; this does the
same for one chosen value per variable, so a test can ask a real Prometheus every query of
``integrations/grafana/canary.json`` and see what a person opening the dashboard would see.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[2] / "integrations" / "grafana" / "canary.json"

#: ``$name``, ``${name}`` and ``${name:format}``, as Grafana spells a variable.
_VARIABLE = re.compile(r"\$(?:\{(?P<braced>\w+)(?::\w+)?\}|(?P<bare>\w+))")


class UnknownVariable(ValueError):
    """A query uses a variable that neither the dashboard nor Grafana defines."""


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref_id: str
    expr: str
    instant: bool

    def __str__(self) -> str:
        return f"{self.panel!r} {self.ref_id}: {self.expr}"


def load(path: Path = DASHBOARD) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel, rows' nested panels included (a collapsed row keeps its panels inside)."""
    for panel in dashboard.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []


def queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every target's expression in layout order, then every annotation's (Grafana runs those as
    range queries; their ``panel`` is ``annotation NAME``)."""
    targets = [
        PanelQuery(str(panel.get("title", "")), str(target.get("refId", "")), str(target["expr"]),
                   bool(target.get("instant")) and not target.get("range"))
        for panel in panels(dashboard) for target in panel.get("targets") or [] if "expr" in target
    ]
    marks = [
        PanelQuery(f"annotation {a.get('name', '')}", "", str(a["expr"]), False)
        for a in (dashboard.get("annotations") or {}).get("list") or [] if "expr" in a
    ]
    return targets + marks


def variable_names(dashboard: Mapping[str, Any]) -> set[str]:
    return {str(v["name"]) for v in (dashboard.get("templating") or {}).get("list") or []}


def used_variables(text: str) -> set[str]:
    return {m["braced"] or m["bare"] for m in _VARIABLE.finditer(text)}


def multi_value(values: Sequence[str]) -> str:
    """A multi-value selection the way Grafana writes it into a Prometheus regex matcher."""
    escaped = [re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(expr: str, values: Mapping[str, str], *, rate_interval: str, time_range: str) -> str:
    """``expr`` with every variable replaced, as Grafana would before sending it.

    ``rate_interval`` stands for ``$__rate_interval`` (and ``$__interval``), ``time_range`` for
    ``$__range``. A variable with no value given raises :class:`UnknownVariable`: a query
    that silently kept a ``$`` would fail in Prometheus for the wrong reason.
    """
    builtins = {"__rate_interval": rate_interval, "__interval": rate_interval, "__range": time_range}

    def replace(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        if name in builtins:
            return builtins[name]
        if name in values:
            return values[name]
        raise UnknownVariable(f"no value for ${name} in {expr!r}")

    return _VARIABLE.sub(replace, expr)


_LABEL_VALUES = re.compile(r"^label_values\((?P<match>.+),\s*(?P<label>\w+)\)$")


@dataclass(frozen=True)
class LabelValuesQuery:
    """A query variable's ``label_values(match, label)``: Grafana asks Prometheus's label API."""

    variable: str
    match: str
    label: str


def variable_queries(dashboard: Mapping[str, Any]) -> list[LabelValuesQuery]:
    """The query variables, in order; a query of another form raises ValueError (nothing here
    would know how Grafana runs it)."""
    out: list[LabelValuesQuery] = []
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        if variable.get("type") != "query":
            continue
        found = _LABEL_VALUES.match(str(variable.get("query", "")).strip())
        if found is None:
            raise ValueError(f"variable {variable.get('name')}: not a label_values() query: {variable.get('query')!r}")
        out.append(LabelValuesQuery(str(variable["name"]), found["match"].strip(), found["label"]))
    return out
