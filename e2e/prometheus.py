"""A real Prometheus server for the e2e environment, scraping the simulated mesh's proxies.

The binary is Debian's (``/usr/bin/prometheus``, 2.42, installed by ``e2e/cluster/build.sh``). It
runs as a child process from :mod:`e2e.processes`, so it dies with the test run, keeps its TSDB
and log under the work directory, and listens on loopback only. Scrape targets can change while
it runs (``set_targets``: rewrite the config, then POST ``/-/reload``), because the simulated mesh
gains and loses endpoints as pods come and go.

Timing: Prometheus 2.42 applies a changed target set on a fixed 5-second tick (not configurable in
that version), so the first samples of a target arrive about 5 s after :meth:`Prometheus.start` or
:meth:`Prometheus.set_targets`. Where that matters, keep the target set stable: one endpoint can
serve the series of many simulated pods, since the config honours the labels it exposes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from e2e.processes import E2ESetupError, ManagedProcess, free_port, spawn, wait_until

DEFAULT_BINARY = "/usr/bin/prometheus"
#: Seconds to wait for the server to answer /-/ready: TSDB and WAL replay are quick when empty.
START_TIMEOUT = 30.0
_HTTP_TIMEOUT = 5.0
#: Short, so a port taken by something that accepts but never answers fails fast at start.
_READY_TIMEOUT = 1.0


class PrometheusError(E2ESetupError):
    """Prometheus could not be started, reconfigured or queried; the message says which and why."""


class PrometheusQueryError(PrometheusError):
    """Prometheus refused the query itself (bad PromQL); retrying cannot help."""


@dataclass(frozen=True)
class ScrapeTarget:
    """One ``host:port`` serving ``/metrics``, with labels Prometheus adds to all its series."""

    address: str
    labels: Mapping[str, str] = field(default_factory=dict)


Target = str | ScrapeTarget


def find_binary() -> str | None:
    """The Prometheus binary: ``$CANARY_E2E_PROMETHEUS``, else Debian's path, else ``$PATH``."""
    configured = os.environ.get("CANARY_E2E_PROMETHEUS")
    if configured:
        return configured
    if os.access(DEFAULT_BINARY, os.X_OK):
        return DEFAULT_BINARY
    return shutil.which("prometheus")


def render_config(targets: Sequence[Target], scrape_interval: str) -> dict[str, Any]:
    """The prometheus.yml for ``targets``: one job, one static group per distinct label set."""
    groups: list[dict[str, Any]] = []
    by_labels: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for target in targets:
        scrape = target if isinstance(target, ScrapeTarget) else ScrapeTarget(target)
        by_labels.setdefault(tuple(sorted(scrape.labels.items())), []).append(scrape.address)
    for labels, addresses in by_labels.items():
        group: dict[str, Any] = {"targets": addresses}
        if labels:
            group["labels"] = dict(labels)
        groups.append(group)
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {
                "job_name": "e2e",
                "scrape_interval": scrape_interval,
                # A scrape may take as long as the interval; Prometheus refuses a longer timeout.
                "scrape_timeout": scrape_interval,
                # The simulated mesh exposes namespace/pod/deployment labels itself, the way
                # Kubernetes service discovery would add them; they must win over target labels.
                "honor_labels": True,
                "static_configs": groups,
            }
        ],
    }


class Prometheus:
    """A running Prometheus; use :meth:`start`, then :meth:`stop` or a ``with`` block."""

    def __init__(self, process: ManagedProcess, *, workdir: Path, port: int, scrape_interval: str) -> None:
        self.process = process
        self.workdir = workdir
        self.port = port
        self.scrape_interval = scrape_interval
        self.config_path = workdir / "prometheus.yml"
        #: The targets of the config in effect, so a scenario can add one and put them back.
        self.scrape_targets: tuple[Target, ...] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        scrape_targets: Sequence[Target],
        scrape_interval: str = "1s",
        port: int | None = None,
        detach: bool = False,
        binary: str | None = None,
        timeout: float = START_TIMEOUT,
    ) -> Prometheus:
        """Start Prometheus with its config, TSDB and log under ``workdir``; return once ready.

        ``detach=True`` lets it outlive this Python process (``make cluster-up``); then stopping
        it is the caller's job, by :attr:`pid`.
        """
        exe = binary or find_binary()
        if exe is None:
            raise PrometheusError(
                f"no Prometheus binary: {DEFAULT_BINARY} is missing and none is on PATH; run "
                "e2e/cluster/build.sh (it installs Debian's prometheus) or set CANARY_E2E_PROMETHEUS"
            )
        # Absolute, because Prometheus runs inside workdir and reads the paths we pass it from there.
        workdir = workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        chosen_port = port if port is not None else free_port()
        config_path = workdir / "prometheus.yml"
        _write_config(config_path, render_config(scrape_targets, scrape_interval))
        argv = [
            exe,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            # A test run lasts minutes; a short retention keeps a long-lived detached one small too.
            "--storage.tsdb.retention.time=2h",
            f"--web.listen-address=127.0.0.1:{chosen_port}",
            # /-/reload is how set_targets applies a new config without a restart.
            "--web.enable-lifecycle",
            "--log.level=info",
        ]
        process = spawn("prometheus", argv, log_path=workdir / "prometheus.log", cwd=workdir, die_with_parent=not detach)
        server = cls(process, workdir=workdir, port=chosen_port, scrape_interval=scrape_interval)
        server.scrape_targets = tuple(scrape_targets)
        try:
            wait_until(server.ready, timeout=timeout, what=f"Prometheus to be ready at {server.url}/-/ready", process=process)
        except E2ESetupError as exc:
            process.stop()
            raise PrometheusError(str(exc)) from exc
        except BaseException:
            process.stop()
            raise
        return server

    def ready(self) -> bool:
        """True when ``/-/ready`` answers 200 (config loaded, TSDB open)."""
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=_READY_TIMEOUT) as response:
            return int(response.status) == 200

    def stop(self) -> None:
        """Stop the server and anything it forked. Idempotent."""
        self.process.stop()

    def start_again(self, *, timeout: float = START_TIMEOUT) -> None:
        """Start a stopped server again with the same flags: same port, config and TSDB, so the
        series scraped before the stop are still there and scraping resumes where it left off.

        The fault suite uses it to take Prometheus away mid-release and give it back.
        """
        if self.process.alive():
            raise PrometheusError(f"Prometheus (pid {self.pid}) is still running; stop it first")
        exe = self.process.argv[0]
        # A detached server was spawned in its own session, not tied to us; a restarted one is
        # always tied to this run, since only the fault suite restarts one.
        process = spawn("prometheus", self.process.argv, log_path=self.process.log_path, cwd=self.workdir)
        self.process = process
        try:
            wait_until(self.ready, timeout=timeout, what=f"{exe} to be ready again at {self.url}/-/ready",
                       process=process)
        except E2ESetupError as exc:
            process.stop()
            raise PrometheusError(str(exc)) from exc

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def set_targets(self, targets: Sequence[Target]) -> None:
        """Scrape ``targets`` from now on: rewrite the config and reload it in place.

        Returns once Prometheus has loaded the config; scraping the new targets starts within
        about 5 s (see the module doc). A config Prometheus refuses raises
        :class:`PrometheusError` with its reason, and the previous config stays in effect.
        """
        previous = self.config_path.read_text(encoding="utf-8")
        config = render_config(targets, self.scrape_interval)
        _write_config(self.config_path, config)
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            # Prometheus answers 500 with the reason when the new config does not load, and keeps
            # running the old one; the file goes back to it so a later reload or restart agrees.
            detail = exc.read().decode(errors="replace").strip()
            self.config_path.write_text(previous, encoding="utf-8")
            raise PrometheusError(
                f"Prometheus at {self.url} refused the new config ({detail}); it keeps the previous one. "
                f"Refused config:\n{yaml.safe_dump(config, sort_keys=False)}"
            ) from exc
        except OSError as exc:
            raise PrometheusError(f"could not reload Prometheus at {self.url}: {exc}{self._log_hint()}") from exc
        self.scrape_targets = tuple(targets)

    def loaded_config(self) -> str:
        """The configuration Prometheus is running with (YAML), as it reports it."""
        data = self._api("/api/v1/status/config", {})
        return str(data.get("yaml", ""))

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their ``health`` and ``lastError`` (``/api/v1/targets``)."""
        data = self._api("/api/v1/targets", {"state": "active"})
        active: list[dict[str, Any]] = data.get("activeTargets", [])
        return active

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result: ``[{"metric": {...}, "value": [time, "text"]}, ...]``.

        A scalar or string result comes back as one item with an empty ``metric``.
        """
        data = self._api("/api/v1/query", {"query": promql})
        result = data.get("result", [])
        if data.get("resultType") in ("scalar", "string"):
            return [{"metric": {}, "value": result}]
        items: list[dict[str, Any]] = result
        return items

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A range query's series, as a Grafana time-series panel asks for them:
        ``[{"metric": {...}, "values": [[time, "text"], ...]}, ...]`` (times in Unix seconds)."""
        data = self._api("/api/v1/query_range", {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                                 "step": f"{step:g}"})
        items: list[dict[str, Any]] = data.get("result", [])
        return items

    def label_values(self, label: str, match: str) -> list[str]:
        """The values ``label`` takes in the series ``match`` selects (what Grafana's
        ``label_values(match, label)`` variable query lists)."""
        url_label = urllib.parse.quote(label, safe="")
        url = f"{self.url}/api/v1/label/{url_label}/values?{urllib.parse.urlencode({'match[]': match})}"
        try:
            with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            error_type = PrometheusQueryError if exc.code in (400, 422) else PrometheusError
            raise error_type(f"GET {url} failed: {exc.read().decode(errors='replace')}") from exc
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"GET {url} failed: {exc}{self._log_hint()}") from exc
        return [str(v) for v in payload.get("data") or []]

    def wait_for_series(self, promql: str, timeout: float) -> list[dict[str, Any]]:
        """Poll ``promql`` until it returns at least one series; return that result.

        Bad PromQL fails at once (:class:`PrometheusQueryError`); a timeout names the scrape
        targets and their health, which is usually why no series arrived.
        """
        deadline = time.monotonic() + timeout
        last_error: PrometheusError | None = None
        while True:
            try:
                found = self.query(promql)
                if found:
                    return found
            except PrometheusQueryError:
                raise
            except PrometheusError as exc:
                last_error = exc
            if not self.process.alive():
                raise PrometheusError(f"Prometheus stopped while waiting for {promql!r}{self._log_hint()}")
            if time.monotonic() >= deadline:
                detail = f" (last error: {last_error})" if last_error else ""
                raise PrometheusError(
                    f"timed out after {timeout:.0f}s waiting for a series for {promql!r} in Prometheus at "
                    f"{self.url}{detail}{self._targets_hint()}"
                )
            time.sleep(0.2)

    def _api(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            # Bad PromQL is a 400 whose JSON body carries the parser's message.
            try:
                payload = json.loads(exc.read())
            except ValueError:
                payload = {"error": str(exc)}
            error_type = PrometheusQueryError if exc.code in (400, 422) else PrometheusError
            raise error_type(f"GET {path} {dict(params)} failed: {payload.get('error', exc)}") from exc
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"GET {url} failed: {exc}{self._log_hint()}") from exc
        if payload.get("status") != "success":
            raise PrometheusError(f"GET {path} {dict(params)} failed: {payload.get('error', payload)}")
        data: dict[str, Any] = payload.get("data", {})
        return data

    def _log_hint(self) -> str:
        state = "running" if self.process.alive() else f"exited with code {self.process.popen.returncode}"
        return f" (Prometheus {state}; last lines of {self.process.log_path}:\n{self.process.log_tail(10)})"

    def _targets_hint(self) -> str:
        try:
            targets = self.targets()
        except PrometheusError:
            return ""
        if not targets:
            return (
                f"; Prometheus reports no active scrape targets yet (configured in {self.config_path}; "
                "it applies target changes every 5 s)"
            )
        states = ", ".join(
            f"{t.get('scrapeUrl')}: {t.get('health')}" + (f" ({t['lastError']})" if t.get("lastError") else "")
            for t in targets
        )
        return f"; scrape targets: {states}"


def _write_config(path: Path, config: Mapping[str, Any]) -> None:
    # Written beside and renamed over, so a reload never reads a half-written file.
    tmp = path.with_suffix(".yml.tmp")
    tmp.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
    tmp.replace(path)


__all__ = [
    "DEFAULT_BINARY",
    "Prometheus",
    "PrometheusError",
    "PrometheusQueryError",
    "ScrapeTarget",
    "find_binary",
    "render_config",
]
