from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from canary.cli.render import (
    Unit,
    canary_json,
    format_age,
    format_count,
    format_number,
    format_range,
    format_value,
    progress_bar,
    render_canaries,
    render_canary,
    render_compact,
    summary_line,
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
        # As canary/domain/conditions.py writes them for a failed release: the reason three times.
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Failed",
             "message": "request-success-rate 91.5 below 99 five times",
             "lastTransitionTime": "2024-05-01T08:03:20Z"},
            {"type": "Stalled", "status": "True", "reason": "RolledBack",
             "message": "request-success-rate 91.5 below 99 five times; push a new revision or retry",
             "lastTransitionTime": "2024-05-01T08:03:20Z"},
            {"type": "Promoted", "status": "False", "reason": "Failed",
             "message": "request-success-rate 91.5 below 99 five times",
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
    analysis={"interval": "30s", "threshold": 2, "iterations": 10,
              "metrics": [{"name": "request-duration", "thresholdRange": {"min": 10, "max": 250.5}}]},
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
    NAME                  KIND     VALUE  RANGE     VERDICT  SAMPLES  MESSAGE
    request-success-rate  metric   99.2%  >= 99%    Pass     1200
    request-duration      metric   612ms  <= 500ms  Fail     1200     p99 above the maximum
    load-test             webhook  -      -         Pass     -
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
    NAME                  KIND    VALUE  RANGE   VERDICT  SAMPLES  MESSAGE
    request-success-rate  metric  91.5%  >= 99%  Fail     800
  Conditions:
    TYPE      STATUS  REASON      MESSAGE
    Ready     False   Failed      see Message
    Stalled   True    RolledBack  see Message; push a new revision or retry
    Promoted  False   Failed      see Message"""


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
    NAME              KIND    VALUE  RANGE            VERDICT  SAMPLES  MESSAGE
    request-duration  metric  -      10ms .. 250.5ms  NoData   0        no traffic
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
    ("value", "unit", "expected"),
    [
        pytest.param(99.2, Unit.PERCENT, "99.2%", id="percent"),
        pytest.param(99.98765, Unit.PERCENT, "99.99%", id="percent-two-decimals"),
        pytest.param(100.0, Unit.PERCENT, "100%", id="percent-whole"),
        pytest.param(612.3456, Unit.MILLISECONDS, "612.3ms", id="ms-one-decimal"),
        pytest.param(0.04, Unit.MILLISECONDS, "0ms", id="ms-rounded-to-zero"),
        pytest.param(1 / 3, Unit.NONE, "0.333333", id="no-unit"),
        pytest.param(None, Unit.PERCENT, "-", id="no-value"),
        pytest.param(float("nan"), Unit.MILLISECONDS, "NaNms", id="nan"),
    ],
)
def test_format_value(value: float | None, unit: Unit, expected: str) -> None:
    assert format_value(value, unit) == expected


@pytest.mark.parametrize(
    ("low", "high", "unit", "expected"),
    [
        pytest.param(99.0, None, Unit.PERCENT, ">= 99%", id="min"),
        pytest.param(None, 500.0, Unit.MILLISECONDS, "<= 500ms", id="max"),
        pytest.param(1.0, 5.0, Unit.NONE, "1 .. 5", id="range"),
        pytest.param(None, None, Unit.NONE, "-", id="unbounded"),
    ],
)
def test_format_range(low: float | None, high: float | None, unit: Unit, expected: str) -> None:
    assert format_range(low, high, unit) == expected


@pytest.mark.parametrize(
    ("samples", "expected"),
    [(1200.0, "1200"), (1199.6, "1200"), (33.4, "33"), (0.0, "0"), (None, "-"), (float("nan"), "-")],
)
def test_sample_counts_are_whole(samples: float | None, expected: str) -> None:
    assert format_count(samples) == expected


def test_format_number_infinities() -> None:
    assert (format_number(float("inf")), format_number(float("-inf"))) == ("+Inf", "-Inf")


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0s"), (45, "45s"), (200, "3m20s"), (180, "3m"), (7500, "2h5m"), (7200, "2h"),
     (273600, "3d4h"), (-5, "0s")],
)
def test_format_age(seconds: int, expected: str) -> None:
    assert format_age(timedelta(seconds=seconds)) == expected


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
    TEST       VALUE          REQUESTS  EVIDENCE        VERDICT  MESSAGE
    errorRate  48.5% / 0.1%   33 / 297  1.84e+03 / 200  Fail     evidence reached the bound
    latency    190ms / 195ms  33 / 297  0.42 / 200      Pass""" in shown


def test_a_hold_under_way_shows_its_count_against_its_limit() -> None:
    held = copy.deepcopy(PROGRESSING)
    held["status"].update(consecutiveErrors=3, consecutiveNoData=2, checks=[
        _check("request-success-rate", "Unavailable", message="the metrics provider is unavailable")])
    held["spec"]["analysis"]["consecutiveErrorLimit"] = 6
    shown = render_canary(held, NOW).splitlines()
    assert "  Metrics outage:   3/6 ticks in a row" in shown
    assert "  No data:          2/10 ticks in a row" in shown
    assert any("Unavailable" in line and "the metrics provider is unavailable" in line for line in shown)


# --- polish: wrapping, the reason once, units by check type, one line per Canary ------------------

LONG = ("the canary answered 412 of 5000 requests with a 503 while the primary answered none of them "
        "that way; look at the upstream connection pool")


def _column_lines(text: str, header: str, column: str) -> tuple[int, list[str]]:
    """The start of ``column`` under the header line starting with ``header``, and the lines below."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(header))
    return lines[at].index(column), lines[at + 1:]


def test_long_messages_wrap_on_words_inside_their_column() -> None:
    obj = copy.deepcopy(PROGRESSING)
    obj["status"]["checks"] = [_check("request-success-rate", "Fail", value="91.76", min="99", samples="5000",
                                      message=LONG)]
    text = render_canary(obj, NOW, width=80)
    assert all(len(line) <= 80 for line in text.splitlines())
    start, below = _column_lines(text, "NAME", "MESSAGE")
    row = [below[0]] + [line for line in below[1:] if line.startswith(" " * start) and line.strip()]
    pieces = [row[0][start:]] + [line[start:] for line in row[1:]]
    assert len(pieces) > 1, text
    # Every piece starts in the MESSAGE column, and joined with spaces they are the message: no
    # word was cut and nothing spilled into the other columns.
    assert all(not piece.startswith(" ") for piece in pieces)
    assert " ".join(pieces) == LONG
    assert below[0][:start].split() == ["request-success-rate", "metric", "91.76%", ">=", "99%", "Fail", "5000"]


def test_long_canary_message_wraps_beside_its_label() -> None:
    obj = copy.deepcopy(FAILED)
    obj["status"]["message"] = LONG
    lines = render_canary(obj, NOW, width=60).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  Message:"))
    continued: list[str] = []
    for line in lines[at + 1:]:
        if not line.startswith(" " * 20):
            break  # the next field's label
        continued.append(line)
    assert len(continued) >= 2
    assert " ".join([lines[at][20:]] + [line[20:] for line in continued]) == LONG


def test_a_failed_canarys_reason_is_shown_once() -> None:
    text = render_canary(FAILED, NOW)
    assert text.count("request-success-rate 91.5 below 99 five times") == 1
    assert "  Message:          request-success-rate 91.5 below 99 five times" in text.splitlines()


def test_a_condition_that_only_mentions_the_message_keeps_its_text() -> None:
    # "promoted" is in Ready's message but does not open it: nothing is left out.
    assert "Ready     True    Succeeded  9d8c7b promoted" in render_canary(SUCCEEDED, NOW)


def test_units_follow_the_check_type() -> None:
    obj = canary(
        status={"phase": "Progressing", "checks": [
            _check("request-success-rate", "Pass", value="99.456", min="99", samples="1199.6"),
            _check("request-duration", "Pass", value="87.26", max="500", samples="1199.6"),
            _check("error-budget", "Pass", value="0.5", max="1", samples="3"),
        ]},
        analysis={"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10, "metrics": [
            {"name": "request-success-rate", "thresholdRange": {"min": 99}},
            {"name": "request-duration", "thresholdRange": {"max": 500}},
            {"name": "error-budget", "templateRef": {"name": "budget"}, "thresholdRange": {"max": 1}},
        ]},
    )
    rows = {line.split()[0]: line.split()[2:] for line in render_canary(obj, NOW).splitlines()
            if line.startswith("    ") and "metric" in line}
    assert rows["request-success-rate"][:4] == ["99.46%", ">=", "99%", "Pass"]
    assert rows["request-duration"][:4] == ["87.3ms", "<=", "500ms", "Pass"]
    assert rows["error-budget"][:4] == ["0.5", "<=", "1", "Pass"]
    # Sample counts are whole numbers of requests.
    assert rows["request-success-rate"][4] == "1200" and rows["error-budget"][4] == "3"


def test_a_template_named_like_a_builtin_has_no_unit() -> None:
    obj = canary(status={"phase": "Progressing", "checks": [_check("request-duration", "Pass", value="0.2",
                                                                   max="1")]},
                 analysis={"interval": "1m", "stepWeight": 10, "metrics": [
                     {"name": "request-duration", "templateRef": {"name": "t"}, "thresholdRange": {"max": 1}}]})
    line = next(line for line in render_canary(obj, NOW).splitlines() if line.startswith("    request-duration"))
    assert line.split()[2:5] == ["0.2", "<=", "1"]


def test_all_namespaces_is_one_line_per_canary() -> None:
    text = render_compact([SUCCEEDED, FAILED, PROGRESSING], NOW)
    assert text.splitlines() == [
        "NAMESPACE  NAME      PHASE        WEIGHT  FAILED  SINCE  MESSAGE",
        "default    frontend  Succeeded    0%      0/2     2d1h   promoted",
        "default    podinfo   Progressing  30%     1/5     3m20s",
        "shop       checkout  Failed       0%      5/5     2h     request-success-rate 91.5 below 99 five times",
    ]


def test_compact_lines_wrap_only_the_message() -> None:
    obj = copy.deepcopy(FAILED)
    obj["status"]["message"] = LONG
    start, below = _column_lines(render_compact([obj], NOW, width=70), "NAMESPACE", "MESSAGE")
    assert below[0][:start].split() == ["shop", "checkout", "Failed", "0%", "5/5", "2h"]
    assert " ".join(line[start:] for line in below) == LONG
