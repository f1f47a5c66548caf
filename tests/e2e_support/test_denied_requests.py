"""The harness's RBAC check excuses refusals only while a scenario had kube-apiserver restarting."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from e2e.harness.controller import DENIED, logged_within

STOPPED = datetime(2026, 12, 7, 16, 26, 19, tzinfo=timezone.utc)
READY = STOPPED + timedelta(seconds=4)


def refusal(at: datetime) -> str:
    return json.dumps({"error": 'canaries.canary.dev "podinfo" is forbidden: User "system:serviceaccount:x:canary" '
                                'cannot patch resource "canaries/status"',
                       "timestamp": at.isoformat().replace("+00:00", "Z")})


def test_a_refusal_while_the_api_server_was_restarting_is_excused() -> None:
    line = refusal(STOPPED + timedelta(seconds=3, milliseconds=700))
    assert DENIED.search(line)
    assert logged_within(line, [(STOPPED, READY)])
    assert logged_within(line, [(STOPPED, None)]), "a restart not yet over is open-ended"


def test_a_refusal_before_or_after_the_restart_counts() -> None:
    for at in (STOPPED - timedelta(milliseconds=1), READY + timedelta(milliseconds=1)):
        assert not logged_within(refusal(at), [(STOPPED, READY)])
    assert not logged_within(refusal(STOPPED + timedelta(seconds=1)), []), "no restart, no excuse"


def test_a_line_without_a_timestamp_is_never_excused() -> None:
    for line in ("403 Forbidden: secrets is forbidden: User x", json.dumps(["is forbidden: User"]),
                 json.dumps({"message": "is forbidden: User x"}), json.dumps({"timestamp": "yesterday"})):
        assert not logged_within(line, [(STOPPED, None)])
