"""``canary run``: wires the caches, reconcilers, probes and kopf together under leader election,
or, with ``--shard-buckets``, under the Leases of the buckets this replica holds (``shards``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import aiohttp
import kopf
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from canary import __version__
from canary.config import Settings
from canary.errors import ApiError
from canary.kube.alerting import Alerting, default_target
from canary.kube.api import KubeApi
from canary.kube.cache import ClusterCache
from canary.kube.events import KubernetesEvents
from canary.kube.execute import Executor
from canary.kube.handlers import register
from canary.kube.fence import LeaseGuard
from canary.kube.leader import LeaseApi, LeadershipLost, default_identity, guard_for, hold_leadership
from canary.kube.login import register_login
from canary.kube.probes import ProbeRunner
from canary.kube.reconciler import ReconcilerRegistry, Services
from canary.kube.routes import RouterDirectory
from canary.kube.shards import ShardCoordinator, ShardLeaseApi, Shards
from canary.kube.startup_burst import HeapSettler, StartupBurst
from canary.metrics.engine import MetricsEngine
from canary.metrics.smi import FetchError
from canary.notify.outbox import Outbox
from canary.telemetry import ControllerMetrics, configure_logging, serve_http

def load_kube_config(kubeconfig: str | None) -> k8s.ApiClient:
    """An explicit kubeconfig wins; else in-cluster credentials in a Pod, else $KUBECONFIG."""
    if kubeconfig:
        k8s_config.load_kube_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
    else:
        k8s_config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
    return k8s.ApiClient()


def smi_fetcher(api: KubeApi) -> Callable[[str], Awaitable[Mapping[str, Any]]]:
    """The Traffic Metrics API is an aggregated API: read it through the API server."""

    async def fetch(path: str) -> Mapping[str, Any]:
        try:
            return await api.get_raw(path)
        except ApiError as exc:
            raise FetchError(exc.status or None, str(exc)) from exc

    return fetch


def run(settings: Settings) -> None:
    configure_logging(settings.log_level)
    try:
        asyncio.run(serve(settings))
    except LeadershipLost as exc:
        # Exit so the Pod restarts as a follower: a former leader must not keep acting.
        raise SystemExit(f"leadership lost: {exc}") from exc


def user_agent(identity: str) -> str:
    """Names the replica in every request, so the API server's audit log tells replicas apart."""
    return f"canary-controller/{__version__} ({identity})"


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    identity = settings.leader_election.identity or default_identity()
    api_client = load_kube_config(settings.kubeconfig)
    api_client.user_agent = user_agent(identity)
    # Lease calls get a client (and connection pool) of their own: they must never wait behind
    # the Canaries' requests.
    lease_client = k8s.ApiClient(api_client.configuration)
    lease_client.user_agent = user_agent(identity)
    sharded = settings.sharding.enabled
    # Sharded, no write is covered by the API client's own guard (never extended: it refuses
    # all); each Canary's reconciler carries the guard of its bucket's Lease instead.
    guard = LeaseGuard() if sharded else guard_for(settings.leader_election)
    api = KubeApi(api_client, guard)
    metrics = ControllerMetrics()
    leading, leader_stop = asyncio.Event(), asyncio.Event()
    kopf_ready, kopf_stop = asyncio.Event(), asyncio.Event()
    stop = stop or asyncio.Event()
    http = await serve_http(metrics.registry, settings.metrics_port,
                            is_ready=lambda: (not sharded and not leading.is_set()) or kopf_ready.is_set())
    lease_api = k8s.CoordinationV1Api(lease_client)
    leadership: asyncio.Task[None] | None = None
    if not sharded:
        metrics.track_leadership(leading.is_set)
        leadership = asyncio.create_task(
            hold_leadership(settings.leader_election, cast(LeaseApi, lease_api), leading, leader_stop,
                            identity=identity, guard=guard),
            name="leader-election",
        )
    try:
        if leadership is not None:
            became_leader = asyncio.ensure_future(leading.wait())
            if not await _until(became_leader, stop, leadership):
                became_leader.cancel()
                return
        async with aiohttp.ClientSession() as session:
            cache = ClusterCache()
            engine = MetricsEngine(settings.metrics, smi_fetch=smi_fetcher(api), on_query=metrics.metric_query_sent)
            outbox = Outbox(metrics)
            events = KubernetesEvents(api)
            alerting = Alerting(api, session, outbox, events, default_target(settings.alerts))
            services = Services(
                settings=settings, cache=cache, executor=Executor(api, cache, session, outbox=outbox,
                                                                  alerts=alerting),
                probes=ProbeRunner(api, cache, session, engine, settings.metrics),
                routers=RouterDirectory(api, settings), metrics=metrics,
            )
            reconcilers = ReconcilerRegistry(services, buckets=settings.sharding.buckets,
                                             startup=StartupBurst(on_drained=HeapSettler()))
            registry = kopf.OperatorRegistry()
            register(registry, reconcilers)
            register_login(registry, api_client.configuration)
            operator = asyncio.create_task(kopf.operator(
                registry=registry, standalone=True, clusterwide=not settings.namespaces,
                namespaces=settings.namespaces, stop_flag=kopf_stop, ready_flag=kopf_ready,
            ), name="kopf")
            if leadership is None:
                shards = Shards(ShardCoordinator(settings.leader_election, settings.sharding.buckets,
                                                 cast(ShardLeaseApi, lease_api), identity=identity), reconcilers)
                metrics.track_shards(shards.held_count)
                leadership = asyncio.create_task(shards.run(leader_stop), name="shards")
            try:
                await _until(operator, stop, leadership)
            finally:
                leader_stop.set()
                try:
                    if sharded:
                        # Every bucket is given up (reconcilers stopped, Leases released) before
                        # kopf goes; errors are re-raised below.
                        await asyncio.wait({leadership})
                finally:
                    kopf_stop.set()
                    with contextlib.suppress(asyncio.CancelledError):
                        await operator
                    await reconcilers.stop_all()
                    await outbox.close()
                    engine.close()
    finally:
        leader_stop.set()
        if leadership is not None:
            await leadership  # re-raises LeadershipLost
        await http.cleanup()


async def _until(waited: asyncio.Future[Any], stop: asyncio.Event,
                 leadership: asyncio.Task[None]) -> bool:
    """Wait for ``waited``, a stop request, or the end of leadership; True if ``waited`` won.
    Ending leadership re-raises its ``LeadershipLost`` here."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({waited, stopping, leadership}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if leadership in done:
        leadership.result()
    return waited in done
