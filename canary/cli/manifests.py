"""Multi-document YAML in and out for ``canary convert``, keeping the user's comments.

PyYAML drops comments when it writes, and a manifest's comments are often its documentation. The
converter changes little (``apiVersion``, and with ``--flagger-no-data`` a ``noDataPolicy`` and a
``consecutiveErrorLimit`` line), so each document's own text is edited in place, and the edit is
kept only if reading it back gives exactly the object the converter meant to write. Otherwise that document is written
from the object, which is always right, only without its comments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from canary.cli.errors import InputError

__all__ = ["SourceDocument", "dump_document", "read_documents", "write_document"]

# A document starts at a line beginning with ``---`` (a marker, not a key such as ``---x:``).
_DOCUMENT_START = re.compile(r"(?m)^(?=---(?:[ \t]|$))")
_CONTENT = re.compile(r"^([ \t]*)[^ \t#\r\n]")


@dataclass(frozen=True)
class SourceDocument:
    value: Any  # what the document parses to; None for an empty one
    #: Its text, from its ``---`` line; None when the stream could not be cut into documents safely.
    text: str | None


def read_documents(text: str, source: str) -> list[SourceDocument]:
    """The documents of a YAML stream, each with its own text where it can be cut out alone."""
    try:
        values = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise InputError(f"{source} is not valid YAML: {exc}") from exc
    pieces = [p for p in _DOCUMENT_START.split(text) if p]
    try:
        cut = [SourceDocument(yaml.safe_load(p), p) for p in pieces]
    except yaml.YAMLError:
        cut = []
    # The cut is trusted only if it reads as the whole stream does (empty documents aside).
    if [d.value for d in cut if d.value is not None] == [v for v in values if v is not None]:
        return cut
    return [SourceDocument(v, None) for v in values]


class _Dumper(yaml.SafeDumper):
    """Block style, and multi-line strings (queries) as ``|`` literals instead of escaped lines."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_document(value: Any) -> str:
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                     explicit_start=True)


def write_document(doc: SourceDocument, output: Any) -> str:
    """The text of ``output``: ``doc``'s own text edited where that reads back as ``output``."""
    if doc.text is not None:
        edited = _edit(doc.text, doc.value, output)
        if edited is not None and _reads_as(edited, output):
            return edited if edited.endswith("\n") else edited + "\n"
    if output is None:
        return ""
    return dump_document(output)


def _reads_as(text: str, value: Any) -> bool:
    try:
        return bool(yaml.safe_load(text) == value)
    except yaml.YAMLError:
        return False


def _edit(text: str, before: Any, after: Any) -> str | None:
    if before == after:
        return text
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return None
    if before.get("apiVersion") != after.get("apiVersion"):
        text = re.sub(r"(?m)^(apiVersion:[ \t]*)([\"']?)[^\s\"'#]+\2", lambda m: m.group(1) + str(after["apiVersion"]),
                      text, count=1)
    spec_before, spec_after = before.get("spec"), after.get("spec")
    if isinstance(spec_before, Mapping) and isinstance(spec_after, Mapping):
        for key, section in spec_after.items():
            if not isinstance(section, Mapping) or not isinstance(spec_before.get(key), Mapping):
                continue
            for field, value in section.items():
                if field not in spec_before[key] and isinstance(value, str | int) and not isinstance(value, bool):
                    inserted = _insert(text, ("spec", str(key)), f"{field}: {value}")
                    if inserted is None:
                        return None
                    text = inserted
    return text


def _insert(text: str, section: tuple[str, str], line: str) -> str | None:
    """``line`` as the first field of the block mapping at ``section`` (``spec`` at the top,
    then its child), indented as that mapping's fields are; None if the text is not that shape."""
    lines = text.splitlines(keepends=True)
    at, indent = -1, ""
    for depth, key in enumerate(section):
        pattern = re.compile(rf"^{re.escape(indent)}{re.escape(key)}:[ \t]*(#.*)?\r?$")
        at = _find(lines, at + 1, pattern, len(indent) if depth else None)
        if at < 0:
            return None
        child = _child_indent(lines, at + 1)
        if child is None or len(child) <= len(indent):
            return None
        indent = child
    newline = "\r\n" if lines[at].endswith("\r\n") else "\n"
    lines.insert(at + 1, f"{indent}{line}{newline}")
    return "".join(lines)


def _find(lines: list[str], start: int, pattern: re.Pattern[str], within: int | None) -> int:
    """The first line from ``start`` matching ``pattern``, not leaving a block indented ``within``."""
    for i in range(start, len(lines)):
        content = _CONTENT.match(lines[i])
        if content is None:
            continue
        if within is not None and len(content.group(1)) < within:
            return -1
        if pattern.match(lines[i]):
            return i
    return -1


def _child_indent(lines: list[str], start: int) -> str | None:
    for i in range(start, len(lines)):
        content = _CONTENT.match(lines[i])
        if content is not None:
            return content.group(1)
    return None
