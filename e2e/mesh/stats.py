"""Request counts per apex Service and per routing configuration in effect when each request
was routed, so a test can check that at every step the share sent to each backend matched the
weights.

A configuration ("epoch") is a route's :attr:`~e2e.mesh.routing.Route.signature` plus the rule
that routed the request. Requests are counted against the epoch that was current when they were
routed, not when they completed, so a slow answer never lands in the next step's numbers.

Within an epoch, requests are also counted per load stream (the ``x-mesh-load`` header the
load generator sends) and backend, so a test can tell "every request with the header reached the
canary" from "the canary got its share". Copies sent by a ``RequestMirror`` filter are counted
apart (``mirrored``), never in ``requests``: the client's answer does not come from them.
North-south routes are counted under namespace "" and the host.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from e2e.mesh.routes import Route, Source
from e2e.mesh.weights import weight_json

#: Epochs kept per apex; a release has tens, so this only bounds a runaway.
MAX_EPOCHS = 1000
#: The backend a stream's request is counted under when no backend could be picked.
UNROUTED = "(unrouted)"


@dataclass
class Epoch:
    signature: tuple[object, ...]
    rule: int
    sources: tuple[Source, ...]
    weights: dict[str, Fraction]
    since: float
    first: float
    last: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    backend_statuses: dict[str, Counter[str]] = field(default_factory=dict)
    #: Requests for which no backend could be picked (weights summing to 0).
    unrouted: int = 0
    #: Per load stream, requests per backend (UNROUTED when none could be picked).
    streams: dict[str, Counter[str]] = field(default_factory=dict)
    #: Mirrored copies per mirror backend, and their statuses.
    mirrored: Counter[str] = field(default_factory=Counter)
    mirror_statuses: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def as_json(self) -> dict[str, Any]:
        total_weight = sum(self.weights.values(), Fraction(0))
        return {
            "sources": [s.as_json() for s in self.sources],
            "rule": self.rule,
            "weights": {k: weight_json(v) for k, v in self.weights.items()},
            "percent": {k: float(v * 100 / total_weight) if total_weight else 0.0 for k, v in self.weights.items()},
            "since": self.since,
            "first": self.first,
            "last": self.last,
            "total": self.total,
            "requests": dict(self.requests),
            "statuses": dict(self.statuses),
            "backendStatuses": {k: dict(v) for k, v in self.backend_statuses.items()},
            "unrouted": self.unrouted,
            "streams": {k: dict(v) for k, v in self.streams.items()},
            "mirrored": dict(self.mirrored),
            "mirrorStatuses": {k: dict(v) for k, v in self.mirror_statuses.items()},
        }

    def count(self, backend: str | None, status: int, now: float, stream: str | None = None) -> None:
        """One answered request of this configuration."""
        self.last = now
        code = str(status)
        self.statuses[code] += 1
        if stream:
            self.streams.setdefault(stream, Counter())[backend or UNROUTED] += 1
        if backend is None:
            self.unrouted += 1
            return
        self.requests[backend] += 1
        self.backend_statuses.setdefault(backend, Counter())[code] += 1

    def count_mirror(self, backend: str, status: int) -> None:
        """One mirrored copy, answered (or failed) with ``status``."""
        self.mirrored[backend] += 1
        self.mirror_statuses.setdefault(backend, Counter())[str(status)] += 1


@dataclass
class _ApexStats:
    epochs: list[Epoch] = field(default_factory=list)
    open: dict[int, Epoch] = field(default_factory=dict)


class Stats:
    def __init__(self) -> None:
        self._apexes: dict[tuple[str, str], _ApexStats] = {}

    def epoch(self, route: Route, rule: int, now: float) -> Epoch:
        """The epoch of ``route``'s configuration and ``rule``, opened now if it is new. The proxy
        takes it when it routes a request and counts the answer (and any mirrored copy) in it
        later, so a configuration change meanwhile cannot move the request to another epoch."""
        apex = self._apexes.get((route.namespace, route.service))
        if apex is None:
            apex = self._apexes[(route.namespace, route.service)] = _ApexStats()
        signature = route.signature
        epoch = apex.open.get(rule)
        if epoch is None or epoch.signature != signature:
            epoch = Epoch(
                signature=signature,
                rule=rule,
                sources=route.sources,
                weights=route.rules[rule].weights(),
                since=route.since,
                first=now,
            )
            apex.open[rule] = epoch
            apex.epochs.append(epoch)
            if len(apex.epochs) > MAX_EPOCHS:
                del apex.epochs[0]
        return epoch

    def snapshot(self, namespace: str, service: str) -> dict[str, Any]:
        apex = self._apexes.get((namespace, service), _ApexStats())
        requests: Counter[str] = Counter()
        statuses: Counter[str] = Counter()
        mirrored: Counter[str] = Counter()
        streams: dict[str, Counter[str]] = {}
        for epoch in apex.epochs:
            requests.update(epoch.requests)
            statuses.update(epoch.statuses)
            mirrored.update(epoch.mirrored)
            for stream, counts in epoch.streams.items():
                streams.setdefault(stream, Counter()).update(counts)
        return {
            "namespace": namespace,
            "service": service,
            "total": sum(statuses.values()),
            "requests": dict(requests),
            "statuses": dict(statuses),
            "mirrored": dict(mirrored),
            "streams": {k: dict(v) for k, v in streams.items()},
            "configs": [e.as_json() for e in apex.epochs],
        }

    def apexes(self) -> list[tuple[str, str]]:
        return sorted(self._apexes)

    def reset(self, namespace: str | None = None, service: str | None = None) -> None:
        if namespace is None and service is None:
            self._apexes.clear()
            return
        for key in list(self._apexes):
            if (namespace is None or key[0] == namespace) and (service is None or key[1] == service):
                del self._apexes[key]
