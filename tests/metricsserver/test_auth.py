"""Requestheader authentication: who is believed, and what is read from the headers."""

from __future__ import annotations

import pytest

from canary.metricsserver.auth import (
    ANONYMOUS,
    Forbidden,
    PeerCertificate,
    RequestHeaderConfig,
    Unauthenticated,
    User,
    authenticate,
)

CONFIG = RequestHeaderConfig(client_ca_pem="(pem)", allowed_names=("front-proxy-client",))
PROXY = PeerCertificate(common_name="front-proxy-client", verified=True)
HEADERS = [
    ("X-Remote-User", "jane"),
    ("X-Remote-Group", "devs"),
    ("X-Remote-Group", "system:authenticated"),
    ("X-Remote-Extra-Scopes", "view"),
    ("X-Remote-Extra-Scopes", "edit"),
    ("x-remote-extra-acme.com%2fproject", "alpha"),
    ("Accept", "application/json"),
]


def test_the_front_proxy_speaks_for_the_user() -> None:
    assert authenticate(PROXY, HEADERS, CONFIG) == User(
        "jane", ("devs", "system:authenticated"), {"scopes": ("view", "edit"), "acme.com/project": ("alpha",)})


@pytest.mark.parametrize("peer", [None, PeerCertificate("front-proxy-client", verified=False)])
def test_without_a_verified_certificate_headers_are_not_believed(peer: PeerCertificate | None) -> None:
    with pytest.raises(Unauthenticated) as caught:
        authenticate(peer, HEADERS, CONFIG)
    assert caught.value.code == 401


@pytest.mark.parametrize("name", ["intruder", None, "Front-Proxy-Client"])
def test_a_name_not_allowed_is_forbidden(name: str | None) -> None:
    with pytest.raises(Forbidden) as caught:
        authenticate(PeerCertificate(name, verified=True), HEADERS, CONFIG)
    assert caught.value.code == 403 and caught.value.reason == "Forbidden"


def test_an_empty_allow_list_accepts_any_certificate_of_the_ca() -> None:
    config = RequestHeaderConfig(client_ca_pem="(pem)")
    assert authenticate(PeerCertificate("anyone", verified=True), HEADERS, config).name == "jane"


def test_no_user_header_is_anonymous() -> None:
    user = authenticate(PROXY, [("X-Remote-Group", "system:masters")], CONFIG)
    assert user.name == ANONYMOUS and user.groups == ("system:unauthenticated",)


def test_configured_header_names() -> None:
    config = RequestHeaderConfig(client_ca_pem="(pem)", username_headers=("X-User", "X-Remote-User"),
                                 group_headers=("X-Groups",), extra_headers_prefixes=("X-Extra-",))
    user = authenticate(PROXY, [("x-remote-user", "second"), ("x-user", "first"), ("X-Groups", "a"),
                                ("X-Remote-Group", "ignored"), ("X-Extra-Team", "blue")], config)
    assert user == User("first", ("a",), {"team": ("blue",)})


def test_empty_values_are_skipped() -> None:
    user = authenticate(PROXY, [("X-Remote-User", ""), ("X-Remote-User", "jane"), ("X-Remote-Group", "")], CONFIG)
    assert user == User("jane")
