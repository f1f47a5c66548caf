from __future__ import annotations

import re
from datetime import timedelta

import pytest

from canary.errors import SpecError
from canary.routers.gateway_durations import GATEWAY_DURATION_PATTERN, gateway_duration


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(milliseconds=1), "1ms"),
        (timedelta(milliseconds=1500), "1s500ms"),
        (timedelta(seconds=30), "30s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=1), "1h"),
        (timedelta(hours=1, minutes=1, seconds=1, milliseconds=1), "1h1m1s1ms"),
        (timedelta(hours=99_999), "99999h"),
        (timedelta(days=2), "48h"),
    ],
)
def test_written_exactly(value: timedelta, text: str) -> None:
    assert gateway_duration(value, "spec.service.timeout") == text
    assert re.fullmatch(GATEWAY_DURATION_PATTERN, text)


def test_every_millisecond_up_to_an_hour_and_a_bit_round_trips() -> None:
    units = {"h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
    for ms in [*range(0, 2_000), *range(59_000, 61_001), *range(3_599_000, 3_661_001, 7)]:
        text = gateway_duration(timedelta(milliseconds=ms), "f")
        assert re.fullmatch(GATEWAY_DURATION_PATTERN, text), text
        assert sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+)(ms|h|m|s)", text)) == ms


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (timedelta(microseconds=500), "0.5ms is not a whole number of milliseconds"),
        (timedelta(seconds=1, microseconds=1), "1000.001ms is not a whole number of milliseconds"),
        (timedelta(hours=100_000), "100000h is longer than a Gateway API timeout can say"),
        (timedelta(milliseconds=-1), "cannot be negative"),
    ],
)
def test_refused_naming_the_field(value: timedelta, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        gateway_duration(value, "spec.service.backendTimeout")
    assert caught.value.field == "spec.service.backendTimeout"
    assert message in caught.value.message
