"""Command-line grammar, and the settings of ``canary run`` and ``canary metrics-server``.

Every ``canary run`` and ``canary metrics-server`` flag has an environment variable named
``CANARY_`` plus the flag's name (``--metrics-port`` -> ``CANARY_METRICS_PORT``); a flag beats
the variable, the variable beats the default in :mod:`canary.config` (and
:mod:`canary.metricsserver.config`). Flags default to None here so that "not given" can be told
apart from "given the default value".
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import NoReturn

from canary import __version__
from canary.cli.errors import ExitCode, UsageError
from canary.cli.report import add_report_parser
from canary.config import AlertSettings, LeaderElectionSettings, Mesh, MetricsSettings, Settings, ShardingSettings
from canary.domain import bounds
from canary.domain.bounds import DurationBound
from canary.domain.durations import parse_duration, range_text
from canary.domain.providers import PROVIDERS
from canary.domain.spec import ProviderType
from canary.domain.status import Annotation
from canary.errors import SpecError
from canary.metricsserver.config import RequestHeaderSettings, ServerSettings
from canary.metricsserver.meshes import SERVED_MESHES
from canary.notify.flags import AlertFlagError, add_alert_flags, alert_settings_from_args

__all__ = [
    "DEFAULT_PROVIDERS",
    "LOG_LEVELS",
    "OPERATOR_COMMANDS",
    "OUTPUTS",
    "build_parser",
    "build_plugin_parser",
    "env_name",
    "kubeconfig_from_args",
    "server_settings_from_args",
    "settings_from_args",
]

DEFAULT_PROVIDERS = tuple(PROVIDERS)
LOG_LEVELS = ("debug", "info", "warning", "error")
#: ``status -o``: the view for people, or the status as data.
OUTPUTS = ("text", "json", "yaml")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def env_name(dest: str) -> str:
    return f"CANARY_{dest.upper()}"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse's exit code 2 would read as "timed out" to a script calling `canary wait`.
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}\n")


def _duration(bound: DurationBound) -> Callable[[str], float]:
    """An argparse type within ``bound``; argparse prefixes the message with the flag's name."""

    def parse(text: str) -> float:
        try:
            return parse_duration(text, bound.where, bound).total_seconds()
        except SpecError as exc:
            raise argparse.ArgumentTypeError(exc.message) from exc

    # argparse shows this name when the value is refused without a message of its own.
    parse.__name__ = "duration"
    return parse


def _env_help(dest: str) -> str:
    return f" [env {env_name(dest)}]"


def _add_run(sub: argparse._SubParsersAction[_Parser]) -> None:
    run = sub.add_parser(
        "run",
        help="run the controller",
        description="Run the controller until interrupted. Each flag can also be set through the "
                    "environment variable shown with it; a flag wins over the variable.",
    )
    run.add_argument("--namespace", dest="namespaces", action="append", metavar="NS",
                     help="watch only this namespace; repeat or separate with commas for several "
                          "(default: the whole cluster)" + _env_help("namespaces"))
    run.add_argument("--default-provider", choices=DEFAULT_PROVIDERS,
                     help="router for Canaries without spec.provider (default: smi)"
                          + _env_help("default_provider"))
    run.add_argument("--metrics-source", choices=[p.value for p in ProviderType],
                     help="where builtin checks read metrics (default: prometheus)" + _env_help("metrics_source"))
    run.add_argument("--prometheus-address", metavar="URL",
                     help=f"Prometheus for builtin checks (default: {MetricsSettings().prometheus_address})"
                          + _env_help("prometheus_address"))
    run.add_argument("--mesh", choices=[m.value for m in Mesh],
                     help="whose metric names builtin checks query (default: linkerd)" + _env_help("mesh"))
    run.add_argument("--log-level", choices=LOG_LEVELS, help="(default: info)" + _env_help("log_level"))
    run.add_argument("--metrics-port", type=int, metavar="PORT",
                     help="port of /metrics, /healthz and /readyz (default: 8080)" + _env_help("metrics_port"))
    run.add_argument("--leader-election", action=argparse.BooleanOptionalAction, default=None,
                     help="hold a Lease so only one replica acts (default: on)" + _env_help("leader_election"))
    run.add_argument("--lease-name", metavar="NAME",
                     help=f"(default: {LeaderElectionSettings().lease_name})" + _env_help("lease_name"))
    run.add_argument("--lease-namespace", metavar="NS",
                     help=f"(default: {LeaderElectionSettings().lease_namespace})" + _env_help("lease_namespace"))
    run.add_argument("--shard-buckets", metavar="N",
                     help="share the Canaries among replicas: hash them into N buckets, each a Lease "
                          "<lease-name>-bucket-<k> that one replica holds (default: 0, off: one leader "
                          "acts on all)" + _env_help("shard_buckets"))
    run.add_argument("--kubeconfig", metavar="PATH",
                     help="kubeconfig file (default: in-cluster, then $KUBECONFIG)" + _env_help("kubeconfig"))
    add_alert_flags(run)


def _add_metrics_server(sub: argparse._SubParsersAction[_Parser]) -> None:
    server = sub.add_parser(
        "metrics-server",
        help="serve the SMI Traffic Metrics API from Prometheus (an aggregated API server)",
        description="Serve metrics.smi-spec.io/v1alpha1 (TrafficMetrics) over HTTPS from the mesh's "
                    "Prometheus metrics, behind the kube-apiserver's aggregation layer. Each flag can "
                    "also be set through the environment variable shown with it; a flag wins.",
    )
    defaults = ServerSettings()
    header_defaults = RequestHeaderSettings()
    server.add_argument("--prometheus-address", metavar="URL",
                        help=f"(default: {defaults.prometheus_address})" + _env_help("prometheus_address"))
    server.add_argument("--mesh", choices=[m.value for m in SERVED_MESHES],
                        help="whose metric names to query (default: linkerd)" + _env_help("mesh"))
    server.add_argument("--queries-file", metavar="PATH",
                        help="YAML file overriding the mesh's queries" + _env_help("queries_file"))
    server.add_argument("--kubeconfig", metavar="PATH",
                        help="kubeconfig file (default: in-cluster, then $KUBECONFIG)" + _env_help("kubeconfig"))
    server.add_argument("--bind-address", metavar="ADDR",
                        help=f"(default: {defaults.bind_address})" + _env_help("bind_address"))
    server.add_argument("--secure-port", type=int, metavar="PORT",
                        help=f"HTTPS port (default: {defaults.secure_port})" + _env_help("secure_port"))
    server.add_argument("--tls-cert-file", metavar="PATH",
                        help="serving certificate, PEM (default: a self-signed one made at start, for "
                             "testing only)" + _env_help("tls_cert_file"))
    server.add_argument("--tls-private-key-file", metavar="PATH",
                        help="its private key, PEM" + _env_help("tls_private_key_file"))
    server.add_argument("--requestheader-client-ca-file", metavar="PATH",
                        help="CA that signs the front proxy's client certificate (default: read it and "
                             "the other --requestheader-* settings from the ConfigMap "
                             "kube-system/extension-apiserver-authentication)"
                             + _env_help("requestheader_client_ca_file"))
    server.add_argument("--requestheader-allowed-names", action="append", metavar="NAMES",
                        help="common names allowed on the front proxy's certificate, comma-separated "
                             "(default: any certificate of that CA)" + _env_help("requestheader_allowed_names"))
    server.add_argument("--requestheader-username-headers", action="append", metavar="HEADERS",
                        help=f"(default: {','.join(header_defaults.username_headers)})"
                             + _env_help("requestheader_username_headers"))
    server.add_argument("--requestheader-group-headers", action="append", metavar="HEADERS",
                        help=f"(default: {','.join(header_defaults.group_headers)})"
                             + _env_help("requestheader_group_headers"))
    server.add_argument("--requestheader-extra-headers-prefix", action="append", metavar="PREFIXES",
                        help=f"(default: {','.join(header_defaults.extra_headers_prefixes)})"
                             + _env_help("requestheader_extra_headers_prefix"))
    server.add_argument("--log-level", choices=LOG_LEVELS, help="(default: info)" + _env_help("log_level"))


def _client_options() -> _Parser:
    common = _Parser(add_help=False)
    common.add_argument("-n", "--namespace", metavar="NS",
                        help="the Canary's namespace (default: the kubeconfig context's)")
    common.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    common.add_argument("--context", metavar="NAME", help="kubeconfig context (default: the current one)")
    return common


def _wait_options(default: str) -> _Parser:
    waiting = _Parser(add_help=False)
    timeout = _duration(bounds.RECEIPT_TIMEOUT)
    waiting.add_argument("--timeout", type=timeout, default=timeout(default), metavar="DURATION",
                         help=f"how long to wait for the controller's confirmation, e.g. 30s, 2m (default: "
                              f"{default}; {range_text(bounds.RECEIPT_TIMEOUT)})")
    waiting.add_argument("--no-wait", dest="wait", action="store_false",
                         help="write the annotation and return without waiting")
    return waiting


def _add_porting(sub: argparse._SubParsersAction[_Parser]) -> None:
    """``convert`` and ``lint``: the same checks; ``convert`` also writes the ported manifest."""
    summaries = {
        "convert": "port a Flagger manifest: rewrite apiVersion and report what changes, field by field",
        "lint": "report, field by field, what a Flagger manifest would become, without writing it",
    }
    for command, summary in summaries.items():
        porting = sub.add_parser(
            command, help=summary, formatter_class=argparse.RawDescriptionHelpFormatter,
            description=f"{summary[0].upper()}{summary[1:]}.\n\n"
                        "Reads Flagger's flagger.app/v1beta1 Canary and MetricTemplate objects (other kinds\n"
                        "pass through unchanged) and reports on stderr each field that would be refused,\n"
                        "that behaves differently from Flagger, or that is worth knowing about.\n"
                        "Exit 0: everything would be accepted; 4: something would be refused; 3: the\n"
                        "file could not be read; 64: wrong flags.",
        )
        porting.add_argument("-f", "--filename", dest="file", required=True, metavar="FILE",
                             help="multi-document YAML; - for standard input")
        if command == "convert":
            porting.add_argument("-o", "--output", metavar="FILE",
                                 help="write the ported manifest here (default: standard output); comments "
                                      "are kept where the edit allows")
        porting.add_argument("--flagger-no-data", action="store_true",
                             help="write noDataPolicy: fail and consecutiveErrorLimit: 0 into each analysis, "
                                  "so that a check without data, or whose metrics provider does not answer, "
                                  "fails as in Flagger (default here: hold)")
        porting.add_argument("--default-provider", choices=DEFAULT_PROVIDERS, default=Settings().default_provider,
                             help="the controller's --default-provider, which decides for Canaries without "
                                  "spec.provider (default: %(default)s)")


#: Adds one command to a parser's subcommands, given the options every cluster command shares.
AddCommand = Callable[["argparse._SubParsersAction[_Parser]", _Parser], None]


def _add_status(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    status = sub.add_parser("status", parents=[common], help="show Canaries, their weight, checks and conditions",
                            description="Show each Canary's phase, traffic weight, failed checks, the value, "
                                        "bounds and verdict of every check, and its conditions; with -A, one "
                                        "line per Canary.")
    _status_arguments(status)
    status.add_argument("-w", "--watch", action="store_true", help="show again on every change until Ctrl-C")


def _status_arguments(status: _Parser) -> None:
    status.add_argument("name", nargs="?", help="one Canary (default: all in the namespace)")
    status.add_argument("-A", "--all-namespaces", action="store_true",
                        help="Canaries in every namespace, one line each")
    status.add_argument("-o", "--output", choices=OUTPUTS, default="text",
                        help="json or yaml: the Canary's status as data (default: text)")


def _add_watch(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    """``watch``: ``status --watch`` under its own name (``kubectl canary watch``)."""
    watch = sub.add_parser("watch", parents=[common], help="show Canaries again on every change until Ctrl-C",
                           description="The same as status --watch.")
    _status_arguments(watch)
    watch.set_defaults(watch=True)


def _add_wait(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    wait = sub.add_parser(
        "wait", parents=[common], help="wait until a release succeeds or fails (for CI)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Wait until the Canary's release ends. Exit 0 when it ends as asked, 1 when it\n"
                    "ends the other way (or the revision was superseded), 2 on timeout.",
        epilog="Without --revision only the phase counts: a Canary still Succeeded from the previous\n"
               "release satisfies --for succeeded immediately, before the controller has seen the new\n"
               "Deployment. Pass --revision with the value `canary status` shows as Revision\n"
               "(status.lastAppliedSpec) to wait for the outcome of that revision only.",
    )
    wait.add_argument("name")
    wait.add_argument("--for", dest="goal", required=True, choices=("succeeded", "failed", "promoted"),
                      help="the outcome to wait for (promoted is another name for succeeded)")
    wait_timeout = _duration(bounds.WAIT_TIMEOUT)
    wait.add_argument("--timeout", type=wait_timeout, default=wait_timeout("10m"), metavar="DURATION",
                      help=f"e.g. 90s, 10m, 1h (default: 10m; {range_text(bounds.WAIT_TIMEOUT)})")
    wait.add_argument("--revision", metavar="CHECKSUM", help="only an outcome for this lastAppliedSpec counts")


def _add_on_call(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    on_call = {
        "rollback": ("route all traffic back to the primary and fail the release", "sets", Annotation.ROLLBACK),
        "promote": ("promote the canary now, skipping the rest of the analysis", "sets", Annotation.PROMOTE),
        "pause": ("hold the release at its current weight", "sets", Annotation.PAUSE),
        "resume": ("continue a paused release", "removes", Annotation.PAUSE),
        "retry": ("run the analysis again for the current revision", "sets", Annotation.RETRY),
    }
    for command, (summary, verb, annotation) in on_call.items():
        cmd = sub.add_parser(command, parents=[common, _wait_options("30s")], help=summary,
                             description=f"{summary[0].upper()}{summary[1:]}: {verb} the {annotation.value} "
                                         "annotation (as kubectl annotate would) and waits for the "
                                         "controller to confirm it; exit 2 if it does not.")
        cmd.add_argument("name")
        if command == "rollback":
            cmd.add_argument("--reason", metavar="TEXT", help="why; recorded in the Canary's status and events")


#: The commands people on call use against a cluster, in help order: ``canary`` and the kubectl
#: plugin both offer them. A new one is one function here (and its dispatch in app.py).
OPERATOR_COMMANDS: tuple[AddCommand, ...] = (_add_status, _add_watch, _add_wait, add_report_parser, _add_on_call)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="canary", description="Progressive delivery for Kubernetes: the controller and its "
                                                "on-call tools.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    _add_run(sub)
    _add_metrics_server(sub)
    _add_porting(sub)
    common = _client_options()
    for add in OPERATOR_COMMANDS:
        add(sub, common)
    return parser


def build_plugin_parser() -> argparse.ArgumentParser:
    """``kubectl canary``: the operator commands."""
    parser = _Parser(prog="kubectl canary", description="Canary releases from kubectl: the on-call commands of "
                                                        "canary. Flags as in kubectl, written after canary: "
                                                        "--kubeconfig, --context, -n/--namespace, -A/--all-namespaces.")
    parser.add_argument("--version", action="version", version=f"canary {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    common = _client_options()
    for add in OPERATOR_COMMANDS:
        add(sub, common)
    return parser


# --- settings ------------------------------------------------------------------------------------


def _pick(ns: argparse.Namespace, env: Mapping[str, str], dest: str) -> str | None:
    flag = getattr(ns, dest, None)
    if flag is not None:
        return str(flag)
    value = env.get(env_name(dest), "").strip()
    return value or None


def _choice(value: str, allowed: Sequence[str], dest: str) -> str:
    if value not in allowed:
        raise UsageError(f"{env_name(dest)}={value!r} is not one of {', '.join(allowed)}")
    return value


def _bool(ns: argparse.Namespace, env: Mapping[str, str], dest: str) -> bool | None:
    flag = getattr(ns, dest, None)
    if flag is not None:
        return bool(flag)
    raw = env.get(env_name(dest), "").strip().lower()
    if not raw:
        return None
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise UsageError(f"{env_name(dest)}={raw!r} is not a boolean (true/false, 1/0, yes/no, on/off)")


def _bounded_int(value: str, dest: str, bound: bounds.CountBound, noun: str) -> int:
    """``value`` (from ``--dest`` or its variable) as an int within ``bound``; else exit 64 naming both."""
    where = f"--{dest.replace('_', '-')} or {env_name(dest)}"
    try:
        number = int(value)
    except ValueError as exc:
        raise UsageError(f"{where}: {value!r} is not {noun}") from exc
    lowest, highest = bound.floor, bound.ceiling
    if not lowest <= number <= highest:
        raise UsageError(f"{where}: {number} is not between {lowest} and {highest}")
    return number


def _port(value: str, dest: str) -> int:
    return _bounded_int(value, dest, bounds.LISTEN_PORT, "a port number")


def _shard_buckets(value: str) -> int:
    return _bounded_int(value, "shard_buckets", bounds.SHARD_BUCKETS, "a whole number")


def _namespaces(ns: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, ...]:
    return _comma_list(ns, env, "namespaces") or ()


def _comma_list(ns: argparse.Namespace, env: Mapping[str, str], dest: str) -> tuple[str, ...] | None:
    """A repeatable, comma-separated flag (or its variable); None when neither is given."""
    given: list[str] | None = getattr(ns, dest, None)
    if not given and not env.get(env_name(dest), "").strip():
        return None
    raw = given if given else [env.get(env_name(dest), "")]
    seen: dict[str, None] = {}
    for item in raw:
        for part in item.split(","):
            if part.strip():
                seen.setdefault(part.strip(), None)
    return tuple(seen)


def settings_from_args(ns: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    """The controller's settings: flag, else ``CANARY_*`` variable, else the default. Pure.

    Raises :class:`UsageError` for an environment value argparse did not get to check.
    """
    base = Settings()
    metrics, election = base.metrics, base.leader_election

    provider = _pick(ns, env, "default_provider")
    source = _pick(ns, env, "metrics_source")
    address = _pick(ns, env, "prometheus_address")
    mesh = _pick(ns, env, "mesh")
    level = _pick(ns, env, "log_level")
    port = _pick(ns, env, "metrics_port")
    enabled = _bool(ns, env, "leader_election")
    lease_name = _pick(ns, env, "lease_name")
    lease_namespace = _pick(ns, env, "lease_namespace")
    buckets = _pick(ns, env, "shard_buckets")

    if source is not None:
        metrics = replace(metrics, source=ProviderType(_choice(source, [p.value for p in ProviderType], "metrics_source")))
    if address is not None:
        metrics = replace(metrics, prometheus_address=address)
    if mesh is not None:
        metrics = replace(metrics, mesh=Mesh(_choice(mesh, [m.value for m in Mesh], "mesh")))
    if enabled is not None:
        election = replace(election, enabled=enabled)
    if lease_name is not None:
        election = replace(election, lease_name=lease_name)
    if lease_namespace is not None:
        election = replace(election, lease_namespace=lease_namespace)
    return replace(
        base,
        namespaces=_namespaces(ns, env),
        default_provider=base.default_provider if provider is None else _choice(provider, DEFAULT_PROVIDERS,
                                                                                "default_provider"),
        metrics=metrics,
        leader_election=election,
        sharding=base.sharding if buckets is None else ShardingSettings(_shard_buckets(buckets)),
        log_level=base.log_level if level is None else _choice(level.lower(), LOG_LEVELS, "log_level"),
        metrics_port=base.metrics_port if port is None else _port(port, "metrics_port"),
        kubeconfig=kubeconfig_from_args(ns, env),
        alerts=_alerts(ns, env),
    )


def _alerts(ns: argparse.Namespace, env: Mapping[str, str]) -> AlertSettings:
    try:
        return alert_settings_from_args(ns, env)
    except AlertFlagError as exc:
        raise UsageError(str(exc)) from exc


def kubeconfig_from_args(ns: argparse.Namespace, env: Mapping[str, str]) -> str | None:
    """``--kubeconfig`` or ``CANARY_KUBECONFIG``."""
    return _pick(ns, env, "kubeconfig")


def server_settings_from_args(ns: argparse.Namespace, env: Mapping[str, str]) -> ServerSettings:
    """``canary metrics-server``'s settings: flag, else ``CANARY_*`` variable, else the default. Pure.

    Raises :class:`UsageError` for a value argparse did not get to check, and for requestheader
    settings given without ``--requestheader-client-ca-file`` (without it, all of them come
    from the ``extension-apiserver-authentication`` ConfigMap, as in the kube-apiserver).
    """
    base = ServerSettings()
    address = _pick(ns, env, "prometheus_address")
    mesh = _pick(ns, env, "mesh")
    level = _pick(ns, env, "log_level")
    port = _pick(ns, env, "secure_port")
    ca_file = _pick(ns, env, "requestheader_client_ca_file")
    header_lists = {
        dest: _comma_list(ns, env, dest)
        for dest in ("requestheader_allowed_names", "requestheader_username_headers",
                     "requestheader_group_headers", "requestheader_extra_headers_prefix")
    }
    if ca_file is None:
        given = [f"--{dest.replace('_', '-')}" for dest, value in header_lists.items() if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)} needs --requestheader-client-ca-file; without it every "
                             "requestheader setting comes from the ConfigMap "
                             "kube-system/extension-apiserver-authentication")
        requestheader = RequestHeaderSettings()
    else:
        defaults = RequestHeaderSettings()
        requestheader = RequestHeaderSettings(
            client_ca_file=ca_file,
            allowed_names=header_lists["requestheader_allowed_names"] or (),
            username_headers=header_lists["requestheader_username_headers"] or defaults.username_headers,
            group_headers=header_lists["requestheader_group_headers"] or defaults.group_headers,
            extra_headers_prefixes=header_lists["requestheader_extra_headers_prefix"]
            or defaults.extra_headers_prefixes,
        )
    return replace(
        base,
        prometheus_address=base.prometheus_address if address is None else address,
        mesh=base.mesh if mesh is None else Mesh(_choice(mesh, [m.value for m in SERVED_MESHES], "mesh")),
        queries_file=_pick(ns, env, "queries_file"),
        kubeconfig=kubeconfig_from_args(ns, env),
        bind_address=_pick(ns, env, "bind_address") or base.bind_address,
        secure_port=base.secure_port if port is None else _port(port, "secure_port"),
        tls_cert_file=_pick(ns, env, "tls_cert_file"),
        tls_private_key_file=_pick(ns, env, "tls_private_key_file"),
        requestheader=requestheader,
        log_level=base.log_level if level is None else _choice(level.lower(), LOG_LEVELS, "log_level"),
    )
