"""The container image: an exact base, every runtime dependency from a complete lock, OCI labels."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "image-constraints.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line}"
            pins[canonicalize_name(name)] = version
    return pins


def _applies(requirement: Requirement) -> bool:
    # The image installs no extras; markers are evaluated for this (Linux, CPython 3.11) interpreter.
    return requirement.marker is None or requirement.marker.evaluate({"extra": ""})


def _runtime_closure() -> set[str]:
    """Every distribution the project's runtime dependencies pull in, read from what is installed."""
    seen: set[str] = set()
    todo = [Requirement(text) for text in PROJECT["dependencies"]]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen or not _applies(requirement):
            continue
        seen.add(name)
        todo.extend(Requirement(text) for text in importlib.metadata.distribution(name).requires or [])
    return seen


def test_every_runtime_dependency_is_pinned_within_its_range() -> None:
    pins = _pins()
    for text in PROJECT["dependencies"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned in image-constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {requirement.specifier}"


def test_the_lock_is_the_whole_transitive_closure_and_nothing_else() -> None:
    # The image installs it with --no-deps: a missing transitive pin would be missing in the image.
    closure, pinned = _runtime_closure(), set(_pins())
    assert not closure - pinned, f"pulled in but not pinned in image-constraints.txt: {sorted(closure - pinned)}"
    assert not pinned - closure, f"pinned but not needed at run time: {sorted(pinned - closure)}"


def test_the_image_installs_the_lock_and_the_project_without_resolving() -> None:
    installs = re.findall(r"^RUN pip install .*$", DOCKERFILE, flags=re.MULTILINE)
    assert installs == [
        "RUN pip install --no-cache-dir --no-deps --prefix=/install -r image-constraints.txt",
        "RUN pip install --no-cache-dir --no-deps --prefix=/install .",
    ]
    assert "RUN python -m pip check" in DOCKERFILE


def test_the_base_image_is_an_exact_python_release_for_the_project() -> None:
    [base] = re.findall(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE, flags=re.MULTILINE)
    found = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?", base)
    assert found, f"{base} is not an exact Python patch release on a named Debian release"
    assert SpecifierSet(PROJECT["requires-python"]).contains(".".join(found.groups()[:3]))
    # Both stages start from it, so the compiled wheels match the interpreter that runs them.
    assert re.findall(r"^FROM (\S+)", DOCKERFILE, flags=re.MULTILINE) == ["${BASE_IMAGE}", "${BASE_IMAGE}"]


def test_the_image_carries_the_oci_labels() -> None:
    labels = dict(re.findall(r'org\.opencontainers\.image\.([a-z.]+)="([^"]*)"', DOCKERFILE))
    assert {"title", "description", "licenses", "version", "revision", "created", "base.name"} <= labels.keys()
    assert labels["licenses"] == PROJECT["license"]["text"]
    assert labels["description"] == PROJECT["description"]
    assert re.search(rf"^ARG VERSION={re.escape(PROJECT['version'])}$", DOCKERFILE, flags=re.MULTILINE)
    assert labels["base.name"] == "${BASE_IMAGE}"
