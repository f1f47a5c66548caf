"""The permissions the controller needs, derived from its code rather than written down.

Four sources, each read from the code itself:

1. **Generated client calls.** Every attribute of the ``kubernetes`` client's API classes the
   controller's modules name (``read_namespaced_deployment``, ``create_namespaced_event``, ...),
   called or passed to ``KubeApi.call``. The client's own request builder says which HTTP method
   and path each one sends; the path gives the API group, resource and subresource, the method
   (and whether the path names one object) gives the RBAC verb.
2. **Custom-object calls** (``CustomObjectsApi``, and our wrappers of it such as
   ``KubeApi.get_custom``): the group and plural are arguments, resolved at the call site to a
   constant, or to the registry a resource object comes from (routes, companions, scalers).
   A call site this module cannot resolve fails the test, naming it.
3. **kopf.** list and watch on every resource a kopf handler is registered for (read from a real
   ``OperatorRegistry`` filled by ``canary.kube.handlers.register``), and on what kopf's own
   observers watch: CRDs (new resources appear without a restart) and namespaces (when
   ``--namespace`` is given).
4. **What the API server requires without a call:** an owner reference with
   ``blockOwnerDeletion`` needs ``update`` on the owner's ``finalizers`` subresource where the
   OwnerReferencesPermissionEnforcement admission plugin runs; and the SMI Traffic Metrics
   reads, which go through ``KubeApi.get_raw`` with paths ``canary.metrics.smi.metrics_path`` makes.

Only the controller (``canary run``) is scanned here: the CLI runs with the user's own
credentials, and the metrics server has its own ServiceAccount and ClusterRole, whose needs
:func:`metrics_server_needs` derives from the paths it lists.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
from kopf._cogs.structs import references
from kubernetes import client as k8s

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "canary"
#: Not the controller's process: the CLI acts as the user, the metrics server has its own RBAC.
NOT_THE_CONTROLLER = ("cli", "metricsserver")
API_CLASSES = (k8s.CoreV1Api, k8s.AppsV1Api, k8s.CoordinationV1Api, k8s.AutoscalingV2Api, k8s.EventsV1Api,
               k8s.CustomObjectsApi, k8s.ApiextensionsV1Api, k8s.RbacAuthorizationV1Api, k8s.PolicyV1Api)
#: HTTP method -> RBAC verb for a request naming one object (a collection: get is list, delete is
#: deletecollection).
VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
COLLECTION_VERBS = {"GET": "list", "DELETE": "deletecollection", "POST": "create"}


@dataclass(frozen=True, order=True)
class Need:
    group: str
    resource: str
    """With its subresource, as RBAC spells it: ``canaries/status``."""
    verb: str
    why: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.resource, self.verb)


class UnresolvedCall(AssertionError):
    """A call whose resource this module cannot tell: teach it (or change the call)."""


# --- 1. the generated client -------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str


def _request(cls: type, name: str) -> Request | None:
    """What the generated method ``name`` of ``cls`` sends, read from its request builder."""
    serialize = getattr(cls, f"_{name}_serialize", None)
    if serialize is None:
        return None
    source = inspect.getsource(serialize)
    method = re.search(r"method='(\w+)'", source)
    path = re.search(r"resource_path='([^']+)'", source)
    if method is None or path is None:
        return None
    return Request(method.group(1), path.group(1))


def client_methods() -> dict[str, dict[str, Request]]:
    """Every generated API method name of the client classes, by class name (several classes
    share some names: ``create_namespaced_event`` is core/v1's and events.k8s.io/v1's)."""
    found: dict[str, dict[str, Request]] = {}
    for cls in API_CLASSES:
        for name, _ in inspect.getmembers(cls, inspect.isfunction):
            if name.startswith("_") or name.endswith("_with_http_info") or name.endswith("_without_preload_content"):
                continue
            request = _request(cls, name)
            if request is not None:
                found.setdefault(name, {})[cls.__name__] = request
    return found


def receiver_classes() -> dict[str, str]:
    """Attribute or variable name -> the client class assigned to it (``self.core = client.CoreV1Api(...)``)."""
    names = {cls.__name__ for cls in API_CLASSES}
    found: dict[str, str] = {}
    for _, _, tree in controller_modules():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                    and isinstance(node.value.func, ast.Attribute) and node.value.func.attr in names):
                for target in node.targets:
                    if isinstance(target, (ast.Attribute, ast.Name)):
                        found[target.attr if isinstance(target, ast.Attribute) else target.id] = node.value.func.attr
    return found


def _receiver(node: ast.Attribute) -> str | None:
    value = node.value
    if isinstance(value, ast.Attribute):
        return value.attr
    if isinstance(value, ast.Name):
        return value.id
    return None


def need_of(request: Request, group: str | None = None, plural: str | None = None, why: str = "") -> Need | None:
    """The RBAC need of one request; None for a path outside any resource (discovery)."""
    path = request.path.replace("{group}", group or "{group}").replace("{plural}", plural or "{plural}")
    parts = [p for p in path.strip("/").split("/") if p]
    if parts[:1] == ["api"]:
        api_group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        api_group, rest = parts[1], parts[3:]
    else:
        return None
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]  # a namespaced resource (namespaces/{namespace}/... is not the namespace itself)
    if not rest:
        return None
    resource, named, sub = rest[0], len(rest) >= 2, rest[2] if len(rest) >= 3 else None
    verb = (VERBS if named else COLLECTION_VERBS).get(request.method)
    if verb is None:
        raise UnresolvedCall(f"no RBAC verb for {request.method} {request.path}")
    return Need(api_group, f"{resource}/{sub}" if sub else resource, verb, why)


# --- the controller's source ---------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    module: str
    file: Path
    function: ast.FunctionDef | ast.AsyncFunctionDef | None
    line: int

    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


def controller_modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in NOT_THE_CONTROLLER:
            continue
        module = ".".join(("canary", *relative.with_suffix("").parts)).removesuffix(".__init__")
        yield module, path, ast.parse(path.read_text(), str(path))


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _enclosing(tree: ast.Module) -> dict[int, ast.FunctionDef | ast.AsyncFunctionDef]:
    """id(node) -> the innermost function it is in."""
    owner: dict[int, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for function in sorted(_functions(tree), key=lambda f: (f.end_lineno or 0) - f.lineno, reverse=True):
        for node in ast.walk(function):
            owner[id(node)] = function
    return owner


@dataclass(frozen=True)
class Use:
    """One use of a client method: its name and, when the call shows them, its arguments."""

    name: str
    args: tuple[ast.expr, ...] | None
    site: Site
    receiver: str | None = None
    """The name of what the method is read from (``core`` in ``self.api.core.read_...``)."""


def client_uses(names: Iterable[str]) -> list[Use]:
    """Every attribute access of one of ``names`` in the controller, with the arguments it is
    called with: directly (``api.x(a, b)``) or through ``KubeApi.call`` (``call(api.x, a, b)``)."""
    wanted = set(names)
    uses: list[Use] = []
    for module, path, tree in controller_modules():
        owner = _enclosing(tree)
        arguments: dict[int, tuple[ast.expr, ...]] = {}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            if isinstance(node.func, ast.Attribute):
                arguments[id(node.func)] = tuple(node.args)
            for index, arg in enumerate(node.args):
                if isinstance(arg, ast.Attribute) and isinstance(node.func, ast.Attribute) and node.func.attr == "call":
                    arguments[id(arg)] = tuple(node.args[index + 1:])
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in wanted:
                site = Site(module, path, owner.get(id(node)), node.lineno)
                uses.append(Use(node.attr, arguments.get(id(node)), site, _receiver(node)))
    return uses


# --- 2. custom objects: which group and plural -------------------------------------------------


def _registries() -> dict[str, tuple[tuple[str, str], ...]]:
    """The resource families a resource object at a call site may come from, from the code's tables."""
    from canary.kube.scalers import SCALER_RESOURCES
    from canary.routers.factory import ROUTE_RESOURCES
    from canary.routers.gatewayapi import HTTPRouteRouter
    from canary.routers.smi import TrafficSplitRouter
    from canary.routers.traefik import TraefikServiceRouter
    from canary.routers.factory import SMI_VERSIONS

    routers = [*(TrafficSplitRouter(v) for v in SMI_VERSIONS), HTTPRouteRouter(), TraefikServiceRouter()]
    routes = {(r.resource.group, r.resource.plural) for r in routers if r.resource is not None}
    companions = {(c.group, c.plural) for r in routers for c in r.companion_resources}
    # Every route object is written by some router: the table the watches come from agrees.
    assert {(r.group, r.plural) for r in ROUTE_RESOURCES} == routes | companions
    return {
        "routes": tuple(sorted(routes)),
        "companions": tuple(sorted(companions)),
        "scalers": tuple(sorted({(s.group, s.plural) for s in SCALER_RESOURCES.values()})),
    }


def _families_of(source: str) -> set[str]:
    """Which registries an expression that yields a resource object reads."""
    families = set()
    if "SCALER_RESOURCES" in source:
        families.add("scalers")
    if re.search(r"\brouter\.resource\b", source):
        families.add("routes")
    if "companion" in source:
        families.add("companions")
    return families


def _binding(function: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> tuple[str, str] | None:
    """How ``name`` gets its value in ``function``: ("annotation", text) or ("value", text)."""
    for arg in (*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs):
        if arg.arg == name and arg.annotation is not None:
            return ("annotation", ast.unparse(arg.annotation))
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ("value", ast.unparse(node.value))
        if isinstance(node, ast.NamedExpr) and node.target.id == name:
            return ("value", ast.unparse(node.value))
    return None


def _constant(site: Site, expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value
    if isinstance(expr, ast.Name):
        value = getattr(importlib.import_module(site.module), expr.id, None)
        if isinstance(value, str):
            return value
    return None


def resolve(site: Site, group: ast.expr, plural: ast.expr) -> set[tuple[str, str]]:
    """The (group, plural) pairs a custom-object call at ``site`` may address."""
    g, p = _constant(site, group), _constant(site, plural)
    if g is not None and p is not None:
        return {(g, p)}
    if (isinstance(group, ast.Attribute) and isinstance(plural, ast.Attribute) and isinstance(group.value, ast.Name)
            and isinstance(plural.value, ast.Name) and group.value.id == plural.value.id and site.function is not None):
        binding = _binding(site.function, group.value.id)
        if binding is not None:
            how, text = binding
            registries = _registries()
            families = {"routes", "companions"} if how == "annotation" and text == "RouteResource" else _families_of(text)
            if families:
                return {pair for family in families for pair in registries[family]}
    raise UnresolvedCall(f"{site.where()}: cannot tell which resources `{ast.unparse(group)}`/`{ast.unparse(plural)}` "
                         "may name; teach tests/chart/rbac_needs.py where they come from")


def _param_index(function: ast.FunctionDef | ast.AsyncFunctionDef, expr: ast.expr) -> int | None:
    """The positional index (without self) of the parameter ``expr`` names, if it is one."""
    if not isinstance(expr, ast.Name):
        return None
    names = [a.arg for a in (*function.args.posonlyargs, *function.args.args) if a.arg not in ("self", "cls")]
    return names.index(expr.id) if expr.id in names else None


# --- the whole derivation --------------------------------------------------------------------------


def client_needs() -> set[Need]:
    """Sources 1 and 2: every request the controller's code can send through the client."""
    methods = client_methods()
    receivers = receiver_classes()
    needs: set[Need] = set()
    #: our own functions that forward group and plural to a custom-object method:
    #: name -> (request, index of group, index of plural)
    wrappers: dict[str, tuple[Request, int, int]] = {}
    for use in client_uses(methods):
        by_class = methods[use.name]
        if len(by_class) == 1:
            [request] = by_class.values()
        elif use.receiver in receivers and receivers[use.receiver] in by_class:
            request = by_class[receivers[use.receiver]]
        else:
            raise UnresolvedCall(f"{use.site.where()}: {use.name} is a method of {sorted(by_class)}; cannot tell "
                                 f"which client class `{use.receiver}` is")
        if "{group}" not in request.path:
            need = need_of(request, why=f"{use.name} at {use.site.where()}")
            if need is not None:
                needs.add(need)
            continue
        if use.args is None:
            raise UnresolvedCall(f"{use.site.where()}: {use.name} is not called where it is named")
        parameters = [part.strip("{}") for part in request.path.split("/") if part.startswith("{")]
        group_arg, plural_arg = use.args[parameters.index("group")], use.args[parameters.index("plural")]
        function = use.site.function
        if function is not None:
            g, p = _param_index(function, group_arg), _param_index(function, plural_arg)
            if g is not None and p is not None:
                wrappers[function.name] = (request, g, p)
                continue
        for group, plural in resolve(use.site, group_arg, plural_arg):
            need = need_of(request, group, plural, why=f"{use.name} at {use.site.where()}")
            assert need is not None
            needs.add(need)
    for use in client_uses(wrappers):
        request, g, p = wrappers[use.name]
        if use.args is None:
            raise UnresolvedCall(f"{use.site.where()}: {use.name} is not called where it is named")
        for group, plural in resolve(use.site, use.args[g], use.args[p]):
            need = need_of(request, group, plural, why=f"{use.name} at {use.site.where()}")
            assert need is not None
            needs.add(need)
    return needs


class _NoReconcilers:
    """``register`` only closes over the reconcilers; nothing is called while registering."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"registering called reconcilers.{name}")


def _selector_group(selector: Any) -> str:
    return str(selector.group or "")


def _selector_plural(selector: Any) -> str:
    # kopf.on.event("canary.dev", "v1alpha1", "canaries") keeps the last name as any_name.
    plural = selector.plural or selector.any_name
    assert plural, f"{selector} selects no plural"
    return str(plural)


def kopf_needs() -> set[Need]:
    """Source 3: list and watch on each resource a handler is registered for, and kopf's own."""
    from canary.kube.handlers import register

    registry = kopf.OperatorRegistry()
    register(registry, _NoReconcilers())  # type: ignore[arg-type]
    needs: set[Need] = set()
    handlers = [*registry._indexing.get_all_handlers(), *registry._watching.get_all_handlers()]
    assert handlers, "no kopf handler registered"
    for handler in handlers:
        selector = handler.selector
        assert selector is not None, f"handler {handler.id} selects nothing"
        for verb in ("list", "watch"):
            needs.add(Need(_selector_group(selector), _selector_plural(selector), verb, f"kopf handler {handler.id}"))
    for selector, why in ((references.CRDS, "kopf notices resources installed after it started"),
                          (references.NAMESPACES, "kopf lists the namespaces given with --namespace")):
        for verb in ("list", "watch"):
            needs.add(Need(_selector_group(selector), _selector_plural(selector), verb, why))
    return needs


def implicit_needs() -> set[Need]:
    """Source 4: what the API server asks for without a call of its own."""
    from canary.domain.spec import TARGET_KINDS
    from canary.kube.api import CANARY_GROUP, CANARY_PLURAL
    from canary.metrics.smi import metrics_path

    needs: set[Need] = set()
    blocking = [use for use in _dict_keys("blockOwnerDeletion")]
    if blocking:
        # The only owner the controller names in an owner reference is the Canary (owner_reference).
        needs.add(Need(CANARY_GROUP, f"{CANARY_PLURAL}/finalizers", "update",
                       f"blockOwnerDeletion at {', '.join(blocking)} (OwnerReferencesPermissionEnforcement)"))
    raw = [use.site for use in client_uses(["get_raw"])]
    assert [site.module for site in raw] == ["canary.kube.operator"], (
        "KubeApi.get_raw is called from a new place: teach tests/chart/rbac_needs.py which paths it reads")
    for kind in TARGET_KINDS:
        path = metrics_path("ns", "name", "1m", kind).partition("?")[0]
        need = need_of(Request("GET", path), why=f"SMI Traffic Metrics of a {kind} (canary.metrics.smi)")
        assert need is not None
        needs.add(need)
    return needs


def _dict_keys(key: str) -> list[str]:
    found = []
    for _, path, tree in controller_modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == key for k in node.keys):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def controller_needs() -> dict[tuple[str, str, str], list[str]]:
    """(group, resource, verb) -> why, for everything the controller needs."""
    needs: dict[tuple[str, str, str], list[str]] = {}
    for need in sorted(client_needs() | kopf_needs() | implicit_needs()):
        needs.setdefault(need.key, []).append(need.why)
    return needs


# --- the metrics server (its own ServiceAccount and ClusterRole) ----------------------------------


def metrics_server_needs() -> dict[tuple[str, str, str], list[str]]:
    """What ``canary metrics-server`` reads: metadata-only lists of each kind it answers for
    (``inventory.py``, paths from ``KIND_INFO``), namespaced or cluster-wide. The requestheader
    ConfigMap in kube-system it reads through Kubernetes' own extension-apiserver-authentication-reader
    Role, which the chart binds, so it is not in the ClusterRole."""
    from canary.metricsserver.resources import KIND_INFO

    readers = sorted(f"{path.relative_to(ROOT)}" for path in PACKAGE.joinpath("metricsserver").glob("*.py")
                     if re.search(r"reader\.get\(", path.read_text()))
    assert readers == ["canary/metricsserver/cluster.py", "canary/metricsserver/inventory.py"], (
        f"the metrics server reads the API from {readers}: teach tests/chart/rbac_needs.py which paths")
    needs: dict[tuple[str, str, str], list[str]] = {}
    for kind, info in KIND_INFO.items():
        for namespace in (None, "ns"):
            need = need_of(Request("GET", info.list_path(kind.value, namespace)), why=f"inventory of {kind.value}")
            assert need is not None
            needs.setdefault(need.key, []).append(need.why)
    return needs
