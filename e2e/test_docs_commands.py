"""Every kubectl command printed in README.md and docs/operations.md works as printed.

The commands are read from the Markdown (``e2e/harness/doc_commands.py``), never copied here, so
a command added to the docs is run by the next test run. They run in document order (README,
then operations.md) with the real kubectl, in the story the docs tell: CRDs, a namespace, the
example Canary ``podinfo`` with its controller, a new revision, then the troubleshooting
commands and the on-call runbook. Each must exit 0, and the ones that name the Canary must
have acted on it: kubectl's own request log (``-v=6``) shows the Canary fetched (and patched)
by name, and an annotation is on the Canary afterwards (or gone, for ``key-``) with the
controller's receipt for it in ``status.handledAnnotations``. ``kubectl get canary NAME``
failing with "you must specify only one resource" (a CRD category named ``canary``) is what
this proves gone.

What differs from a reader's run, and why:

- The namespace: the docs say ``test`` (``-n test``, ``create namespace test``) or ``NS``; each
  run uses a fresh one, which the docs' own ``kubectl create namespace`` creates.
- Placeholders in angle brackets are filled from :data:`PLACEHOLDERS`; an unknown one fails.
- ``-f`` files run from a staging copy: directories (``crds/``) as they are, manifests with
  namespace ``test`` moved to the run's namespace and the Canary's webhooks deleted, as the
  README's step 3 tells readers who do not run those services (their URLs are cluster DNS
  names this run must not send traffic to).
- ``kubectl`` is a shell function that records its arguments after the shell expanded them
  (``$(date ...)``) and adds ``-v=6`` (not to ``kubectl canary``, the plugin, which kubectl
  finds on PATH: the venv's bin is on it); the command text itself goes to ``bash -c`` unchanged.
- A watch (``-w``) must print the Canary's row and still be watching; it is then stopped.
- Before the next command the scenario waits, as a reader would, for the controller to be up
  once the namespace exists and for it to have initialized the Canary once that exists.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
import yaml

from e2e.harness.controller import Controller, ControllerOptions
from e2e.harness.doc_commands import DocCommand, kubectl_commands
from e2e.harness.environment import Environment
from e2e.harness.kube import Kube, exists, wait_for

REPO = Path(__file__).resolve().parents[1]
DOCS = (REPO / "README.md", REPO / "docs" / "operations.md")

#: The namespace and Canary the docs' commands assume.
DOC_NAMESPACES = ("test", "NS")
DOC_CANARY = "podinfo"

#: What an ``<angle-bracket>`` placeholder in a command stands for in this scenario.
PLACEHOLDERS = {"<target>": DOC_CANARY}

#: Printed "commands" that cannot run here, each with why. Kept small; the test fails when an
#: entry no longer matches a command in the docs, so it cannot hide a command that changed.
SKIPPED = {
    # README's controller step, in a comment: "e.g. through kubectl port-forward". It names the
    # verb without a target, and a port-forward needs a kubelet's streaming endpoint, which the
    # kwok Nodes of the local control plane do not serve.
    "kubectl port-forward": "a mention without a target; kwok Nodes serve no port-forward",
    # README prose: "Set these on the Canary with `kubectl annotate` or the CLI". The verb alone;
    # the runbook's complete annotate commands are all run.
    "kubectl annotate": "the verb named in prose, not a command",
    # operations.md's chat alerts: restart the chart's Deployment after rotating its Secret. The
    # scenarios run the controller as a process, so there is no Deployment to restart.
    "kubectl -n canary-system rollout restart deployment canary": "the chart's Deployment is not installed here",
}

#: The resource names kubectl accepts for the Canary kind.
CANARY_RESOURCE = {"canary", "canaries", "canary.canary.dev", "canaries.canary.dev", "cn"}
#: Annotations the controller answers with a receipt in status.handledAnnotations[short name].
ON_CALL_ANNOTATIONS = {"canary.dev/rollback", "canary.dev/promote", "canary.dev/pause", "canary.dev/retry"}
#: kubectl flags whose value is the next word (the docs' commands use no others before a name).
FLAGS_WITH_VALUE = {
    "-n", "--namespace", "-o", "--output", "-l", "--selector", "--field-selector", "--sort-by",
    "-f", "--filename", "--context", "--kubeconfig", "--timeout", "-c", "--container",
}
WATCH_FLAGS = {"-w", "--watch", "--watch-only"}

# kubectl -v=6 logs each response as: "Response" verb="GET" url="https://.../path?query" status="200 OK"
_RESPONSE = re.compile(r'"Response" verb="(?P<verb>[A-Z]+)" url="https?://[^/"]+(?P<path>[^?"]*)[^"]*" status="(?P<status>\d+)')
_PLACEHOLDER = re.compile(r"<[A-Za-z][\w-]*>")

# Records the words kubectl received (NUL-separated), then runs the real one with its request log;
# not for the plugin (`kubectl canary ...`): kubectl refuses flags before a plugin's name.
_WRAPPER = ('kubectl() { printf "%s\\0" "$@" > "$DOCS_KUBECTL_ARGV"; '
            'if [ "$1" = canary ]; then "$DOCS_KUBECTL" "$@"; else "$DOCS_KUBECTL" -v=6 "$@"; fi; }\n')

COMMAND_TIMEOUT = 120.0
"""Seconds one command may take; ``rollout status`` waits for a rollout, the rest are quick."""


def printed_commands() -> list[DocCommand]:
    """Every printed kubectl command of the docs, the first place each is printed, in doc order."""
    first: dict[str, DocCommand] = {}
    for doc in DOCS:
        for command in kubectl_commands(doc):
            first.setdefault(command.text, command)
    return list(first.values())


def for_namespace(text: str, namespace: str) -> str:
    """``text`` with the docs' namespace (``-n test``, ``create namespace NS``) and placeholders
    replaced by this run's; an unknown placeholder is an error naming it."""
    names = "|".join(DOC_NAMESPACES)
    text = re.sub(rf"(?<!\S)(-n|--namespace)(\s+|=)({names})(?!\S)", rf"\g<1>\g<2>{namespace}", text)
    text = re.sub(rf"(?<!\S)(create\s+(?:namespace|ns))\s+({names})(?!\S)", rf"\g<1> {namespace}", text)
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    unknown = _PLACEHOLDER.findall(text)
    if unknown:
        raise AssertionError(f"no value for the placeholder(s) {unknown} in {text!r}: add them to PLACEHOLDERS")
    return text


def _file_arguments(text: str) -> list[str]:
    words = shlex.split(text)
    found = []
    for i, word in enumerate(words):
        if word in ("-f", "--filename") and i + 1 < len(words):
            found.append(words[i + 1])
        elif word.startswith(("-f=", "--filename=")):
            found.append(word.partition("=")[2])
    return found


def _manifests_for(source: Path, namespace: str) -> str:
    """The manifests of ``source`` moved to ``namespace``, without the Canary's webhooks."""
    docs = [d for d in yaml.safe_load_all(source.read_text()) if d]
    for doc in docs:
        meta = doc.setdefault("metadata", {})
        if meta.get("namespace") in DOC_NAMESPACES:
            meta["namespace"] = namespace
        if doc.get("kind") == "Canary":
            (doc.get("spec", {}).get("analysis") or {}).pop("webhooks", None)
    return yaml.safe_dump_all(docs, sort_keys=False)


def stage_files(commands: list[DocCommand], checkout: Path, namespace: str) -> None:
    """Make every ``-f`` path of ``commands`` resolve under ``checkout`` as it does in the repo."""
    for command in commands:
        for name in _file_arguments(command.text):
            source, target = REPO / name, checkout / name
            if target.exists() or target.is_symlink():
                continue
            assert source.exists(), f"{command.where}: `{command.text}` names {name}, which is not in the repository"
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                target.symlink_to(source)
            else:
                target.write_text(_manifests_for(source, namespace))


def _drain(stream: IO[str] | None, into: list[str]) -> threading.Thread:
    """Read ``stream`` into ``into`` line by line in the background (a watch never closes it)."""
    assert stream is not None
    reader = threading.Thread(target=lambda: into.extend(stream), daemon=True)
    reader.start()
    return reader


@dataclass
class Ran:
    command: DocCommand
    script: str
    argv: list[str]
    watch: bool
    returncode: int | None
    """None for a watch that was still watching when the scenario stopped it, as it should be."""
    stdout: str
    stderr: str

    def requests(self) -> list[tuple[str, str, int]]:
        """``(verb, path, status)`` of every API request kubectl made."""
        return [(m["verb"], m["path"], int(m["status"])) for m in _RESPONSE.finditer(self.stderr)]

    def describe(self) -> str:
        log = "\n".join(line for line in self.stderr.splitlines() if "envvar.go" not in line)
        return (f"{self.command.where}: `{self.command.text}`\n  ran: {self.script}\n  argv: {self.argv}\n"
                f"  exit: {'still watching' if self.returncode is None else self.returncode}\n  stdout:\n{self.stdout}\n  stderr:\n{log}")


def positionals(argv: list[str]) -> list[str]:
    """The words of a kubectl command that are not flags or flag values (verb, type, name, ...)."""
    out: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in FLAGS_WITH_VALUE:
            skip = True
        elif not word.startswith("-") or word == "-":
            out.append(word)
    return out


@dataclass
class DocsScenario:
    env: Environment
    kubectl: Path
    workdir: Path
    namespace: str = field(default_factory=lambda: f"docs-{secrets.token_hex(3)}")
    controller: Controller | None = None

    def __post_init__(self) -> None:
        self.kube = Kube(self.env.api, self.namespace)
        self.checkout = self.workdir / "checkout"
        self.checkout.mkdir(parents=True, exist_ok=True)
        # kubectl's discovery cache lives per run: a stale one could hide a category clash.
        self.home = self.workdir / "home"
        self.home.mkdir(exist_ok=True)

    def _environ(self, argv_file: Path) -> dict[str, str]:
        return {
            # The venv's bin holds kubectl-canary, the plugin the README's `kubectl canary ...` runs.
            "PATH": os.pathsep.join([str(self.kubectl.parent), str(Path(sys.executable).parent),
                                     os.environ.get("PATH", "/usr/bin:/bin")]),
            "HOME": str(self.home),
            "KUBECONFIG": str(self.env.kubeconfig),
            "KUBECACHEDIR": str(self.home / "kube-cache"),
            "DOCS_KUBECTL": str(self.kubectl),
            "DOCS_KUBECTL_ARGV": str(argv_file),
        }

    def run(self, command: DocCommand) -> Ran:
        script = for_namespace(command.text, self.namespace)
        argv_file = self.workdir / "argv"
        argv_file.unlink(missing_ok=True)
        watch = bool(WATCH_FLAGS & set(shlex.split(script)))
        proc = subprocess.Popen(
            ["bash", "-c", _WRAPPER + script], cwd=self.checkout, env=self._environ(argv_file),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,  # so a watch is stopped with its shell
        )
        out: list[str] = []
        err: list[str] = []
        readers = [_drain(proc.stdout, out), _drain(proc.stderr, err)]
        try:
            if watch:
                # A watch prints the current rows, then waits for changes until interrupted; one
                # that exits has failed (kubectl's error is in its stderr, shown by the caller).
                name = positionals(shlex.split(script)[1:])[2:3]

                def shows_row(line: str) -> bool:
                    return line.split()[:1] == name if name else bool(line.strip())

                wait_for(lambda: (proc.poll(), list(out)),
                         lambda seen: seen[0] is not None or any(shows_row(line) for line in seen[1]),
                         timeout=COMMAND_TIMEOUT, what=f"`{script}` to print the row of {name or 'anything'}")
                returncode = proc.poll()
                if returncode is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=30)
            else:
                returncode = proc.wait(timeout=COMMAND_TIMEOUT)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for reader in readers:
            reader.join(timeout=10)
        recorded = argv_file.read_bytes().split(b"\0")[:-1] if argv_file.exists() else []
        return Ran(command, script, [w.decode() for w in recorded], watch, returncode, "".join(out), "".join(err))

    # --- what a reader waits for before the next step ---------------------------------------
    def settle(self) -> None:
        """The controller runs once the namespace exists; a new Canary is initialized."""
        if self.controller is None and exists(lambda: self.kube.core.read_namespace(self.namespace)):
            # Pods need the default ServiceAccount, which the controller-manager creates.
            wait_for(lambda: exists(lambda: self.kube.core.read_namespaced_service_account("default", self.namespace)),
                     bool, timeout=30, what=f"ServiceAccount default in {self.namespace}")
            options = ControllerOptions(kubeconfig=self.env.controller_kubeconfig(self.namespace),
                                        namespace=self.namespace,
                                        prometheus_url=self.env.prometheus.url)
            self.controller = Controller(options, self.env.workdir / "logs", self.env.api)
            self.controller.start()
        if self.controller is not None and exists(lambda: self.kube.canary(DOC_CANARY)):
            wait_for(lambda: self.kube.status(DOC_CANARY), lambda st: st.get("phase") not in (None, "", "Initializing"),
                     timeout=120, what=f"the controller to initialize Canary {self.namespace}/{DOC_CANARY}")

    def phase(self) -> str:
        """The Canary's phase now, or "-" before the controller or the Canary exist."""
        if self.controller is None or not exists(lambda: self.kube.canary(DOC_CANARY)):
            return "-"
        return str(self.kube.status(DOC_CANARY).get("phase") or "-")

    # --- what a command that names the Canary must have done --------------------------------
    def check_acted_on_canary(self, ran: Ran) -> None:
        words = positionals(ran.argv)
        if len(words) < 3 or words[0] not in ("get", "annotate") or words[1] not in CANARY_RESOURCE:
            return
        name = words[2]
        path = f"/apis/canary.dev/v1alpha1/namespaces/{self.namespace}/canaries/{name}"
        wanted = {"GET"} | ({"PATCH"} if words[0] == "annotate" else set())
        done = {verb for verb, p, status in ran.requests() if p == path and status == 200}
        assert wanted <= done, f"kubectl did not {sorted(wanted)} the Canary {path}:\n{ran.describe()}"
        if words[0] == "get" and "-o" not in ran.argv and not any(w.startswith(("-o=", "--output")) for w in ran.argv):
            assert any(line.split()[:1] == [name] for line in ran.stdout.splitlines()), ran.describe()
        if words[0] == "annotate":
            self._check_annotations(name, words[3:], ran)

    def _check_annotations(self, name: str, edits: list[str], ran: Ran) -> None:
        annotations = self.kube.canary(name)["metadata"].get("annotations") or {}
        for edit in edits:
            key, eq, value = edit.partition("=")
            if eq:
                assert annotations.get(key) == value, f"{key}={value!r} is not on the Canary ({annotations}):\n{ran.describe()}"
            else:
                key = key.removesuffix("-")
                assert key not in annotations, f"{key} is still on the Canary ({annotations}):\n{ran.describe()}"
            if key in ON_CALL_ANNOTATIONS:
                short = key.partition("/")[2]
                # The runbook's promise: the controller records each value it handled, and
                # removing the annotation removes the entry.
                wait_for(lambda: self.kube.status(name).get("handledAnnotations") or {},
                         lambda handled: handled.get(short) == value if eq else short not in handled,
                         timeout=30, what=f"the controller's receipt for {edit!r} in status.handledAnnotations")


@pytest.fixture
def docs_scenario(env: Environment, tmp_path: Path) -> Iterator[DocsScenario]:
    if env.kubectl is None:
        pytest.skip("no kubectl: build it with `python -m e2e.cluster build`, or put one on PATH")
    env.use_flavour("linkerd")
    scenario = DocsScenario(env, env.kubectl, tmp_path)
    try:
        yield scenario
    finally:
        if scenario.controller is not None:
            scenario.controller.stop()
        scenario.kube.delete_namespace()


def test_the_skip_list_names_only_commands_the_docs_print() -> None:
    printed = {c.text for c in printed_commands()}
    stale = sorted(set(SKIPPED) - printed)
    assert not stale, f"SKIPPED names commands the docs no longer print: {stale}; remove them"


def test_every_printed_kubectl_command_runs(docs_scenario: DocsScenario) -> None:
    commands = printed_commands()
    for doc in DOCS:
        assert any(c.source == doc for c in commands), f"no kubectl command found in {doc}: is the parser broken?"
    to_run = [c for c in commands if c.text not in SKIPPED]
    stage_files(to_run, docs_scenario.checkout, docs_scenario.namespace)
    results: list[str] = []
    try:
        for command in to_run:
            ran = docs_scenario.run(command)
            assert ran.argv, f"kubectl never ran (not through the shell function?):\n{ran.describe()}"
            assert ran.returncode == (None if ran.watch else 0), ran.describe()
            docs_scenario.check_acted_on_canary(ran)
            docs_scenario.settle()
            results.append(f"ok  {command.where:<18} phase after: {docs_scenario.phase():<16} {command.text}")
    except BaseException:
        if docs_scenario.controller is not None:
            print(f"\n--- controller log ---\n{docs_scenario.controller.log_tail(120)}")
        raise
    finally:
        print("\n" + "\n".join(results))
        for text, reason in SKIPPED.items():
            print(f"skip {text}: {reason}")
