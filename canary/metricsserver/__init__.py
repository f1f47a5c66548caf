"""``canary metrics-server``: the SMI Traffic Metrics API (``metrics.smi-spec.io/v1alpha1``) from Prometheus.

An aggregated Kubernetes API server: the kube-apiserver authenticates and authorizes the caller,
then proxies the request here over TLS with its front-proxy client certificate and the caller's
identity in ``X-Remote-*`` headers. This package answers with ``TrafficMetrics`` objects built
from the mesh's Prometheus series.

::

    config.py      ServerSettings and RequestHeaderSettings (from flags), ConfigError
    resources.py   the API surface: group, version, the kinds served and their Kubernetes names
    paths.py       a request path -> what is asked for (pure)
    queries.py     query sets and their injection-safe rendering into PromQL (pure)
    meshes.py      the default query set of Linkerd, Istio and OSM, and their labels (pure)
    overrides.py   --queries-file: overrides of a query set, checked at start
    traffic.py     runs a request's queries and folds the series into numbers per object
    objects.py     TrafficMetrics / List / discovery / Status bodies, quantity formatting (pure)
    openapi.py     minimal OpenAPI v2 and v3 documents for the aggregator (pure)
    auth.py        requestheader authentication: (peer certificate, headers, config) -> user (pure)
    tls.py         the serving SSL context; a self-signed pair for tests
    cluster.py     the Kubernetes API client: raw GETs, the authentication ConfigMap
    inventory.py   which Deployments, Pods, ... exist (a short cache of metadata-only lists)
    health.py      /readyz: Prometheus and the Kubernetes API answered recently
    handlers.py    the aiohttp application: auth middleware, routes, error answers
    server.py      start-up and shutdown

Only :mod:`canary.cli` imports this package (see ``.importlinter``).
"""
