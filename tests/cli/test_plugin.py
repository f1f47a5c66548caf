"""``kubectl-canary``: the same commands as ``canary``, under kubectl's conventions."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from canary.cli import plugin
from canary.cli.app import execute
from canary.cli.args import build_plugin_parser
from canary.cli.errors import ExitCode
from tests.cli.fakes import NOW, Connections, FakeCanaryClient, canary, confirming_controller

PLUGIN_COMMANDS = ["status", "watch", "wait", "report", "rollback", "promote", "pause", "resume", "retry"]


def _kubectl_canary(argv: list[str], client: FakeCanaryClient) -> tuple[int, str, str, Connections]:
    out, err = io.StringIO(), io.StringIO()
    connect = Connections(client)
    code = execute(plugin.hoist_global_flags(argv), connect=connect, env={"USER": "bob"}, stdout=out, stderr=err,
                   clock=client.clock, now=lambda: NOW, build=build_plugin_parser, prog=plugin.PROG)
    return code, out.getvalue(), err.getvalue(), connect


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert plugin.main(["--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: kubectl canary")
    for command in PLUGIN_COMMANDS:
        assert f"\n    {command} " in text
    # The controller and the porting tools are not operator commands.
    for command in ("run", "metrics-server", "convert", "lint"):
        assert f"\n    {command} " not in text


@pytest.mark.parametrize("command", PLUGIN_COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert plugin.main([command, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: kubectl canary {command}")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["-n", "shop", "status"], ["status", "-n", "shop"], id="namespace-first"),
        pytest.param(["--context=prod", "-A", "watch", "-o", "json"], ["watch", "--context=prod", "-A", "-o", "json"],
                     id="several-first"),
        pytest.param(["--kubeconfig", "/kc", "promote", "x"], ["promote", "--kubeconfig", "/kc", "x"], id="kubeconfig"),
        pytest.param(["status", "-n", "shop"], ["status", "-n", "shop"], id="already-after"),
        pytest.param(["-n", "shop"], ["-n", "shop"], id="no-command"),
        pytest.param(["-n", "shop", "--bogus", "status"], ["-n", "shop", "--bogus", "status"], id="unknown-flag-left"),
    ],
)
def test_kubectl_flags_may_come_before_the_command(argv: list[str], expected: list[str]) -> None:
    assert plugin.hoist_global_flags(argv) == expected


def test_namespace_context_and_kubeconfig_reach_the_connection() -> None:
    client = FakeCanaryClient(canary(namespace="shop", status={"phase": "Succeeded"}))
    code, out, _, connect = _kubectl_canary(
        ["--kubeconfig", "/kc", "--context", "prod", "-n", "shop", "status", "podinfo"], client)
    assert code == ExitCode.OK
    assert connect.calls == [("/kc", "prod")]
    assert out.startswith("Canary shop/podinfo\n")


def test_watch_is_status_watch() -> None:
    args = build_plugin_parser().parse_args(["watch", "podinfo", "-n", "shop"])
    assert (args.command, args.watch, args.name, args.namespace) == ("watch", True, "podinfo", "shop")
    assert build_plugin_parser().parse_args(["status"]).watch is False


def test_all_namespaces_with_a_name_is_a_usage_error() -> None:
    code, _, err, _ = _kubectl_canary(["watch", "x", "-A"], FakeCanaryClient())
    assert code == ExitCode.USAGE
    assert err.startswith("kubectl canary: error: --all-namespaces cannot be combined")


def test_promote_through_the_plugin() -> None:
    client = FakeCanaryClient(canary(status={"phase": "Progressing"}),
                              controller=confirming_controller({"promote": "Promoting"}))
    code, out, _, _ = _kubectl_canary(["promote", "podinfo"], client)
    assert code == ExitCode.OK
    assert client.patches == [("default", "podinfo", {"canary.dev/promote": "true"})]
    assert out.endswith("phase Promoting\n")


def test_installed_script_is_the_plugin() -> None:
    script = Path(sys.executable).parent / "kubectl-canary"
    assert script.is_file() and os.access(script, os.X_OK), "pip install -e . installs kubectl-canary"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: kubectl canary")


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        pytest.param(["st"], ["status"], id="command"),
        pytest.param(["status", "-o", ""], ["text", "json", "yaml"], id="output-choices"),
        pytest.param(["wait", "podinfo", "--for", ""], ["succeeded", "failed", "promoted"], id="wait-goals"),
        pytest.param(["-n", "shop", "wat"], ["watch"], id="after-kubectl-flags"),
        pytest.param(["status", "--all"], ["--all-namespaces"], id="flag"),
    ],
)
def test_kubectl_completion_protocol(words: list[str], expected: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """kubectl runs kubectl_complete-canary with the words so far and the one being typed; one
    candidate a line, then cobra's "no file completion" directive."""
    assert plugin.complete(words) == 0
    assert capsys.readouterr().out.splitlines() == [*expected, plugin.NO_FILE_COMPLETION]
    assert "_ARGCOMPLETE" not in os.environ, "the completion request must not leak into the process"


@pytest.mark.parametrize("script", ["canary", "kubectl-canary"])
def test_both_scripts_answer_a_shells_completion_request(script: str, tmp_path: Path) -> None:
    """What `register-python-argcomplete` sets up: the shell runs the script with the line so far."""
    line = f"{script} status --ou"
    answer = tmp_path / "answer"
    env = {**os.environ, "_ARGCOMPLETE": "1", "_ARGCOMPLETE_IFS": "\n", "COMP_LINE": line,
           "COMP_POINT": str(len(line)), "_ARGCOMPLETE_STDOUT_FILENAME": str(answer)}
    done = subprocess.run([str(Path(sys.executable).parent / script)], env=env, capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert answer.read_text().split() == ["--output"]


def test_completion_markers_for_global_activation() -> None:
    """activate-global-python-argcomplete completes only scripts whose module carries the marker."""
    import canary.__main__ as canary_main

    for module in (canary_main, plugin):
        assert module.__file__ is not None
        assert "PYTHON_ARGCOMPLETE_OK" in Path(module.__file__).read_text()[:1024]
