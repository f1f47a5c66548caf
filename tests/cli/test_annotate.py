from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

import pytest

from canary.cli.annotate import Action, Request, annotate, is_confirmed, request_for
from canary.cli.errors import CanaryNotFound, ExitCode, UsageError
from canary.cli.follow import CanaryDeleted
from canary.domain.status import Annotation
from tests.cli.fakes import NOW, FakeCanaryClient, canary, confirming_controller, silent_controller

PHASES = {"rollback": "Failed", "promote": "Promoting", "retry": "Progressing"}


def _run(client: FakeCanaryClient, action: Action, *, reason: str | None = None, wait: bool = True,
         timeout: float = 30.0, name: str = "podinfo") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = annotate(client, "default", name, action, reason=reason, wait=wait, timeout=timeout, user="alice",
                    out=out, err=err, clock=client.clock, now=lambda: NOW)
    return code, out.getvalue(), err.getvalue()


def _progressing(**status: Any) -> dict[str, Any]:
    return canary(status={"phase": "Progressing", "canaryWeight": 20, **status})


# --- what is written -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "reason", "expected"),
    [
        pytest.param(Action.ROLLBACK, "p99 too high", Request(Annotation.ROLLBACK, "p99 too high"), id="rollback"),
        pytest.param(Action.ROLLBACK, None, Request(Annotation.ROLLBACK, "requested by alice with the canary CLI"),
                     id="rollback-default-reason"),
        pytest.param(Action.PROMOTE, None, Request(Annotation.PROMOTE, "true"), id="promote"),
        pytest.param(Action.PAUSE, None, Request(Annotation.PAUSE, "true"), id="pause"),
        pytest.param(Action.RESUME, None, Request(Annotation.PAUSE, None), id="resume-removes-pause"),
        pytest.param(Action.RETRY, None, Request(Annotation.RETRY, "2024-05-01T10:03:20.000000Z"), id="retry"),
    ],
)
def test_request_for(action: Action, reason: str | None, expected: Request) -> None:
    assert request_for(action, now=NOW, user="alice", reason=reason) == expected


def test_repeated_rollback_reason_is_made_new() -> None:
    request = request_for(Action.ROLLBACK, now=NOW, user="alice", reason="bad", handled={"rollback": "bad"})
    assert request.value == "bad (2024-05-01T10:03:20.000000Z)"


def test_promote_after_an_earlier_release_writes_a_fresh_value() -> None:
    # "true" was handled for the previous release; writing it again would change nothing.
    request = request_for(Action.PROMOTE, now=NOW, user="alice", handled={"promote": "true"})
    assert request.annotation.short == "promote"
    assert request.value not in (None, "true", "false")


def test_retry_values_differ_over_time() -> None:
    later = datetime(2024, 5, 1, 10, 3, 20, 1, tzinfo=timezone.utc)
    assert request_for(Action.RETRY, now=NOW, user="a").value != request_for(Action.RETRY, now=later, user="a").value


def test_empty_rollback_reason_is_refused() -> None:
    with pytest.raises(UsageError, match="--reason must not be empty"):
        request_for(Action.ROLLBACK, now=NOW, user="alice", reason="  ")


@pytest.mark.parametrize(
    ("handled", "wanted", "confirmed"),
    [
        pytest.param({"pause": "true"}, Request(Annotation.PAUSE, "true"), True, id="value-matches"),
        pytest.param({"rollback": "old"}, Request(Annotation.ROLLBACK, "new"), False, id="older-value"),
        pytest.param({}, Request(Annotation.PROMOTE, "true"), False, id="nothing-handled"),
        pytest.param({}, Request(Annotation.PAUSE, None), True, id="removal-done"),
        pytest.param({"pause": "true"}, Request(Annotation.PAUSE, None), False, id="removal-pending"),
    ],
)
def test_is_confirmed(handled: dict[str, str], wanted: Request, confirmed: bool) -> None:
    assert is_confirmed(canary(status={"handledAnnotations": handled}), wanted) is confirmed


# --- against a controller ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "key", "value", "phase"),
    [
        pytest.param(Action.ROLLBACK, "canary.dev/rollback", "p99 too high", "Failed", id="rollback"),
        pytest.param(Action.PROMOTE, "canary.dev/promote", "true", "Promoting", id="promote"),
        pytest.param(Action.PAUSE, "canary.dev/pause", "true", "Progressing", id="pause"),
        pytest.param(Action.RETRY, "canary.dev/retry", "2024-05-01T10:03:20.000000Z", "Progressing", id="retry"),
    ],
)
def test_confirmed_by_the_controller(action: Action, key: str, value: str, phase: str) -> None:
    client = FakeCanaryClient(_progressing(), controller=confirming_controller(PHASES))
    code, out, err = _run(client, action, reason="p99 too high")
    assert (code, err) == (ExitCode.OK, "")
    assert client.patches == [("default", "podinfo", {key: value})]
    assert out == f"default/podinfo: controller confirmed {key}={value}; phase {phase}\n"


def test_resume_removes_pause_and_waits_for_its_receipt_to_go() -> None:
    paused = canary(status={"phase": "Progressing", "handledAnnotations": {"pause": "true"}},
                    annotations={"canary.dev/pause": "true"})
    client = FakeCanaryClient(paused, controller=confirming_controller())
    code, out, _ = _run(client, Action.RESUME)
    assert code == ExitCode.OK
    assert client.patches == [("default", "podinfo", {"canary.dev/pause": None})]
    assert "canary.dev/pause" not in client.store["default", "podinfo"]["metadata"]["annotations"]
    assert out == "default/podinfo: controller confirmed removal of canary.dev/pause; phase Progressing\n"


def test_pausing_a_paused_canary_confirms_at_once() -> None:
    paused = canary(status={"phase": "Progressing", "handledAnnotations": {"pause": "true"}},
                    annotations={"canary.dev/pause": "true"})
    client = FakeCanaryClient(paused, controller=silent_controller)
    code, _, _ = _run(client, Action.PAUSE)
    assert code == ExitCode.OK
    assert client.watches == []


def test_rollback_repeating_a_handled_reason_still_reaches_the_controller() -> None:
    client = FakeCanaryClient(_progressing(handledAnnotations={"rollback": "bad"}),
                              controller=confirming_controller(PHASES))
    code, out, _ = _run(client, Action.ROLLBACK, reason="bad")
    assert code == ExitCode.OK
    assert client.patches[0][2] == {"canary.dev/rollback": "bad (2024-05-01T10:03:20.000000Z)"}


def test_receipt_may_arrive_after_unrelated_changes() -> None:
    client = FakeCanaryClient(_progressing(), controller=silent_controller)
    unrelated = _progressing(canaryWeight=30)
    client.emit("MODIFIED", unrelated)
    receipt = _progressing(canaryWeight=0, phase="Failed", handledAnnotations={"rollback": "why"})
    receipt["metadata"]["annotations"] = {"canary.dev/rollback": "why"}
    client.emit("MODIFIED", receipt)
    code, out, _ = _run(client, Action.ROLLBACK, reason="why")
    assert code == ExitCode.OK
    assert out.endswith("phase Failed\n")


@pytest.mark.parametrize("action", list(Action))
def test_no_receipt_is_a_timeout(action: Action) -> None:
    # An old receipt for pause keeps both pause and resume waiting.
    start = canary(status={"phase": "Progressing", "handledAnnotations": {"pause": "old"}})
    client = FakeCanaryClient(start, controller=silent_controller)
    code, out, err = _run(client, action, timeout=30.0)
    assert (code, out) == (ExitCode.TIMEOUT, "")
    assert "the controller did not confirm" in err
    assert "within 30s" in err
    assert "Is the canary controller running, and does it watch namespace default?" in err
    assert client.clock.now >= 1030.0


def test_no_wait_returns_after_writing() -> None:
    client = FakeCanaryClient(_progressing(), controller=silent_controller)
    code, out, _ = _run(client, Action.PROMOTE, wait=False)
    assert code == ExitCode.OK
    assert out == "default/podinfo: wrote canary.dev/promote=true; not waiting for the controller\n"
    assert client.watches == []


def test_unknown_canary() -> None:
    with pytest.raises(CanaryNotFound, match="canary default/nope not found"):
        _run(FakeCanaryClient(), Action.PAUSE, name="nope")


def test_deleted_while_waiting() -> None:
    obj = _progressing()
    client = FakeCanaryClient(obj, controller=silent_controller)
    client.emit("DELETED", obj)
    with pytest.raises(CanaryDeleted, match="was deleted while waiting"):
        _run(client, Action.PAUSE)
