"""A real Traefik in the e2e loop, and real HTTP load through it."""
