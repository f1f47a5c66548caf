from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import structlog

from canary.telemetry import bind_canary, configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; give it back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    saved = structlog.get_config()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()
        structlog.configure(**saved)


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_canary_lines_carry_namespace_and_name(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    bind_canary("test", "podinfo").info("weight advanced", weight=20)

    [line] = lines(capsys.readouterr().out)
    assert line["namespace"] == "test"
    assert line["name"] == "podinfo"
    assert line["message"] == "weight advanced"
    assert line["weight"] == 20
    assert line["level"] == "info"
    assert line["logger"] == "canary"
    assert datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).tzinfo is not None


def test_extra_context_is_kept_on_every_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    log = bind_canary("prod", "api", revision="abc").bind(tick=3)
    log.info("one")
    log.warning("two")
    out = lines(capsys.readouterr().out)
    assert [(o["namespace"], o["name"], o["revision"], o["tick"], o["level"]) for o in out] == [
        ("prod", "api", "abc", 3, "info"),
        ("prod", "api", "abc", 3, "warning"),
    ]


def test_kopf_stdlib_lines_are_json_with_the_object_ref(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    ref = {"apiVersion": "canary.dev/v1", "kind": "Canary", "name": "podinfo", "uid": "u-1", "namespace": "test"}
    # What kopf's per-object logger (a LoggerAdapter) attaches to its records.
    logging.getLogger("kopf.objects").warning("Handler %r failed.", "reconcile", extra={"k8s_ref": ref, "k8s_skip": False})
    logging.getLogger("kopf.reactor.running").warning("Watcher for %s restarted", "canaries")

    first, second = lines(capsys.readouterr().out)
    assert (first["logger"], first["level"], first["message"]) == ("kopf.objects", "warning", "Handler 'reconcile' failed.")
    assert (first["namespace"], first["name"], first["kind"]) == ("test", "podinfo", "Canary")
    assert (second["logger"], second["level"], second["message"]) == (
        "kopf.reactor.running", "warning", "Watcher for canaries restarted",
    )
    assert "timestamp" in second and "namespace" not in second


def test_kopf_per_object_chatter_shows_only_at_debug(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    logging.getLogger("kopf.objects").info("Indexer %r succeeded.", "cache-services")
    assert lines(capsys.readouterr().out) == []
    configure_logging("debug")
    logging.getLogger("kopf.objects").info("Indexer %r succeeded.", "cache-services")
    assert [o["message"] for o in lines(capsys.readouterr().out)] == ["Indexer 'cache-services' succeeded."]


def test_level_filters_both_kinds_of_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("WARNING")
    bind_canary("a", "b").info("quiet")
    logging.getLogger("kopf").info("quiet too")
    bind_canary("a", "b").error("loud")
    assert [o["message"] for o in lines(capsys.readouterr().out)] == ["loud"]


def test_exceptions_are_rendered_inside_the_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        bind_canary("a", "b").exception("reconcile failed")
        logging.getLogger("kopf.objects").exception("Handler failed")
    ours, kopfs = lines(capsys.readouterr().out)
    assert "RuntimeError: kaput" in ours["exception"]
    assert "RuntimeError: kaput" in kopfs["exception"]


def test_reconfiguring_does_not_duplicate_lines() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", stream=first)
    configure_logging("debug", stream=second)
    bind_canary("a", "b").debug("once")
    assert first.getvalue() == ""
    assert [o["message"] for o in lines(second.getvalue())] == ["once"]


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="verbose"):
        configure_logging("verbose")
