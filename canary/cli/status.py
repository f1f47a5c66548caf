"""``canary status``: what each Canary is doing, why, and what every check measured."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TextIO

from canary.cli.client import CanaryClient
from canary.cli.errors import ExitCode
from canary.cli.render import canary_json, qualified_name, render_canaries, render_canary

__all__ = ["show_status", "watch_status"]

#: How long one watch request stays open before it is renewed.
WATCH_WINDOW_SECONDS = 300.0
_CLEAR_SCREEN = "\x1b[H\x1b[2J"


def _initial(client: CanaryClient, namespace: str | None, name: str | None) -> list[dict[str, Any]]:
    if name is not None:
        return [client.get(namespace or client.default_namespace, name)]
    return client.list(namespace)


def _scope(namespace: str | None) -> str:
    return f"namespace {namespace}" if namespace else "any namespace"


def show_status(
    client: CanaryClient,
    namespace: str | None,
    name: str | None,
    *,
    output: str,
    out: TextIO,
    now: Callable[[], datetime],
) -> int:
    """Print the Canary (or all Canaries in ``namespace``; None: every namespace) once."""
    objs = sorted(_initial(client, namespace, name), key=qualified_name)
    if output == "json":
        doc: Any = canary_json(objs[0]) if name is not None else {"items": [canary_json(o) for o in objs]}
        print(json.dumps(doc, indent=2, sort_keys=True), file=out)
    elif not objs:
        print(f"No canaries in {_scope(namespace)}.", file=out)
    else:
        print(render_canaries(objs, now()), file=out)
    return ExitCode.OK


def watch_status(
    client: CanaryClient,
    namespace: str | None,
    name: str | None,
    *,
    output: str,
    out: TextIO,
    now: Callable[[], datetime],
    interactive: bool,
) -> int:
    """Print the status again on every change until Ctrl-C.

    ``interactive`` (a terminal) redraws the whole screen; otherwise each change is appended,
    one block per changed Canary, so logs and pipes stay readable. JSON output is one line per
    change.
    """
    objects: dict[str, Mapping[str, Any]] = {qualified_name(o): o for o in _initial(client, namespace, name)}
    watch_namespace = namespace if name is None else (namespace or client.default_namespace)

    def redraw() -> None:
        body = render_canaries(list(objects.values()), now()) or f"No canaries in {_scope(namespace)}."
        out.write(f"{_CLEAR_SCREEN}{now():%Y-%m-%dT%H:%M:%SZ}  (Ctrl-C to stop)\n\n{body}\n")
        out.flush()

    def show(kind: str, obj: Mapping[str, Any]) -> None:
        stamp = f"{now():%Y-%m-%dT%H:%M:%SZ}"
        if output == "json":
            print(json.dumps({"type": kind, **canary_json(obj)}, sort_keys=True), file=out, flush=True)
        elif interactive:
            redraw()
        elif kind == "DELETED":
            print(f"--- {stamp} {qualified_name(obj)} deleted", file=out, flush=True)
        else:
            print(f"--- {stamp} {kind}\n{render_canary(obj, now())}", file=out, flush=True)

    try:
        if interactive and output != "json":
            redraw()
        elif not objects and output != "json":
            print(f"No canaries in {_scope(namespace)} yet; waiting for changes.", file=out, flush=True)
        for obj in sorted(objects.values(), key=qualified_name):
            if output == "json" or not interactive:
                show("ADDED", obj)
        while True:
            for event in client.watch(watch_namespace, name, WATCH_WINDOW_SECONDS):
                key = qualified_name(event["object"])
                if event["type"] == "DELETED":
                    objects.pop(key, None)
                elif event["type"] in ("ADDED", "MODIFIED"):
                    # Each renewed watch replays the current state; only real changes are shown.
                    if objects.get(key) == event["object"]:
                        continue
                    objects[key] = event["object"]
                else:
                    continue
                show(event["type"], event["object"])
    except KeyboardInterrupt:
        return ExitCode.OK
