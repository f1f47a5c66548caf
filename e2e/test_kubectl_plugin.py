"""``kubectl canary ...``: the real kubectl finds the installed ``kubectl-canary`` plugin on PATH.

Every command goes through the kubectl binary built with the control plane, with PATH holding
the venv's bin (where ``pip install`` put ``kubectl-canary``) and the kubectl's directory, as
on a workstation. What each command did is read back from the API server, not from its output:
the on-call commands by their effect on the Canary (conditions, phase, primary revision), the
flags by which Canaries a command could see (``--context`` selects a context whose namespace
holds the Canary, while the file's current context points at a port where nothing listens).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from e2e.cluster.binaries import expected_binaries
from e2e.conftest import StartController
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube, wait_for
from e2e.harness.release import install_app, ship, template_version

VENV_BIN = Path(sys.executable).parent
RPS = 20
COMMAND_TIMEOUT = 120.0
#: The context the plugin must be told to use; the file's current one leads nowhere.
PLUGIN_CONTEXT = "plugin-e2e"
#: Loopback, a port nothing listens on (the first privileged one, never bound here).
NOWHERE = "https://127.0.0.1:1"


@dataclass
class Kubectl:
    """Runs ``kubectl canary ...`` as a user's shell would, with a kubeconfig in KUBECONFIG."""

    kubectl: Path
    kubeconfig: Path
    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def environ(self, kubeconfig: Path | None = None) -> dict[str, str]:
        path = os.pathsep.join([str(VENV_BIN), str(self.kubectl.parent), os.environ.get("PATH", "/usr/bin:/bin")])
        return {"PATH": path, "HOME": str(self.home), "KUBECONFIG": str(kubeconfig or self.kubeconfig),
                "KUBECACHEDIR": str(self.home / "kube-cache"), **self.extra_env}

    def __call__(self, *args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", "canary", *args], env=self.environ(kubeconfig), capture_output=True,
                              text=True, timeout=COMMAND_TIMEOUT, check=False, stdin=subprocess.DEVNULL)

    def ok(self, *args: str, kubeconfig: Path | None = None) -> str:
        done = self(*args, kubeconfig=kubeconfig)
        assert done.returncode == 0, f"kubectl canary {' '.join(args)} exited {done.returncode}:\n{done.stderr}"
        return done.stdout


def _kubectl(env: Environment) -> Path:
    if env.kubectl is None:
        pytest.skip("no kubectl: build it with `python -m e2e.cluster build`, or put one on PATH")
    if not (VENV_BIN / "kubectl-canary").is_file():
        pytest.skip(f"kubectl-canary is not installed in {VENV_BIN}: run `make venv`")
    # kubectl resolves `kubectl` through PATH in this scenario; make sure it is the built one.
    return env.kubectl


@pytest.fixture
def kubectl(env: Environment, tmp_path: Path) -> Kubectl:
    home = tmp_path / "home"
    home.mkdir()
    return Kubectl(_kubectl(env), env.kubeconfig, home)


def _two_context_kubeconfig(source: Path, target: Path, namespace: str) -> Path:
    """``source`` plus a context ``plugin-e2e`` (namespace ``namespace``); the current context
    becomes one whose server is a closed loopback port, so only ``--context`` reaches the cluster."""
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    real = config["contexts"][0]["context"]
    config["clusters"].append({"name": "nowhere", "cluster": {"server": NOWHERE, "insecure-skip-tls-verify": True}})
    config["contexts"] = [
        {"name": "nowhere", "context": {"cluster": "nowhere", "user": real["user"]}},
        {"name": PLUGIN_CONTEXT, "context": {**real, "namespace": namespace}},
    ]
    config["current-context"] = "nowhere"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    return target


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Watching:
    """``kubectl canary watch ...`` running in the background, its output collected line by line."""

    def __init__(self, kubectl: Kubectl, *args: str) -> None:
        # Ctrl-C must reach the plugin as a user's would, whatever the runner's disposition: a
        # shell without job control starts background jobs (`make test &`) with SIGINT ignored,
        # children inherit that, and Python then installs no KeyboardInterrupt handler.
        self.proc = subprocess.Popen(["kubectl", "canary", "watch", *args], env=kubectl.environ(),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, preexec_fn=_default_sigint)
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._readers = [self._drain(self.proc.stdout, self.lines), self._drain(self.proc.stderr, self.errors)]

    @staticmethod
    def _drain(stream: IO[str] | None, into: list[str]) -> threading.Thread:
        assert stream is not None
        reader = threading.Thread(target=lambda: into.extend(stream), daemon=True)
        reader.start()
        return reader

    def wait_for_text(self, text: str, *, after: int = 0) -> int:
        """Wait until a line from index ``after`` on contains ``text``; its index."""
        def seen() -> tuple[int | None, int | None]:
            found = next((i for i, line in enumerate(list(self.lines)) if i >= after and text in line), None)
            return found, self.proc.poll()
        found, code = wait_for(seen, lambda s: s[0] is not None or s[1] is not None, timeout=COMMAND_TIMEOUT,
                               what=f"the watch to print {text!r}")
        assert found is not None, f"the watch exited {code}:\n{''.join(self.errors)}\n{''.join(self.lines)}"
        return found

    def stop(self) -> int | None:
        """Ctrl-C, as a user stops it; the exit code (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        for reader in self._readers:
            reader.join(timeout=10)
        return self.proc.returncode


@pytest.fixture
def watching(kubectl: Kubectl) -> Iterator[list[Watching]]:
    started: list[Watching] = []
    yield started
    for watch in started:
        watch.stop()


def test_status_and_watch_honour_kubeconfig_context_namespace_and_all_namespaces(
    env: Environment, kube: Kube, start_controller: StartController, kubectl: Kubectl,
    watching: list[Watching], tmp_path: Path,
) -> None:
    env.use_flavour("linkerd")
    start_controller()
    install_app(kube, "podinfo", interval="1m")
    ns = kube.namespace

    # The plugin is found through PATH, and kubectl hands it the words after `canary`.
    assert shutil.which("kubectl-canary", path=kubectl.environ()["PATH"]) == str(VENV_BIN / "kubectl-canary")
    text = kubectl.ok("status", "podinfo", "-n", ns)
    assert text.startswith(f"Canary {ns}/podinfo\n"), text
    assert "Initialized" in text

    # -o json / yaml: the status as the controller wrote it (the fields that hold still here).
    written = kube.status("podinfo")
    as_json = json.loads(kubectl.ok("status", "podinfo", "-n", ns, "-o", "json"))
    as_yaml = yaml.safe_load(kubectl.ok("status", "podinfo", "--namespace", ns, "-o", "yaml"))
    for doc in (as_json, as_yaml):
        assert (doc["namespace"], doc["name"]) == (ns, "podinfo")
        assert {k: doc["status"].get(k) for k in ("phase", "lastAppliedSpec")} == {
            k: written.get(k) for k in ("phase", "lastAppliedSpec")}

    # -n: a namespace without Canaries says so, and this one lists exactly its own.
    assert kubectl.ok("status", "-n", f"{ns}-empty") == f"No canaries in namespace {ns}-empty.\n"
    listed = json.loads(kubectl.ok("status", "-n", ns, "-o", "json"))
    assert [(i["namespace"], i["name"]) for i in listed["items"]] == [(ns, "podinfo")]

    # -A: every namespace, one line per Canary (the context's namespace, default, has none).
    everywhere = kubectl.ok("status", "-A")
    rows = [line.split() for line in everywhere.splitlines()]
    assert rows[0][:3] == ["NAMESPACE", "NAME", "PHASE"], everywhere
    assert [ns, "podinfo", "Initialized"] in [row[:3] for row in rows], everywhere
    all_json = json.loads(kubectl.ok("status", "-A", "-o", "json"))
    assert (ns, "podinfo") in [(i["namespace"], i["name"]) for i in all_json["items"]]

    # --kubeconfig and --context: a file whose current context leads nowhere; the plugin reaches
    # the cluster only through the context named on the command line, and takes its namespace.
    two = _two_context_kubeconfig(env.kubeconfig, tmp_path / "two-contexts.yaml", ns)
    refused = kubectl("status", "podinfo", "--kubeconfig", str(two))
    assert refused.returncode == 3, (refused.returncode, refused.stdout, refused.stderr)
    assert refused.stderr.startswith("kubectl canary: error:"), refused.stderr
    chosen = kubectl.ok("status", "podinfo", "--kubeconfig", str(two), "--context", PLUGIN_CONTEXT)
    assert chosen.startswith(f"Canary {ns}/podinfo\n"), chosen
    # The same file through KUBECONFIG, and the flags before the command as kubectl allows.
    from_env = kubectl.ok("--context", PLUGIN_CONTEXT, "status", "-o", "json", kubeconfig=two)
    assert [(i["namespace"], i["name"]) for i in json.loads(from_env)["items"]] == [(ns, "podinfo")]

    # watch: prints the Canary, keeps watching, and shows the next change the controller writes.
    watch = Watching(kubectl, "podinfo", "-n", ns)
    watching.append(watch)
    first = watch.wait_for_text(f"Canary {ns}/podinfo")
    kubectl.ok("pause", "podinfo", "-n", ns)
    watch.wait_for_text("canary.dev/pause=true (handled)", after=first)
    assert watch.proc.poll() is None, "a watch runs until it is stopped"
    assert watch.stop() == 0, "".join(watch.errors)


def test_on_call_commands_act_on_the_canary_and_wait_reports_the_outcome(
    env: Environment, kube: Kube, start_controller: StartController, kubectl: Kubectl,
) -> None:
    env.use_flavour("linkerd")
    start_controller()
    # A long interval: the release sits at its first step, so only the commands move it.
    install_app(kube, "podinfo", interval="1m", step_weight=30, max_weight=60)
    env.mesh.client.set_load(kube.namespace, "podinfo", RPS)
    ns = kube.namespace

    ship(kube, "podinfo", "2")
    wait_for(lambda: kube.status("podinfo"), lambda st: int(st.get("canaryWeight") or 0) > 0,
             timeout=60, what="the release of v2 to reach its first step")

    # pause: the controller confirms it and says so in the Reconciling condition.
    kubectl.ok("pause", "podinfo", "-n", ns)
    reconciling = kube.condition("podinfo", "Reconciling")
    assert reconciling is not None and reconciling["reason"] == "Paused", kube.status("podinfo")
    assert kube.status("podinfo")["handledAnnotations"].get("pause") == "true"

    # resume: the annotation is gone and the release is reconciling again.
    kubectl.ok("resume", "podinfo", "-n", ns)
    assert "canary.dev/pause" not in (kube.canary("podinfo")["metadata"].get("annotations") or {})
    wait_for(lambda: kube.condition("podinfo", "Reconciling"), lambda c: c is not None and c["reason"] != "Paused",
             timeout=30, what="the Reconciling condition to leave Paused")

    # promote: v2 becomes the primary without the remaining analysis; wait agrees.
    kubectl.ok("promote", "podinfo", "-n", ns)
    kubectl.ok("wait", "podinfo", "-n", ns, "--for", "succeeded", "--timeout", "2m")
    assert kube.status("podinfo")["phase"] == "Succeeded"
    assert template_version(kube.deployment("podinfo-primary")) == "2"

    # rollback: v3 is abandoned with the reason given; wait --for failed succeeds, and
    # wait --for succeeded says the release ended the other way (exit 1).
    ship(kube, "podinfo", "3")
    wait_for(lambda: kube.status("podinfo"), lambda st: st.get("phase") == "Progressing",
             timeout=60, what="the release of v3 to start")
    kubectl.ok("rollback", "podinfo", "-n", ns, "--reason", "plugin e2e")
    kubectl.ok("wait", "podinfo", "-n", ns, "--for", "failed", "--timeout", "2m")
    failed = kube.status("podinfo")
    assert failed["phase"] == "Failed" and "plugin e2e" in failed.get("message", ""), failed
    assert template_version(kube.deployment("podinfo-primary")) == "2"
    other_way = kubectl("wait", "podinfo", "-n", ns, "--for", "succeeded", "--timeout", "30s")
    assert other_way.returncode == 1, (other_way.returncode, other_way.stdout, other_way.stderr)

    # report: the plugin draws the rolled-back release like canary report does.
    svg = kubectl.ok("report", "podinfo", "-n", ns, "-o", "-")
    assert "<svg" in svg and "</svg>" in svg, svg[:500]

    # retry: the same revision is analysed again.
    kubectl.ok("retry", "podinfo", "-n", ns)
    again = wait_for(lambda: kube.status("podinfo"),
                     lambda st: st.get("runStarted") != failed.get("runStarted") and st.get("phase") != "Failed",
                     timeout=60, what="the retried run to start")
    assert again["lastAppliedSpec"] == failed["lastAppliedSpec"], again


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        pytest.param(["st"], ["status"], id="command"),
        pytest.param(["watch", "-o", ""], ["text", "json", "yaml"], id="output"),
        pytest.param(["wait", "podinfo", "--for", ""], ["succeeded", "failed", "promoted"], id="goal"),
    ],
)
def test_kubectl_completes_the_plugin_through_kubectl_complete_canary(
    words: list[str], expected: list[str], tmp_path: Path,
) -> None:
    """``kubectl canary <TAB>``: the shell asks kubectl (``kubectl __complete ...``), which runs
    kubectl_complete-canary from PATH and relays its answer. No cluster is needed."""
    built = expected_binaries().kubectl
    if not built.is_file():
        pytest.skip(f"no kubectl at {built}: build it with `python -m e2e.cluster build`")
    runner = Kubectl(built, tmp_path / "no-kubeconfig", tmp_path)
    done = subprocess.run(["kubectl", "__complete", "canary", *words], env=runner.environ(), capture_output=True,
                          text=True, timeout=COMMAND_TIMEOUT, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    # Cobra's answer: one candidate a line, then the directive (4: no file names).
    assert done.stdout.splitlines() == [*expected, ":4"], (done.stdout, done.stderr)
