"""``canary convert`` and ``canary lint``: port a Flagger manifest, saying field by field what changes.

``convert`` writes the manifest with ``apiVersion: canary.dev/v1alpha1`` (stdout or ``-o``);
``lint`` only reports. Both report on stderr and exit 4 (:attr:`ExitCode.REFUSED`) when the API
server or the controller would refuse anything, so a CI job can gate on the port. The output is
written even then: it is the starting point for fixing what the report names.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from canary.cli.errors import CliError, ExitCode, InputError
from canary.cli.manifests import read_documents, write_document
from canary.cli.porting import PortedDocument, PortOptions, Severity, port_document

__all__ = ["convert", "render_report"]

_ORDER = {Severity.REFUSED: 0, Severity.DIFFERS: 1, Severity.NOTE: 2}
STDIN = "-"


def convert(args: argparse.Namespace, *, stdin: TextIO, out: TextIO, err: TextIO) -> int:
    source = "standard input" if args.file == STDIN else args.file
    documents = read_documents(_read(args.file, stdin), source)
    options = PortOptions(flagger_no_data=args.flagger_no_data, default_provider=args.default_provider)
    ported = [port_document(doc.value, options) for doc in documents]
    err.write(render_report(ported))
    if args.command == "convert":
        text = "".join(write_document(doc, p.output) for doc, p in zip(documents, ported, strict=True))
        _write(text, args.output, out)
    return ExitCode.REFUSED if any(p.refused for p in ported) else ExitCode.OK


def render_report(ported: Sequence[PortedDocument]) -> str:
    """One line per finding, each starting with the document it is about, then a summary."""
    lines: list[str] = []
    for number, doc in enumerate(ported, start=1):
        if doc.output is None:
            continue
        label = doc.label if doc.name else f"{doc.label} (document {number})"
        for finding in sorted(doc.findings, key=lambda f: _ORDER[f.severity]):
            lines.append(f"{label}: {finding.severity.value} {finding.field}: {finding.message}")
            # The parser's words are shown when they add to the table's (not when they repeat them).
            if finding.parser is not None and finding.parser != f"{finding.field}: {finding.message}":
                lines.append(f"{label}:   the controller's parser: {finding.parser}")
        if doc.checked:
            verdict = f"refused ({_count(doc, Severity.REFUSED)})" if doc.refused else "accepted"
            lines.append(f"{label}: {verdict}")
        elif not doc.refused:
            lines.append(f"{label}: not a Flagger object, unchanged")
    # Flagger objects: the ones checked, and the Flagger kinds refused whole (AlertProvider).
    flagger = [d for d in ported if d.checked or d.refused]
    refused = sum(d.refused for d in flagger)
    lines.append(f"{len(flagger)} Flagger object(s): {len(flagger) - refused} accepted, {refused} refused"
                 + (f" (exit {ExitCode.REFUSED.value})" if refused else ""))
    return "\n".join(lines) + "\n"


def _count(doc: PortedDocument, severity: Severity) -> str:
    n = sum(f.severity is severity for f in doc.findings)
    return f"{n} field" + ("" if n == 1 else "s")


def _read(path: str, stdin: TextIO) -> str:
    if path == STDIN:
        return stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc


def _write(text: str, path: str | None, out: TextIO) -> None:
    if path is None or path == STDIN:
        out.write(text)
        return
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc}") from exc
