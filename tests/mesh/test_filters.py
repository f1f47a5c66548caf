"""HTTPRoute filters and timeouts as the mesh parses and applies them."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from multidict import CIMultiDict

from e2e.mesh.durations import parse_gateway_duration
from e2e.mesh.filters import HeaderModifier, URLRewrite, parse_filters
from e2e.mesh.objects import ObjectError, parse_http_route
from tests.mesh.factories import http_route_obj


def test_header_modifier_sets_adds_and_removes_regardless_of_case() -> None:
    headers: CIMultiDict[str] = CIMultiDict([("X-Env", "prod"), ("X-Env", "eu"), ("Accept", "a"), ("X-Drop", "1")])
    HeaderModifier(set=(("x-env", "canary"),), add=(("accept", "b"), ("x-new", "n")), remove=("X-DROP",)).apply(headers)
    assert headers.getall("x-env") == ["canary"]
    assert headers["accept"] == "a,b"  # the spec's example: add appends to the value with a comma
    assert headers["x-new"] == "n"
    assert "x-drop" not in headers


def test_parse_header_modifiers() -> None:
    filters = parse_filters(
        "test",
        "f",
        [
            {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "a", "value": "1"}], "remove": ["b"]}},
            {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": "Set-Cookie", "value": "c=1"}]}},
        ],
    )
    assert filters.request_headers == HeaderModifier(set=(("a", "1"),), remove=("b",))
    assert filters.response_headers == HeaderModifier(add=(("Set-Cookie", "c=1"),))
    assert not filters.mirrors and filters.rewrite is None and not filters.ignored


@pytest.mark.parametrize(
    ("mirror", "fraction"),
    [
        ({}, Fraction(1)),
        ({"percent": 25}, Fraction(1, 4)),
        ({"percent": 0}, Fraction(0)),
        ({"fraction": {"numerator": 5}}, Fraction(1, 20)),  # the denominator defaults to 100
        ({"fraction": {"numerator": 1, "denominator": 3}}, Fraction(1, 3)),
    ],
)
def test_parse_mirror_share(mirror: dict[str, Any], fraction: Fraction) -> None:
    raw = [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "shadow", "port": 80}, **mirror}}]
    (parsed,) = parse_filters("test", "f", raw).mirrors
    assert (parsed.service, parsed.fraction, parsed.problem) == ("shadow", fraction, None)


@pytest.mark.parametrize(
    "mirror",
    [
        {"percent": 10, "fraction": {"numerator": 1}},
        {"percent": 101},
        {"fraction": {"numerator": 3, "denominator": 2}},
        {"fraction": {"numerator": 1, "denominator": 0}},
    ],
)
def test_invalid_mirror_share_is_refused(mirror: dict[str, Any]) -> None:
    raw = [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "shadow"}, **mirror}}]
    with pytest.raises(ObjectError):
        parse_filters("test", "f", raw)


def test_mirror_to_another_namespace_or_kind_has_a_problem() -> None:
    raw = [
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "s", "namespace": "other"}}},
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "b", "group": "x.io", "kind": "Bucket"}}},
    ]
    far, bucket = parse_filters("test", "f", raw).mirrors
    assert far.problem is not None and "cross-namespace" in far.problem
    assert bucket.problem is not None and "not a core Service" in bucket.problem


def test_unimplemented_filter_types_are_kept_to_be_reported() -> None:
    filters = parse_filters("test", "f", [{"type": "RequestRedirect", "requestRedirect": {"statusCode": 301}}])
    assert filters.ignored == ("RequestRedirect",)


@pytest.mark.parametrize(
    ("prefix", "path", "replacement", "expected"),
    [
        # The cases of the Gateway API's HTTPPathModifier documentation.
        ("/foo", "/foo/bar", "/xyz", "/xyz/bar"),
        ("/foo", "/foo/bar", "/xyz/", "/xyz/bar"),
        ("/foo/", "/foo/bar", "/xyz", "/xyz/bar"),
        ("/foo/", "/foo/bar", "/xyz/", "/xyz/bar"),
        ("/foo", "/foo", "/xyz", "/xyz"),
        ("/foo", "/foo/", "/xyz", "/xyz/"),
        ("/foo/", "/foo", "/xyz", "/xyz"),
        ("/", "/foo", "/xyz", "/xyz/foo"),
        ("/foo", "/foo/bar", "/", "/bar"),
        ("/foo", "/foo", "/", "/"),
    ],
)
def test_replace_prefix_match(prefix: str, path: str, replacement: str, expected: str) -> None:
    assert URLRewrite(path_type="ReplacePrefixMatch", path_value=replacement).path(path, prefix) == expected


def test_parse_url_rewrite() -> None:
    (rewrite,) = [
        parse_filters(
            "test",
            "f",
            [{"type": "URLRewrite", "urlRewrite": {"hostname": "new.example", "path": {"type": "ReplaceFullPath", "replaceFullPath": "/x"}}}],
        ).rewrite
    ]
    assert rewrite == URLRewrite(hostname="new.example", path_type="ReplaceFullPath", path_value="/x")
    assert rewrite.path("/anything/else", None) == "/x"
    with pytest.raises(ObjectError):
        parse_filters("test", "f", [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "Strip"}}}])


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("2m5s100ms", 125.1), ("0s", None), (None, None)],
)
def test_gateway_durations(text: str | None, seconds: float | None) -> None:
    assert parse_gateway_duration("t", text) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize("text", ["10", "1.5s", "-1s", "123456s", "1s1s1s1s1s", "1d", 10])
def test_invalid_gateway_durations(text: object) -> None:
    with pytest.raises(ObjectError):
        parse_gateway_duration("t", text)


def test_rule_timeout_is_the_shorter_of_request_and_backend_request() -> None:
    rules = [
        {"backendRefs": [{"name": "a"}], "timeouts": {"request": "10s", "backendRequest": "2s"}},
        {"backendRefs": [{"name": "a"}], "timeouts": {"request": "3s"}},
        {"backendRefs": [{"name": "a"}], "timeouts": {"request": "0s"}},
        {"backendRefs": [{"name": "a"}]},
    ]
    route = parse_http_route(http_route_obj("test", "podinfo", [], rules=rules), "v1")
    assert [r.timeout for r in route.rules] == [2.0, 3.0, None, None]


def test_backend_ref_filters_are_parsed() -> None:
    rules = [
        {
            "backendRefs": [
                {
                    "name": "canary",
                    "filters": [
                        {
                            "type": "ResponseHeaderModifier",
                            "responseHeaderModifier": {"add": [{"name": "Set-Cookie", "value": "flagger-cookie=abc"}]},
                        }
                    ],
                }
            ]
        }
    ]
    route = parse_http_route(http_route_obj("test", "podinfo", [], rules=rules), "v1")
    modifier = route.rules[0].backends[0].filters.response_headers
    assert modifier == HeaderModifier(add=(("Set-Cookie", "flagger-cookie=abc"),))
