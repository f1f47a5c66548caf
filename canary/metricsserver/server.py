"""``canary metrics-server``: start-up, serving, shutdown.

Start-up checks everything it can before it listens, so that a mistake ends the process at once
with a message naming the flag, the file or the ConfigMap (:class:`ConfigError`): the query file,
the kubeconfig, the requestheader settings (a file, or the ``extension-apiserver-authentication``
ConfigMap read once at start: a rotated front-proxy CA needs a restart), the serving certificate
(or a self-signed one, logged with its fingerprint: testing only, the APIService then needs
``insecureSkipTLSVerify: true``) and the Prometheus address. It then serves HTTPS until SIGTERM
or SIGINT, probing Prometheus and the Kubernetes API in the background for ``/readyz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web

from canary.config import MetricsSettings
from canary.errors import MetricError
from canary.metrics.prometheus import PrometheusProvider
from canary.metricsserver.auth import RequestHeaderConfig
from canary.metricsserver.cluster import KubeReader, load_api_client, read_requestheader_config
from canary.metricsserver.config import ConfigError, RequestHeaderSettings, ServerSettings, StartupError
from canary.metricsserver.handlers import Backends, make_app
from canary.metricsserver.health import Readiness, probe_forever
from canary.metricsserver.inventory import KubeInventory
from canary.metricsserver.overrides import load_query_set
from canary.metricsserver.tls import self_signed, server_context
from canary.telemetry import configure_logging

_log = structlog.stdlib.get_logger("canary.metricsserver")
#: Worker threads for Prometheus and Kubernetes calls: an edges request runs ten queries at once.
_IO_THREADS = 32
_SHUTDOWN_SECONDS = 5.0


@dataclass
class Running:
    runner: web.AppRunner
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


def run(settings: ServerSettings) -> None:
    configure_logging(settings.log_level)
    asyncio.run(serve(settings))


async def start(backends: Backends, ssl_context: ssl.SSLContext, *, host: str, port: int) -> Running:
    """Listen on ``host:port`` (0: a free port, see ``Running.port``) with ``backends``."""
    # No access log: probes hit the health endpoints every few seconds; requests are logged at
    # debug with the authenticated user instead.
    # In-flight requests get a few seconds at shutdown, well inside a Pod's 30 s grace period.
    runner = web.AppRunner(make_app(backends), access_log=None, shutdown_timeout=_SHUTDOWN_SECONDS)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    bound = runner.addresses[0][1] if runner.addresses else port
    return Running(runner, int(bound))


async def requestheader_config(settings: RequestHeaderSettings, reader: KubeReader) -> RequestHeaderConfig:
    """From the flags when ``--requestheader-client-ca-file`` is given, else from the ConfigMap."""
    if settings.client_ca_file is None:
        return await read_requestheader_config(reader)
    try:
        pem = Path(settings.client_ca_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--requestheader-client-ca-file {settings.client_ca_file}: cannot read it: {exc}") from exc
    if "BEGIN CERTIFICATE" not in pem:
        raise ConfigError(f"--requestheader-client-ca-file {settings.client_ca_file}: no PEM certificate in it")
    return RequestHeaderConfig(
        client_ca_pem=pem,
        allowed_names=settings.allowed_names,
        username_headers=settings.username_headers,
        group_headers=settings.group_headers,
        extra_headers_prefixes=settings.extra_headers_prefixes,
        source=f"--requestheader-client-ca-file {settings.client_ca_file}",
    )


def serving_context(settings: ServerSettings, client_ca_pem: str) -> ssl.SSLContext:
    cert, key = settings.tls_cert_file, settings.tls_private_key_file
    if cert or key:
        if not (cert and key):
            raise ConfigError("--tls-cert-file and --tls-private-key-file go together: give both or neither")
        return server_context(client_ca_pem, cert_file=cert, key_file=key)
    pair = self_signed()
    _log.warning("serving with a self-signed certificate made at start: for testing only, the APIService "
                 "needs insecureSkipTLSVerify: true; pass --tls-cert-file and --tls-private-key-file otherwise",
                 sha256_fingerprint=pair.fingerprint)
    return server_context(client_ca_pem, pair=pair)


def prometheus_client(settings: ServerSettings) -> PrometheusProvider:
    address = settings.prometheus_address
    if not address.startswith(("http://", "https://")):
        raise ConfigError(f"--prometheus-address {address!r} is not an http:// or https:// URL")
    metrics = MetricsSettings(prometheus_address=address, mesh=settings.mesh,
                              retry_attempts=settings.prometheus_attempts, query_timeout=settings.prometheus_timeout)
    try:
        return PrometheusProvider(address, metrics)
    except MetricError as exc:
        raise ConfigError(f"--prometheus-address: {exc}") from exc


async def serve(settings: ServerSettings, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (default: until SIGTERM or SIGINT)."""
    queries = load_query_set(settings.mesh, settings.queries_file)
    reader = KubeReader(load_api_client(settings.kubeconfig), timeout=settings.kube_timeout)
    prometheus: PrometheusProvider | None = None
    running: Running | None = None
    probes: asyncio.Task[None] | None = None
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=_IO_THREADS, thread_name_prefix="canary-io"))
    try:
        auth = await requestheader_config(settings.requestheader, reader)
        ssl_context = serving_context(settings, auth.client_ca_pem)
        prometheus = prometheus_client(settings)
        inventory = KubeInventory(reader, ttl=settings.inventory_ttl, min_refresh=settings.inventory_min_refresh)
        readiness = Readiness(settings.health_grace)
        backends = Backends(queries=queries, prometheus=prometheus, inventory=inventory, readiness=readiness,
                            auth=auth, max_window=settings.max_window)
        running = await start(backends, ssl_context, host=settings.bind_address, port=settings.secure_port)
        _log.info("serving the SMI Traffic Metrics API", address=settings.bind_address, port=running.port,
                  mesh=queries.mesh, kinds=sorted(k.value for k in queries.kinds),
                  prometheus=settings.prometheus_address, requestheader=auth.source,
                  allowed_names=list(auth.allowed_names) or "any certificate of the CA")
        probes = asyncio.create_task(probe_forever(readiness, prometheus, inventory, settings.health_interval),
                                     name="readiness-probes")
        if stop is None:
            stop = asyncio.Event()
            with _stop_on_signals(loop, stop):
                await stop.wait()
        else:
            await stop.wait()
        _log.info("stopping")
    finally:
        if probes is not None:
            probes.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probes
        if running is not None:
            await running.stop()
        if prometheus is not None:
            prometheus.close()
        reader.close()


@contextlib.contextmanager
def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
