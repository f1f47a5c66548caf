"""Gateway API hostname matching, for HTTPRoutes attached to a Gateway.

A route's ``hostnames`` entry is either a name (``app.example.com``), which a request's host
must equal, or a wildcard (``*.example.com``), which matches any name with at least one more
label in front (``a.example.com``, ``a.b.example.com``) but not ``example.com`` itself. A route
without hostnames matches every host. When the routes of several hostnames apply, the spec gives
precedence to the one with the most characters in a matching non-wildcard hostname, then the
most characters in a matching hostname: :func:`specificity` is that order's sort key.
"""

from __future__ import annotations

from collections.abc import Iterable


def normalise_host(host: str) -> str:
    """A Host header's name: lower-case, without port or trailing dot."""
    name = host.strip().lower()
    if name.startswith("["):
        return name
    if ":" in name:
        name = name.rsplit(":", 1)[0]
    return name.rstrip(".")


def hostname_matches(pattern: str, host: str) -> bool:
    pattern = pattern.lower()
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return host.endswith(suffix) and len(host) > len(suffix)
    return host == pattern


def specificity(hostnames: Iterable[str], host: str) -> tuple[int, int] | None:
    """(characters of the matching non-wildcard hostname, characters of the matching hostname)
    for the best of ``hostnames`` matching ``host``; (0, 0) for a route without hostnames;
    None when none matches."""
    names = tuple(hostnames)
    if not names:
        return (0, 0)
    best: tuple[int, int] | None = None
    for pattern in names:
        if not hostname_matches(pattern, host):
            continue
        score = (0, len(pattern)) if pattern.startswith("*.") else (len(pattern), len(pattern))
        if best is None or score > best:
            best = score
    return best
