from __future__ import annotations

import contextlib
import io
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canary.cli.args import build_parser, env_name, kubeconfig_from_args, settings_from_args
from canary.cli.errors import ExitCode, UsageError
from canary.domain.durations import DURATION_PATTERN
from canary.config import AlertSettings, LeaderElectionSettings, Mesh, MetricsSettings, Settings
from canary.domain.spec import ProviderType


def _settings(argv: list[str], env: dict[str, str] | None = None) -> Settings:
    return settings_from_args(build_parser().parse_args(["run", *argv]), env or {})


def test_defaults_are_the_config_defaults() -> None:
    assert _settings([]) == Settings()


def test_every_flag() -> None:
    settings = _settings([
        "--namespace", "shop", "--namespace", "web,api", "--default-provider", "gatewayapi",
        "--metrics-source", "smi", "--prometheus-address", "http://prom:9090", "--mesh", "istio",
        "--log-level", "debug", "--metrics-port", "9100", "--no-leader-election",
        "--lease-name", "canary-leader", "--lease-namespace", "canary-system",
    ])
    assert settings == Settings(
        namespaces=("shop", "web", "api"),
        default_provider="gatewayapi",
        metrics=MetricsSettings(source=ProviderType.SMI, prometheus_address="http://prom:9090", mesh=Mesh.ISTIO),
        leader_election=LeaderElectionSettings(enabled=False, lease_name="canary-leader",
                                               lease_namespace="canary-system"),
        log_level="debug",
        metrics_port=9100,
    )


ENV = {
    "CANARY_NAMESPACES": "shop, web,,shop",
    "CANARY_DEFAULT_PROVIDER": "smi:v1alpha3",
    "CANARY_METRICS_SOURCE": "smi",
    "CANARY_PROMETHEUS_ADDRESS": "http://thanos:9090",
    "CANARY_MESH": "osm",
    "CANARY_LOG_LEVEL": "WARNING",
    "CANARY_METRICS_PORT": "9200",
    "CANARY_LEADER_ELECTION": "off",
    "CANARY_LEASE_NAME": "from-env",
    "CANARY_LEASE_NAMESPACE": "ops",
}


def test_every_environment_variable() -> None:
    settings = _settings([], ENV)
    assert settings.namespaces == ("shop", "web")
    assert settings.default_provider == "smi:v1alpha3"
    assert settings.metrics == MetricsSettings(source=ProviderType.SMI, prometheus_address="http://thanos:9090",
                                               mesh=Mesh.OSM)
    assert settings.log_level == "warning"
    assert settings.metrics_port == 9200
    assert settings.leader_election == LeaderElectionSettings(enabled=False, lease_name="from-env",
                                                              lease_namespace="ops")


def test_flags_win_over_environment() -> None:
    settings = _settings(["--namespace", "flag-ns", "--mesh", "linkerd", "--metrics-port", "7000",
                          "--leader-election", "--lease-name", "flag-lease"], ENV)
    assert settings.namespaces == ("flag-ns",)
    assert settings.metrics.mesh is Mesh.LINKERD
    assert settings.metrics_port == 7000
    assert settings.leader_election.enabled is True
    assert settings.leader_election.lease_name == "flag-lease"
    # Not given as flags: still from the environment.
    assert settings.default_provider == "smi:v1alpha3"
    assert settings.leader_election.lease_namespace == "ops"


def test_blank_environment_values_mean_unset() -> None:
    assert _settings([], {"CANARY_MESH": " ", "CANARY_NAMESPACES": "", "CANARY_LEADER_ELECTION": ""}) == Settings()


@pytest.mark.parametrize("raw", ["1", "true", "Yes", "ON"])
def test_leader_election_env_true(raw: str) -> None:
    assert _settings([], {"CANARY_LEADER_ELECTION": raw}).leader_election.enabled is True


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        pytest.param("CANARY_MESH", "consul", "CANARY_MESH='consul' is not one of linkerd, istio, osm", id="mesh"),
        pytest.param("CANARY_DEFAULT_PROVIDER", "nginx", "is not one of smi, smi:v1alpha4", id="provider"),
        pytest.param("CANARY_METRICS_SOURCE", "datadog", "is not one of prometheus, smi", id="source"),
        pytest.param("CANARY_LOG_LEVEL", "loud", "is not one of debug, info", id="log-level"),
        pytest.param("CANARY_METRICS_PORT", "http", "'http' is not a port number", id="port-text"),
        pytest.param("CANARY_METRICS_PORT", "70000", "70000 is not between 1 and 65535", id="port-range"),
        pytest.param("CANARY_LEADER_ELECTION", "maybe", "is not a boolean", id="bool"),
    ],
)
def test_invalid_environment_is_a_usage_error(var: str, value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _settings([], {var: value})


def test_shard_buckets_from_the_flag_or_the_environment_within_bounds() -> None:
    assert _settings([]).sharding.enabled is False
    assert _settings(["--shard-buckets", "12"]).sharding.buckets == 12
    assert _settings([], {"CANARY_SHARD_BUCKETS": "256"}).sharding.buckets == 256
    assert _settings(["--shard-buckets", "0"]).sharding.enabled is False
    for value, message in (("257", "257 is not between 0 and 256"), ("-1", "-1 is not between"),
                           ("many", "'many' is not a whole number")):
        with pytest.raises(UsageError, match=message):
            _settings(["--shard-buckets", value])


def test_traefik_is_a_mesh_of_the_builtin_checks() -> None:
    assert _settings(["--mesh", "traefik"]).metrics.mesh is Mesh.TRAEFIK
    assert _settings([], {"CANARY_MESH": "traefik"}).metrics.mesh is Mesh.TRAEFIK


def test_settings_are_frozen() -> None:
    settings = _settings([])
    with pytest.raises(AttributeError):
        settings.log_level = "debug"  # type: ignore[misc]


def test_kubeconfig_flag_or_env() -> None:
    parser = build_parser()
    assert settings_from_args(parser.parse_args(["run", "--kubeconfig", "/k"]), {}).kubeconfig == "/k"
    assert kubeconfig_from_args(parser.parse_args(["run"]), {}) is None
    assert kubeconfig_from_args(parser.parse_args(["run"]), {"CANARY_KUBECONFIG": "/env"}) == "/env"
    assert kubeconfig_from_args(parser.parse_args(["run", "--kubeconfig", "/flag"]),
                                {"CANARY_KUBECONFIG": "/env"}) == "/flag"


def test_env_names() -> None:
    assert env_name("metrics_port") == "CANARY_METRICS_PORT"


@pytest.mark.parametrize(
    ("argv", "attr", "expected"),
    [
        pytest.param(["wait", "x", "--for", "failed"], "timeout", 600.0, id="wait-default-10m"),
        pytest.param(["wait", "x", "--for", "failed", "--timeout", "1m30s"], "timeout", 90.0, id="wait-1m30s"),
        pytest.param(["pause", "x"], "timeout", 30.0, id="on-call-default-30s"),
        pytest.param(["pause", "x"], "wait", True, id="waits-by-default"),
        pytest.param(["pause", "x", "--no-wait"], "wait", False, id="no-wait"),
        pytest.param(["rollback", "x", "--reason", "p99"], "reason", "p99", id="reason"),
        pytest.param(["status"], "name", None, id="status-all"),
        pytest.param(["status", "-A", "-w", "-o", "json"], "all_namespaces", True, id="status-flags"),
    ],
)
def test_client_command_arguments(argv: list[str], attr: str, expected: object) -> None:
    assert getattr(build_parser().parse_args(argv), attr) == expected


def test_lease_durations_untouched() -> None:
    assert _settings([]).leader_election.lease_duration == timedelta(seconds=15)


@settings(derandomize=True, database=None, max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(max_size=40), st.from_regex(DURATION_PATTERN, fullmatch=True)))
def test_any_timeout_text_is_a_value_in_range_or_a_usage_exit(text: str) -> None:
    # Never a traceback: argparse gets a SpecError turned into its own error, which exits 64.
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            ns = build_parser().parse_args(["wait", "x", "--for", "failed", "--timeout", text])
        except SystemExit as exc:
            assert exc.code == ExitCode.USAGE
            assert "--timeout" in err.getvalue()
            return
    assert 1.0 <= ns.timeout <= 168 * 3600.0


def test_the_default_alert_provider_comes_from_flaggers_flags_or_their_variables() -> None:
    settings = _settings(["--slack-url", "https://hooks.slack.com/services/T/B/x", "--slack-channel", "on-call"],
                         {"CANARY_MSTEAMS_URL": "https://example.webhook.office.com/x", "CANARY_SLACK_USER": "rel"})
    assert settings.alerts == AlertSettings(slack_url="https://hooks.slack.com/services/T/B/x", slack_channel="on-call",
                                            slack_user="rel", msteams_url="https://example.webhook.office.com/x")


@pytest.mark.parametrize(("argv", "env", "named"), [
    (["--slack-url", "hooks.slack.com/x"], {}, "--slack-url"),
    ([], {"CANARY_MSTEAMS_PROXY_URL": "ftp://proxy"}, "--msteams-proxy-url"),
])
def test_a_bad_alert_address_is_a_usage_error_naming_the_flag(argv: list[str], env: dict[str, str],
                                                             named: str) -> None:
    with pytest.raises(UsageError, match=named):
        _settings(argv, env)
