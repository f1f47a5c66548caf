"""The audit-log reader of the fault suite: parsing the API server's events, and the proofs built
on them (who held the Lease when, who wrote while not holding it)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster.audit import WRITE_VERBS as POLICY_WRITE_VERBS
from e2e.cluster.audit import audit_flags, audit_policy
from e2e.harness.attribution import (
    first_write,
    holder_at,
    lease_tenures,
    unattributed_writes,
    writes_by,
    writes_by_non_holders,
)
from e2e.harness.audit import (
    WRITE_VERBS,
    AuditFormatError,
    AuditLog,
    AuditRecord,
    controller_identity,
    parse_lines,
    parse_record,
)

NS = "chaos-a1b2c3"
LEASE = "canary-controller"
T0 = datetime(2026, 12, 6, 20, 0, 0, tzinfo=timezone.utc)
A, B = "host_101", "host_202"


def agent(identity: str) -> str:
    return f"canary-controller/0.4.0 ({identity})"


def event(*, verb: str = "patch", user_agent: str = agent(A), resource: str = "canaries", name: str = "podinfo",
          namespace: str | None = NS, subresource: str | None = "status", group: str = "canary.dev",
          code: int = 200, at: float = 0.0, took: float = 0.004, user: str = "admin") -> dict[str, Any]:
    """An event shaped like kube-apiserver 1.34 writes them at Metadata level."""
    received = T0 + timedelta(seconds=at)
    ref: dict[str, Any] = {"resource": resource, "name": name, "apiGroup": group, "apiVersion": "v1"}
    if namespace is not None:
        ref["namespace"] = namespace
    if subresource is not None:
        ref["subresource"] = subresource
    return {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": f"id-{verb}-{name}-{at}", "stage": "ResponseComplete",
        "requestURI": f"/apis/{group}/v1/namespaces/{namespace}/{resource}/{name}",
        "verb": verb, "user": {"username": user, "groups": ["system:masters", "system:authenticated"]},
        "sourceIPs": ["127.0.0.1"], "userAgent": user_agent, "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": received.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "stageTimestamp": (received + timedelta(seconds=took)).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }


def record(**fields: Any) -> AuditRecord:
    return parse_record(json.dumps(event(**fields)))


def lease_write(identity: str, at: float, code: int = 200) -> AuditRecord:
    return record(verb="update", user_agent=agent(identity), resource="leases", name=LEASE,
                  group="coordination.k8s.io", subresource=None, code=code, at=at)


def status_write(identity: str, at: float, code: int = 200) -> AuditRecord:
    return record(user_agent=agent(identity), at=at, code=code)


# --- parsing ---------------------------------------------------------------------------------

def test_a_record_names_who_what_outcome_and_when() -> None:
    parsed = record(verb="patch", at=1.5, took=0.25, code=409)
    assert (parsed.verb, parsed.user, parsed.user_agent) == ("patch", "admin", agent(A))
    assert (parsed.api_group, parsed.resource, parsed.namespace, parsed.name, parsed.subresource) == (
        "canary.dev", "canaries", NS, "podinfo", "status")
    assert parsed.code == 409 and not parsed.succeeded
    assert parsed.received == T0 + timedelta(seconds=1.5)
    assert parsed.completed == T0 + timedelta(seconds=1.75)
    assert parsed.stage == "ResponseComplete" and parsed.is_write
    assert parsed.controller_identity == A


def test_cluster_scoped_objects_have_no_namespace() -> None:
    parsed = record(resource="nodes", group="", namespace=None, subresource=None, name="kwok-node-0")
    assert parsed.namespace is None and parsed.subresource is None and parsed.api_group == ""


@pytest.mark.parametrize(("user_agent", "identity"), [
    ("canary-controller/0.4.0 (pod-7f9c_12)", "pod-7f9c_12"),
    ("canary-controller/0.4.0.dev3+g1a2b (host.example_1)", "host.example_1"),
    ("canary-controller/0.4.0", None),
    ("OpenAPI-Generator/31.0.0/python", None),
    ("kopf/1.37 (pod_1)", None),
    ("canary-e2e-harness", None),
    ("", None),
], ids=["pod", "dev-version", "no-identity", "client-default", "another-program", "harness", "empty"])
def test_the_controller_identity_comes_from_its_user_agent(user_agent: str, identity: str | None) -> None:
    assert controller_identity(user_agent) == identity


@pytest.mark.parametrize("line", [
    "not json",
    json.dumps([1, 2]),
    json.dumps({"kind": "EventList", "items": []}),
    json.dumps({"kind": "Event", "stage": "ResponseComplete"}),
    json.dumps({**event(), "requestReceivedTimestamp": "yesterday"}),
    json.dumps({**event(), "stageTimestamp": "2026-12-06T20:00:00"}),
    json.dumps({k: v for k, v in event().items() if k != "requestReceivedTimestamp"}),
], ids=["text", "array", "other-kind", "no-verb", "bad-time", "naive-time", "no-received-time"])
def test_what_is_not_an_audit_event_is_refused_by_name(line: str) -> None:
    with pytest.raises(AuditFormatError):
        parse_record(line)


def test_blank_lines_are_skipped_and_order_is_kept() -> None:
    lines = [json.dumps(event(at=2)), "", "  ", json.dumps(event(at=1))]
    assert [r.received for r in parse_lines(lines)] == [T0 + timedelta(seconds=2), T0 + timedelta(seconds=1)]


def test_the_policy_records_exactly_the_verbs_the_reader_calls_writes(tmp_path: Path) -> None:
    assert set(POLICY_WRITE_VERBS) == WRITE_VERBS
    rules = audit_policy()["rules"]
    assert rules[0] == {"level": "Metadata", "verbs": list(POLICY_WRITE_VERBS)}
    assert rules[-1] == {"level": "None"}, "everything else, reads included, is not recorded"
    flags = audit_flags(tmp_path)
    assert f"--audit-log-path={tmp_path / 'audit' / 'audit.log'}" in flags
    assert (tmp_path / "audit" / "policy.yaml").is_file()


def test_a_policy_with_reads_records_every_request_and_says_so_in_the_file(tmp_path: Path) -> None:
    assert audit_policy(reads=True)["rules"] == [{"level": "Metadata"}]
    audit_flags(tmp_path, reads=True)
    assert "level: None" not in (tmp_path / "audit" / "policy.yaml").read_text()


def test_the_log_is_read_from_a_mark_and_a_half_written_line_waits(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    assert log.mark() == 0 and log.records() == []
    log.path.write_text(json.dumps(event(at=1)) + "\n")
    mark = log.mark()
    with log.path.open("a") as handle:
        handle.write(json.dumps(event(at=2)) + "\n" + json.dumps(event(at=3))[:40])
    assert [r.received for r in log.records(mark)] == [T0 + timedelta(seconds=2)]
    assert len(log.records()) == 2


def test_waiting_on_the_log_returns_once_the_records_are_there(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    log.path.write_text(json.dumps(event(name="fence", verb="create")) + "\n")
    found = log.wait_for(lambda rs: any(r.name == "fence" for r in rs), since=0, timeout=5, what="the fence")
    assert [r.name for r in found] == ["fence"]
    with pytest.raises(AssertionError, match="the missing fence"):
        log.wait_for(lambda rs: any(r.name == "other" for r in rs), since=0, timeout=0, what="the missing fence")


# --- attribution -----------------------------------------------------------------------------

def test_the_lease_changes_hands_only_on_successful_writes() -> None:
    records = [lease_write(A, 0), lease_write(A, 2), lease_write(B, 3, code=409), lease_write(B, 17),
               lease_write(B, 19)]
    tenures = lease_tenures(records, namespace=NS, lease=LEASE)
    assert [t.identity for t in tenures] == [A, B]
    assert holder_at(tenures, T0 - timedelta(seconds=1)) is None
    assert holder_at(tenures, T0 + timedelta(seconds=10)) == A
    assert holder_at(tenures, T0 + timedelta(seconds=18)) == B


def test_other_leases_and_writes_without_an_identity_do_not_make_a_holder() -> None:
    other_lease = record(verb="update", resource="leases", name="someone-else", group="coordination.k8s.io",
                         subresource=None, at=1)
    anonymous = record(verb="update", resource="leases", name=LEASE, group="coordination.k8s.io",
                       subresource=None, user_agent="OpenAPI-Generator/31.0.0/python", at=1)
    assert lease_tenures([other_lease, anonymous], namespace=NS, lease=LEASE) == []


def test_a_write_by_a_replica_that_no_longer_holds_the_lease_is_found() -> None:
    records = [lease_write(A, 0), status_write(A, 1), lease_write(B, 17), status_write(B, 18),
               status_write(A, 30, code=409)]
    found = writes_by_non_holders(records, namespace=NS, lease=LEASE)
    assert [(r.controller_identity, r.code) for r in found] == [(A, 409)], "refused or not, it was sent"


def test_writes_in_turn_with_the_lease_are_clean() -> None:
    records = [lease_write(A, 0), status_write(A, 1), status_write(A, 5), lease_write(B, 17), status_write(B, 18)]
    assert writes_by_non_holders(records, namespace=NS, lease=LEASE) == []


def test_a_write_before_anyone_held_the_lease_is_found() -> None:
    assert len(writes_by_non_holders([status_write(A, 0), lease_write(A, 1)], namespace=NS, lease=LEASE)) == 1


def test_writes_by_and_first_write_look_after_a_moment() -> None:
    records = [lease_write(B, 17), status_write(A, 10), status_write(B, 19), status_write(B, 21)]
    after = T0 + timedelta(seconds=15)
    assert [r.received for r in writes_by(records, B, after=after)] == [
        T0 + timedelta(seconds=s) for s in (17, 19, 21)]
    assert writes_by(records, A, after=after) == []
    act = first_write(records, B, namespace=NS, lease=LEASE, after=after)
    assert act is not None and act.received == T0 + timedelta(seconds=19), "the Lease write is not an act"
    assert first_write(records, A, namespace=NS, lease=LEASE, after=after) is None


def test_writes_with_the_controllers_credentials_that_name_nobody_are_unattributed() -> None:
    records = [
        status_write(A, 1),
        record(user_agent="canary-e2e-harness", resource="deployments", group="apps", subresource=None, at=2),
        record(user_agent="kopf/1.37", at=3),
        record(user_agent="kube-controller-manager/v1.34.4", user="system:serviceaccount:kube-system:rs", at=4),
        record(user_agent="kopf/1.37", namespace="elsewhere", at=5),
        record(verb="get", user_agent="kopf/1.37", at=6),
    ]
    stray = unattributed_writes(records, namespace=NS, user="admin", harness_agent="canary-e2e-harness")
    assert [r.user_agent for r in stray] == ["kopf/1.37"] and stray[0].received == T0 + timedelta(seconds=3)
