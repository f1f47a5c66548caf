"""The parsing primitives of the specs: each reads one value and raises :class:`SpecError`
naming the field (and the fix) when it is not what the field needs. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from canary.domain.bounds import CountBound
from canary.errors import SpecError

__all__ = ["flag", "http_url", "integer", "items", "mapping", "number", "optional_integer", "string_map", "text"]


def mapping(value: object, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(path, "must be an object")
    return value


def integer(value: object, path: str, bound: CountBound) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(path, f"{value!r} must be an integer from {bound.floor} to {bound.ceiling}")
    if value < bound.floor:
        raise SpecError(path, f"{value} must be at least {bound.floor} (at most {bound.ceiling})")
    if value > bound.ceiling:
        raise SpecError(path, f"{value} must be at most {bound.ceiling} (at least {bound.floor})")
    return value


def optional_integer(m: Mapping[str, Any], key: str, path: str, bound: CountBound) -> int | None:
    return None if m.get(key) is None else integer(m[key], f"{path}.{key}", bound)


def items(value: object, path: str, bound: CountBound) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(path, "must be a list")
    if len(value) > bound.ceiling:
        raise SpecError(path, f"has {len(value)} items; at most {bound.ceiling} are allowed")
    return value


def text(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(path, "must be a non-empty string")
    return value


def flag(m: Mapping[str, Any], key: str, path: str) -> bool:
    value = m.get(key, False)
    if not isinstance(value, bool):
        # bool("false") is True: a quoted boolean must be refused, not read backwards.
        raise SpecError(f"{path}.{key}", f"{value!r} must be true or false, without quotes")
    return value


def http_url(value: object, path: str) -> str:
    url = text(value, path)
    if not url.startswith(("http://", "https://")):
        raise SpecError(path, f"{url!r} must start with http:// or https://")
    return url


def number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(path, f"{value!r} must be a number")
    return float(value)


def string_map(value: object, path: str) -> dict[str, str]:
    out = {}
    for key, item in mapping(value, path).items():
        if not isinstance(item, str):
            raise SpecError(f"{path}.{key}", f"{item!r} must be a string; quote it")
        out[str(key)] = item
    return out
