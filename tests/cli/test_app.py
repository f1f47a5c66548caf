from __future__ import annotations

import io
import os
import sys
import types

import pytest

from canary.__main__ import main
from canary.cli.app import execute
from canary.cli.args import build_parser
from canary.cli.client import CanaryClient
from canary.cli.errors import ClusterError, ExitCode
from canary.config import Settings
from tests.cli.fakes import NOW, Connections, FakeCanaryClient, canary, confirming_controller

COMMANDS = ["run", "status", "watch", "wait", "rollback", "promote", "pause", "resume", "retry"]


def test_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in COMMANDS:
        assert command in text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: canary {command}")


def test_wait_help_explains_the_previous_release_caveat(capsys: pytest.CaptureFixture[str]) -> None:
    main(["wait", "--help"])
    assert "previous" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("canary ")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([], id="no-command"),
        pytest.param(["frobnicate"], id="unknown-command"),
        pytest.param(["wait", "x"], id="missing-for"),
        pytest.param(["wait", "x", "--for", "done"], id="bad-goal"),
        pytest.param(["pause", "x", "--timeout", "soon"], id="bad-duration"),
        pytest.param(["run", "--mesh", "consul"], id="bad-choice"),
    ],
)
def test_usage_errors_exit_64_not_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == ExitCode.USAGE
    assert "usage:" in capsys.readouterr().err


def _never_connect(kubeconfig: str | None, context: str | None) -> CanaryClient:
    raise AssertionError("no cluster needed")


def test_status_name_with_all_namespaces_is_a_usage_error() -> None:
    err = io.StringIO()
    assert execute(["status", "x", "-A"], connect=_never_connect, stderr=err) == ExitCode.USAGE
    assert "--all-namespaces cannot be combined" in err.getvalue()


def test_invalid_environment_for_run_is_a_usage_error() -> None:
    err = io.StringIO()
    assert execute(["run"], env={"CANARY_METRICS_PORT": "x"}, stderr=err) == ExitCode.USAGE
    assert "CANARY_METRICS_PORT" in err.getvalue()


def test_run_hands_settings_to_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[Settings] = []
    fake = types.ModuleType("canary.kube.operator")
    fake.run = received.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "canary.kube.operator", fake)
    monkeypatch.setenv("KUBECONFIG", "/original")
    code = execute(["run", "--namespace", "shop", "--kubeconfig", "/tmp/kc"], env={"CANARY_MESH": "istio"})
    assert code == ExitCode.OK
    assert [(s.namespaces, s.metrics.mesh.value) for s in received] == [(("shop",), "istio")]
    assert os.environ["KUBECONFIG"] == "/tmp/kc"


def _execute(argv: list[str], client: FakeCanaryClient) -> tuple[int, str, str, Connections]:
    out, err = io.StringIO(), io.StringIO()
    connect = Connections(client)
    code = execute(argv, connect=connect, env={"USER": "bob"}, stdout=out, stderr=err, clock=client.clock,
                   now=lambda: NOW)
    return code, out.getvalue(), err.getvalue(), connect


def test_commands_use_the_context_namespace_by_default() -> None:
    client = FakeCanaryClient(canary(namespace="team-a", status={"phase": "Succeeded"}), default_namespace="team-a")
    code, out, _, connect = _execute(["wait", "podinfo", "--for", "succeeded", "--context", "prod"], client)
    assert code == ExitCode.OK
    assert connect.calls == [(None, "prod")]
    assert "team-a/podinfo is succeeded" in out


def test_rollback_end_to_end() -> None:
    client = FakeCanaryClient(canary(status={"phase": "Progressing"}),
                              controller=confirming_controller({"rollback": "Failed"}))
    code, out, _, _ = _execute(["rollback", "podinfo", "-n", "default", "--kubeconfig", "/kc"], client)
    assert code == ExitCode.OK
    assert client.patches == [("default", "podinfo", {"canary.dev/rollback": "requested by bob with the canary CLI"})]
    assert out.endswith("phase Failed\n")


def test_status_all_namespaces_end_to_end() -> None:
    client = FakeCanaryClient(canary(), canary(name="b", namespace="other"))
    code, out, _, _ = _execute(["status", "-A"], client)
    assert code == ExitCode.OK
    # One line per Canary under a header, as kubectl get -A prints.
    assert [line.split()[:2] for line in out.splitlines()] == [["NAMESPACE", "NAME"], ["default", "podinfo"],
                                                               ["other", "b"]]


def test_missing_canary_exits_3() -> None:
    code, _, err, _ = _execute(["promote", "ghost"], FakeCanaryClient())
    assert code == ExitCode.ERROR
    assert err == "canary: error: canary default/ghost not found\n"


def test_cluster_errors_exit_3() -> None:
    def unreachable(kubeconfig: str | None, context: str | None) -> CanaryClient:
        raise ClusterError("cannot configure access to the cluster: no kubeconfig")

    err = io.StringIO()
    assert execute(["status"], connect=unreachable, stderr=err) == ExitCode.ERROR
    assert "no kubeconfig" in err.getvalue()


def test_ctrl_c_exits_130() -> None:
    def interrupted(kubeconfig: str | None, context: str | None) -> CanaryClient:
        raise KeyboardInterrupt

    assert execute(["wait", "x", "--for", "failed"], connect=interrupted) == ExitCode.INTERRUPTED


# --- durations on the command line (issue 8: a typo must not read as "the release failed") -------

ON_CALL = ["rollback", "promote", "pause", "resume", "retry"]


@pytest.mark.parametrize("command", ["wait", *ON_CALL])
@pytest.mark.parametrize("value", ["99999999999h", "999999999h", "0.0000001ms", "0s", "soon", "", "-1s", "1e9s"])
def test_a_bad_timeout_exits_64_naming_the_flag(command: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [command, "x", "--timeout", value] + (["--for", "succeeded"] if command == "wait" else [])
    assert main(argv) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "argument --timeout" in err and "Traceback" not in err
    if value and not value.startswith("-"):
        assert repr(value) in err and "from 1s to " in err


@pytest.mark.parametrize(("command", "above", "ceiling"), [("wait", "168h0.001ms", "168h"),
                                                           *((c, "1h1s", "1h") for c in ON_CALL)])
def test_a_timeout_above_its_ceiling_exits_64(command: str, above: str, ceiling: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    extra = ["--for", "succeeded"] if command == "wait" else []
    assert main([command, "x", "--timeout", above, *extra]) == ExitCode.USAGE
    assert f"longer than {ceiling}" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "ceiling"), [("wait", 168 * 3600.0), *((c, 3600.0) for c in ON_CALL)])
def test_timeouts_at_the_edges_are_accepted(command: str, ceiling: float) -> None:
    extra = ["--for", "succeeded"] if command == "wait" else []
    for text, seconds in (("1s", 1.0), (f"{int(ceiling // 3600)}h", ceiling)):
        assert build_parser().parse_args([command, "x", "--timeout", text, *extra]).timeout == seconds


def test_status_text_fits_columns_when_not_a_terminal() -> None:
    long = " ".join(["the canary answered with errors"] * 6)
    client = FakeCanaryClient(canary(status={"phase": "Failed", "message": long}))
    out = io.StringIO()
    code = execute(["status", "podinfo"], connect=Connections(client), env={"COLUMNS": "60"}, stdout=out,
                   now=lambda: NOW)
    assert code == ExitCode.OK
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 60 < len(long)
    assert sum(1 for line in lines if "answered" in line) >= 3  # the message, wrapped over several lines
