"""Issue 8, defects 2-4: huge, parseable-but-huge and zero-length numbers in a spec.

Each used to get past the parser and crash later (``timedelta`` overflow while parsing,
``OverflowError`` in ``decide()`` mid-release) or to become zero. Now the parser refuses each with
a :class:`SpecError` naming the field, the value and the range, so the reconciler reports
``InvalidSpec``; and ``decide()`` does no date arithmetic that a stored time could overflow.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canary.domain import bounds
from canary.domain.durations import DURATION_PATTERN, format_duration, parse_duration
from canary.domain.machine import Decision, decide
from canary.domain.spec import parse_canary_spec
from canary.domain.status import Phase
from canary.errors import SpecError
from tests.domain.world import make_spec, running, seen

A = "spec.analysis"


def canary(**analysis: Any) -> dict[str, Any]:
    extra = analysis.pop("_spec", {})
    raw: dict[str, Any] = {
        "targetRef": {"name": "podinfo"},
        "service": {"port": 9898},
        "analysis": {"interval": "1m", "stepWeight": 10,
                     "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
                     "webhooks": [{"name": "load", "url": "http://load.test/"}]},
    }
    raw["analysis"].update(analysis)
    raw.update(extra)
    return raw


def with_metric_interval(text: str) -> dict[str, Any]:
    raw = canary()
    raw["analysis"]["metrics"][0]["interval"] = text
    return raw


def with_webhook_timeout(text: str) -> dict[str, Any]:
    raw = canary()
    raw["analysis"]["webhooks"][0]["timeout"] = text
    return raw


HUGE = "99999999999h"  # defect 2: overflowed timedelta inside the parser
LARGE = "999999999h"  # defect 3: parsed, then overflowed `last + interval` in decide()
TINY = "0.0000001ms"  # defect 4: became timedelta(0)


@pytest.mark.parametrize("text", [HUGE, LARGE, TINY])
@pytest.mark.parametrize(("build", "field", "bound"), [
    (lambda t: canary(interval=t), f"{A}.interval", bounds.ANALYSIS_INTERVAL),
    (with_metric_interval, f"{A}.metrics[0].interval", bounds.METRIC_INTERVAL),
    (with_webhook_timeout, f"{A}.webhooks[0].timeout", bounds.WEBHOOK_TIMEOUT),
], ids=["analysis.interval", "metrics[].interval", "webhooks[].timeout"])
def test_a_duration_out_of_range_is_a_spec_error_naming_the_field(
    build: Any, field: str, bound: bounds.DurationBound, text: str,
) -> None:
    with pytest.raises(SpecError) as err:
        parse_canary_spec(build(text))
    assert err.value.field == field
    # The value, the range and an example, so the user can fix it from the message alone.
    assert repr(text) in err.value.message
    assert "from " in err.value.message and f"e.g. {bound.example}" in err.value.message


@pytest.mark.parametrize(("key", "value"), [
    ("progressDeadlineSeconds", 10**15), ("progressDeadlineSeconds", 86401),
])
def test_a_huge_progress_deadline_is_a_spec_error(key: str, value: int) -> None:
    with pytest.raises(SpecError) as err:
        parse_canary_spec(canary(_spec={key: value}))
    assert err.value.field == f"spec.{key}"
    assert "at most 86400" in err.value.message


@pytest.mark.parametrize(("key", "value"), [
    ("threshold", 1001), ("iterations", 1001), ("minSampleSize", 1_000_000_001), ("threshold", 10**30),
])
def test_huge_counts_are_spec_errors(key: str, value: int) -> None:
    with pytest.raises(SpecError) as err:
        parse_canary_spec(canary(**{key: value}))
    assert err.value.field == f"{A}.{key}"


@pytest.mark.parametrize("text", [HUGE, "9" * 10_000 + "h", "1" + "0" * 400 + "ms", "1h" * 100, "1m\n"])
def test_no_text_can_overflow_the_parser(text: str) -> None:
    # The grammar and the length are checked before any arithmetic.
    with pytest.raises(SpecError) as err:
        parse_duration(text, "f", bounds.ANALYSIS_INTERVAL)
    assert len(str(err.value)) < 400, "a long value is cut in the message"


def test_decide_survives_a_stored_analysis_time_near_the_end_of_time() -> None:
    # `_due` used `last + interval`; a status edited to the year 9999 would overflow it.
    spec = make_spec(interval="24h")
    far = datetime(9999, 12, 31, 23, 59, tzinfo=timezone.utc)
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for last, when in [(far, now), (now, far), (far - timedelta(hours=1), far)]:
        result = decide(spec, running(Phase.PROGRESSING, 10, last_analysis_time=last), seen(), when)
        assert not isinstance(result, Decision) or result.requeue_after is None or \
            result.requeue_after >= timedelta(0)


def test_decide_at_the_ceilings_does_not_overflow() -> None:
    ceiling = {"interval": "24h", "threshold": 1000, "maxWeight": 100, "stepWeight": 1,
               "_spec": {"progressDeadlineSeconds": 86400}}
    spec = make_spec(**ceiling)
    status = running(Phase.PROGRESSING, 1, waiting_since=datetime(1, 1, 1, tzinfo=timezone.utc))
    when = datetime(9999, 12, 31, tzinfo=timezone.utc)
    result = decide(spec, status, seen(ready=False), when)
    assert isinstance(result, Decision)
    assert result.status.phase is Phase.FAILED  # past the deadline, by about 8000 years


# --- any text at all -----------------------------------------------------------------------------

ALL_DURATIONS = [*bounds.CANARY_DURATIONS, *bounds.PROCESS_DURATIONS]
_UNIT = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600)}


def reference_seconds(text: str) -> Decimal:
    """An independent reading of a text in the grammar: exact decimal arithmetic."""
    return sum((Decimal(num) * _UNIT[unit] for num, unit in re.findall(r"([0-9.]+)(ms|s|m|h)", text)), Decimal(0))


@settings(derandomize=True, database=None, max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(max_size=48), st.from_regex(DURATION_PATTERN, fullmatch=True)),
       bound=st.sampled_from(ALL_DURATIONS))
def test_any_text_is_a_duration_in_range_or_a_spec_error(text: str, bound: bounds.DurationBound) -> None:
    try:
        value = parse_duration(text, "f", bound)
    except SpecError as exc:
        assert exc.field == "f"
        if re.fullmatch(DURATION_PATTERN, text) and len(text) <= bounds.DURATION_MAX_LENGTH:
            # Refused for its range only, and rightly so.
            exact = reference_seconds(text)
            assert not Decimal(bound.floor.total_seconds()) <= exact <= Decimal(bound.ceiling.total_seconds())
        return
    assert bound.floor <= value <= bound.ceiling
    assert Decimal(value.days * 86400 + value.seconds) + Decimal(value.microseconds) / 10**6 == reference_seconds(text)


@settings(derandomize=True, database=None, max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(ms=st.one_of(st.integers(1, 86_400_000), st.sampled_from([1, 999, 1000, 100_500, 86_399_999, 86_400_000])))
def test_every_window_the_controller_formats_is_parsed_back(ms: int) -> None:
    # The controller sends format_duration(window) as the metrics server's `t`, and PromQL ranges
    # are built from it: the text must stay within the grammar (no 8-digit "86399999ms").
    window = timedelta(milliseconds=ms)
    wide = bounds.DurationBound("t", timedelta(milliseconds=1), timedelta(hours=24), "30s", "test")
    assert parse_duration(format_duration(window), "t", wide) == window
