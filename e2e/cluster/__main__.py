"""``python -m e2e.cluster build|up|down|status [--workdir DIR]``: the local control plane by hand.

``up`` leaves the control plane running after it exits and prints ``export KUBECONFIG=...`` as
its last line, so ``eval "$(python -m e2e.cluster up | tail -1)"`` points kubectl at it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from e2e.cluster.binaries import build, ensure_binaries
from e2e.cluster.control_plane import ControlPlane, read_state
from e2e.processes import E2ESetupError

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT_CRDS = REPO_ROOT / "crds"


def default_workdir() -> Path:
    return Path(os.environ.get("CANARY_E2E_WORKDIR") or "/tmp/canary-e2e")


def _build(_: argparse.Namespace) -> int:
    binaries = build()
    for name, path in vars(binaries).items():
        print(f"{name.replace('_', '-'):<24} {path}")
    return 0


def _up(args: argparse.Namespace) -> int:
    workdir: Path = args.workdir
    binaries = ensure_binaries()
    previous = read_state(workdir.resolve())
    if previous is not None and previous.running():
        names = ", ".join(f"{r.name} ({r.pid})" for r in previous.running())
        print(f"stopping the control plane already running in {workdir}: {names}")
    plane = ControlPlane.start(workdir, nodes=args.nodes, detach=True, binaries=binaries)
    print(f"control plane ready in {plane.startup_seconds:.1f}s ({args.nodes} kwok nodes, {plane.server})")
    began = time.monotonic()
    try:
        applied = plane.install_manifests([PROJECT_CRDS])
    except BaseException:
        # A half-installed cluster would look usable; take it down and let the error speak.
        plane.stop()
        raise
    print(f"installed {len(applied)} objects from {PROJECT_CRDS} in {time.monotonic() - began:.1f}s")
    print(f"logs in {workdir.resolve() / 'logs'}; stop with: python -m e2e.cluster down --workdir {workdir}")
    print(f"export KUBECONFIG={plane.kubeconfig}")
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = ControlPlane.stop_detached(args.workdir)
    if not stopped:
        print(f"nothing was running in {args.workdir}")
    for record in stopped:
        print(f"stopped {record.name} (pid {record.pid})")
    return 0


def _status(args: argparse.Namespace) -> int:
    state = read_state(args.workdir.resolve())
    if state is None:
        print(f"no control plane was started in {args.workdir}")
        return 1
    running = {record.name for record in state.running()}
    for record in state.processes:
        print(f"{record.name:<24} pid {record.pid:<8} {'running' if record.name in running else 'NOT RUNNING'}")
    if not state.processes:
        print(f"stopped at {state.stopped_at} (started at {state.started_at})")
        return 1
    print(f"server     {state.server}")
    print(f"kubeconfig {state.kubeconfig}")
    return 0 if len(running) == len(state.processes) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.cluster", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler, text in (
        ("build", _build, "build or locate the binaries (e2e/cluster/build.sh)"),
        ("up", _up, "start a detached control plane and install the project's CRDs"),
        ("down", _down, "stop the control plane of --workdir"),
        ("status", _status, "show what runs in --workdir (exit 1 unless everything does)"),
    ):
        command = commands.add_parser(name, help=text)
        command.set_defaults(handler=handler)
        command.add_argument(
            "--workdir",
            type=Path,
            default=default_workdir(),
            help="where certificates, logs and state live (default: $CANARY_E2E_WORKDIR or /tmp/canary-e2e)",
        )
        if name == "up":
            command.add_argument("--nodes", type=int, default=3, help="kwok Nodes to create (default 3)")
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except E2ESetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
