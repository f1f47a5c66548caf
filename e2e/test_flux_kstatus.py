"""Flux's view of a Canary: kstatus's generic rules on the objects the real API server returns.

A Canary no controller has seen yet used to come back without status, which kstatus reads as
Current (it skips its generation rule when status.observedGeneration is absent), so Flux
reported a release that had not even begun as ready. The CRD now defaults status to
observedGeneration 0, applied by the API server on every read: the new Canary is InProgress
until the controller has observed it, and again after every spec edit until it is observed.
"""

from __future__ import annotations

from typing import Any

from e2e.conftest import StartController
from e2e.harness import app
from e2e.harness.environment import Environment
from e2e.harness.kstatus import CURRENT, IN_PROGRESS, KStatus, compute
from e2e.harness.kube import GROUP, PLURAL, VERSION, Kube, wait_for

NAME = "podinfo"


def listed(kube: Kube) -> dict[str, Any]:
    """The Canary as a list (what a watch-based status poller such as Flux's starts from) returns it."""
    items = kube.custom.list_namespaced_custom_object(GROUP, VERSION, kube.namespace, PLURAL)["items"]
    found: dict[str, Any] = next(item for item in items if item["metadata"]["name"] == NAME)
    return found


def test_a_canary_is_in_progress_until_the_controller_observes_its_generation(
    env: Environment, kube: Kube, start_controller: StartController
) -> None:
    env.use_flavour("linkerd")
    kube.create(app.deployment(NAME, kube.namespace, annotations=app.behaviour("1")))
    kube.create(app.canary(NAME, kube.namespace))

    # No controller runs yet: nothing has observed the Canary.
    fresh = kube.canary(NAME)
    assert fresh["status"] == {"observedGeneration": 0}, "the API server applies the CRD's status default"
    assert compute(fresh) == KStatus(IN_PROGRESS, "Canary generation is 1, but latest observed generation is 0")
    assert compute(listed(kube)).status == IN_PROGRESS

    start_controller()
    kube.wait_for_phase(NAME, "Initialized", timeout=90)
    current = wait_for(lambda: compute(kube.canary(NAME)), lambda k: k.status == CURRENT, timeout=30,
                       what="kstatus to read the initialised Canary as Current")
    assert current.message == "Resource is current"

    # A spec edit: the object the API server returns for the edit itself is not observed yet.
    edited = kube.custom.patch_namespaced_custom_object(GROUP, VERSION, kube.namespace, PLURAL, NAME,
                                                        {"spec": {"analysis": {"interval": "3s"}}})
    assert compute(edited) == KStatus(IN_PROGRESS, "Canary generation is 2, but latest observed generation is 1")
    wait_for(lambda: compute(kube.canary(NAME)), lambda k: k.status == CURRENT, timeout=30,
             what="kstatus to read the edited Canary as Current once observed")
