"""The bench runs the controller of the checkout it is given, not of the one it was started from."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fleet import start_controller

#: Far longer than a Python start-up: a child that never exits fails the test instead of hanging it.
NEVER = 120.0


def test_the_controller_comes_from_the_source_checkout_whatever_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "other-checkout"
    (source / "canary").mkdir(parents=True)
    (source / "canary" / "__init__.py").write_text("")
    (source / "canary" / "__main__.py").write_text("import canary\nprint(canary.__file__)\n")
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # this checkout, which has a canary too
    log_path = tmp_path / "controller.log"
    with log_path.open("w") as log:
        controller = start_controller(source, kubeconfig=tmp_path / "kubeconfig", namespace="bench",
                                      prometheus_url="http://127.0.0.1:9", metrics_port=9, log=log)
        assert controller.wait(timeout=NEVER) == 0
    assert Path(log_path.read_text().strip()).resolve() == (source / "canary" / "__init__.py").resolve()
