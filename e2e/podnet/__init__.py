"""The app's Pods as real HTTP servers at the pod IPs the API server publishes.

kwok gives Pods addresses but runs nothing; this package makes something answer there, so that a
real gateway (Traefik) that resolves a Service's EndpointSlices reaches the Pods itself.

* The harness (:mod:`e2e.podnet.launcher`) makes a network namespace for the run
  (:mod:`e2e.netns`) and routes the control plane's own pod range into it
  (:func:`e2e.netns.route_range_into`): only addresses in a namespace the run made are targets.
* One process (``python -m e2e.podnet``) watches Pods in every namespace and, for each Running Pod
  whose IP is in that range, listens on ``podIP:containerPort`` (every TCP port its containers
  declare) with a socket opened inside the namespace (:mod:`e2e.podnet.sockets`) while the process
  itself stays in the root namespace, where the API server is.
* Each answer follows the Pod's ``sim.canary.dev/*`` annotations
  (:func:`e2e.mesh.behaviour.parse_behaviour`) and names who answered in the headers
  ``x-canary-pod`` and ``x-canary-version`` (:mod:`e2e.podnet.servers`).
* A JSON control endpoint on 127.0.0.1 says what is served (:mod:`e2e.podnet.app`), which
  :class:`e2e.podnet.launcher.PodNetwork` reads for tests.
"""
