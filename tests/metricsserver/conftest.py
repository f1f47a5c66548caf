"""Certificates, a fake Prometheus speaking the real query API, a fake inventory, and the server.

The fake Prometheus holds a small dataset of series per metric family and answers instant
queries the way Prometheus would for the shapes the query sets produce: it reads the metric
family from the query, keeps the series matching every ``label="value"`` / ``label!=""``
matcher, and sums them ``by (...)`` the query's grouping labels. That keeps the tests honest
about the selectors the server sends, not just about the numbers it formats.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import ssl
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from canary.config import Mesh, MetricsSettings
from canary.metrics.prometheus import PrometheusProvider
from canary.metricsserver.auth import RequestHeaderConfig
from canary.metricsserver.handlers import Backends
from canary.metricsserver.health import Readiness
from canary.metricsserver.meshes import default_query_set
from canary.metricsserver.queries import QuerySet
from canary.metricsserver.resources import Kind, ObjectKey
from canary.metricsserver.server import Running, start
from canary.metricsserver.tls import server_context

FRONT_PROXY = "front-proxy-client"
FIXED_NOW = datetime.datetime(2025, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)

# --- certificates --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    path: Path

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()


def _write(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pair:
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return pair


def make_ca(directory: Path, name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pair = _write(directory, name, cert, key)
    return Authority(cert, key, pair.cert)


def issue(directory: Path, ca: Authority, common_name: str, *, server: bool = False) -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                              else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    file_name = f"{ca.path.stem}-{common_name}".replace(":", "_")
    return _write(directory, file_name, builder.sign(ca.key, hashes.SHA256()), key)


@dataclass(frozen=True)
class Pki:
    serving_ca: Authority
    serving: Pair
    front_proxy_ca: Authority
    front_proxy: Pair
    intruder: Pair  # signed by the front-proxy CA, but with a name that is not allowed
    foreign: Pair  # a client certificate from another CA, with the allowed name

    def client(self, pair: Pair | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.serving_ca.path))
        if pair is not None:
            context.load_cert_chain(str(pair.cert), str(pair.key))
        return context


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    serving_ca = make_ca(directory, "serving-ca")
    front_proxy_ca = make_ca(directory, "front-proxy-ca")
    foreign_ca = make_ca(directory, "cluster-ca")
    return Pki(
        serving_ca=serving_ca,
        serving=issue(directory, serving_ca, "canary-metrics-server", server=True),
        front_proxy_ca=front_proxy_ca,
        front_proxy=issue(directory, front_proxy_ca, FRONT_PROXY),
        intruder=issue(directory, front_proxy_ca, "intruder"),
        foreign=issue(directory, foreign_ca, FRONT_PROXY),
    )


# --- a fake Prometheus -------------------------------------------------------------------------------

Labels = Mapping[str, str]
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
_BY = re.compile(r"by \(([^)]*)\)")


def family_of(query: str) -> str:
    """Which dataset family a query reads, from its shape (see ``FakePrometheus.series``)."""
    for quantile, name in (("0.99", "p99"), ("0.9", "p90"), ("0.5", "p50")):
        if f"histogram_quantile({quantile}," in query:
            return name
    if 'classification="success"' in query or 'response_code!~"5.."' in query:
        return "success"
    if 'classification="failure"' in query or 'response_code=~"5.."' in query:
        return "failure"
    return "other"


@dataclass
class FakePrometheus:
    """``series[family]``: (labels, value) pairs. ``status`` other than 200 answers every query
    with that status and a Prometheus error body."""

    url: str = ""
    series: dict[str, list[tuple[Labels, float]]] = field(default_factory=dict)
    status: int = 200
    queries: list[str] = field(default_factory=list)

    def evaluate(self, query: str) -> list[dict[str, Any]]:
        if query == "vector(1)":
            return [{"metric": {}, "value": [FIXED_NOW.timestamp(), "1"]}]
        # The outcome matchers chose the family already; every other matcher filters the series.
        matchers = [(label, op, value) for label, op, value in _MATCHER.findall(query)
                    if op in ("=", "!=") and label not in ("classification", "response_code")]
        grouping = _BY.search(query)
        by = [label.strip() for label in grouping.group(1).split(",")] if grouping else []
        by = [label for label in by if label and label != "le"]
        groups: dict[tuple[str, ...], float] = {}
        for labels, value in self.series.get(family_of(query), []):
            if all((labels.get(label, "") == v) if op == "=" else (labels.get(label, "") != v)
                   for label, op, v in matchers):
                key = tuple(labels.get(label, "") for label in by)
                groups[key] = groups.get(key, 0.0) + value
        return [{"metric": {label: v for label, v in zip(by, key, strict=True) if v},
                 "value": [FIXED_NOW.timestamp(), repr(value) if value == value else "NaN"]}
                for key, value in groups.items()]

    def app(self) -> web.Application:
        async def query(request: web.Request) -> web.Response:
            params = dict(request.query)
            if request.method == "POST":
                params.update({k: str(v) for k, v in (await request.post()).items()})
            promql = params.get("query", "")
            self.queries.append(promql)
            if self.status != 200:
                return web.json_response({"status": "error", "errorType": "internal", "error": "storage is on fire"},
                                         status=self.status)
            return web.json_response({"status": "success",
                                      "data": {"resultType": "vector", "result": self.evaluate(promql)}})

        app = web.Application()
        app.router.add_route("*", "/api/v1/query", query)
        return app


@pytest.fixture
async def prometheus() -> AsyncIterator[FakePrometheus]:
    fake = FakePrometheus(series=linkerd_dataset())
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def linkerd_dataset() -> dict[str, list[tuple[Labels, float]]]:
    """Namespace ``test``: loadgen -> podinfo -> backend; idle gets nothing; ghost (deleted) had
    traffic; podinfo also calls something outside the mesh's Deployments."""

    def inbound(deployment: str, namespace: str = "test") -> dict[str, str]:
        return {"direction": "inbound", "namespace": namespace, "deployment": deployment, "pod": f"{deployment}-1"}

    def outbound(src: str, dst: str, dst_ns: str = "test") -> dict[str, str]:
        return {"direction": "outbound", "namespace": "test", "deployment": src, "pod": f"{src}-1",
                "dst_namespace": dst_ns, "dst_deployment": dst}

    return {
        "success": [
            (inbound("podinfo"), 1000.0), (inbound("podinfo") | {"pod": "podinfo-2"}, 187.5),
            (inbound("backend"), 50.0), (inbound("ghost"), 7.0), (inbound("web", "shop"), 3.0),
            (outbound("loadgen", "podinfo"), 600.0), (outbound("podinfo", "backend"), 50.0),
            (outbound("podinfo", "", ""), 5.0),
        ],
        "failure": [
            (inbound("podinfo"), 12.0), (inbound("backend"), 0.0),
            (outbound("loadgen", "podinfo"), 6.0),
        ],
        "p99": [(inbound("podinfo"), 73.492), (inbound("backend"), 12.0), (outbound("loadgen", "podinfo"), 80.0),
                (outbound("podinfo", "backend"), 13.0)],
        "p90": [(inbound("podinfo"), 40.0), (inbound("backend"), 9.0)],
        "p50": [(inbound("podinfo"), 10.25), (inbound("backend"), float("nan"))],
    }


# --- a fake inventory --------------------------------------------------------------------------------


@dataclass
class FakeInventory:
    objects: dict[Kind, set[ObjectKey]] = field(default_factory=dict)
    calls: int = 0

    async def names(self, kind: Kind, namespace: str | None) -> frozenset[ObjectKey]:
        self.calls += 1
        found = self.objects.get(kind, set())
        return frozenset(k for k in found if namespace is None or k[0] == namespace)

    async def exists(self, kind: Kind, namespace: str | None, name: str) -> bool:
        self.calls += 1
        return (namespace, name) in self.objects.get(kind, set())

    async def check(self) -> None:
        self.calls += 1


def cluster_objects() -> dict[Kind, set[ObjectKey]]:
    return {
        Kind.DEPLOYMENTS: {("test", "podinfo"), ("test", "backend"), ("test", "loadgen"), ("test", "idle"),
                           ("shop", "web")},
        Kind.PODS: {("test", "podinfo-1"), ("test", "podinfo-2")},
        Kind.NAMESPACES: {(None, "test"), (None, "shop"), (None, "empty")},
    }


# --- the server -------------------------------------------------------------------------------------


def prometheus_client(url: str) -> PrometheusProvider:
    return PrometheusProvider(url, MetricsSettings(prometheus_address=url, retry_attempts=2,
                                                   retry_max_wait=datetime.timedelta(milliseconds=10),
                                                   query_timeout=datetime.timedelta(seconds=3)))


@dataclass
class Server:
    url: str
    pki: Pki
    backends: Backends

    def session(self, pair: Pair | None = None) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(self.url, connector=aiohttp.TCPConnector(ssl=self.pki.client(pair)))

    async def get(self, path: str, *, pair: Pair | None = None, **kwargs: Any) -> tuple[int, Any]:
        """GET as the front proxy (by default); the JSON body, or the text if it is not JSON."""
        async with self.session(pair or self.pki.front_proxy) as session, session.get(path, **kwargs) as response:
            text = await response.text()
            try:
                return response.status, await response.json(content_type=None)
            except ValueError:
                return response.status, text


StartServer = Callable[..., Any]


@pytest.fixture
async def start_server(pki: Pki) -> AsyncIterator[Callable[..., Any]]:
    running: list[tuple[Running, PrometheusProvider]] = []

    async def launch(prometheus_url: str, *, queries: QuerySet | None = None, inventory: Any = None,
                     allowed_names: Sequence[str] = (FRONT_PROXY,)) -> Server:
        provider = prometheus_client(prometheus_url)
        auth = RequestHeaderConfig(client_ca_pem=pki.front_proxy_ca.pem, allowed_names=tuple(allowed_names))
        backends = Backends(
            queries=queries or default_query_set(Mesh.LINKERD),
            prometheus=provider,
            inventory=inventory if inventory is not None else FakeInventory(cluster_objects()),
            readiness=Readiness(datetime.timedelta(seconds=60)),
            auth=auth,
            now=lambda: FIXED_NOW,
        )
        context = server_context(auth.client_ca_pem, cert_file=str(pki.serving.cert), key_file=str(pki.serving.key))
        instance = await start(backends, context, host="127.0.0.1", port=0)
        running.append((instance, provider))
        return Server(f"https://127.0.0.1:{instance.port}", pki, backends)

    try:
        yield launch
    finally:
        for instance, provider in running:
            await instance.stop()
            provider.close()


@pytest.fixture
async def server(start_server: Callable[..., Any], prometheus: FakePrometheus) -> Server:
    launched: Server = await start_server(prometheus.url)
    return launched
