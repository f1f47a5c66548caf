"""Actions the Kubernetes layer carries out. Each is idempotent: repeating one is harmless.

They are derived from the new status and the observed cluster (``converge``), never from
memory, so an action lost in a crash is derived again on the next reconciliation.
"""

from __future__ import annotations

from dataclasses import dataclass

from canary.domain.spec import WebhookType
from canary.domain.weights import Weights


@dataclass(frozen=True)
class EnsurePrimary:
    """Create the primary workload from the target's template when missing. Never rewrites
    an existing primary's template: only ``PromotePrimary`` does."""

    replicas: int


@dataclass(frozen=True)
class EnsurePrimaryScaler:
    """Create the primary's copy of the target's autoscaler, or make its spec the target
    scaler's again. Issued when the copy is missing, and during promotion when it differs: the
    primary scales by the rules of the revision it runs, as in Flagger."""


@dataclass(frozen=True)
class EnsureServices:
    """Create (or adopt) the apex Service selecting primary pods, and ``-primary``/``-canary``.
    Only issued once the primary is ready, so adopting an apex never routes to unready pods."""


@dataclass(frozen=True)
class PromotePrimary:
    """Copy the target's pod template (and its ConfigMaps/Secrets) into the primary, provided
    the target still runs ``revision`` (a newer push must not be promoted unanalysed)."""

    revision: str


@dataclass(frozen=True)
class SetRoute:
    weights: Weights


@dataclass(frozen=True)
class ScaleCanary:
    replicas: int


@dataclass(frozen=True)
class PauseTargetScaler:
    """Hold the target's ScaledObject at zero replicas (``paused``) while the canary is scaled
    down, or let it scale again, as Flagger does; issued only for pausable scalers."""

    paused: bool


@dataclass(frozen=True)
class RestoreTarget:
    """Deletion with ``revertOnDeletion``: point the apex Service back at the target's pods,
    release it from the Canary's ownership and delete the route object."""


@dataclass(frozen=True)
class SetFinalizer:
    """Add (``present``) or remove the ``canary.dev/revert-on-deletion`` finalizer on the Canary:
    with it, deletion waits until traffic is handed back to the target."""

    present: bool


@dataclass(frozen=True)
class Notify:
    """Fire-and-forget webhooks (post-rollout); failures are logged, never block."""

    hook_type: WebhookType


Action = (EnsurePrimary | EnsurePrimaryScaler | EnsureServices | PromotePrimary | SetRoute | ScaleCanary
          | PauseTargetScaler | RestoreTarget | SetFinalizer | Notify)


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event on the Canary, also sent to ``event`` webhooks and logged."""

    reason: str
    message: str
    warning: bool = False
