"""``canary report``: read a Canary's Events, rebuild one release from their facts, write it as SVG.

The pure part (Events -> timeline -> SVG) is :mod:`canary.report`; this module is the I/O around
it: the API server for the Events, the file system for the picture.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, TextIO

from canary.cli.client import CanaryClient
from canary.cli.errors import CliError, ExitCode
from canary.report.svg import render_svg
from canary.report.timeline import RunNotFound, Timeline, pick_run, read_events, timeline

__all__ = ["add_report_parser", "default_path", "report"]

#: Kubernetes keeps Events for the API server's --event-ttl (one hour unless changed).
_TTL_HINT = "the API server keeps Events for its --event-ttl, one hour by default"


def add_report_parser(sub: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    cmd = sub.add_parser(
        "report", parents=[common], help="draw one release as an SVG timeline (weights, checks, phases, rollback)",
        description="Rebuild one release of the Canary from the Events the controller wrote about it (each "
                    "carries the phase, weight and checks in its canary.dev/facts annotation) and draw it as "
                    "an SVG timeline: the canary weight over time, each check's value against its bounds, the "
                    f"phases, and the moment and cause of a rollback. Events expire: {_TTL_HINT}.",
    )
    cmd.add_argument("name")
    cmd.add_argument("-o", "--output", metavar="FILE",
                     help="where to write the SVG; - for standard output (default: NAME-REVISION.svg here)")
    cmd.add_argument("--revision", metavar="CHECKSUM",
                     help="the latest run of this revision (status.lastAppliedSpec; a prefix is enough) "
                          "instead of the latest release")


def default_path(name: str, drawn: Timeline) -> Path:
    revision = re.sub(r"[^A-Za-z0-9._-]", "_", drawn.revision)[:12] or "unknown"
    return Path(f"{name}-{revision}.svg")


def report(client: CanaryClient, namespace: str, name: str, *, revision: str | None, output: str | None,
           out: TextIO, err: TextIO) -> int:
    uid = (client.get(namespace, name).get("metadata") or {}).get("uid")
    recorded, notes = read_events(client.list_events(namespace, name, str(uid) if uid else None))
    for note in notes:
        print(f"canary: note: {note}", file=err)
    try:
        drawn = timeline(pick_run(recorded, revision))
    except RunNotFound as exc:
        raise CliError(f"canary {namespace}/{name}: {exc}; {_TTL_HINT}") from exc
    svg = render_svg(drawn, f"{namespace}/{name}")
    if output == "-":
        out.write(svg)
        return ExitCode.OK
    path = Path(output) if output else default_path(name, drawn)
    try:
        path.write_text(svg, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc}") from exc
    outcome = drawn.outcome.value if drawn.outcome else "unknown"
    print(f"wrote {path} (revision {drawn.revision or '-'}: {outcome} after {drawn.seconds:.0f} s, "
          f"{len(drawn.events)} Events)", file=out)
    return ExitCode.OK
