"""The normal form of an ``HTTPRoute`` spec, for deciding whether a route found in the cluster is
the one this controller would write.

A route read back from the API server carries the values the CRD defaults (a parentRef's group
and kind, a match's path ``/``, a header match's type ``Exact``, a backend's group, kind and
weight 1) and lists in whatever order someone else wrote them. Normalising both the found and
the wanted spec fills those defaults, drops empty lists, and sorts lists whose order carries no
meaning, so that equality means "routes the same requests the same way".

Backend weights of the split rule are taken out (:data:`SPLIT_WEIGHT`): the router reads them
separately, and relative weights such as 1000/500 mean the same as 67/33.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

DEFAULT_PARENT_GROUP = "gateway.networking.k8s.io"
DEFAULT_PARENT_KIND = "Gateway"
CATCH_ALL = {"path": {"type": "PathPrefix", "value": "/"}}
#: Stands for the weight of a backend of the split rule, whatever number it has.
SPLIT_WEIGHT = "<split>"
_BACKEND_DEFAULT_WEIGHT = 1


def normal_spec(spec: Mapping[str, Any], namespace: str, apex: str, port: int) -> dict[str, Any] | None:
    """``spec`` in normal form; ``None`` when it is not even shaped like a route (a list that is
    not a list, a rule that is not an object)."""
    try:
        return _spec(spec, namespace, apex, port)
    except (TypeError, AttributeError, KeyError, ValueError):
        return None


def _spec(spec: Mapping[str, Any], namespace: str, apex: str, port: int) -> dict[str, Any]:
    out = {k: v for k, v in spec.items() if k not in ("parentRefs", "hostnames", "rules") and not _empty(v)}
    out["parentRefs"] = _sorted(_parent(p, namespace, apex, port) for p in _list(spec.get("parentRefs")))
    out["hostnames"] = sorted(_list(spec.get("hostnames")))
    rules = _list(spec.get("rules"))
    out["rules"] = [_rule(r, namespace, split=index == len(rules) - 1) for index, r in enumerate(rules)]
    return out


def _parent(ref: Mapping[str, Any], namespace: str, apex: str, port: int) -> dict[str, Any]:
    out = dict(ref)
    out.setdefault("group", DEFAULT_PARENT_GROUP)
    out.setdefault("kind", DEFAULT_PARENT_KIND)
    if out.get("namespace") == namespace:
        del out["namespace"]
    # A parentRef to the apex Service without a port means all its ports, which is its one port.
    if (out["group"], out["kind"], out.get("name")) == ("", "Service", apex) and out.get("port") == port:
        del out["port"]
    return out


def _rule(rule: Mapping[str, Any], namespace: str, split: bool) -> dict[str, Any]:
    out = {k: v for k, v in rule.items() if not _empty(v)}
    matches = [_match(m) for m in _list(rule.get("matches"))] or [CATCH_ALL]
    # Matches are alternatives: with a catch-all among them the rest say nothing.
    out["matches"] = [CATCH_ALL] if CATCH_ALL in matches else _sorted(matches)
    if "filters" in out:
        out["filters"] = [_filter(f, namespace) for f in out["filters"]]
    if "backendRefs" in out:
        out["backendRefs"] = _sorted(_backend(b, namespace, split) for b in out["backendRefs"])
    return out


def _match(match: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in match.items() if not _empty(v)}
    path = dict(out.get("path") or {})
    path.setdefault("type", "PathPrefix")
    path.setdefault("value", "/")
    out["path"] = path
    for key in ("headers", "queryParams"):
        if key in out:
            out[key] = _sorted({"type": "Exact", **h} for h in out[key])
    return out


def _filter(flt: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    mirror = flt.get("requestMirror")
    if not isinstance(mirror, Mapping) or not isinstance(mirror.get("backendRef"), Mapping):
        return dict(flt)
    return {**flt, "requestMirror": {**mirror, "backendRef": _object_ref(mirror["backendRef"], namespace)}}


def _backend(ref: Mapping[str, Any], namespace: str, split: bool) -> dict[str, Any]:
    out = _object_ref(ref, namespace)
    out["weight"] = SPLIT_WEIGHT if split else out.get("weight", _BACKEND_DEFAULT_WEIGHT)
    if _empty(out.get("filters")):
        out.pop("filters", None)
    else:
        out["filters"] = [_filter(f, namespace) for f in out["filters"]]
    return out


def _object_ref(ref: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    out = {"group": "", "kind": "Service", **ref}
    if out.get("namespace") == namespace:
        del out["namespace"]
    return out


def _list(value: object) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError("not a list")
    return value


def _empty(value: object) -> bool:
    return value is None or value == [] or value == {}


def _sorted(items: Any) -> list[Any]:
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
