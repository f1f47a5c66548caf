"""The values Traefik's metrics give a Kubernetes Service in their ``service`` label.

Traefik counts requests per *backend service* of its own configuration, named after the
Kubernetes Service a route points at, so the ``traefik`` preset tells the canary from the
primary by their Services (``<apex>-canary`` and ``<apex>-primary``), not by workload. Traefik
v3 names them (``pkg/provider/kubernetes/gateway/httproute.go`` and ``.../crd/kubernetes_http.go``):

* Gateway API provider, an HTTPRoute backendRef: ``<namespace>-<service>-http-<port>@kubernetesgateway``;
* CRD provider, a TraefikService's weighted service: ``<namespace>-<service>-<port>@kubernetescrd``.

Both go through Traefik's ``Normalize``, which cuts the name at every character that is neither a
letter nor a digit and joins the pieces with ``-``; of a Kubernetes name's characters that only
changes a run of dashes into one (``a--b`` is ``a-b``), which :func:`normalize` does too.

The pattern accepts any port: every port of ``<apex>-canary`` reaches the canary's pods (more than
one with ``service.portDiscovery``), so all of them are the canary's traffic. Service names are
RFC 1123 labels (validated here, as every name put into a query is), so the pattern holds only
lower-case letters, digits and ``-`` besides its own ``[0-9]+``, ``|`` and ``@``: none needs escaping
in a PromQL string, and RE2 and Python's ``re`` read it the same way.

Traefik's names are not unique across namespaces (``a`` + ``b-web`` and ``a-b`` + ``web`` both give
``a-b-web-...``); Traefik itself has the same ambiguity.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from canary.metrics.templates import validate_dns_label

#: Traefik's provider names, the suffix after ``@`` in a service label.
GATEWAY_PROVIDER = "kubernetesgateway"
CRD_PROVIDER = "kubernetescrd"

_NOT_ALPHANUMERIC = re.compile(r"[^0-9A-Za-z]+")


def normalize(name: str) -> str:
    """Traefik's ``provider.Normalize`` for ASCII names: pieces of letters and digits joined by ``-``."""
    return "-".join(piece for piece in _NOT_ALPHANUMERIC.split(name) if piece)


def service_label(namespace: str, service: str, port: int | str, provider: str = GATEWAY_PROVIDER) -> str:
    """The one value Traefik gives ``service`` (in ``namespace``) at ``port`` through ``provider``:
    what tests and the e2e harness expect to see."""
    middle = "http-" if provider == GATEWAY_PROVIDER else ""
    return f"{normalize(f'{namespace}-{service}-{middle}{port}')}@{provider}"


def service_pattern(namespace: str, service: str) -> str:
    """A regular expression matching exactly the ``service`` label values of ``service`` in
    ``namespace``, any port, through either provider. Raises ``TemplateError`` for a name that is
    not an RFC 1123 label."""
    base = service_base(namespace, service)
    return f"{base}-http-[0-9]+@{GATEWAY_PROVIDER}|{base}-[0-9]+@{CRD_PROVIDER}"


def service_base(namespace: str, service: str) -> str:
    """The part of every ``service`` label value of ``service`` in ``namespace`` before the port:
    what :func:`services_pattern` joins and :func:`base_of` reads back. Raises ``TemplateError``
    for a name that is not an RFC 1123 label."""
    return normalize(f"{validate_dns_label(namespace, 'namespace')}-{validate_dns_label(service, 'service')}")


def services_pattern(bases: Iterable[str]) -> str:
    """One regular expression matching exactly the values :func:`service_pattern` matches for any
    of ``bases`` (from :func:`service_base`): concatenation distributes over alternation, so the
    bases share one copy of each provider's suffix and the pattern grows by one base per Service."""
    alternatives = "|".join(sorted(set(bases)))
    return (f"(?:{alternatives})-http-[0-9]+@{GATEWAY_PROVIDER}|"
            f"(?:{alternatives})-[0-9]+@{CRD_PROVIDER}")


_VALUE = re.compile(rf"(.+)-http-[0-9]+@{GATEWAY_PROVIDER}|(.+)-[0-9]+@{CRD_PROVIDER}")


def base_of(value: str) -> str | None:
    """The base (see :func:`service_base`) a ``service`` label value belongs to, or None for a
    value no :func:`service_pattern` matches. A value has at most one: the port is the digits
    after the last ``-`` and the provider follows ``@``, neither of which a base can end in."""
    match = _VALUE.fullmatch(value)
    if match is None:
        return None
    return match.group(1) if match.group(1) is not None else match.group(2)
