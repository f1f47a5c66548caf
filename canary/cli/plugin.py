# PYTHON_ARGCOMPLETE_OK  (argcomplete's global completion looks for this marker)
"""``kubectl-canary``: the operator commands as a kubectl plugin, ``kubectl canary status ...``.

kubectl runs the first ``kubectl-canary`` on PATH with the words that follow ``canary``; the
environment (``KUBECONFIG`` included) is passed through. The commands are those of ``canary``
(:func:`canary.cli.args.build_plugin_parser`), so the plugin is the same code under kubectl's
conventions: ``--kubeconfig``, ``--context``, ``-n``, ``-A``, and ``watch`` for ``status --watch``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from canary.cli.app import execute
from canary.cli.args import build_plugin_parser

__all__ = ["PROG", "hoist_global_flags", "main"]

PROG = "kubectl canary"
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


if __name__ == "__main__":
    sys.exit(main())
