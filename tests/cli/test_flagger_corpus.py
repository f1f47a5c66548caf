"""The converter on the Flagger-style corpus: every table field is exercised, and each document
ends as its annotation declares."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pytest
import yaml

from canary.cli.app import execute
from canary.cli.errors import ExitCode
from canary.cli.porting import PortOptions, Severity, port_document
from canary.domain.flagger_fields import occurrences
from canary.domain.flagger_fields import CANARY_FIELDS, METRIC_TEMPLATE_FIELDS, FieldSupport
from canary.domain.spec import parse_canary_spec, parse_metric_template_spec
from canary.errors import SpecError
from tests.crds.schema_validator import Invalid, load_crds
from tests.flagger_corpus.expectations import CORPUS, CorpusDocument, Outcome, checked

CHECKED = checked()
TABLES: dict[str, tuple[FieldSupport, ...]] = {"Canary": CANARY_FIELDS, "MetricTemplate": METRIC_TEMPLATE_FIELDS}


@pytest.mark.parametrize("kind", TABLES)
def test_every_field_of_the_table_is_set_by_some_corpus_document(kind: str) -> None:
    docs = [d.document for d in CHECKED if d.kind == kind]
    missing = [f.path for f in TABLES[kind] if not any(next(occurrences(doc, f.path), None) for doc in docs)]
    assert not missing, f"no corpus document sets {missing}: add one to {CORPUS}"


def test_the_corpus_has_each_outcome() -> None:
    assert {d.outcome for d in CHECKED} == set(Outcome)


@pytest.mark.parametrize("doc", CHECKED, ids=lambda d: d.id)
def test_each_document_ends_as_declared(doc: CorpusDocument) -> None:
    before = copy.deepcopy(doc.document)
    ported = port_document(doc.document, PortOptions(flagger_no_data=True))
    assert doc.document == before, "the input is not modified"
    refused = [f.field for f in ported.findings if f.severity is Severity.REFUSED]
    assert ported.output["apiVersion"] == "canary.dev/v1alpha1"
    if doc.outcome is Outcome.ACCEPTED:
        assert refused == []
        parse = parse_canary_spec if doc.kind == "Canary" else parse_metric_template_spec
        parse(ported.output["spec"])  # raises SpecError naming the field if the port is wrong
    else:
        assert sorted(refused) == sorted(doc.refused_fields)


@pytest.mark.parametrize("doc", [d for d in CHECKED if d.outcome is Outcome.REFUSED_AT_ADMISSION], ids=lambda d: d.id)
def test_fields_the_parser_refuses_carry_its_exact_error(doc: CorpusDocument) -> None:
    parse = parse_canary_spec if doc.kind == "Canary" else parse_metric_template_spec
    with pytest.raises(SpecError) as first:
        parse(doc.document["spec"])
    findings = {f.field: f for f in port_document(doc.document, PortOptions()).findings}
    assert findings[first.value.field].parser == str(first.value)


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.yaml")), ids=lambda p: p.name)
def test_lint_exits_4_exactly_when_a_file_holds_a_refusal(path: Path) -> None:
    err = io.StringIO()
    code = execute(["lint", "-f", str(path)], stdout=io.StringIO(), stderr=err)
    refusing = any(d.file == path.name and d.outcome is not Outcome.ACCEPTED for d in CHECKED)
    assert code == (ExitCode.REFUSED if refusing else ExitCode.OK), err.getvalue()


def test_the_report_names_every_refused_field_with_its_document() -> None:
    err = io.StringIO()
    assert execute(["lint", "-f", str(CORPUS / "refused-fields.yaml")], stderr=err) == ExitCode.REFUSED
    report = err.getvalue()
    for doc in CHECKED:
        if doc.file != "refused-fields.yaml":
            continue
        for field in doc.refused_fields:
            assert f"Canary test/{doc.name}: refused {field}: " in report, report
        assert f"Canary test/{doc.name}: refused (" in report


@pytest.mark.parametrize("doc", CHECKED, ids=lambda d: d.id)
def test_the_crd_admits_or_refuses_each_ported_document_as_declared(doc: CorpusDocument) -> None:
    """The unit-test admission pipeline (tests/crds/schema_validator.py); e2e/test_flagger_corpus.py
    asks the real API server the same question."""
    ported = port_document(doc.document, PortOptions()).output
    validator = load_crds()[doc.kind]
    if doc.outcome is Outcome.REFUSED_AT_ADMISSION:
        with pytest.raises(Invalid) as refused:
            validator.admit(ported)
        # The schema refuses exactly the fields the converter names: neither says more than the other.
        assert {e.path for e in refused.value.errors} == set(doc.refused_fields), refused.value
    else:
        admitted = validator.admit(ported)
        assert admitted.pruned == [], "strict field validation would refuse these unknown fields"


@pytest.mark.parametrize("flags", [[], ["--flagger-no-data"]], ids=["plain", "flagger-no-data"])
@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.yaml")), ids=lambda p: p.name)
def test_convert_writes_each_port_with_the_files_comments(path: Path, flags: list[str]) -> None:
    out = io.StringIO()
    execute(["convert", "-f", str(path), *flags], stdout=out, stderr=io.StringIO())
    source = path.read_text()
    options = PortOptions(flagger_no_data=bool(flags))
    expected = [port_document(doc, options).output for doc in yaml.safe_load_all(source) if doc is not None]
    assert [d for d in yaml.safe_load_all(out.getvalue()) if d is not None] == expected
    comments = [line.strip() for line in source.splitlines() if line.strip().startswith("#")]
    assert all(c in out.getvalue() for c in comments), "every comment is kept"
