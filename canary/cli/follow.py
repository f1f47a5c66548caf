"""Follow one Canary through watch events until a condition holds or time runs out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from canary.cli.client import CanaryClient
from canary.cli.errors import CliError

__all__ = ["CanaryDeleted", "follow"]


class CanaryDeleted(CliError):
    def __init__(self, namespace: str, name: str) -> None:
        super().__init__(f"canary {namespace}/{name} was deleted while waiting")


def follow(
    client: CanaryClient,
    namespace: str,
    name: str,
    *,
    until: Callable[[Mapping[str, Any]], bool],
    timeout: float,
    clock: Callable[[], float],
    initial: Mapping[str, Any] | None = None,
) -> Mapping[str, Any] | None:
    """The first state of the Canary for which ``until`` holds, or None after ``timeout``.

    ``until`` sees ``initial`` (or a fresh read) first, then every state the watch reports.
    Each watch starts by replaying the current state, so nothing that changed between the read
    and the watch is missed; a watch the server ends early is simply started again.
    """
    deadline = clock() + timeout
    obj = initial if initial is not None else client.get(namespace, name)
    if until(obj):
        return obj
    while (remaining := deadline - clock()) > 0:
        for event in client.watch(namespace, name, remaining):
            if event["type"] == "DELETED":
                raise CanaryDeleted(namespace, name)
            if event["type"] in ("ADDED", "MODIFIED") and until(event["object"]):
                return event["object"]
            if clock() >= deadline:
                break
    return None
