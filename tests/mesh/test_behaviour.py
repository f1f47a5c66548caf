import pytest

from e2e.mesh.behaviour import Behaviour, parse_behaviour, parse_duration_ms


def test_no_annotations_mean_a_healthy_fast_pod() -> None:
    assert parse_behaviour({}) == (Behaviour(0.0, 0.0, 500), ())


def test_all_annotations() -> None:
    behaviour, problems = parse_behaviour(
        {
            "sim.canary.dev/error-rate": "0.25",
            "sim.canary.dev/latency-ms": "150",
            "sim.canary.dev/status": "503",
            "unrelated/annotation": "x",
        }
    )
    assert behaviour == Behaviour(error_rate=0.25, latency_ms=150.0, failure_status=503)
    assert problems == ()


def test_percentages_and_durations() -> None:
    behaviour, problems = parse_behaviour({"sim.canary.dev/error-rate": "5%", "sim.canary.dev/latency": "1.5s"})
    assert behaviour.error_rate == pytest.approx(0.05)
    assert behaviour.latency_ms == 1500.0
    assert problems == ()


def test_latency_ms_wins_over_latency() -> None:
    behaviour, _ = parse_behaviour({"sim.canary.dev/latency": "1s", "sim.canary.dev/latency-ms": "20"})
    assert behaviour.latency_ms == 20.0


@pytest.mark.parametrize(
    ("text", "ms"), [("250ms", 250.0), ("1s", 1000.0), ("1m30s", 90000.0), ("500us", 0.5), ("0", 0.0), (".5s", 500.0)]
)
def test_durations(text: str, ms: float) -> None:
    assert parse_duration_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sim.canary.dev/error-rate", "1.5"),
        ("sim.canary.dev/error-rate", "-0.1"),
        ("sim.canary.dev/error-rate", "lots"),
        ("sim.canary.dev/error-rate", "nan"),
        ("sim.canary.dev/latency-ms", "-5"),
        ("sim.canary.dev/latency-ms", "fast"),
        ("sim.canary.dev/latency", "250"),
        ("sim.canary.dev/latency", "1 s"),
        ("sim.canary.dev/status", "200"),
        ("sim.canary.dev/status", "5xx"),
    ],
)
def test_bad_values_fall_back_to_the_default_and_are_reported(key: str, value: str) -> None:
    behaviour, problems = parse_behaviour({key: value})
    assert behaviour == Behaviour()
    assert len(problems) == 1 and problems[0].startswith(key)


def test_one_bad_value_does_not_discard_the_good_ones() -> None:
    behaviour, problems = parse_behaviour({"sim.canary.dev/error-rate": "0.1", "sim.canary.dev/latency-ms": "x"})
    assert behaviour.error_rate == 0.1 and behaviour.latency_ms == 0.0
    assert len(problems) == 1
