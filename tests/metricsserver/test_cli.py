"""``canary metrics-server``: flags, ``CANARY_*`` variables, and exit codes."""

from __future__ import annotations

import io
from typing import Any

import pytest

from canary.cli.app import execute
from canary.cli.args import build_parser, server_settings_from_args
from canary.cli.errors import UsageError
from canary.config import Mesh
from canary.errors import CanaryError
from canary.metricsserver.config import ConfigError, RequestHeaderSettings, ServerSettings


def _settings(argv: list[str], env: dict[str, str] | None = None) -> ServerSettings:
    return server_settings_from_args(build_parser().parse_args(["metrics-server", *argv]), env or {})


def test_defaults() -> None:
    assert _settings([]) == ServerSettings()
    assert ServerSettings().secure_port == 8443 and ServerSettings().bind_address == "0.0.0.0"
    assert ServerSettings().requestheader.client_ca_file is None  # the ConfigMap


def test_every_flag() -> None:
    settings = _settings([
        "--prometheus-address", "http://prom:9090", "--mesh", "istio", "--queries-file", "/etc/q.yaml",
        "--kubeconfig", "/kube", "--bind-address", "10.0.0.5", "--secure-port", "6443",
        "--tls-cert-file", "/tls/tls.crt", "--tls-private-key-file", "/tls/tls.key",
        "--requestheader-client-ca-file", "/ca.crt", "--requestheader-allowed-names", "front-proxy-client,aggregator",
        "--requestheader-allowed-names", "third", "--requestheader-username-headers", "X-Remote-User,X-User",
        "--requestheader-group-headers", "X-Remote-Group", "--requestheader-extra-headers-prefix", "X-Remote-Extra-",
        "--log-level", "debug",
    ])
    assert settings == ServerSettings(
        prometheus_address="http://prom:9090", mesh=Mesh.ISTIO, queries_file="/etc/q.yaml", kubeconfig="/kube",
        bind_address="10.0.0.5", secure_port=6443, tls_cert_file="/tls/tls.crt", tls_private_key_file="/tls/tls.key",
        requestheader=RequestHeaderSettings(
            client_ca_file="/ca.crt", allowed_names=("front-proxy-client", "aggregator", "third"),
            username_headers=("X-Remote-User", "X-User"), group_headers=("X-Remote-Group",),
            extra_headers_prefixes=("X-Remote-Extra-",)),
        log_level="debug",
    )


def test_every_environment_variable() -> None:
    settings = _settings([], {
        "CANARY_PROMETHEUS_ADDRESS": "http://thanos:9090", "CANARY_MESH": "osm", "CANARY_QUERIES_FILE": "/q",
        "CANARY_KUBECONFIG": "/k", "CANARY_BIND_ADDRESS": "127.0.0.1", "CANARY_SECURE_PORT": "9443",
        "CANARY_TLS_CERT_FILE": "/c", "CANARY_TLS_PRIVATE_KEY_FILE": "/k2",
        "CANARY_REQUESTHEADER_CLIENT_CA_FILE": "/ca", "CANARY_REQUESTHEADER_ALLOWED_NAMES": "a, b",
        "CANARY_REQUESTHEADER_USERNAME_HEADERS": "X-U", "CANARY_REQUESTHEADER_GROUP_HEADERS": "X-G",
        "CANARY_REQUESTHEADER_EXTRA_HEADERS_PREFIX": "X-E-", "CANARY_LOG_LEVEL": "WARNING",
    })
    assert settings == ServerSettings(
        prometheus_address="http://thanos:9090", mesh=Mesh.OSM, queries_file="/q", kubeconfig="/k",
        bind_address="127.0.0.1", secure_port=9443, tls_cert_file="/c", tls_private_key_file="/k2",
        requestheader=RequestHeaderSettings(client_ca_file="/ca", allowed_names=("a", "b"), username_headers=("X-U",),
                                            group_headers=("X-G",), extra_headers_prefixes=("X-E-",)),
        log_level="warning",
    )


def test_a_flag_beats_its_variable() -> None:
    settings = _settings(["--secure-port", "1443", "--mesh", "linkerd"],
                         {"CANARY_SECURE_PORT": "2443", "CANARY_MESH": "istio"})
    assert settings.secure_port == 1443 and settings.mesh is Mesh.LINKERD


@pytest.mark.parametrize(("argv", "env", "message"), [
    ([], {"CANARY_SECURE_PORT": "https"}, "not a port number"),
    (["--secure-port", "70000"], {}, "between 1 and 65535"),
    ([], {"CANARY_MESH": "consul"}, "CANARY_MESH"),
    # Traefik's per-Service metrics cannot answer the Traffic Metrics API: not served.
    ([], {"CANARY_MESH": "traefik"}, "CANARY_MESH='traefik' is not one of linkerd, istio, osm$"),
    (["--requestheader-allowed-names", "front-proxy-client"], {}, "needs --requestheader-client-ca-file"),
    ([], {"CANARY_REQUESTHEADER_USERNAME_HEADERS": "X-U"}, "needs --requestheader-client-ca-file"),
])
def test_bad_values(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _settings(argv, env)


def _run(monkeypatch: pytest.MonkeyPatch, argv: list[str], error: Exception | None) -> tuple[int, str]:
    calls: list[ServerSettings] = []

    def fake_run(settings: ServerSettings) -> None:
        calls.append(settings)
        if error is not None:
            raise error

    monkeypatch.setattr("canary.metricsserver.server.run", fake_run)
    err = io.StringIO()
    code = execute(["metrics-server", *argv], env={}, stdout=io.StringIO(), stderr=err)
    return code, err.getvalue()


@pytest.mark.parametrize(("error", "code"), [
    (None, 0),
    (ConfigError("--queries-file /q: cannot read it"), 64),
    (CanaryError("cannot listen on 0.0.0.0:8443: address in use"), 3),
])
def test_exit_codes(monkeypatch: pytest.MonkeyPatch, error: Exception | None, code: int) -> None:
    exit_code, stderr = _run(monkeypatch, ["--mesh", "osm"], error)
    assert exit_code == code
    if error is not None:
        assert stderr == f"canary: error: {error}\n"


@pytest.mark.parametrize("mesh", ["consul", "traefik"])
def test_a_bad_flag_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, capsys: Any, mesh: str) -> None:
    code, _ = _run(monkeypatch, ["--mesh", mesh], None)
    assert code == 64
