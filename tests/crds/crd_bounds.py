"""The floors and ceilings as the CRD YAML states them, read back for comparison and generation.

Read from the schema, not from :mod:`canary.domain.bounds`: tests/crds/test_bounds.py compares
the two, and tests/domain/test_properties.py generates specs from what the API server would let
through.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from canary.domain.flagger_fields import CANARY_FIELDS, METRIC_TEMPLATE_FIELDS, refused
from canary.domain.durations import DURATION_PATTERN, microseconds
from tests.crds.schema_validator import iter_schema, load_crds

#: The one shape a duration rule may have; anything else fails loudly instead of being skipped.
DURATION_RULE = re.compile(
    r"^self\.matches\('(?P<pattern>[^']+)'\) && duration\(self\) >= duration\('(?P<floor>[^']+)'\)"
    r" && duration\(self\) <= duration\('(?P<ceiling>[^']+)'\)$"
)


@dataclass(frozen=True)
class CrdDuration:
    floor: timedelta
    ceiling: timedelta
    #: The pattern the rule checks before calling duration(), and the field's own ``pattern``.
    guard: str
    pattern: str
    max_length: int
    message: str


def exact_text(value: timedelta) -> str:
    """``value`` as a duration the grammar admits, to the microsecond (``24h0m0s0.001ms``)."""
    us = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    hours, us = divmod(us, 3_600_000_000)
    minutes, us = divmod(us, 60_000_000)
    seconds, us = divmod(us, 1_000_000)
    ms, frac = divmod(us, 1_000)
    return f"{hours}h{minutes}m{seconds}s{ms}.{frac:03d}ms"


def _literal(text: str) -> timedelta:
    if not re.match(DURATION_PATTERN, text):
        raise AssertionError(f"duration literal {text!r} in a CEL rule is outside the grammar")
    return timedelta(microseconds=microseconds(text))


def _spec_nodes(kind: str) -> list[tuple[str, Mapping[str, Any]]]:
    return [(path, node) for node, _spath, path in iter_schema(load_crds()[kind].schema)
            if path == "spec" or path.startswith("spec.")]


def integer_ranges(kind: str = "Canary") -> dict[str, tuple[int | None, int | None]]:
    """``minimum`` and ``maximum`` of every integer field of the spec, by path (``[]`` for items)."""
    return {path: (node.get("minimum"), node.get("maximum"))
            for path, node in _spec_nodes(kind) if node.get("type") == "integer"}


def number_ranges(kind: str = "Canary") -> dict[str, tuple[float | None, float | None]]:
    """``minimum`` and ``maximum`` of every real-number field of the spec that has either."""
    return {path: (node.get("minimum"), node.get("maximum"))
            for path, node in _spec_nodes(kind)
            if node.get("type") == "number" and ("minimum" in node or "maximum" in node)}


def list_limits(kind: str = "Canary") -> dict[str, tuple[int, int | None]]:
    """``minItems`` (0 when unset) and ``maxItems`` of every list of the spec, by path."""
    # A refused Flagger field is declared only to be refused by name: it never holds a value.
    refused_paths = {f.path for f in refused((*CANARY_FIELDS, *METRIC_TEMPLATE_FIELDS))}
    return {path: (node.get("minItems", 0), node.get("maxItems"))
            for path, node in _spec_nodes(kind) if node.get("type") == "array" and path not in refused_paths}


def duration_ranges(kind: str = "Canary") -> dict[str, CrdDuration]:
    """Every string field whose rules call ``duration(self)``, with the range the rule allows."""
    out: dict[str, CrdDuration] = {}
    for path, node in _spec_nodes(kind):
        rules = [r for r in node.get("x-kubernetes-validations", []) if "duration(" in r["rule"]]
        if not rules:
            continue
        if len(rules) != 1:
            raise AssertionError(f"{path}: one duration rule expected, found {len(rules)}")
        found = DURATION_RULE.match(rules[0]["rule"])
        if found is None:
            raise AssertionError(f"{path}: duration rule of an unexpected shape: {rules[0]['rule']}")
        out[path] = CrdDuration(
            floor=_literal(found["floor"]), ceiling=_literal(found["ceiling"]), guard=found["pattern"],
            pattern=node["pattern"], max_length=node["maxLength"], message=rules[0]["message"],
        )
    return out
