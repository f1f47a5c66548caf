"""Child processes of the e2e environment that never outlive the run that started them.

Every server the environment starts (etcd, the Kubernetes binaries, kwok, Prometheus, the mesh,
the controller) goes through :func:`spawn`. Each child gets its own process group, so stopping it
also stops anything it forked, and, unless it is meant to outlive us (``make cluster-up``), the
kernel is asked to SIGKILL it when the process that started it dies (``PR_SET_PDEATHSIG``). That
is what keeps a test run that is interrupted, fails or is itself SIGKILLed from leaving servers
behind: no cleanup code has to run.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1


class E2ESetupError(RuntimeError):
    """The e2e environment could not be built or started; the message says which part and why."""


def _die_with(parent: int) -> Callable[[], None]:
    def arm() -> None:
        # Runs in the child between fork and exec. The new session makes the child the leader of
        # its own process group (so killpg reaches its children); PDEATHSIG fires when the
        # spawning thread dies. A parent that died before prctl ran would never fire it, hence
        # the check after.
        os.setsid()
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return arm


def _own_session() -> None:
    os.setsid()


@dataclass
class ManagedProcess:
    """One started server: its name (for messages), its process and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    argv: tuple[str, ...] = field(default=())

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the whole process group, SIGKILL it after ``timeout`` seconds. Idempotent."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever the leader forked may still be running even when the leader is gone.
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)

    def kill(self) -> None:
        """SIGKILL the process group at once, as a crash would."""
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = True,
) -> ManagedProcess:
    """Start ``argv`` with stdout and stderr appended to ``log_path``.

    ``die_with_parent=False`` is only for servers that must outlive this Python process
    (``make cluster-up``); their pids are then someone else's to stop.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with log_path.open("ab") as log:
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=cwd,
                preexec_fn=_die_with(os.getpid()) if die_with_parent else _own_session,
            )
        except OSError as exc:
            raise E2ESetupError(f"could not start {name} ({argv[0]}): {exc}") from exc
    return ManagedProcess(name=name, popen=popen, log_path=log_path, argv=tuple(argv))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    process: ManagedProcess | None = None,
    interval: float = 0.1,
) -> None:
    """Poll ``predicate`` until it is true; fail naming ``what``, early if ``process`` dies.

    Exceptions from the predicate count as "not yet" (a server that is still starting refuses
    connections), and the last one is quoted in the error.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            if predicate():
                return
        except Exception as exc:  # noqa: BLE001 - "not ready yet" comes in many shapes
            last_error = exc
        if process is not None and not process.alive():
            raise E2ESetupError(
                f"{process.name} exited with code {process.popen.returncode} while waiting for {what}; "
                f"last lines of {process.log_path}:\n{process.log_tail()}"
            )
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            tail = f"; last lines of {process.log_path}:\n{process.log_tail()}" if process else ""
            raise E2ESetupError(f"timed out after {timeout:.0f}s waiting for {what}{detail}{tail}")
        time.sleep(interval)


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), while it lives and is not a zombie; None
    otherwise. A pid is reused once its process is gone, so (pid, start ticks) names one process:
    what records of our processes (leases, cluster state, network namespaces) are checked by."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may hold spaces; the fields after the last ")" do not.
    fields_after_name = stat.rpartition(")")[2].split()
    state, ticks = fields_after_name[0], fields_after_name[19]
    # A zombie has exited; it stays in the table only until whoever adopted it reaps it.
    if state in ("Z", "X"):
        return None
    return int(ticks)
