"""integrations/argocd/argocd-cm.yaml is exactly what the Lua files say (`make argocd-snippet`)."""

from __future__ import annotations

import re

import yaml

from e2e.harness.argocd_lua import ACTIONS, DISCOVERY_SCRIPT, HEALTH_SCRIPT, action_script, discover
from e2e.harness.argocd_snippet import ACTIONS_KEY, HEALTH_KEY, SNIPPET, render
from tests.argocd.fixtures import canary_object


def test_the_snippet_is_generated_from_the_lua_files() -> None:
    assert SNIPPET.read_text() == render(), "run `make argocd-snippet` and commit the result"


def test_argo_cd_reads_the_files_content_from_the_snippet() -> None:
    config = yaml.safe_load(SNIPPET.read_text())
    assert (config["kind"], config["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert set(config["data"]) == {HEALTH_KEY, ACTIONS_KEY}
    assert config["data"][HEALTH_KEY] == HEALTH_SCRIPT.read_text()
    actions = yaml.safe_load(config["data"][ACTIONS_KEY])
    assert actions["discovery.lua"] == DISCOVERY_SCRIPT.read_text()
    assert {d["name"]: d["action.lua"] for d in actions["definitions"]} == {
        name: action_script(name).read_text() for name in ACTIONS}


def test_every_discovered_action_has_a_definition() -> None:
    assert set(discover(canary_object())) == set(ACTIONS)


def test_health_and_discovery_read_the_pause_annotation_alike() -> None:
    # Argo CD scripts cannot share code, so the helper is written twice; it must stay one helper.
    helper = re.compile(r"^local function says_true\(value\)\n.*?^end\n", re.MULTILINE | re.DOTALL)
    found = [helper.search(path.read_text()) for path in (HEALTH_SCRIPT, DISCOVERY_SCRIPT)]
    assert all(found) and found[0].group(0) == found[1].group(0)  # type: ignore[union-attr]
