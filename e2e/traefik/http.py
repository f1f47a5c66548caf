"""The one plain HTTP GET the Traefik helpers need (``/ping``, ``/metrics``), with a timeout."""

from __future__ import annotations

import urllib.error
import urllib.request

HTTP_TIMEOUT = 5.0


def http_get(url: str, *, timeout: float = HTTP_TIMEOUT) -> tuple[int, str]:
    """Status and body of ``GET url``; an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
            return status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
