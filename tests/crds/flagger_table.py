"""Writes docs/api.md's tables of Flagger's fields from canary/domain/flagger_fields.py.

``make docs-tables`` runs it; tests/crds/test_flagger_fields.py fails until the docs match.
"""

from __future__ import annotations

from pathlib import Path

from canary.domain.flagger_fields import CANARY_FIELDS, METRIC_TEMPLATE_FIELDS, FieldSupport

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
SECTION = "\n## Flagger's fields, one by one\n"
TABLES = {"Canary": CANARY_FIELDS, "MetricTemplate": METRIC_TEMPLATE_FIELDS}


def markdown(fields: tuple[FieldSupport, ...]) -> str:
    rows = ["| Flagger field | here | meaning, or why refused and what instead |", "|---|---|---|"]
    rows += [f"| `{f.path}` | {f.support.value} | {f.note.replace('|', chr(92) + '|')} |" for f in fields]
    return "\n".join(rows)


def rewrite(doc: str) -> str:
    head, rest = doc.split(SECTION, 1)
    section, tail = rest.split("\n## ", 1)
    for heading, fields in TABLES.items():
        before, after = section.split(f"\n### {heading}\n\n", 1)
        old_table, _, remainder = after.partition("\n\n")
        section = f"{before}\n### {heading}\n\n{markdown(fields)}\n\n{remainder}"
    return f"{head}{SECTION}{section}\n## {tail}"


if __name__ == "__main__":
    DOC.write_text(rewrite(DOC.read_text(encoding="utf-8")), encoding="utf-8")
