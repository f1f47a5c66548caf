from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from canary.cli.render import (
    canary_json,
    format_age,
    format_bounds,
    format_number,
    progress_bar,
    render_canaries,
    render_canary,
    summary_line,
    table,
)
from tests.cli.fakes import NOW, canary


def _check(name: str, verdict: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "metric", "source": "sum(rate(...))", "verdict": verdict,
            "time": "2024-05-01T10:03:00Z", **extra}


PROGRESSING = canary(
    status={
        "phase": "Progressing",
        "canaryWeight": 30,
        "failedChecks": 1,
        "iterations": 0,
        "lastAppliedSpec": "7c9d5f",
        "lastPromotedSpec": "5b8a21",
        "lastTransitionTime": "2024-05-01T10:00:00Z",
        "lastAnalysisTime": "2024-05-01T10:03:00Z",
        "checks": [
            _check("request-success-rate", "Pass", value="99.2", min="99", samples="1200"),
            _check("request-duration", "Fail", value="612", max="500", samples="1200",
                   message="p99 above the maximum"),
            {"name": "load-test", "kind": "webhook", "source": "http://loadtester/", "verdict": "Pass",
             "time": "2024-05-01T10:03:00Z"},
        ],
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Progressing", "message": "analysis at 30%",
             "lastTransitionTime": "2024-05-01T10:00:00Z"},
            {"type": "Reconciling", "status": "True", "reason": "Progressing", "message": "advancing",
             "lastTransitionTime": "2024-05-01T10:00:00Z"},
        ],
        "handledAnnotations": {"pause": "true"},
    },
    annotations={"canary.dev/pause": "true", "unrelated": "x"},
)

FAILED = canary(
    name="checkout",
    namespace="shop",
    status={
        "phase": "Failed",
        "canaryWeight": 0,
        "failedChecks": 5,
        "lastAppliedSpec": "e1f2a3",
        "lastPromotedSpec": "5b8a21",
        "lastTransitionTime": "2024-05-01T08:03:20Z",
        "message": "request-success-rate 91.5 below 99 five times",
        "checks": [_check("request-success-rate", "Fail", value="91.5", min="99", samples="800")],
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Failed", "message": "rolled back",
             "lastTransitionTime": "2024-05-01T08:03:20Z"},
            {"type": "Stalled", "status": "False", "reason": "Failed", "message": "",
             "lastTransitionTime": "2024-05-01T08:03:20Z"},
        ],
        "handledAnnotations": {"rollback": "bad latency"},
    },
    annotations={"canary.dev/rollback": "bad latency"},
)

SUCCEEDED = canary(
    name="frontend",
    status={
        "phase": "Succeeded",
        "canaryWeight": 0,
        "iterations": 10,
        "lastAppliedSpec": "9d8c7b",
        "lastPromotedSpec": "9d8c7b",
        "lastTransitionTime": "2024-04-29T09:00:00Z",
        "message": "promoted",
        "checks": [_check("request-duration", "NoData", min="10", max="250.5", samples="0",
                          message="no traffic")],
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Succeeded", "message": "9d8c7b promoted",
             "lastTransitionTime": "2024-04-29T09:00:00Z"},
            {"type": "Promoted", "status": "True", "reason": "Succeeded", "message": "",
             "lastTransitionTime": "2024-04-29T09:00:00Z"},
        ],
    },
    analysis={"interval": "30s", "threshold": 2, "iterations": 10},
)


def test_progressing_canary_with_checks() -> None:
    assert render_canary(PROGRESSING, NOW) == """\
Canary default/podinfo
  Phase:            Progressing
  Weight:           [###.......] 30% (max 50%)
  Failed checks:    1/5
  Iterations:       0
  Revision:         7c9d5f (primary: 5b8a21)
  Last transition:  2024-05-01T10:00:00Z (3m20s ago)
  Last analysis:    2024-05-01T10:03:00Z (20s ago)
  On-call:          canary.dev/pause=true (handled)
  Checks:
    NAME                  KIND     VALUE       VERDICT  SAMPLES  MESSAGE
    request-success-rate  metric   99.2 >= 99  Pass     1200
    request-duration      metric   612 <= 500  Fail     1200     p99 above the maximum
    load-test             webhook  -           Pass     -
  Conditions:
    TYPE         STATUS  REASON       MESSAGE
    Ready        False   Progressing  analysis at 30%
    Reconciling  True    Progressing  advancing"""


def test_failed_canary_shows_why() -> None:
    assert render_canary(FAILED, NOW) == """\
Canary shop/checkout
  Phase:            Failed
  Weight:           [..........] 0% (max 50%)
  Failed checks:    5/5
  Iterations:       0
  Revision:         e1f2a3 (primary: 5b8a21)
  Last transition:  2024-05-01T08:03:20Z (2h ago)
  Message:          request-success-rate 91.5 below 99 five times
  On-call:          canary.dev/rollback=bad latency (handled)
  Checks:
    NAME                  KIND    VALUE       VERDICT  SAMPLES  MESSAGE
    request-success-rate  metric  91.5 >= 99  Fail     800
  Conditions:
    TYPE     STATUS  REASON  MESSAGE
    Ready    False   Failed  rolled back
    Stalled  False   Failed"""


def test_succeeded_blue_green_canary() -> None:
    assert render_canary(SUCCEEDED, NOW) == """\
Canary default/frontend
  Phase:            Succeeded
  Weight:           [..........] 0%
  Failed checks:    0/2
  Iterations:       10/10
  Revision:         9d8c7b (primary: 9d8c7b)
  Last transition:  2024-04-29T09:00:00Z (2d1h ago)
  Message:          promoted
  Checks:
    NAME              KIND    VALUE             VERDICT  SAMPLES  MESSAGE
    request-duration  metric  10 <= - <= 250.5  NoData   0        no traffic
  Conditions:
    TYPE      STATUS  REASON     MESSAGE
    Ready     True    Succeeded  9d8c7b promoted
    Promoted  True    Succeeded"""


def test_canary_without_status_or_valid_spec_still_renders() -> None:
    broken = canary(name="new", analysis={"threshold": "many"})
    assert render_canary(broken, NOW) == """\
Canary default/new
  Phase:            Unknown (no status from the controller yet)
  Weight:           [..........] 0%
  Failed checks:    0
  Iterations:       0
  Last transition:  -
  Checks:           none yet
  Conditions:       none"""


def test_unreadable_status_reads_as_empty() -> None:
    odd = canary(status={"phase": "Progressing", "checks": [{"name": "x", "verdict": "Maybe"}]})
    assert "Phase:            Unknown" in render_canary(odd, NOW)


def test_pending_on_call_annotation() -> None:
    obj = canary(status={"phase": "Progressing", "handledAnnotations": {"promote": "true"}},
                 annotations={"canary.dev/rollback": "oops", "canary.dev/promote": "true"})
    assert "On-call:          canary.dev/rollback=oops (pending), canary.dev/promote=true (handled)" in (
        render_canary(obj, NOW))


def test_several_canaries_sorted_and_separated() -> None:
    text = render_canaries([SUCCEEDED, FAILED, PROGRESSING], NOW)
    headers = [line for line in text.splitlines() if line.startswith("Canary ")]
    assert headers == ["Canary default/frontend", "Canary default/podinfo", "Canary shop/checkout"]
    assert "\n\nCanary default/podinfo\n" in text


@pytest.mark.parametrize(
    ("weight", "expected"),
    [
        pytest.param(0, "[..........] 0%", id="zero"),
        pytest.param(5, "[..........] 5%", id="below-one-cell"),
        pytest.param(50, "[#####.....] 50%", id="half"),
        pytest.param(99, "[#########.] 99%", id="almost"),
        pytest.param(100, "[##########] 100%", id="full"),
        pytest.param(120, "[##########] 100%", id="clamped-high"),
        pytest.param(-3, "[..........] 0%", id="clamped-low"),
    ],
)
def test_progress_bar(weight: int, expected: str) -> None:
    assert progress_bar(weight) == expected


@pytest.mark.parametrize(
    ("value", "low", "high", "expected"),
    [
        pytest.param(99.2, 99.0, None, "99.2 >= 99", id="min"),
        pytest.param(512.0, None, 500.0, "512 <= 500", id="max"),
        pytest.param(3.0, 1.0, 5.0, "1 <= 3 <= 5", id="range"),
        pytest.param(None, 99.0, None, "- >= 99", id="no-value"),
        pytest.param(0.25, None, None, "0.25", id="no-bounds"),
        pytest.param(float("nan"), 1.0, None, "NaN >= 1", id="nan"),
        pytest.param(1 / 3, None, 1.0, "0.333333 <= 1", id="long-fraction"),
    ],
)
def test_format_bounds(value: float | None, low: float | None, high: float | None, expected: str) -> None:
    assert format_bounds(value, low, high) == expected


def test_format_number_infinities() -> None:
    assert (format_number(float("inf")), format_number(float("-inf"))) == ("+Inf", "-Inf")


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0s"), (45, "45s"), (200, "3m20s"), (180, "3m"), (7500, "2h5m"), (7200, "2h"),
     (273600, "3d4h"), (-5, "0s")],
)
def test_format_age(seconds: int, expected: str) -> None:
    assert format_age(timedelta(seconds=seconds)) == expected


def test_table_has_no_trailing_blanks() -> None:
    assert table(["A", "LONGER"], [["xyz", ""], ["1", "2"]]) == ["A    LONGER", "xyz", "1    2"]


def test_summary_line() -> None:
    assert summary_line(PROGRESSING) == "default/podinfo Progressing [###.......] 30% failed checks 1/5"
    assert summary_line(FAILED) == (
        "shop/checkout Failed [..........] 0% failed checks 5/5: request-success-rate 91.5 below 99 five times")


def test_json_view_keeps_only_on_call_annotations() -> None:
    doc = canary_json(PROGRESSING)
    assert doc["annotations"] == {"canary.dev/pause": "true"}
    assert doc["status"]["canaryWeight"] == 30
    assert (doc["namespace"], doc["name"]) == ("default", "podinfo")


JUDGED = canary(
    status={
        "phase": "Failed",
        "canaryWeight": 0,
        "failedChecks": 0,
        "lastTransitionTime": "2024-05-01T10:03:00Z",
        "message": "aborted by the judge: judge/errorRate: ...",
        "checks": [
            {"name": "judge/errorRate", "kind": "judge", "source": "sum by (deployment, classification) (...)",
             "verdict": "Fail", "time": "2024-05-01T10:03:00Z", "value": "48.5", "primaryValue": "0.1",
             "samples": "33", "primarySamples": "297", "evidence": "1840.5", "evidenceBound": "200",
             "message": "evidence reached the bound"},
            {"name": "judge/latency", "kind": "judge", "source": "sum by (deployment, le) (...)",
             "verdict": "Pass", "time": "2024-05-01T10:03:00Z", "value": "190", "primaryValue": "195",
             "samples": "33", "primarySamples": "297", "evidence": "0.42", "evidenceBound": "200"},
        ],
    },
)


def test_judge_checks_show_both_versions_and_the_evidence() -> None:
    shown = render_canary(JUDGED, NOW)
    assert "Checks:" not in shown
    assert """\
  Judge (canary / primary, this step; evidence over the run / needed to roll back):
    TEST       VALUE       REQUESTS  EVIDENCE        VERDICT  MESSAGE
    errorRate  48.5 / 0.1  33 / 297  1.84e+03 / 200  Fail     evidence reached the bound
    latency    190 / 195   33 / 297  0.42 / 200      Pass""" in shown


def test_a_hold_under_way_shows_its_count_against_its_limit() -> None:
    held = copy.deepcopy(PROGRESSING)
    held["status"].update(consecutiveErrors=3, consecutiveNoData=2, checks=[
        _check("request-success-rate", "Unavailable", message="the metrics provider is unavailable")])
    held["spec"]["analysis"]["consecutiveErrorLimit"] = 6
    shown = render_canary(held, NOW).splitlines()
    assert "  Metrics outage:   3/6 ticks in a row" in shown
    assert "  No data:          2/10 ticks in a row" in shown
    assert any("Unavailable" in line and "the metrics provider is unavailable" in line for line in shown)
