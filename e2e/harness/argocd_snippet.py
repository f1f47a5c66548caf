"""integrations/argocd/argocd-cm.yaml, the ConfigMap snippet, built from the Lua files beside it.

``python -m e2e.harness.argocd_snippet`` (``make argocd-snippet``) rewrites the file;
tests/argocd/test_snippet.py fails when the file and the Lua files disagree, so the snippet an
operator applies is always the code the tests ran.
"""

from __future__ import annotations

import sys
from pathlib import Path

from e2e.harness.argocd_lua import ACTIONS, DISCOVERY_SCRIPT, HEALTH_SCRIPT, INTEGRATION, action_script

SNIPPET = INTEGRATION / "argocd-cm.yaml"
#: Argo CD's keys: resource.customizations.<health|actions>.<group>_<Kind>.
HEALTH_KEY = "resource.customizations.health.canary.dev_Canary"
ACTIONS_KEY = "resource.customizations.actions.canary.dev_Canary"

_HEADER = """\
# Generated from the Lua files beside it by `make argocd-snippet`; edit those, not this.
# Argo CD's health check and resource actions for canary.dev Canaries. Merge it into Argo CD's
# own ConfigMap (see README.md):
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file argocd-cm.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
"""


def _block(text: str, indent: int) -> str:
    """``text`` as the lines of a YAML literal block (``|``) at ``indent`` spaces."""
    if not text.endswith("\n") or text.endswith("\n\n"):
        raise ValueError("a Lua file must end with exactly one newline to survive a literal block unchanged")
    pad = " " * indent
    # Blank lines stay empty: trailing spaces would make YAML tools rewrite the block quoted.
    return "".join(pad + line if line.strip() else "\n" for line in text.splitlines(keepends=True))


def actions_value() -> str:
    """The YAML document Argo CD reads from the actions key: discovery.lua and one definition per action."""
    out = ["discovery.lua: |\n", _block(DISCOVERY_SCRIPT.read_text(), 2), "definitions:\n"]
    for name in ACTIONS:
        out += [f"- name: {name}\n", "  action.lua: |\n", _block(action_script(name).read_text(), 4)]
    return "".join(out)


def render() -> str:
    return "".join([
        _HEADER,
        f"  {HEALTH_KEY}: |\n", _block(HEALTH_SCRIPT.read_text(), 4),
        f"  {ACTIONS_KEY}: |\n", _block(actions_value(), 4),
    ])


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else SNIPPET
    target.write_text(render())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
