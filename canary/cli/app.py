"""From a command line to an exit code: parse, connect, run one command, map errors to codes.

The process's side effects (clocks, environment, standard streams, the cluster connection) are
parameters here, so tests drive whole command lines against a fake :class:`CanaryClient`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TextIO

import argcomplete

from canary.cli import client as client_module
from canary.cli.annotate import Action, annotate
from canary.cli.args import build_parser, server_settings_from_args, settings_from_args
from canary.cli.client import CanaryClient
from canary.cli.convert import convert
from canary.cli.errors import CliError, ExitCode, UsageError
from canary.cli.render import DEFAULT_WIDTH
from canary.cli.report import report
from canary.cli.status import show_status, watch_status
from canary.cli.wait import Goal, wait_for
from canary.errors import CanaryError
from canary.metricsserver.config import ConfigError

__all__ = ["Connect", "execute"]

#: Builds a client from ``--kubeconfig`` and ``--context``.
Connect = Callable[[str | None, str | None], CanaryClient]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _user(env: Mapping[str, str]) -> str:
    name = env.get("USER") or env.get("LOGNAME")
    if name:
        return name
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # containers often run as a uid without a passwd entry
        return "unknown"


def _columns(out: TextIO, env: Mapping[str, str]) -> int:
    """The terminal's width (asked each time: it can be resized), else $COLUMNS, else a wide default."""
    if out.isatty():
        return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    columns = env.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else DEFAULT_WIDTH


def execute(
    argv: Sequence[str],
    *,
    connect: Connect = client_module.connect,
    env: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = _utc_now,
    build: Callable[[], argparse.ArgumentParser] = build_parser,
    prog: str = "canary",
) -> int:
    """Run one command line; ``build`` and ``prog`` make it ``canary`` or ``kubectl canary``."""
    env = os.environ if env is None else env
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build()
    # A shell asking for completions (argcomplete's _ARGCOMPLETE variable) is answered here and
    # the process exits; otherwise this returns at once.
    argcomplete.autocomplete(parser)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # --help, --version and usage errors: argparse has printed them
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    try:
        if args.command == "run":
            return _run(args, env)
        if args.command == "metrics-server":
            return _metrics_server(args, env)
        if args.command in ("convert", "lint"):
            return convert(args, stdin=stdin or sys.stdin, out=out, err=err)
        return _client_command(args, connect, env, out, err, clock, now)
    except CliError as exc:
        print(f"{prog}: error: {exc}", file=err)
        return exc.exit_code
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


def _run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = settings_from_args(args, env)
    if settings.kubeconfig:
        # kopf logs in on its own, through the kubernetes client's default lookup: point that
        # lookup at the same file the controller's own client uses.
        os.environ["KUBECONFIG"] = settings.kubeconfig
    # Imported here so the on-call commands start fast and work without the controller's deps.
    from canary.kube.operator import run as run_operator

    run_operator(settings)
    return ExitCode.OK


def _metrics_server(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = server_settings_from_args(args, env)
    # Imported here, like the controller, so the on-call commands start fast.
    from canary.metricsserver.server import run as run_server

    try:
        run_server(settings)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    except CanaryError as exc:
        raise CliError(str(exc)) from exc
    return ExitCode.OK


def _client_command(
    args: argparse.Namespace,
    connect: Connect,
    env: Mapping[str, str],
    out: TextIO,
    err: TextIO,
    clock: Callable[[], float],
    now: Callable[[], datetime],
) -> int:
    viewing = args.command in ("status", "watch")
    if viewing and args.all_namespaces and (args.name or args.namespace):
        raise UsageError("--all-namespaces cannot be combined with a NAME or --namespace")
    client = connect(args.kubeconfig, args.context)
    namespace: str = args.namespace or client.default_namespace

    if viewing:
        scope = None if args.all_namespaces else namespace
        terminal = out.isatty()
        if args.watch:
            return watch_status(client, scope, args.name, output=args.output, out=out, now=now,
                                interactive=args.output == "text" and terminal, compact=args.all_namespaces,
                                width=lambda: _columns(out, env), color=terminal)
        return show_status(client, scope, args.name, output=args.output, out=out, now=now,
                           compact=args.all_namespaces, width=_columns(out, env), color=terminal)
    if args.command == "wait":
        return wait_for(client, namespace, args.name, Goal(args.goal), timeout=args.timeout,
                        revision=args.revision, out=out, err=err, clock=clock, now=now)
    if args.command == "report":
        return report(client, namespace, args.name, revision=args.revision, output=args.output, out=out, err=err)
    return annotate(client, namespace, args.name, Action(args.command), reason=getattr(args, "reason", None),
                    wait=args.wait, timeout=args.timeout, user=_user(env), out=out, err=err, clock=clock, now=now)
