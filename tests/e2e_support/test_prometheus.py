"""The e2e Prometheus runner against the real binary: start, scrape, query, reload, stop."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from e2e.processes import E2ESetupError
from e2e.prometheus import Prometheus, PrometheusError, PrometheusQueryError, ScrapeTarget, find_binary, render_config

BINARY = find_binary()
needs_prometheus = pytest.mark.skipif(
    BINARY is None, reason="no Prometheus binary (/usr/bin/prometheus); run e2e/cluster/build.sh to install it"
)


class Exporter:
    """A tiny /metrics endpoint on loopback, like one simulated mesh proxy."""

    def __init__(self, name: str) -> None:
        self.registry = CollectorRegistry()
        self.counter = Counter(name, "requests seen by this test exporter", ["direction"], registry=self.registry)
        server, thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.server: WSGIServer = server
        self.thread: threading.Thread = thread
        self.address = f"127.0.0.1:{server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def exporters() -> Iterator[tuple[Exporter, Exporter]]:
    first, second = Exporter("e2e_first_requests"), Exporter("e2e_second_requests")
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def _processes_using(path: Path) -> list[int]:
    """Pids whose command line mentions ``path`` (ours alone: the path is a fresh tmp dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline:
            pids.append(int(entry.name))
    return pids


@needs_prometheus
def test_scrapes_queries_and_stops(tmp_path: Path, exporters: tuple[Exporter, Exporter]) -> None:
    first, second = exporters
    first.counter.labels(direction="inbound").inc(7)
    second.counter.labels(direction="outbound").inc(3)
    targets: list[str | ScrapeTarget] = [first.address, ScrapeTarget(second.address, {"pod": "podinfo-canary-1"})]

    with Prometheus.start(tmp_path, scrape_targets=targets) as prom:
        assert prom.url == f"http://127.0.0.1:{prom.port}"
        assert prom.ready()
        # About 5 s: Prometheus 2.42 applies new targets on a 5-second tick.
        series = prom.wait_for_series('e2e_first_requests_total{direction="inbound"}', timeout=15)
        assert len(series) == 1
        assert series[0]["metric"]["instance"] == first.address
        assert series[0]["metric"]["job"] == "e2e"
        assert float(series[0]["value"][1]) == 7.0
        # Both targets are scraped on the same tick; the second carries its target label.
        series = prom.wait_for_series("e2e_second_requests_total", timeout=5)
        assert series[0]["metric"]["pod"] == "podinfo-canary-1"
        assert float(series[0]["value"][1]) == 3.0
        assert {t["scrapeUrl"] for t in prom.targets()} == {
            f"http://{first.address}/metrics", f"http://{second.address}/metrics"
        }
        assert prom.query("scalar(sum(e2e_first_requests_total) + 1)")[0]["value"][1] == "8"
        assert prom.query("e2e_missing_total") == []
        with pytest.raises(PrometheusQueryError, match="parse error"):
            prom.wait_for_series("sum(", timeout=10)
        pid = prom.pid
        assert (tmp_path / "data").is_dir()

    assert not prom.process.alive()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert _processes_using(tmp_path) == []
    prom.stop()  # idempotent


@needs_prometheus
def test_started_again_after_a_stop_it_keeps_its_port_and_its_data(
    tmp_path: Path, exporters: tuple[Exporter, Exporter]
) -> None:
    first, _ = exporters
    first.counter.labels(direction="inbound").inc(5)
    with Prometheus.start(tmp_path, scrape_targets=[first.address]) as prom:
        prom.wait_for_series('e2e_first_requests_total{direction="inbound"}', timeout=15)
        url, pid = prom.url, prom.pid
        with pytest.raises(PrometheusError, match="still running"):
            prom.start_again()
        prom.stop()
        with pytest.raises(PrometheusError):
            prom.query("up")
        first.counter.labels(direction="inbound").inc(2)

        prom.start_again()
        assert prom.url == url and prom.pid != pid and prom.ready()
        # A 5 was only ever scraped before the stop: the TSDB kept it. Then scraping goes on.
        series = prom.wait_for_series("min_over_time(e2e_first_requests_total[5m]) == 5", timeout=15)
        assert float(series[0]["value"][1]) == 5.0
        series = prom.wait_for_series('e2e_first_requests_total{direction="inbound"} == 7', timeout=15)
        assert float(series[0]["value"][1]) == 7.0
    assert _processes_using(tmp_path) == []


@needs_prometheus
def test_set_targets_reloads_and_a_refused_config_keeps_the_old_one(tmp_path: Path) -> None:
    with Prometheus.start(tmp_path, scrape_targets=[]) as prom:
        prom.set_targets(["127.0.0.1:9999", ScrapeTarget("127.0.0.1:9998", {"deployment": "podinfo"})])
        loaded = prom.loaded_config()
        assert "127.0.0.1:9999" in loaded and "deployment: podinfo" in loaded
        before = prom.config_path.read_text()

        with pytest.raises(PrometheusError, match="refused the new config .*not a valid label name"):
            prom.set_targets([ScrapeTarget("127.0.0.1:9997", {"not-a-label": "x"})])
        assert prom.loaded_config() == loaded
        assert prom.config_path.read_text() == before
    assert _processes_using(tmp_path) == []


@needs_prometheus
def test_waiting_without_data_names_the_configuration(tmp_path: Path) -> None:
    with Prometheus.start(tmp_path, scrape_targets=["127.0.0.1:9"]) as prom:
        with pytest.raises(PrometheusError, match=r"timed out after 1s waiting for a series for 'up == 1' .*no active "
                                                  r"scrape targets yet \(configured in .*prometheus.yml"):
            prom.wait_for_series("up == 1", timeout=1)


@needs_prometheus
def test_port_in_use_fails_with_the_log(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(PrometheusError, match=r"(?s)prometheus exited with code 1 .*address already in use") as caught:
            Prometheus.start(tmp_path, scrape_targets=[], port=busy.getsockname()[1])
    assert isinstance(caught.value.__cause__, E2ESetupError)
    assert _processes_using(tmp_path) == []


def test_missing_binary_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("e2e.prometheus.find_binary", lambda: None)
    with pytest.raises(PrometheusError, match="run e2e/cluster/build.sh"):
        Prometheus.start(tmp_path, scrape_targets=[])


def test_config_groups_targets_by_labels() -> None:
    config = render_config(
        ["127.0.0.1:1", ScrapeTarget("127.0.0.1:2", {"pod": "a"}), ScrapeTarget("127.0.0.1:3", {"pod": "a"})], "2s"
    )
    assert config["global"] == {"scrape_interval": "2s", "evaluation_interval": "2s"}
    (job,) = config["scrape_configs"]
    assert job["honor_labels"] is True
    assert job["static_configs"] == [
        {"targets": ["127.0.0.1:1"]},
        {"targets": ["127.0.0.1:2", "127.0.0.1:3"], "labels": {"pod": "a"}},
    ]
