"""`make demo` stays true: its two releases through the real Traefik end as the README says, and
each one's `canary report` (the CLI against the live API server) draws what happened."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from e2e.demo import TraefikTraffic, run_demo
from e2e.harness.environment import POD_NETWORK_NEEDS_LOCAL_CLUSTER, Environment

SVG = "{http://www.w3.org/2000/svg}"


def _texts(element: ET.Element) -> str:
    return " ".join("".join(t.itertext()) for t in element.iter(f"{SVG}text"))


def _panels(root: ET.Element) -> list[str]:
    return [str(g.get("data-check")) for g in root.iter(f"{SVG}g") if "check-panel" in g.get("class", "").split()]


def test_the_demo_promotes_the_healthy_release_and_rolls_back_the_faulty_one(env: Environment, tmp_path: Path) -> None:
    if env.control_plane is None:
        pytest.skip(POD_NETWORK_NEEDS_LOCAL_CLUSTER)
    summaries = run_demo(env, TraefikTraffic(env), reports=tmp_path)
    assert [s.outcome for s in summaries] == ["Succeeded", "Failed"], summaries
    healthy, faulty = summaries
    assert healthy.weights[:4] == [0, 20, 40, 60], healthy
    assert "failed checks reached the threshold" in faulty.message, faulty

    assert healthy.report is not None and faulty.report is not None
    healthy_svg, faulty_svg = ET.parse(healthy.report).getroot(), ET.parse(faulty.report).getroot()
    for root in (healthy_svg, faulty_svg):
        assert root.find(f".//{SVG}path[@id='weight']") is not None
        assert {"request-success-rate", "request-duration"} <= set(_panels(root)), _panels(root)

    weight_panel = healthy_svg.find(f".//{SVG}g[@id='weight-panel']")
    assert weight_panel is not None
    assert {"20%", "40%", "60%"} <= set(_texts(weight_panel).split()), _texts(weight_panel)
    assert healthy_svg.find(f".//{SVG}g[@id='rollback']") is None
    assert "Succeeded" in _texts(healthy_svg)

    marker = faulty_svg.find(f".//{SVG}g[@id='rollback']")
    assert marker is not None, "the faulty release's report has no rollback marker"
    marked = _texts(marker)
    assert "rolled back" in marked
    # The checks that rolled it back are named with their values on the marker.
    assert "request-success-rate = " in marked or "request-duration = " in marked, marked
    failed_points = [e for e in faulty_svg.iter() if {"point", "failed"} <= set(e.get("class", "").split())]
    assert failed_points, "no failed check point drawn"
    cause = faulty_svg.find(f".//{SVG}text[@id='rollback-cause']")
    assert cause is not None and "failed checks reached the threshold" in "".join(cause.itertext())
