"""A simulated service-mesh data plane for the e2e environment and the demo.

No mesh runs on the e2e machine, so this package stands in for the part of one the controller
depends on, as one process (``python -m e2e.mesh --kubeconfig PATH``, or
:func:`e2e.mesh.launcher.start_mesh` from Python):

* it **watches** the API server for Services, Pods, SMI ``TrafficSplit``\\ s (whichever of
  v1alpha1..v1alpha4 is served, found by discovery) with the ``HTTPRouteGroup``\\ s their
  ``matches`` name, and Gateway API ``HTTPRoute``\\ s attached to Services (GAMMA) or to a Gateway
  (north-south, by ``hostnames``), with their matches, filters (header modifiers, mirrors, URL
  rewrites) and timeouts, and keeps a routing table that is a pure function of them (``routing``);
* its **proxy** routes a request for ``<service>.<namespace>`` by the current weights to a ready
  Pod of the chosen backend Service, over real HTTP to a **loopback server per ready Pod**
  whose answers follow the Pod's ``sim.canary.dev/*`` annotations (``behaviour``);
* it exports **request metrics** named and labelled as Linkerd's (or Istio's) proxies do, for a
  real Prometheus to scrape (``metrics``);
* a **load generator** and a JSON **control API** (``control``; typed client in ``client``)
  let tests drive traffic and read, per routing configuration, where requests went (``stats``).

Module map: ``weights``, ``durations`` and ``behaviour`` (parsing), ``objects``, ``filters`` and
``route_groups`` (API objects → typed values), ``hostnames``, ``routes`` (what a route is),
``http_route_rules`` and ``split_rules`` (routes out of each kind of object), ``routing`` (the
table), ``kubeapi`` and ``watch`` (list/watch threads), ``state`` (what the
watches hold), ``backends``, ``proxy``, ``metrics``, ``stats``, ``loadgen``, ``control``,
``dataplane`` (all the servers, fed with observed objects), ``app`` and ``__main__`` (the
process), ``client`` and ``launcher``.

It is written independently of the controller's own parsing code on purpose: an e2e test in
which both sides share one weight parser cannot catch a bug in it.
"""
