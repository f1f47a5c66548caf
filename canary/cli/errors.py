"""Exit codes and the errors the command-line tool turns into them.

::

    CanaryError
    └── CliError              exit 3: the command could not do its job
        ├── UsageError        exit 64: a flag or environment value is wrong
        ├── InputError        exit 3: a manifest file could not be read or is not YAML
        ├── CanaryNotFound    exit 3: no such Canary
        └── ClusterError      exit 3: the API server failed, refused, or could not be reached

Exit codes 1 and 2 are reserved for outcomes CI scripts branch on (``wait``: the opposite
outcome, a timeout), so usage mistakes and cluster trouble get codes of their own instead of
argparse's 2, which a pipeline would misread as "timed out". ``convert`` and ``lint`` exit 4
when the API server or the controller would refuse something in the manifest, so CI can tell
"this would not apply" from "the tool failed" (3).
"""

from __future__ import annotations

from enum import IntEnum

from canary.errors import CanaryError


class ExitCode(IntEnum):
    OK = 0
    #: ``wait``: the Canary reached the opposite final phase (or the revision was superseded).
    OPPOSITE = 1
    #: ``wait`` and the on-call commands: nothing confirmed the outcome in time.
    TIMEOUT = 2
    ERROR = 3
    #: ``convert`` / ``lint``: some field or document would be refused (the report names each one).
    REFUSED = 4
    #: sysexits.h EX_USAGE.
    USAGE = 64
    #: 128 + SIGINT, as shells report an interrupted command.
    INTERRUPTED = 130


class CliError(CanaryError):
    exit_code: ExitCode = ExitCode.ERROR


class UsageError(CliError):
    exit_code = ExitCode.USAGE


class InputError(CliError):
    """A manifest given to ``convert`` or ``lint`` could not be read or is not YAML."""


class CanaryNotFound(CliError):
    def __init__(self, namespace: str, name: str) -> None:
        super().__init__(f"canary {namespace}/{name} not found")
        self.namespace = namespace
        self.name = name


class ClusterError(CliError):
    """Talking to the API server failed; the message says what was attempted."""
