"""``canary status``: what each Canary is doing, why, and what every check measured."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TextIO

import yaml
from rich.console import Console, RenderableType
from rich.text import Text

from canary.cli.client import CanaryClient
from canary.cli.errors import ExitCode
from canary.cli.feed import DirectFeed, EventFeed, ThreadedFeed, renewed_watch
from canary.cli.render import (
    DEFAULT_WIDTH,
    canaries_view,
    canary_json,
    canary_view,
    compact_view,
    qualified_name,
    to_text,
)

__all__ = ["TICK_SECONDS", "show_status", "watch_status"]

#: A terminal view redraws this often between events, so its clock and ages keep moving.
TICK_SECONDS = 1.0
_CLEAR_SCREEN = "\x1b[H\x1b[2J"


def _initial(client: CanaryClient, namespace: str | None, name: str | None) -> list[dict[str, Any]]:
    if name is not None:
        return [client.get(namespace or client.default_namespace, name)]
    return client.list(namespace)


def _scope(namespace: str | None) -> str:
    return f"namespace {namespace}" if namespace else "any namespace"


def _data(doc: Any, output: str) -> str:
    """``doc`` as JSON (indented) or as one YAML document; both with sorted keys."""
    if output == "yaml":
        return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, allow_unicode=True).rstrip("\n")
    return json.dumps(doc, indent=2, sort_keys=True)


def _view(objs: list[Mapping[str, Any]], now: datetime, compact: bool) -> RenderableType:
    return compact_view(objs, now) if compact else canaries_view(objs, now)


def _print(renderable: RenderableType, out: TextIO, width: int, color: bool) -> None:
    if color:
        Console(file=out, width=width, force_terminal=True, highlight=False, markup=False, emoji=False,
                soft_wrap=False).print(renderable)
    else:
        out.write(to_text(renderable, width) + "\n")
    out.flush()


def show_status(
    client: CanaryClient,
    namespace: str | None,
    name: str | None,
    *,
    output: str,
    out: TextIO,
    now: Callable[[], datetime],
    compact: bool = False,
    width: int = DEFAULT_WIDTH,
    color: bool = False,
) -> int:
    """Print the Canary (or all Canaries in ``namespace``; None: every namespace) once.

    ``compact``: one line per Canary (``-A``). ``json``/``yaml``: the Canaries' status as data.
    """
    objs = sorted(_initial(client, namespace, name), key=qualified_name)
    if output in ("json", "yaml"):
        doc: Any = canary_json(objs[0]) if name is not None else {"items": [canary_json(o) for o in objs]}
        print(_data(doc, output), file=out)
    elif not objs:
        print(f"No canaries in {_scope(namespace)}.", file=out)
    else:
        _print(_view(list(objs), now(), compact), out, width, color)
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
    compact: bool = False,
    width: Callable[[], int] = lambda: DEFAULT_WIDTH,
    color: bool = False,
    feed: EventFeed | None = None,
) -> int:
    """Print the status again on every change until Ctrl-C.

    ``interactive`` (a terminal) redraws the whole screen, on every change and every
    :data:`TICK_SECONDS` between changes (the clock and the ages move on); otherwise each change
    is appended, one block per changed Canary, so logs and pipes stay readable. JSON output is
    one line per change, YAML one document per change.
    """
    objects: dict[str, Mapping[str, Any]] = {qualified_name(o): o for o in _initial(client, namespace, name)}
    watch_namespace = namespace if name is None else (namespace or client.default_namespace)
    ticking = interactive and output == "text"
    if feed is None:
        events = renewed_watch(client, watch_namespace, name)
        feed = ThreadedFeed(events) if ticking else DirectFeed(events)

    def redraw() -> None:
        shown: RenderableType = (_view(list(objects.values()), now(), compact) if objects
                                 else Text(f"No canaries in {_scope(namespace)}."))
        out.write(f"{_CLEAR_SCREEN}{now():%Y-%m-%dT%H:%M:%SZ}  (Ctrl-C to stop)\n\n")
        _print(shown, out, width(), color)

    def show(kind: str, obj: Mapping[str, Any]) -> None:
        stamp = f"{now():%Y-%m-%dT%H:%M:%SZ}"
        if output == "json":
            print(json.dumps({"type": kind, **canary_json(obj)}, sort_keys=True), file=out, flush=True)
        elif output == "yaml":
            print(f"---\n{_data({'type': kind, **canary_json(obj)}, output)}", file=out, flush=True)
        elif interactive:
            redraw()
        elif kind == "DELETED":
            print(f"--- {stamp} {qualified_name(obj)} deleted", file=out, flush=True)
        else:
            print(f"--- {stamp} {kind}", file=out)
            _print(compact_view([obj], now()) if compact else canary_view(obj, now()), out, width(), color)

    try:
        if ticking:
            redraw()
        elif not objects and output == "text":
            print(f"No canaries in {_scope(namespace)} yet; waiting for changes.", file=out, flush=True)
        for obj in sorted(objects.values(), key=qualified_name):
            if not ticking:
                show("ADDED", obj)
        while True:
            event = feed.next(TICK_SECONDS if ticking else None)
            if event is None:
                redraw()
                continue
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
