# PYTHON_ARGCOMPLETE_OK  (argcomplete's global completion looks for this marker)
"""``kubectl-canary``: the operator commands as a kubectl plugin, ``kubectl canary status ...``.

kubectl runs the first ``kubectl-canary`` on PATH with the words that follow ``canary``; the
environment (``KUBECONFIG`` included) is passed through. The commands are those of ``canary``
(:func:`canary.cli.args.build_plugin_parser`), so the plugin is the same code under kubectl's
conventions: ``--kubeconfig``, ``--context``, ``-n``, ``-A``, and ``watch`` for ``status --watch``.

``kubectl canary <TAB>`` completes through ``kubectl_complete-canary`` (:func:`complete`), which
kubectl runs with the plugin's words so far, the one being typed last, and which prints one
candidate a line; argcomplete finds the candidates in the same parser.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import argcomplete.io
from argcomplete.finders import CompletionFinder

from canary.cli.app import execute
from canary.cli.args import build_plugin_parser

__all__ = ["NO_FILE_COMPLETION", "PROG", "complete", "hoist_global_flags", "main"]

PROG = "kubectl canary"
#: Cobra's ShellCompDirectiveNoFileComp, as kubectl reads it from the last line: our words are
#: commands, flags and names, and a file name is never a good guess for them.
NO_FILE_COMPLETION = ":4"
_FLAGS_WITH_VALUE = frozenset({"-n", "--namespace", "--context", "--kubeconfig"})
_SWITCHES = frozenset({"-A", "--all-namespaces"})


def _is_global(word: str) -> bool:
    return word in _FLAGS_WITH_VALUE or word in _SWITCHES or word.split("=", 1)[0] in _FLAGS_WITH_VALUE


def hoist_global_flags(argv: Sequence[str]) -> list[str]:
    """kubectl takes its flags before the command too (``kubectl canary -n shop status``): the
    leading ones move after the command, where each command's parser reads them. Anything else
    is left for the parser to judge (and refuse)."""
    words = list(argv)
    leading: list[str] = []
    while words and _is_global(words[0]):
        word = words.pop(0)
        leading.append(word)
        if word in _FLAGS_WITH_VALUE and words:
            leading.append(words.pop(0))
    if not leading or not words or words[0].startswith("-"):
        return [*leading, *words]
    return [words[0], *leading, *words[1:]]


def main(argv: Sequence[str] | None = None) -> int:
    return execute(hoist_global_flags(sys.argv[1:] if argv is None else argv), build=build_plugin_parser, prog=PROG)


class _Finder(CompletionFinder):
    """argcomplete, without its debug channel: it opens file descriptor 9, which its own shell hook
    provides; under kubectl that descriptor is not ours, and closing it later would close it."""

    def _init_debug_stream(self) -> None:
        argcomplete.io.debug_stream = sys.stderr


class _Answered(Exception):
    """argcomplete has written its candidates and would now end the process."""


def _answered(code: int = 0) -> NoReturn:
    raise _Answered(code)


def _candidates(words: Sequence[str]) -> list[str]:
    """argcomplete's candidates for the last of ``words``, asked as a shell would ask it."""
    line = " ".join(["kubectl-canary", *(shlex.quote(w) for w in words[:-1]), words[-1]])
    with tempfile.TemporaryDirectory(prefix="kubectl-canary-") as scratch:
        answer = Path(scratch) / "candidates"
        request = {"_ARGCOMPLETE": "1", "_ARGCOMPLETE_IFS": "\n", "COMP_LINE": line,
                   "COMP_POINT": str(len(line.encode())), "_ARGCOMPLETE_STDOUT_FILENAME": str(answer)}
        saved = {key: os.environ.get(key) for key in request}
        os.environ.update(request)
        try:
            _Finder()(build_plugin_parser(), exit_method=_answered)
        except _Answered:
            pass
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        text = answer.read_text() if answer.exists() else ""
    return [c.rstrip() for c in text.split("\n") if c.strip()]


def complete(argv: Sequence[str] | None = None) -> int:
    """``kubectl_complete-canary``: kubectl's plugin completion protocol on standard output."""
    words = list(sys.argv[1:] if argv is None else argv) or [""]
    for candidate in _candidates(hoist_global_flags(words[:-1]) + words[-1:]):
        print(candidate)
    print(NO_FILE_COMPLETION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
