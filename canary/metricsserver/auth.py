"""Requestheader authentication, as the kube-apiserver's aggregation layer expects it. Pure.

The kube-apiserver authenticates and authorizes the caller itself, then proxies the request
here over TLS, presenting its front-proxy client certificate (``--proxy-client-cert-file``) and
the caller's identity in headers: ``X-Remote-User``, ``X-Remote-Group`` (one per group) and
``X-Remote-Extra-<key>``. Anyone who can reach this server directly could send such headers,
so they are believed only on a connection whose client certificate

1. chains to the requestheader client CA (``--requestheader-client-ca-file``, or
   ``requestheader-client-ca-file`` of the ``kube-system/extension-apiserver-authentication``
   ConfigMap). The TLS layer checks this (:mod:`canary.metricsserver.tls`) and refuses the
   handshake for a certificate from any other CA; :class:`PeerCertificate` records the result;
2. carries a common name in the allowed list (``--requestheader-allowed-names``;
   empty allows every certificate the CA signed).

Without a certificate the answer is 401; with a certificate whose name is not allowed, 403.
A verified front proxy that sends no user header (the aggregator's own availability checks do
send one, ``system:kube-aggregator``) is ``system:anonymous``, as in the API server.

This server does no authorization of its own: the kube-apiserver has already checked that the
user may ``get``/``list`` the ``metrics.smi-spec.io`` resource before proxying, and this server
only ever reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from canary.errors import CanaryError
from canary.metricsserver.config import (
    DEFAULT_EXTRA_HEADERS_PREFIXES,
    DEFAULT_GROUP_HEADERS,
    DEFAULT_USERNAME_HEADERS,
)

ANONYMOUS = "system:anonymous"
UNAUTHENTICATED_GROUP = "system:unauthenticated"


class AuthError(CanaryError):
    """The request may not be served; ``code`` and ``reason`` go into the Status answer."""

    code = 401
    reason = "Unauthorized"


class Unauthenticated(AuthError):
    code = 401
    reason = "Unauthorized"


class Forbidden(AuthError):
    code = 403
    reason = "Forbidden"


@dataclass(frozen=True)
class RequestHeaderConfig:
    """Who may assert an identity, and in which headers (the API server's requestheader options)."""

    #: The PEM bundle of the requestheader client CA (the TLS layer verifies against it).
    client_ca_pem: str
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = DEFAULT_USERNAME_HEADERS
    group_headers: tuple[str, ...] = DEFAULT_GROUP_HEADERS
    extra_headers_prefixes: tuple[str, ...] = DEFAULT_EXTRA_HEADERS_PREFIXES
    #: Where this came from, for logs and error messages (a file name or the ConfigMap).
    source: str = ""


@dataclass(frozen=True)
class PeerCertificate:
    """The client certificate of a connection, as the TLS layer saw it."""

    #: The subject's common name, None when it has none.
    common_name: str | None
    #: Whether its chain was verified against the requestheader client CA.
    verified: bool


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def authenticate(
    peer: PeerCertificate | None, headers: Iterable[tuple[str, str]], config: RequestHeaderConfig
) -> User:
    """The user a request acts for; raises :class:`Unauthenticated` or :class:`Forbidden`.

    ``headers`` are all header lines of the request, repeated names included.
    """
    if peer is None:
        raise Unauthenticated("a client certificate signed by the requestheader client CA is required "
                              "(this API is served through the kube-apiserver's aggregation layer)")
    if not peer.verified:
        raise Unauthenticated("the client certificate is not signed by the requestheader client CA")
    if config.allowed_names and peer.common_name not in config.allowed_names:
        raise Forbidden(f"the client certificate's common name {peer.common_name!r} is not one of "
                        f"--requestheader-allowed-names ({', '.join(config.allowed_names)})")
    lines = [(name.lower(), value) for name, value in headers]
    name = _first(lines, config.username_headers)
    if not name:
        return User(ANONYMOUS, (UNAUTHENTICATED_GROUP,))
    groups = tuple(
        value for header in config.group_headers for key, value in lines if key == header.lower() and value
    )
    extra: dict[str, list[str]] = {}
    for prefix in (p.lower() for p in config.extra_headers_prefixes):
        for key, value in lines:
            if key.startswith(prefix) and len(key) > len(prefix):
                # Keys are percent-encoded by the proxy (HTTP header names are case-insensitive).
                extra.setdefault(unquote(key[len(prefix):]), []).append(value)
    return User(name, groups, {k: tuple(v) for k, v in extra.items()})


def _first(lines: list[tuple[str, str]], header_names: Iterable[str]) -> str:
    for header in header_names:
        for key, value in lines:
            if key == header.lower() and value:
                return value
    return ""
