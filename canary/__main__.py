# PYTHON_ARGCOMPLETE_OK  (argcomplete's global completion looks for this marker)
"""``canary`` / ``python -m canary``: see :mod:`canary.cli` for the commands."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from canary.cli.app import execute


def main(argv: Sequence[str] | None = None) -> int:
    return execute(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
