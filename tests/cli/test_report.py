"""`canary report` end to end against a fake client: options, files, notes and errors."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from canary.cli.app import execute
from canary.cli.client import CanaryClient
from canary.cli.errors import ExitCode
from tests.cli.fakes import FakeCanaryClient, canary
from tests.report.releases import FAULTY, HEALTHY, healthy_then_faulty


def _client(namespace: str = "demo") -> FakeCanaryClient:
    obj = canary(namespace=namespace)
    obj["metadata"]["uid"] = "uid-1"
    client = FakeCanaryClient(obj, default_namespace="default")
    client.events[namespace, "podinfo"] = healthy_then_faulty().events
    return client


def _run(argv: list[str], client: FakeCanaryClient) -> tuple[int, str, str, list[tuple[str | None, str | None]]]:
    out, err = io.StringIO(), io.StringIO()
    calls: list[tuple[str | None, str | None]] = []

    def connect(kubeconfig: str | None, context: str | None) -> CanaryClient:
        calls.append((kubeconfig, context))
        return client

    code = execute(argv, connect=connect, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue(), calls


def test_report_writes_the_latest_release_to_the_named_file(tmp_path: Path) -> None:
    client = _client()
    target = tmp_path / "faulty.svg"
    code, out, err, calls = _run(["report", "podinfo", "-n", "demo", "-o", str(target), "--kubeconfig", "/kc",
                                  "--context", "prod"], client)
    assert code == ExitCode.OK, err
    assert calls == [("/kc", "prod")]
    # Only this Canary's Events, of this incarnation (its uid).
    assert client.event_lists == [("demo", "podinfo", "uid-1")]
    assert out.strip() == f"wrote {target} (revision {FAULTY}: Failed after 9 s, 5 Events)"
    root = ET.parse(target).getroot()
    assert root.find(".//{http://www.w3.org/2000/svg}g[@id='rollback']") is not None


def test_report_picks_a_revision_and_names_the_file_after_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    client = _client(namespace="default")
    code, out, err, _ = _run(["report", "podinfo", "--revision", "rev-healthy"], client)
    assert code == ExitCode.OK, err
    written = tmp_path / f"podinfo-{HEALTHY[:12]}.svg"
    assert out.startswith(f"wrote {written.name} ")
    assert ET.parse(written).getroot().find(".//{http://www.w3.org/2000/svg}g[@id='rollback']") is None


def test_report_to_standard_output_and_a_note_for_each_event_without_facts() -> None:
    client = _client()
    client.events["demo", "podinfo"].append({"metadata": {"name": "old"}, "reason": "Synced",
                                             "firstTimestamp": "2026-12-07T07:00:00Z"})
    code, out, err, _ = _run(["report", "podinfo", "-n", "demo", "-o", "-"], client)
    assert code == ExitCode.OK
    ET.fromstring(out.encode())
    assert err.strip() == "canary: note: skipped Event old (Synced): no canary.dev/facts annotation"


def test_report_without_events_or_with_an_unknown_revision_fails_and_says_why() -> None:
    client = _client()
    code, _, err, _ = _run(["report", "podinfo", "-n", "demo", "--revision", "nope", "-o", "-"], client)
    assert code == ExitCode.ERROR
    assert "no recorded run of revision nope" in err
    client.events.clear()
    code, _, err, _ = _run(["report", "podinfo", "-n", "demo", "-o", "-"], client)
    assert code == ExitCode.ERROR
    assert "no Event with facts was recorded" in err and "--event-ttl" in err


def test_report_of_a_missing_canary_is_not_found() -> None:
    code, _, err, _ = _run(["report", "ghost", "-n", "demo"], _client())
    assert code == ExitCode.ERROR
    assert "canary demo/ghost not found" in err


def test_report_cannot_write_the_file(tmp_path: Path) -> None:
    code, _, err, _ = _run(["report", "podinfo", "-n", "demo", "-o", str(tmp_path / "no" / "dir.svg")], _client())
    assert code == ExitCode.ERROR
    assert "cannot write" in err
