"""A real Traefik in the e2e loop: the gateway that reads the controller's HTTPRoutes and TraefikServices.

:mod:`e2e.traefik.launcher` starts the binary ``build.sh`` builds, :mod:`e2e.traefik.cluster` puts
the CRDs, the ``GatewayClass`` and the ``Gateway`` it serves on the API server, and
:mod:`e2e.traefik.gateway` is what a scenario holds: addresses, Traefik's own request counters and
the names Traefik gives backend services. :mod:`e2e.traefik.load` sends requests through it.
"""
