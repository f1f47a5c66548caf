"""The kube-apiserver's audit log in the local control plane: every write, none of the reads.

The fault suite proves who wrote what and when (a paused former leader must write nothing once it
resumes; two replicas must never write in turn) from the API server's own record, not from the
controller's logs, which a buggy controller could get wrong. Metadata level is enough: it names
the user agent, verb, object and response code, without the bodies. Reads are left out because
they are most requests (watches, the Lease polls of followers) and prove nothing here.
The scale bench, which counts a controller's requests by verb, asks for reads too (``reads=True``).

Only ``ResponseComplete`` is recorded: its event carries both the time the request was received
and the time it completed, so one line per request says everything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: Verbs that change state; ``deletecollection`` too, since it deletes.
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
#: Where the log goes, under the control plane's work directory.
AUDIT_LOG = Path("audit") / "audit.log"
AUDIT_POLICY = Path("audit") / "policy.yaml"
#: Rotation bounds a long-lived ``make cluster-up`` plane. No test may see a rotation: readers
#: keep byte offsets into the live file (``e2e/harness/audit.py``), and after a rotation an
#: offset lands mid-record in the new one. The sharding scenario at full size (3,000 Canaries
#: over three replicas) wrote 222 MB of writes-only records before its takeover phase began.
_MAX_SIZE_MB = 4096


def audit_policy(*, reads: bool = False) -> dict[str, Any]:
    """The policy: Metadata for every write, nothing for anything else.

    ``reads=True`` records every request at Metadata level, reads included: the scale bench
    (``bench/scale.py``) counts a controller's requests by verb, gets, lists and watches too.
    """
    rules: list[dict[str, Any]] = [{"level": "Metadata"}] if reads else [
        {"level": "Metadata", "verbs": list(WRITE_VERBS)},
        {"level": "None"},
    ]
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived", "ResponseStarted"],
        "rules": rules,
    }


def audit_flags(workdir: Path, *, reads: bool = False) -> list[str]:
    """Write the policy under ``workdir`` and return the kube-apiserver flags that use it."""
    policy = workdir / AUDIT_POLICY
    policy.parent.mkdir(parents=True, exist_ok=True)
    policy.write_text(yaml.safe_dump(audit_policy(reads=reads), sort_keys=False))
    return [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={workdir / AUDIT_LOG}",
        "--audit-log-format=json",
        # Blocking: the event is written before the request's goroutine ends, so a record is
        # never lost to a full buffer, which a proof of "no write happened" cannot afford.
        "--audit-log-mode=blocking",
        f"--audit-log-maxsize={_MAX_SIZE_MB}",
        "--audit-log-maxbackup=1",
    ]
