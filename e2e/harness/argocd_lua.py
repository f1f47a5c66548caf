"""Running integrations/argocd's Lua the way Argo CD runs it, with a real Lua runtime (lupa).

What Argo CD does around a custom script (util/lua and the application server, Argo CD 2.x/3.x),
and what is reproduced here so that a script which passes these tests works there:

- Lua 5.1 (Argo CD embeds gopher-lua): ``lupa.lua51``.
- Custom scripts from ``argocd-cm`` run without Lua's standard libraries except the base and
  table libraries and an ``os`` that has only ``time`` and ``date``: no ``string`` (and so no
  string methods), ``math``, ``io`` or ``debug``.
- The object arrives as the global ``obj``: JSON objects and arrays become tables, null
  becomes nil (the key is absent), every number is a Lua number.
- The returned table goes back through JSON: a table with no keys becomes an empty *array*, one
  keyed 1..n an array, one keyed by strings an object; anything else is an error.
- Health: ``status`` must be one of Argo CD's health codes, else the result is ``Unknown``.
- Discovery: an action is enabled unless its table says ``disabled = true``.
- An action's returned object is first repaired where an empty map came back as an empty array
  (the live map is kept), then Argo CD sends a JSON merge patch (RFC 7386) from the live object
  to the returned one, with any status part going to the status subresource.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lupa.lua51 as lua51

REPO_ROOT = Path(__file__).resolve().parents[2]
INTEGRATION = REPO_ROOT / "integrations" / "argocd"
HEALTH_SCRIPT = INTEGRATION / "health.lua"
DISCOVERY_SCRIPT = INTEGRATION / "actions" / "discovery.lua"
#: The actions in the order the README and the ConfigMap list them.
ACTIONS = ("promote", "rollback", "pause", "resume", "retry")
HEALTH_CODES = frozenset({"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"})

# The part of the base library gopher-lua opens (loaders and `load*` left out: no script needs them).
_BASE = ("assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print", "rawequal", "rawget",
         "rawset", "select", "setmetatable", "tonumber", "tostring", "type", "unpack", "xpcall", "_VERSION")

_SANDBOX = """
local source, obj, base = ...
local env = {}
for _, name in ipairs(base) do env[name] = _G[name] end
env.table = table
env.os = {time = os.time, date = os.date}
env._G = env
env.obj = obj
-- Without the string library there are no string methods either ("x"):lower().
getmetatable("").__index = nil
local chunk, err = loadstring(source, "=script")
if chunk == nil then error(err, 0) end
setfenv(chunk, env)
return chunk()
"""


class LuaScriptError(Exception):
    """A script failed, or returned what Argo CD would refuse."""


@dataclass(frozen=True)
class Health:
    status: str
    message: str


@dataclass(frozen=True)
class Action:
    name: str
    disabled: bool
    display_name: str = ""
    icon_class: str = ""


def action_script(name: str) -> Path:
    return INTEGRATION / "actions" / name / "action.lua"


def run(script: Path | str, obj: Mapping[str, Any]) -> Any:
    """Run one script on ``obj`` in a fresh sandbox; its result as JSON-shaped Python values."""
    source = script.read_text() if isinstance(script, Path) else script
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    try:
        sandbox = runtime.execute("return function(...) " + _SANDBOX + " end")
        result = sandbox(source, _to_lua(runtime, obj), _to_lua(runtime, list(_BASE)))
    except lua51.LuaError as exc:
        raise LuaScriptError(f"{script}: {exc}") from exc
    return _from_lua(result)


def health(obj: Mapping[str, Any]) -> Health:
    result = run(HEALTH_SCRIPT, obj)
    if not isinstance(result, dict):
        raise LuaScriptError(f"health.lua returned {result!r}, not a table")
    status, message = result.get("status"), result.get("message", "")
    if status not in HEALTH_CODES:
        return Health("Unknown", "Lua returned an invalid health status")
    return Health(str(status), str(message))


def discover(obj: Mapping[str, Any]) -> dict[str, Action]:
    result = run(DISCOVERY_SCRIPT, obj)
    if result == []:
        return {}
    if not isinstance(result, dict):
        raise LuaScriptError(f"discovery.lua returned {result!r}, not a table of actions")
    out: dict[str, Action] = {}
    for name, spec in result.items():
        spec = spec if isinstance(spec, dict) else {}
        out[name] = Action(name, spec.get("disabled") is True, str(spec.get("displayName", "")),
                           str(spec.get("iconClass", "")))
    return out


def action_patch(name: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch Argo CD sends when the action ``name`` runs on the live ``obj``."""
    result = run(action_script(name), obj)
    if not isinstance(result, dict):
        raise LuaScriptError(f"{name}/action.lua returned {result!r}: this integration's actions return the object")
    return merge_patch(obj, _keep_live_maps(result, obj))


def merge_patch(live: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns ``live`` into ``new`` (null removes a key)."""
    patch: dict[str, Any] = {key: None for key in live if key not in new}
    for key, value in new.items():
        if key not in live:
            patch[key] = value
        elif isinstance(live[key], Mapping) and isinstance(value, Mapping):
            nested = merge_patch(live[key], value)
            if nested:
                patch[key] = nested
        elif live[key] != value:
            patch[key] = value
    return patch


def _keep_live_maps(new: Any, live: Any) -> Any:
    # An empty map went into Lua as an empty table and came back as []; Argo CD puts the live
    # value back wherever the live object had a map there.
    if isinstance(new, dict) and isinstance(live, Mapping):
        return {key: (live[key] if value == [] and isinstance(live.get(key), Mapping)
                      else _keep_live_maps(value, live.get(key)))
                for key, value in new.items()}
    if isinstance(new, list) and isinstance(live, list):
        return [_keep_live_maps(value, live[i] if i < len(live) else None) for i, value in enumerate(new)]
    return new


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, Mapping):
        table = runtime.table()
        for key, item in value.items():
            if item is not None:
                table[str(key)] = _to_lua(runtime, item)
        return table
    if isinstance(value, (list, tuple)):
        table = runtime.table()
        for index, item in enumerate(value, start=1):
            table[index] = _to_lua(runtime, item)
        return table
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    raise LuaScriptError(f"not a JSON value: {value!r}")


def _from_lua(value: Any) -> Any:
    if lua51.lua_type(value) != "table":
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise LuaScriptError(f"a script returned a {lua51.lua_type(value)}, which JSON cannot hold")
    items = list(value.items())
    if not items:
        return []
    keys = [key for key, _ in items]
    if all(isinstance(key, str) for key in keys):
        return {key: _from_lua(item) for key, item in items}
    if all(isinstance(key, (int, float)) for key in keys) and sorted(keys) == list(range(1, len(keys) + 1)):
        return [_from_lua(item) for _, item in sorted(items, key=lambda pair: pair[0])]
    raise LuaScriptError(f"a table with keys {keys!r} is neither a JSON array nor a JSON object")
