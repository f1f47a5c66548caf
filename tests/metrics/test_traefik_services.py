"""Traefik's service label values for a Kubernetes Service, and the pattern that selects them."""

from __future__ import annotations

import re

import pytest

from canary.errors import TemplateError
from canary.metrics.traefik_services import (
    CRD_PROVIDER,
    GATEWAY_PROVIDER,
    base_of,
    normalize,
    service_base,
    service_label,
    service_pattern,
    services_pattern,
)


@pytest.mark.parametrize(("name", "expected"), [
    ("ns-podinfo-canary", "ns-podinfo-canary"),
    ("ns-a--b", "ns-a-b"),  # Traefik's Normalize keeps no empty piece between two dashes
    ("ns-web.v2-http", "ns-web-v2-http"),
    ("a_b/c@d", "a-b-c-d"),
])
def test_normalize_joins_alphanumeric_pieces_with_one_dash(name: str, expected: str) -> None:
    assert normalize(name) == expected


def test_labels_as_traefik_writes_them() -> None:
    # The forms read from Traefik v3.6.12's providers (httproute.go loadService, kubernetes_http.go fullServiceName).
    assert service_label("test", "podinfo-canary", 9898) == "test-podinfo-canary-http-9898@kubernetesgateway"
    assert service_label("test", "podinfo-canary", 9898, CRD_PROVIDER) == "test-podinfo-canary-9898@kubernetescrd"


@pytest.mark.parametrize("label", [
    "test-podinfo-canary-http-9898@kubernetesgateway",
    "test-podinfo-canary-http-80@kubernetesgateway",
    "test-podinfo-canary-9898@kubernetescrd",
])
def test_pattern_matches_every_port_through_both_providers(label: str) -> None:
    assert re.fullmatch(service_pattern("test", "podinfo-canary"), label)


@pytest.mark.parametrize("label", [
    "test-podinfo-primary-http-9898@kubernetesgateway",  # the other arm
    "test-podinfo-canary-old-http-9898@kubernetesgateway",  # a longer Service name
    "test-podinfo-canary-http-http-9898@kubernetesgateway",  # Service podinfo-canary-http
    "test-podinfo-canary-http-9898@kubernetescrd",  # Service podinfo-canary-http through the CRD provider
    "test-podinfo-canary-9898@kubernetesgateway",  # the CRD form under the wrong provider
    "other-podinfo-canary-http-9898@kubernetesgateway",  # another namespace
    "xtest-podinfo-canary-http-9898@kubernetesgateway",
    "test-podinfo-canary-http-9898@kubernetesgatewayx",
    "test-podinfo-canary-http-9898@file",
    "test-podinfo-canary-http-@kubernetesgateway",
])
def test_pattern_matches_nothing_else(label: str) -> None:
    assert not re.fullmatch(service_pattern("test", "podinfo-canary"), label)


def test_pattern_is_exact_text_without_regex_metacharacters_from_names() -> None:
    assert service_pattern("test", "podinfo-canary") == (
        f"test-podinfo-canary-http-[0-9]+@{GATEWAY_PROVIDER}|test-podinfo-canary-[0-9]+@{CRD_PROVIDER}"
    )


@pytest.mark.parametrize(("namespace", "service"), [
    ('test"}', "podinfo-canary"),
    ("test", 'x"} or vector(1) or {a="'),
    ("test", "web.v2-canary"),  # a Service name is a DNS label: no dot
    ("test", "a|b"),
    ("test", "x" * 64),
    ("Test", "podinfo-canary"),
])
def test_unsafe_names_are_refused(namespace: str, service: str) -> None:
    with pytest.raises(TemplateError):
        service_pattern(namespace, service)


# Names chosen to sit next to each other: a base ending in digits or in "http", one base a
# prefix of another, and two pairs that normalize alike.
_NAMES = [("test", "web"), ("test", "web-2"), ("test", "web-http"), ("test-web", "http"), ("a", "b-web"),
          ("a-b", "web"), ("test", "web-2-canary"), ("t", "80")]
_VALUES = [service_label(ns, svc, port, provider) for ns, svc in _NAMES for port in (80, 2, 9898)
           for provider in (GATEWAY_PROVIDER, CRD_PROVIDER)] + ["test-web@kubernetesgateway", "web-80@other", ""]


@pytest.mark.parametrize(("namespace", "service"), _NAMES)
def test_base_of_finds_exactly_the_values_the_pattern_matches(namespace: str, service: str) -> None:
    base = service_base(namespace, service)
    for value in _VALUES:
        assert (base_of(value) == base) == bool(re.fullmatch(service_pattern(namespace, service), value)), value


def test_one_pattern_for_many_services_matches_what_each_of_theirs_does() -> None:
    chosen = _NAMES[:4]
    joined = services_pattern(service_base(ns, svc) for ns, svc in chosen)
    for value in _VALUES:
        expected = any(re.fullmatch(service_pattern(ns, svc), value) for ns, svc in chosen)
        assert bool(re.fullmatch(joined, value)) == expected, value
