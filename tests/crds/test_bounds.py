"""The CRD and the parser agree on every floor and ceiling.

The numbers are read from the CRD YAML (``minimum``/``maximum``, ``maxItems``, the duration
literals of the CEL rules) and compared with :mod:`canary.domain.bounds`; then the schema (with
its CEL rules, on cel-python) and the parser judge the values at each edge and just past it, and
must give the same verdict.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from celpy import celtypes

from canary.domain import bounds
from canary.domain.bounds import DURATION_MAX_LENGTH, CountBound, DurationBound
from canary.domain.durations import DURATION_PATTERN, format_duration, microseconds
from canary.domain.spec import parse_canary_spec
from canary.errors import SpecError
from tests.crds.crd_bounds import duration_ranges, exact_text, integer_ranges, list_limits, number_ranges
from tests.crds.schema_validator import ROOT, Invalid, base_canary, compile_rule, iter_schema, load_crds

MICROSECOND = timedelta(microseconds=1)


# --- the numbers ---------------------------------------------------------------------------


def test_every_integer_of_the_spec_has_the_bounds_of_the_module() -> None:
    assert integer_ranges() == {b.where: (b.floor, b.ceiling) for b in bounds.CANARY_COUNTS}


def test_every_bounded_number_of_the_spec_has_the_bounds_of_the_module() -> None:
    assert number_ranges() == {b.where: (b.floor, b.ceiling) for b in bounds.CANARY_NUMBERS}


@pytest.mark.parametrize("bound", bounds.CANARY_NUMBERS, ids=lambda b: b.where)
def test_the_parser_refuses_a_number_just_outside_its_range(bound: bounds.NumberBound) -> None:
    *parents, leaf = bound.where.removeprefix("spec.").split(".")
    for outside in (bound.floor - 1e-9, bound.ceiling + 1e-9):
        spec = base_canary()["spec"]
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = outside
        with pytest.raises(SpecError, match=re.escape(bound.where)):
            parse_canary_spec(spec)
        node[leaf] = bound.floor
        parse_canary_spec(spec)


def test_every_list_of_the_spec_has_the_bounds_of_the_module() -> None:
    assert list_limits() == {b.where: (b.floor, b.ceiling) for b in bounds.CANARY_LISTS}


def test_every_duration_of_the_spec_has_the_bounds_of_the_module() -> None:
    found = duration_ranges()
    assert {path: (d.floor, d.ceiling) for path, d in found.items()} == {
        b.where: (b.floor, b.ceiling) for b in bounds.CANARY_DURATIONS
    }
    for path, crd in found.items():
        assert crd.pattern == crd.guard == DURATION_PATTERN, path
        assert crd.max_length == DURATION_MAX_LENGTH, path
    # Nothing else in the spec looks like a duration without a rule.
    pattern_fields = {path for path, node in _spec_nodes() if node.get("pattern") == DURATION_PATTERN}
    assert pattern_fields == set(found)


def test_the_metric_template_has_no_time_or_count() -> None:
    # If one is added it needs a bound in canary/domain/bounds.py, and a line here.
    assert integer_ranges("MetricTemplate") == {}
    assert list_limits("MetricTemplate") == {}
    assert duration_ranges("MetricTemplate") == {}


@pytest.mark.parametrize("bound", bounds.CANARY_DURATIONS, ids=lambda b: b.where)
def test_the_rule_message_states_the_range_and_the_field(bound: DurationBound) -> None:
    message = duration_ranges()[bound.where].message
    assert f"from {format_duration(bound.floor)} to {format_duration(bound.ceiling)}" in message
    assert bound.where.removeprefix("spec.analysis.") in message
    assert f"e.g. {bound.example}" in message


def _spec_nodes() -> list[tuple[str, Any]]:
    return [(path, node) for node, _s, path in iter_schema(load_crds()["Canary"].schema) if path.startswith("spec.")]


# --- the verdicts at the edges -----------------------------------------------------------------


def _concrete(where: str) -> str:
    return where.replace("[]", "[0]")


def _set(obj: dict[str, Any], path: str, value: Any) -> None:
    keys = [int(k[1:-1]) if k.startswith("[") else k for k in re.findall(r"\[\d+\]|[^.\[\]]+", path)]
    node: Any = obj
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value


#: What else a field needs so that only its own bound can refuse it.
ANALYSIS_CONTEXT: dict[str, Callable[[dict[str, Any]], object]] = {
    "spec.analysis.stepWeight": lambda a: a.update(maxWeight=100),
    "spec.analysis.maxWeight": lambda a: a.update(stepWeight=1),
    "spec.analysis.stepWeights[]": lambda a: (a.pop("stepWeight"), a.update(maxWeight=100, stepWeights=[1])),
    "spec.analysis.iterations": lambda a: a.pop("stepWeight"),
    "spec.analysis.stepWeights": lambda a: (a.pop("stepWeight"), a.update(maxWeight=100)),
    # A/B and mirroring are blue/green variants.
    "spec.analysis.match": lambda a: (a.pop("stepWeight"), a.update(iterations=1)),
    "spec.analysis.mirrorWeight": lambda a: (a.pop("stepWeight"), a.update(iterations=1, mirror=True)),
    "spec.analysis.sessionAffinity.maxAge": lambda a: a.update(sessionAffinity={"cookieName": "canary"}),
}
SERVICE_CONTEXT: dict[str, Callable[[dict[str, Any]], object]] = {
    "spec.service.gatewayRefs[].port": lambda s: s.update(gatewayRefs=[{"name": "public"}]),
    "spec.service.headers.request.remove": lambda s: s.update(headers={"request": {}}),
    "spec.service.headers.response.remove": lambda s: s.update(headers={"response": {}}),
}


SPEC_CONTEXT: dict[str, Callable[[dict[str, Any]], object]] = {
    f"spec.autoscalerRef.primaryScalerReplicas.{bound}": lambda s: s.update(autoscalerRef={
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo",
        "primaryScalerReplicas": {}})
    for bound in ("minReplicas", "maxReplicas")
}


def _canary_with(where: str, value: Any) -> dict[str, Any]:
    obj = base_canary()
    if where in SPEC_CONTEXT:
        SPEC_CONTEXT[where](obj["spec"])
    if where in ANALYSIS_CONTEXT:
        ANALYSIS_CONTEXT[where](obj["spec"]["analysis"])
    if where in SERVICE_CONTEXT:
        SERVICE_CONTEXT[where](obj["spec"]["service"])
    _set(obj, _concrete(where), copy.deepcopy(value))
    return obj


def _verdicts(where: str, value: Any) -> tuple[str | None, str | None]:
    """(schema refusal, parser refusal) for the base Canary with ``where`` set to ``value``."""
    obj = _canary_with(where, value)
    crd = load_crds()["Canary"]
    schema_says: str | None = None
    try:
        crd.admit(obj)
    except Invalid as exc:
        schema_says = str(exc)
    parser_says: str | None = None
    try:
        parse_canary_spec(crd.prepare(obj)["spec"])
    except SpecError as exc:
        parser_says = str(exc)
    return schema_says, parser_says


def _assert_edges(where: str, inside: list[Any], outside: list[Any]) -> None:
    for value in inside:
        assert _verdicts(where, value) == (None, None), (where, value)
    for value in outside:
        schema_says, parser_says = _verdicts(where, value)
        assert schema_says is not None and parser_says is not None, (where, value, schema_says, parser_says)
        assert f"{_concrete(where)}: " in schema_says, schema_says
        assert parser_says.startswith(f"{_concrete(where)}: "), parser_says


@pytest.mark.parametrize("where", sorted(integer_ranges()), ids=str)
def test_counts_agree_at_the_edges(where: str) -> None:
    floor, ceiling = integer_ranges()[where]
    assert floor is not None and ceiling is not None, f"{where} needs a minimum and a maximum"
    _assert_edges(where, inside=[floor, ceiling], outside=[floor - 1, ceiling + 1, 10**15, -(10**15)])


@pytest.mark.parametrize("where", sorted(duration_ranges()), ids=str)
def test_durations_agree_at_the_edges(where: str) -> None:
    crd = duration_ranges()[where]
    inside = [format_duration(crd.floor), exact_text(crd.floor), format_duration(crd.ceiling), exact_text(crd.ceiling)]
    outside = [
        exact_text(crd.floor - MICROSECOND), exact_text(crd.ceiling + MICROSECOND),
        # Issue 8: an overflow, a parseable but huge value, a zero-length one, zero.
        "99999999999h", "999999999h", "0.0000001ms", "0s",
        # Past the grammar's digits, past maxLength, and not a duration at all.
        "123456ms", "1.0001s", "1s" * 17, "1 minute",
    ]
    _assert_edges(where, inside, outside)


@pytest.mark.parametrize("where", sorted(duration_ranges()), ids=str)
def test_the_refusal_of_a_huge_duration_is_the_rule_message(where: str) -> None:
    schema_says, _parser = _verdicts(where, "99999999999h")
    assert schema_says is not None and duration_ranges()[where].message in schema_says
    # The rule itself says false, not an evaluation error: its guard refuses before duration()
    # would overflow Go's time.ParseDuration on the API server.
    (rule,) = [r["rule"] for r in _node(where)["x-kubernetes-validations"]]
    for text in ("99999999999h", "9" * 32 + "h", "1 minute", ""):
        assert compile_rule(rule).evaluate({"self": celtypes.StringType(text)}) == celtypes.BoolType(False), text


def _node(where: str) -> Any:
    return next(node for path, node in _spec_nodes() if path == where)


@pytest.mark.parametrize("where", sorted(list_limits()), ids=str)
def test_lists_agree_at_the_edges(where: str) -> None:
    _floor, ceiling = list_limits()[where]
    assert ceiling is not None
    items: dict[str, Callable[[int], Any]] = {
        "spec.analysis.stepWeights": lambda n: list(range(1, n + 1)),
        "spec.analysis.metrics": lambda n: [{"name": "request-success-rate", "thresholdRange": {"min": 99}}] * n,
        "spec.analysis.webhooks": lambda n: [{"name": "h", "url": "http://h.test/"}] * n,
        "spec.analysis.alerts": lambda n: [{"name": f"a{i}", "providerRef": {"name": "p"}} for i in range(n)],
        "spec.analysis.match": lambda n: [{"headers": {"x-canary": {"exact": "insider"}}}] * n,
        "spec.service.gatewayRefs": lambda n: [{"name": "public"}] * n,
        "spec.service.hosts": lambda n: ["app.example.test"] * n,
        "spec.service.headers.request.remove": lambda n: ["x-debug"] * n,
        "spec.service.headers.response.remove": lambda n: ["server"] * n,
    }
    _assert_edges(where, inside=[items[where](ceiling)], outside=[items[where](ceiling + 1)])


# --- the process's own bounds and the docs ------------------------------------------------------


ALL_BOUNDS: list[CountBound | DurationBound | bounds.NumberBound] = [
    *bounds.CANARY_DURATIONS, *bounds.CANARY_COUNTS, *bounds.CANARY_NUMBERS, *bounds.CANARY_LISTS,
    *bounds.PROCESS_DURATIONS, *bounds.PROCESS_COUNTS,
]


def _text(value: float | timedelta) -> str:
    if isinstance(value, timedelta):
        return format_duration(value)
    return str(value) if isinstance(value, int) else f"{value:g}"


def test_docs_table_lists_every_bound() -> None:
    doc = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    section = doc.split("\n## Floors and ceilings\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = line.replace("\\|", "\0").strip("|").split("|")
            rows[cells[0].strip("` ").replace("\0", "|")] = (cells[1].strip(), cells[2].strip())
    assert len(rows) == len(ALL_BOUNDS), sorted(rows)
    for bound in ALL_BOUNDS:
        key = _doc_key(bound)
        assert key in rows, f"docs/api.md lacks a row for {key}"
        assert rows[key] == (_text(bound.floor), _text(bound.ceiling)), key


def _doc_key(bound: CountBound | DurationBound | bounds.NumberBound) -> str:
    if bound is bounds.WAIT_TIMEOUT:
        return "canary wait --timeout"
    if bound is bounds.RECEIPT_TIMEOUT:
        return "canary rollback|promote|pause|resume|retry --timeout"
    if bound in bounds.CANARY_LISTS:
        return f"{bound.where} (items)"
    return bound.where


def test_bounds_are_sane() -> None:
    for bound in ALL_BOUNDS:
        assert bound.floor <= bound.ceiling, bound  # type: ignore[operator]
        assert bound.why
    for d in [*bounds.CANARY_DURATIONS, *bounds.PROCESS_DURATIONS]:
        assert d.floor > timedelta(0)
        assert d.floor <= _parsed(d.example) <= d.ceiling, d


def _parsed(text: str) -> timedelta:
    return timedelta(microseconds=microseconds(text))


def test_e2e_durations_stay_valid() -> None:
    # The e2e suite runs releases with 1s and 2s intervals and 2s webhook timeouts.
    for text in ("1s", "2s"):
        for bound in bounds.CANARY_DURATIONS:
            assert bound.floor <= _parsed(text) <= bound.ceiling, (bound.where, text)
