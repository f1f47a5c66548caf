"""An admission pipeline for the project's CRDs, close enough to kube-apiserver for unit tests.

It follows the server's order for a create: prune unknown fields (and nulls where the schema is
not nullable), apply defaults, then validate with the OpenAPI schema and evaluate every
``x-kubernetes-validations`` rule. Errors read like the server's: ``<path>: <what>``, with paths
in the same form as :class:`canary.errors.SpecError` (``spec.analysis.metrics[0].interval``),
so a test can compare what the schema and the Python parser blame.

Deliberate simplifications: no ``metadata`` validation, no rule cost estimation, no transition
rules (``oldSelf``), no ``messageExpression``. The OpenAPI subset the CRDs use is translated to
JSON Schema for :mod:`jsonschema`; CEL rules run on :mod:`celpy` with values typed by the
schema, as the server types them (``number`` is a double even when written ``99``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from canary.domain.status import (
    CanaryStatus,
    CheckKind,
    CheckResult,
    JudgeState,
    Condition,
    ConditionType,
    Phase,
    Verdict,
)

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
EXAMPLES_DIR = ROOT / "examples"

#: A location in the OpenAPI schema, as the keys walked from openAPIV3Schema.
SchemaPath = tuple[str | int, ...]

_REASON_PREFIX = {
    "FieldValueRequired": "Required value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueInvalid": "Invalid value",
}
# RFC 3339 as Kubernetes' date-time format accepts it (fraction and offset optional parts).
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class FieldError:
    """One refusal. ``origin`` says which schema keyword or rule caused it, for coverage checks."""

    path: str
    message: str
    origin: tuple[str, SchemaPath, str | int] = field(compare=False)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class Invalid(Exception):
    """The object was refused; ``errors`` lists every reason, as the API server would."""

    def __init__(self, kind: str, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__(f"{kind} is invalid: " + "; ".join(str(e) for e in errors))


@dataclass(frozen=True)
class Admitted:
    """The object as stored, and the unknown fields the server would have dropped with a warning."""

    object: dict[str, Any]
    pruned: list[str]


# --- paths ----------------------------------------------------------------------------------


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _field_path_suffix(field_path: str) -> str:
    # fieldPath is relative JSONPath such as ".stepWeights"; appending keeps our path form.
    return field_path if field_path.startswith((".", "[")) else f".{field_path}"


# --- OpenAPI -> JSON Schema -----------------------------------------------------------------


def to_json_schema(node: Mapping[str, Any]) -> dict[str, Any]:
    """Translate the structural OpenAPI v3 subset the CRDs use into JSON Schema 2020-12."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "description", "example"):
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, Mapping):
            out[key] = to_json_schema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        else:
            out[key] = copy.deepcopy(value)
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        # The enum stays as it is: kube-openapi's enum check never matches null, so a nullable
        # field with an enum refuses null on a real API server, and so must this translation.
        out["type"] = [out["type"], "null"]
    return out


def _check_date_time(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    if not _DATE_TIME.match(instance):
        return False
    try:
        datetime.fromisoformat(instance.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("date-time")(_check_date_time)


def _describe(error: jsonschema.ValidationError) -> list[tuple[list[str | int], str]]:
    """(extra path keys, message) pairs in the API server's wording for one jsonschema error."""
    inst = error.instance
    val = error.validator_value
    kind = error.validator
    if kind == "required":
        return [([name], "Required value") for name in val if name not in inst]
    if kind == "enum":
        allowed = ", ".join(f'"{v}"' if isinstance(v, str) else "null" if v is None else str(v) for v in val)
        return [([], f"Unsupported value: {inst!r}: supported values: {allowed}")]
    wording = {
        "type": lambda: f"Invalid value: {inst!r}: must be of type {val if isinstance(val, str) else ' or '.join(val)}",
        "minimum": lambda: f"Invalid value: {inst!r}: should be greater than or equal to {val}",
        "maximum": lambda: f"Invalid value: {inst!r}: should be less than or equal to {val}",
        "pattern": lambda: f"Invalid value: {inst!r}: should match '{val}'",
        "minLength": lambda: f"Invalid value: {inst!r}: should be at least {val} chars long",
        "maxLength": lambda: f"Too long: may not be more than {val} bytes",
        "maxItems": lambda: f"Too many: {len(inst)}: must have at most {val} items",
        "minItems": lambda: f"Invalid value: should have at least {val} items",
        "format": lambda: f"Invalid value: {inst!r}: must be of format {val}",
        "anyOf": lambda: f"Invalid value: {inst!r}: must be an integer or a string",
    }
    return [([], wording[kind]() if kind in wording else f"Invalid value: {error.message}")]


# --- CEL -----------------------------------------------------------------------------------

_CEL_ENV = celpy.Environment()


@cache
def compile_rule(rule: str) -> celpy.Runner:
    """Compile once; raises :class:`celpy.CELParseError` for syntax cel-python cannot read."""
    return _CEL_ENV.program(_CEL_ENV.compile(rule))


def to_cel(value: Any, schema: Mapping[str, Any]) -> celtypes.Value:
    """Type ``value`` as the API server does for rules: by the schema, not by the JSON token."""
    if value is None:
        return None
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return json_to_cel(value)
    kind = schema.get("type")
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return celtypes.DoubleType(float(value))
    if kind == "object" and isinstance(value, Mapping):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        out: dict[celtypes.StringType, celtypes.Value] = {}
        for key, item in value.items():
            sub = props.get(key) or (extra if isinstance(extra, Mapping) else {})
            out[celtypes.StringType(key)] = to_cel(item, sub)
        return celtypes.MapType(out)
    if kind == "array" and isinstance(value, list):
        return celtypes.ListType([to_cel(item, schema.get("items", {})) for item in value])
    return json_to_cel(value)


# --- the pipeline --------------------------------------------------------------------------


class CustomResourceValidator:
    """Admission for one CRD's storage version."""

    def __init__(self, crd: Mapping[str, Any]) -> None:
        self.crd = crd
        names = crd["spec"]["names"]
        self.kind: str = names["kind"]
        self.group: str = crd["spec"]["group"]
        version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
        self.version: Mapping[str, Any] = version
        self.api_version = f"{self.group}/{version['name']}"
        self.schema: Mapping[str, Any] = version["schema"]["openAPIV3Schema"]
        self._json = jsonschema.Draft202012Validator(to_json_schema(self.schema), format_checker=_FORMATS)
        for _node, _path, rules in iter_rules(self.schema):
            for rule in rules:
                compile_rule(rule["rule"])

    # The three steps, usable on their own.

    def prune(self, obj: Mapping[str, Any]) -> Admitted:
        """Drop unknown fields and non-nullable nulls, as the server's decoder does."""
        out = copy.deepcopy(dict(obj))
        pruned: list[str] = []
        _prune(out, self.schema, "", pruned, top=True)
        return Admitted(out, pruned)

    def default(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(dict(obj))
        _default(out, self.schema)
        return out

    def validate(self, obj: Mapping[str, Any]) -> list[FieldError]:
        errors: list[FieldError] = []
        if obj.get("apiVersion") != self.api_version or obj.get("kind") != self.kind:
            errors.append(FieldError("apiVersion", f"Invalid value: expected {self.api_version} {self.kind}", ("kind", (), "")))
        for error in sorted(self._json.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
            base = ""
            for key in error.absolute_path:
                base = join(base, key)
            location = tuple(error.absolute_schema_path)
            for extra, message in _describe(error):
                path = base
                for key in extra:
                    path = join(path, key)
                errors.append(FieldError(path, message, (str(error.validator), location[:-1], "")))
        schema_failed = bool(errors)
        errors.extend(_check_lists(obj, self.schema, "", ()))
        errors.extend(_check_rules(obj, self.schema, "", (), report_eval_errors=not schema_failed))
        return errors

    def admit(self, obj: Mapping[str, Any]) -> Admitted:
        """Prune, default and validate; raises :class:`Invalid` listing every error."""
        pruned = self.prune(obj)
        stored = self.default(pruned.object)
        errors = self.validate(stored)
        if errors:
            raise Invalid(self.kind, errors)
        return Admitted(stored, pruned.pruned)

    def prepare(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Prune and default without validating: what the parser would see if the schema let it in."""
        return self.default(self.prune(obj).object)


def _is_nullable(schema: Mapping[str, Any]) -> bool:
    return bool(schema.get("nullable"))


def _prune(value: Any, schema: Mapping[str, Any], path: str, pruned: list[str], *, top: bool = False) -> None:
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields", False)
        for key in list(value):
            sub = props.get(key) if key in props else (extra if isinstance(extra, Mapping) else None)
            if sub is None:
                if not keep_unknown and not (isinstance(extra, bool) and extra):
                    pruned.append(join(path, key))
                    del value[key]
                continue
            if value[key] is None and not _is_nullable(sub):
                del value[key]
                continue
            # The server never prunes inside metadata; it has its own validation.
            if top and key == "metadata":
                continue
            _prune(value[key], sub, join(path, key), pruned)
    elif isinstance(value, list):
        items = schema.get("items", {})
        for i, item in enumerate(value):
            _prune(item, items, join(path, i), pruned)


def _default(value: Any, schema: Mapping[str, Any]) -> None:
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties", {})
        for key, sub in props.items():
            if "default" in sub and key not in value:
                value[key] = copy.deepcopy(sub["default"])
        for key, item in value.items():
            if key in props:
                _default(item, props[key])
            elif isinstance(schema.get("additionalProperties"), Mapping):
                _default(item, schema["additionalProperties"])
    elif isinstance(value, list):
        for item in value:
            _default(item, schema.get("items", {}))


def _children(value: Any, schema: Mapping[str, Any], spath: SchemaPath) -> Iterator[tuple[str | int, Any, Mapping[str, Any], SchemaPath]]:
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                yield key, item, props[key], (*spath, "properties", key)
            elif isinstance(extra, Mapping):
                yield key, item, extra, (*spath, "additionalProperties")
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            yield i, item, schema["items"], (*spath, "items")


def _check_lists(value: Any, schema: Mapping[str, Any], path: str, spath: SchemaPath) -> list[FieldError]:
    """``x-kubernetes-list-type: map``: the keys must be unique (JSON Schema cannot say so)."""
    errors: list[FieldError] = []
    if isinstance(value, list) and schema.get("x-kubernetes-list-type") == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen: set[tuple[Any, ...]] = set()
        for i, item in enumerate(value):
            if not isinstance(item, Mapping):
                continue
            map_key = tuple(item.get(k) for k in keys)
            if map_key in seen:
                shown = ", ".join(f'"{k}":{item.get(k)!r}' for k in keys)
                errors.append(FieldError(join(path, i), f"Duplicate value: map[{shown}]", ("x-kubernetes-list-type", spath, "")))
            seen.add(map_key)
    for key, item, sub, sub_spath in _children(value, schema, spath):
        errors.extend(_check_lists(item, sub, join(path, key), sub_spath))
    return errors


def _check_rules(value: Any, schema: Mapping[str, Any], path: str, spath: SchemaPath, *, report_eval_errors: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    if value is None:
        return errors
    rules = schema.get("x-kubernetes-validations", [])
    if rules:
        activation = {"self": to_cel(value, schema)}
        for index, rule in enumerate(rules):
            origin = ("x-kubernetes-validations", spath, index)
            where = path + _field_path_suffix(rule["fieldPath"]) if rule.get("fieldPath") else path
            result: object
            try:
                result = compile_rule(rule["rule"]).evaluate(activation)
            except CELEvalError as exc:
                result = exc
            if isinstance(result, celtypes.BoolType) or isinstance(result, bool):
                if not result:
                    prefix = _REASON_PREFIX[rule.get("reason", "FieldValueInvalid")]
                    shown = '"object"' if isinstance(value, dict) else '"array"' if isinstance(value, list) else repr(value)
                    detail = f"{prefix}: {shown}: " if prefix == "Invalid value" else f"{prefix}: "
                    errors.append(FieldError(where, detail + rule["message"], origin))
            elif report_eval_errors:
                errors.append(FieldError(path, f"Invalid value: rule {rule['rule']!r} did not evaluate to a bool: {result!r}", origin))
    for key, item, sub, sub_spath in _children(value, schema, spath):
        errors.extend(_check_rules(item, sub, join(path, key), sub_spath, report_eval_errors=report_eval_errors))
    return errors


# --- schema walking and loading ------------------------------------------------------------


def iter_schema(node: Mapping[str, Any], spath: SchemaPath = (), path: str = "") -> Iterator[tuple[Mapping[str, Any], SchemaPath, str]]:
    """Every schema node with its location and the object path it describes (``[]`` for items)."""
    yield node, spath, path
    for name, sub in node.get("properties", {}).items():
        yield from iter_schema(sub, (*spath, "properties", name), join(path, name))
    if isinstance(node.get("items"), Mapping):
        yield from iter_schema(node["items"], (*spath, "items"), path + "[]")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from iter_schema(node["additionalProperties"], (*spath, "additionalProperties"), path + ".*")


def iter_rules(schema: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], SchemaPath, list[Mapping[str, Any]]]]:
    for node, spath, _path in iter_schema(schema):
        rules = node.get("x-kubernetes-validations")
        if rules:
            yield node, spath, rules


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


@cache
def load_crds() -> dict[str, CustomResourceValidator]:
    """Every CRD under ``crds/``, by kind."""
    out: dict[str, CustomResourceValidator] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in load_yaml_documents(path):
            if doc.get("kind") == "CustomResourceDefinition":
                validator = CustomResourceValidator(doc)
                out[validator.kind] = validator
    return out


def validator_for(obj: Mapping[str, Any]) -> CustomResourceValidator:
    return load_crds()[obj["kind"]]


# --- known-good objects the tests start from -----------------------------------------------


def base_canary() -> dict[str, Any]:
    """A Canary touching every spec field, so each refusal case needs a single change."""
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898, "targetPort": "http", "portName": "http", "name": "podinfo"},
            "provider": "smi",
            "progressDeadlineSeconds": 600,
            "skipAnalysis": False,
            "suspend": False,
            "revertOnDeletion": False,
            "analysis": {
                "interval": "1m",
                "threshold": 5,
                "stepWeight": 10,
                "maxWeight": 50,
                "stepWeightPromotion": 25,
                "noDataPolicy": "hold",
                "minSampleSize": 10,
                "judge": {"alpha": 0.01, "lookEvery": "15s", "errorRate": {"tolerance": 0.2, "minIncrease": 0.5},
                          "latency": {"tolerance": 0.5}},
                "metrics": [
                    {"name": "request-success-rate", "interval": "1m", "thresholdRange": {"min": 99}},
                    {
                        "name": "errors",
                        "templateRef": {"name": "errors", "namespace": "shared"},
                        "templateVariables": {"codes": "5.."},
                        "thresholdRange": {"max": 1.5},
                    },
                ],
                "webhooks": [
                    {
                        "name": "load-test",
                        "type": "rollout",
                        "url": "http://loadtester.test/",
                        "timeout": "5s",
                        "retries": 1,
                        "metadata": {"cmd": "hey -z 1m http://podinfo-canary.test:9898/"},
                    },
                ],
            },
        },
    }


def base_metric_template() -> dict[str, Any]:
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "MetricTemplate",
        "metadata": {"name": "errors", "namespace": "shared"},
        "spec": {
            "provider": {
                "type": "prometheus",
                "address": "https://prometheus.monitoring:9090",
                "secretRef": {"name": "prometheus-auth"},
                "insecureSkipVerify": False,
            },
            "query": 'sum(rate(response_total{namespace="{{ namespace }}"}[{{ interval }}]))',
        },
    }


def full_status() -> dict[str, Any]:
    """``CanaryStatus.to_dict`` with every field set, including non-finite check numbers."""
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    status = CanaryStatus(
        phase=Phase.PROGRESSING,
        canary_weight=20,
        failed_checks=1,
        iterations=0,
        last_applied_spec="5d8f9c7b6",
        last_promoted_spec="7c6b5a4f3",
        last_transition_time=when,
        observed_generation=3,
        checks=(
            CheckResult("request-success-rate", CheckKind.METRIC, "sum(...)", Verdict.PASS, when,
                        value=99.5, min=99.0, samples=1200.0),
            CheckResult("errors", CheckKind.METRIC, "sum(...)", Verdict.NO_DATA, when,
                        value=float("nan"), max=float("inf"), message="no samples"),
            CheckResult("load-test", CheckKind.WEBHOOK, "http://loadtester.test/", Verdict.FAIL, when,
                        message="HTTP 500"),
            CheckResult("judge/errorRate", CheckKind.JUDGE, "sum by (...)", Verdict.PASS, when, value=0.4,
                        samples=600.0, primary_value=0.1, primary_samples=5400.0, evidence=3.5,
                        evidence_bound=200.0, message="no evidence against the canary"),
        ),
        conditions=(
            Condition(ConditionType.READY, False, "Progressing", "canary at 20%", when),
            Condition(ConditionType.RECONCILING, True, "Progressing", "analysis running", when),
            Condition(ConditionType.STALLED, False, "Progressing", "", when),
            Condition(ConditionType.PROMOTED, False, "Progressing", "", when),
        ),
        last_analysis_time=when,
        waiting_since=when,
        run_started=when,
        handled_annotations={"rollback": "2025-01-01T00:00:00Z"},
        primary_replicas=3,
        message="rolled back: 5 failed checks",
        judge=JudgeState(step_started=when, last_look=when, carried={"latency": -0.5},
                         error_steps=((2.0, 1.5, 20.0, 180.0), (0.0, 3.25, 50.0, 150.5))),
    )
    return status.to_dict()
