"""The corpus's documents and the outcome each one declares (``corpus.canary.dev/expect``).

Shared by the unit tests (tests/cli/test_flagger_corpus.py) and the e2e test
(e2e/test_flagger_corpus.py), so both judge the same documents by the same declaration.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

CORPUS = Path(__file__).parent
EXPECT = "corpus.canary.dev/expect"
CHECKED_KINDS = ("Canary", "MetricTemplate")


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    REFUSED_AT_ADMISSION = "refused-at-admission"
    REFUSED_BY_CONTROLLER = "refused-by-controller"


@dataclass(frozen=True)
class CorpusDocument:
    file: str
    document: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.document.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.document["metadata"]["name"])

    @property
    def id(self) -> str:
        return f"{self.file}:{self.kind}/{self.name}"

    @property
    def outcome(self) -> Outcome:
        return Outcome(self._expect.partition(":")[0].strip())

    @property
    def refused_fields(self) -> tuple[str, ...]:
        """The refused fields, the one the API server or controller must name first."""
        fields = self._expect.partition(":")[2]
        return tuple(f.strip() for f in fields.split(",") if f.strip())

    @property
    def _expect(self) -> str:
        return str(self.document["metadata"]["annotations"][EXPECT])


def documents() -> Iterator[CorpusDocument]:
    """Every document of the corpus, in file order."""
    for path in sorted(CORPUS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict):
                yield CorpusDocument(path.name, doc)


def checked() -> list[CorpusDocument]:
    """The Flagger Canaries and MetricTemplates: the documents with an expected outcome."""
    return [d for d in documents()
            if d.kind in CHECKED_KINDS and str(d.document.get("apiVersion", "")).startswith("flagger.app/")]
