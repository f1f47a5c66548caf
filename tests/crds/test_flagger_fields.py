"""canary/domain/flagger_fields.py is the one home of what each Flagger field means here: the CRD
declares every field and refuses the refused ones with the table's message, and docs/api.md shows
the table as it is."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from canary.domain.flagger_fields import CANARY_FIELDS, METRIC_TEMPLATE_FIELDS, FieldSupport, Support, refused
from tests.crds.schema_validator import load_crds

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"Canary": CANARY_FIELDS, "MetricTemplate": METRIC_TEMPLATE_FIELDS}


def _node(kind: str, path: str) -> Mapping[str, Any]:
    node: Mapping[str, Any] = load_crds()[kind].schema
    for part in path.split("."):
        key = part.removesuffix("[]")
        node = node["properties"][key]
        if part.endswith("[]"):
            node = node["items"]
    return node


CASES = [(kind, f) for kind, fields in TABLES.items() for f in fields]


@pytest.mark.parametrize(("kind", "field"), CASES, ids=[f"{k}:{f.path}" for k, f in CASES])
def test_the_crd_declares_every_flagger_field(kind: str, field: FieldSupport) -> None:
    _node(kind, field.path)


REFUSALS = [(kind, f) for kind, fields in TABLES.items() for f in refused(fields)]


@pytest.mark.parametrize(("kind", "field"), REFUSALS, ids=[f"{k}:{f.path}" for k, f in REFUSALS])
def test_the_crd_refuses_each_refused_field_with_the_tables_message(kind: str, field: FieldSupport) -> None:
    parent_path, _, leaf = field.path.rpartition(".")
    parent = _node(kind, parent_path)
    rules = [r for r in parent.get("x-kubernetes-validations", []) if r.get("fieldPath") == f".{leaf}"]
    assert [r["message"] for r in rules] == [field.message]
    assert rules[0]["rule"].startswith(f"!has(self.{leaf})")


def _doc_rows(heading: str) -> dict[str, tuple[str, str]]:
    doc = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    section = doc.split("\n## Flagger's fields, one by one\n", 1)[1].split("\n## ", 1)[0]
    table = section.split(f"\n### {heading}\n", 1)[1].split("\n### ", 1)[0]
    rows = {}
    for line in table.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.replace("\\|", "\0").strip("|").split("|")]
            rows[cells[0].strip("`")] = (cells[1], cells[2].replace("\0", "|"))
    return rows


@pytest.mark.parametrize("kind", TABLES)
def test_the_docs_table_is_the_table(kind: str) -> None:
    assert _doc_rows(kind) == {f.path: (f.support.value, f.note) for f in TABLES[kind]}, (
        "run `make docs-tables` to write the tables of docs/api.md from canary/domain/flagger_fields.py")


def test_every_status_is_documented() -> None:
    doc = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for support in Support:
        assert f"**{support.value}**" in doc
