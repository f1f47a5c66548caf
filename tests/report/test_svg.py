"""The SVG of a release parses, and holds the weight path, one panel per check and the rollback."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from canary.domain.status import Phase, Verdict
from canary.report.svg import render_svg
from canary.report.timeline import Timeline, pick_run, read_events, timeline
from tests.report.releases import HEALTHY, Recorder, healthy_then_faulty, success_rate

NS = {"svg": "http://www.w3.org/2000/svg"}


def _release(revision: str | None) -> Timeline:
    recorded, _ = read_events(healthy_then_faulty().events)
    return timeline(pick_run(recorded, revision))


def _svg(drawn: Timeline) -> ET.Element:
    return ET.fromstring(render_svg(drawn, "demo/podinfo").encode())


def _classes(element: ET.Element) -> set[str]:
    return set(element.get("class", "").split())


def _texts(element: ET.Element) -> str:
    return " ".join("".join(t.itertext()) for t in element.iter("{http://www.w3.org/2000/svg}text"))


def _vertical_moves(path: ET.Element) -> list[float]:
    return [float(v) for v in re.findall(r"V(-?[\d.]+)", path.get("d", ""))]


def test_a_healthy_release_draws_its_weight_steps_and_a_panel_per_check_without_a_rollback() -> None:
    root = _svg(_release(HEALTHY))
    weight = root.find(".//svg:path[@id='weight']", NS)
    assert weight is not None
    # Four changes of weight after the first: 20, 40, 60, then back to 0; each higher one higher up.
    moves = _vertical_moves(weight)
    assert len(moves) == 4
    assert moves[0] > moves[1] > moves[2] and moves[3] > moves[0]
    panels = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if "check-panel" in _classes(g)]
    assert [p.get("data-check") for p in panels] == ["request-success-rate", "request-duration"]
    rate, latency = panels
    assert [_classes(e) for e in rate.iter() if _classes(e) & {"bound-min", "bound-max"}] == [{"bound-min"}]
    assert [_classes(e) for e in latency.iter() if _classes(e) & {"bound-min", "bound-max"}] == [{"bound-max"}]
    assert len([e for e in rate.iter() if "point" in _classes(e)]) == 4
    assert not [e for e in root.iter() if "failed" in _classes(e)]
    assert root.find(".//svg:g[@id='rollback']", NS) is None
    assert "demo/podinfo: Succeeded" in _texts(root)
    assert [r.get("data-phase") for r in root.iter() if "phase" in _classes(r)] == [
        "Progressing", "Promoting", "Finalising", "Succeeded"]


def test_a_rolled_back_release_marks_the_failed_points_and_the_rollback_with_its_cause() -> None:
    root = _svg(_release(None))
    panels = {g.get("data-check"): g for g in root.iter("{http://www.w3.org/2000/svg}g")
              if "check-panel" in _classes(g)}
    failed = [e for e in panels["request-success-rate"].iter() if {"point", "failed"} <= _classes(e)]
    assert len(failed) == 2
    marker = root.find(".//svg:g[@id='rollback']", NS)
    assert marker is not None
    assert "request-success-rate = 79.25 (min 99): Fail" in _texts(marker)
    assert "request-duration = 305 (max 200): Fail" in _texts(marker)
    cause = root.find(".//svg:text[@id='rollback-cause']", NS)
    assert cause is not None and "2 failed checks reached the threshold 2" in "".join(cause.itertext())
    # The marker stands where the weight drops back to zero: the rollback's moment.
    line = marker.find("svg:path", NS)
    weight = root.find(".//svg:path[@id='weight']", NS)
    assert line is not None and weight is not None
    marker_x = float(re.findall(r"M([\d.]+)", line.get("d", ""))[0])
    drop_x = float(re.findall(r"H([\d.]+)", weight.get("d", ""))[1])
    assert marker_x == drop_x


def test_text_from_the_cluster_is_escaped_and_long_text_is_cut_with_the_whole_in_a_tooltip() -> None:
    record = Recorder()
    record(0, "Started", Phase.PROGRESSING, 0, "r1")
    cause = "<script>alert('x')</script> & " + "very long " * 30
    record(3, "RolledBack", Phase.FAILED, 0, "r1", (success_rate(3, None),), warning=True, message=cause)
    recorded, _ = read_events(record.events)
    root = _svg(timeline(pick_run(recorded)))  # parses: the markup in the message is text
    shown = root.find(".//svg:text[@id='rollback-cause']", NS)
    assert shown is not None
    assert "<script>" in "".join(shown.itertext())
    title = shown.find("svg:title", NS)
    assert title is not None and cause in (title.text or "")
    no_value = [e for e in root.iter() if {"point", "pass", "no-value"} <= _classes(e)]
    assert len(no_value) == 1


def test_a_check_without_data_is_held_not_failed() -> None:
    record = Recorder()
    record(0, "Started", Phase.PROGRESSING, 0, "r1")
    record(3, "NoTraffic", Phase.PROGRESSING, 0, "r1", (success_rate(3, None, Verdict.NO_DATA),), warning=True)
    record(6, "Advanced", Phase.PROGRESSING, 10, "r1", (success_rate(6, 100.0),))
    recorded, _ = read_events(record.events)
    root = _svg(timeline(pick_run(recorded)))
    points = [_classes(e) for e in root.iter() if "point" in _classes(e)]
    assert points == [{"point", "held", "no-value"}, {"point", "pass"}]
