"""The kubectl commands a Markdown document prints, found by parsing it (CommonMark plus tables).

A command is printed where a reader would copy it from: a line of a fenced or indented code
block that starts with ``kubectl``, the ``kubectl ...`` part of a shell comment in such a block
(the docs show the kubectl equivalent of a CLI command that way), or an inline code span that
starts with ``kubectl``. Parsing rather than grepping keeps prose that merely mentions kubectl
out, and takes table cells and code spans broken over two lines in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

_KUBECTL = re.compile(r"\bkubectl\b")


@dataclass(frozen=True)
class DocCommand:
    """One printed command: its text as printed (continuations joined) and where it is."""

    text: str
    source: Path
    line: int
    """1-based line: the command's own in a code block, the paragraph's or table's for inline code."""
    inline: bool

    @property
    def where(self) -> str:
        return f"{self.source.name}:{self.line}"


def _split_comment(line: str) -> tuple[str, str]:
    """``(code, comment)`` of one shell line: the comment starts at the first ``#`` that is outside
    quotes and starts a word, as in the shell (``{.status.phase}`` or ``a#b`` are not comments)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i], line[i + 1:]
    return line, ""


def _shell_lines(block: str) -> list[tuple[int, str]]:
    """``(offset, line)`` of each shell line of ``block``; a trailing backslash continues a line."""
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for offset, raw in enumerate(block.splitlines()):
        start, text = pending if pending else (offset, "")
        text += raw
        if raw.endswith("\\"):
            pending = (start, text[:-1])
        else:
            pending = None
            joined.append((start, text))
    if pending:
        joined.append(pending)
    return joined


def _from_code_block(token: Token, source: Path) -> list[DocCommand]:
    found = []
    # A fence's content starts on the line after the opening fence; an indented block's at once.
    first = (token.map[0] if token.map else 0) + (2 if token.type == "fence" else 1)
    for offset, text in _shell_lines(token.content):
        code, comment = _split_comment(text)
        for part in (code, comment):
            match = _KUBECTL.search(part)
            # Code counts only when kubectl is the command; a comment counts from kubectl on.
            if match and (part is comment or not part[: match.start()].strip()):
                found.append(DocCommand(part[match.start():].strip(), source, first + offset, inline=False))
    return found


def _from_inline(token: Token, source: Path) -> list[DocCommand]:
    line = (token.map[0] + 1) if token.map else 0
    found = []
    for child in token.children or []:
        text = child.content.strip()
        if child.type == "code_inline" and text.startswith("kubectl") and _KUBECTL.match(text):
            found.append(DocCommand(text, source, line, inline=True))
    return found


def kubectl_commands(path: Path) -> list[DocCommand]:
    """Every kubectl command printed in the Markdown file ``path``, in document order."""
    parser = MarkdownIt("commonmark").enable("table")
    found: list[DocCommand] = []
    for token in parser.parse(path.read_text()):
        if token.type in ("fence", "code_block"):
            found.extend(_from_code_block(token, path))
        elif token.type == "inline":
            found.extend(_from_inline(token, path))
    return found
