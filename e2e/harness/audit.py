"""Reading the API server's audit log (written by the local control plane, ``e2e/cluster/audit.py``).

Each line is one JSON event at Metadata level; :func:`parse_record` turns it into an
:class:`AuditRecord` with what the fault suite asks of it: who (user and user agent), what (verb,
resource, namespace, name, subresource), how it ended (response code) and when (received and
completed, as the API server's clock saw them). The controller names itself in its user agent,
``canary-controller/<version> (<identity>)`` with the identity it holds the Lease under, so a
record says which replica wrote it (:attr:`AuditRecord.controller_identity`).

:class:`AuditLog` reads the file incrementally from a byte offset (:meth:`AuditLog.mark`), so a
scenario looks only at the records of its own time window.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

#: Same as the policy's (``e2e/cluster/audit.py``); repeated here so the parser stays pure.
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})

_CONTROLLER_AGENT = re.compile(r"^canary-controller/(?P<version>\S+) \((?P<identity>[^()]+)\)")


class AuditFormatError(ValueError):
    """A line of the audit log is not an audit event of the shape the API server writes."""


def controller_identity(user_agent: str) -> str | None:
    """The Lease identity in a ``canary-controller/<version> (<identity>)`` user agent, else None."""
    found = _CONTROLLER_AGENT.match(user_agent)
    return found.group("identity") if found else None


@dataclass(frozen=True)
class AuditRecord:
    """One request as the API server recorded it."""

    audit_id: str
    stage: str
    verb: str
    user: str
    user_agent: str
    uri: str
    api_group: str
    resource: str | None
    namespace: str | None
    name: str | None
    subresource: str | None
    code: int | None
    received: datetime
    """When the API server received the request (``requestReceivedTimestamp``)."""
    completed: datetime
    """When the recorded stage happened (``stageTimestamp``): the response, for ResponseComplete."""

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS

    @property
    def succeeded(self) -> bool:
        return self.code is not None and 200 <= self.code < 300

    @property
    def controller_identity(self) -> str | None:
        return controller_identity(self.user_agent)

    def describe(self) -> str:
        """A line for failure messages: when, who, what, how it ended."""
        target = "/".join(p for p in (self.namespace, self.resource, self.name) if p)
        sub = f"/{self.subresource}" if self.subresource else ""
        return (f"{self.received.isoformat(timespec='milliseconds')} {self.verb} {target}{sub} -> {self.code} "
                f"by {self.user!r} ({self.user_agent!r})")


def _timestamp(event: dict[str, Any], key: str) -> datetime:
    value = event.get(key)
    if not isinstance(value, str):
        raise AuditFormatError(f"audit event {event.get('auditID')!r} has no {key}")
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError as exc:
        raise AuditFormatError(f"audit event {event.get('auditID')!r}: {key} {value!r} is not a time") from exc
    if stamp.tzinfo is None:
        raise AuditFormatError(f"audit event {event.get('auditID')!r}: {key} {value!r} has no time zone")
    return stamp


def parse_record(line: str) -> AuditRecord:
    """One line of the audit log; :class:`AuditFormatError` if it is not an audit event."""
    try:
        event = json.loads(line)
    except ValueError as exc:
        raise AuditFormatError(f"not JSON: {line[:120]!r}") from exc
    if not isinstance(event, dict) or event.get("kind") != "Event" or "verb" not in event:
        raise AuditFormatError(f"not an audit event: {line[:120]!r}")
    ref = event.get("objectRef") or {}
    user = event.get("user") or {}
    status = event.get("responseStatus") or {}
    code = status.get("code")
    return AuditRecord(
        audit_id=str(event.get("auditID", "")),
        stage=str(event.get("stage", "")),
        verb=str(event["verb"]),
        user=str(user.get("username", "")),
        user_agent=str(event.get("userAgent", "")),
        uri=str(event.get("requestURI", "")),
        api_group=str(ref.get("apiGroup", "")),
        resource=ref.get("resource"),
        namespace=ref.get("namespace"),
        name=ref.get("name"),
        subresource=ref.get("subresource"),
        code=int(code) if isinstance(code, int) else None,
        received=_timestamp(event, "requestReceivedTimestamp"),
        completed=_timestamp(event, "stageTimestamp"),
    )


def parse_lines(lines: Iterable[str]) -> list[AuditRecord]:
    """Every record in ``lines`` (blank lines skipped), in file order."""
    return [parse_record(line) for line in lines if line.strip()]


@dataclass
class AuditLog:
    """The audit log file of a running API server, read from byte offsets."""

    path: Path

    def mark(self) -> int:
        """An offset: :meth:`records` since it returns only what was logged after this call."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def records(self, since: int = 0) -> list[AuditRecord]:
        """Complete records logged after offset ``since``, in file order (the order they completed).

        A line still being written (no newline yet) is left for the next read.
        """
        try:
            with self.path.open("rb") as handle:
                handle.seek(since)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        return parse_lines(complete.decode().splitlines())

    def wait_for(
        self,
        accept: Callable[[Sequence[AuditRecord]], bool],
        *,
        since: int,
        timeout: float,
        what: str,
    ) -> list[AuditRecord]:
        """Poll the records since ``since`` until ``accept`` takes them; return them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.records(since)
            if accept(found):
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} in {self.path} "
                                     f"({len(found)} records since offset {since})")
            time.sleep(0.2)
