"""kstatus's generic rules, as Flux applies them to a custom resource it has no rules for.

Written from the behaviour kstatus documents (sigs.k8s.io/cli-utils, ``status.Compute``), in
the order it applies them, and kept independent of the controller's code so that a bug in
``derive_conditions`` cannot hide here:

1. ``metadata.deletionTimestamp`` set: Terminating.
2. ``status.observedGeneration`` present and different from ``metadata.generation``: InProgress.
   An absent field is no evidence either way, so the rule is skipped.
3. A ``Reconciling`` condition that is True: InProgress; a ``Stalled`` one that is True: Failed
   (whichever comes first in ``status.conditions``).
4. Otherwise: Current, which is why a resource without status read Current.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TERMINATING = "Terminating"
IN_PROGRESS = "InProgress"
FAILED = "Failed"
CURRENT = "Current"


@dataclass(frozen=True)
class KStatus:
    status: str
    message: str


def compute(obj: Mapping[str, Any]) -> KStatus:
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    status: Mapping[str, Any] = obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return KStatus(TERMINATING, "Resource scheduled for deletion")
    generation = meta.get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and int(observed) != int(generation):
        return KStatus(IN_PROGRESS, f"{obj.get('kind')} generation is {generation}, "
                                    f"but latest observed generation is {observed}")
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Reconciling":
            return KStatus(IN_PROGRESS, str(condition.get("message") or ""))
        if condition.get("type") == "Stalled":
            return KStatus(FAILED, str(condition.get("message") or ""))
    return KStatus(CURRENT, "Resource is current")
