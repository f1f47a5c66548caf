from __future__ import annotations

from datetime import timedelta

import pytest

from canary.errors import TemplateError
from canary.metrics.templates import render_query, render_request, validate_variable

from .conftest import template_request


def render(query: str, **overrides: object) -> str:
    args: dict[str, object] = {
        "name": "podinfo-canary",
        "namespace": "shop",
        "target": "podinfo",
        "service": "podinfo-svc",
        "window": timedelta(seconds=90),
        "variables": {"route": "/api/v1", "code": "5.."},
    }
    args.update(overrides)
    return render_query(query, **args)  # type: ignore[arg-type]


def test_every_placeholder_is_substituted() -> None:
    query = (
        'sum(rate(x{ns="{{ namespace }}", deploy="{{target}}", svc="{{  service  }}", '
        'canary="{{name}}", route="{{ variables.route }}", code=~"{{variables.code}}"}[{{ interval }}]))'
    )
    assert render(query) == (
        'sum(rate(x{ns="shop", deploy="podinfo", svc="podinfo-svc", canary="podinfo-canary", '
        'route="/api/v1", code=~"5.."}[1m30s]))'
    )


def test_render_request_takes_everything_from_the_request() -> None:
    request = template_request('x{a="{{ target }}",b="{{ variables.v }}"}[{{ interval }}]', variables={"v": "ok"})
    assert render_request(request.template.query, request) == 'x{a="podinfo",b="ok"}[1m]'  # type: ignore[union-attr]


def test_query_without_placeholders_is_unchanged() -> None:
    assert render("vector(1)") == "vector(1)"


def test_unknown_placeholder_is_named_with_the_known_ones() -> None:
    with pytest.raises(TemplateError) as err:
        render('x{a="{{ deployment }}"}')
    message = str(err.value)
    assert "{{ deployment }}" in message
    for known in ("{{ name }}", "{{ namespace }}", "{{ target }}", "{{ service }}", "{{ interval }}",
                  "{{ variables.code }}", "{{ variables.route }}"):
        assert known in message


def test_missing_variable_is_named() -> None:
    with pytest.raises(TemplateError, match=r"templateVariables\.region") as err:
        render('x{r="{{ variables.region }}"}')
    assert "{{ variables.route }}" in str(err.value)


@pytest.mark.parametrize("query", ['x{a="{{ name }"}', 'x{a="{{ name"}', "{{ na{me }}"], ids=["one-brace", "open", "brace-inside"])
def test_malformed_placeholder_is_refused(query: str) -> None:
    with pytest.raises(TemplateError, match="malformed placeholder"):
        render(query)


@pytest.mark.parametrize(
    "value",
    [
        'x"} or vector(1) or {a="',
        'a",b="c',
        "a'b",
        "a`b",
        "a\\b",
        "a}b",
        "a{b",
        "a,b",
        "a=~b",
        "a!b",
        "a\nb",
        "a b",
        "a)b",
        "a|b",
        "a#b",
        "x" * 1025,
    ],
    ids=lambda v: repr(v)[:20],
)
def test_unsafe_variable_values_are_refused(value: str) -> None:
    with pytest.raises(TemplateError, match=r"templateVariables\.v"):
        render('x{a="{{ variables.v }}"}', variables={"v": value})


def test_the_classic_injection_cannot_reach_the_query() -> None:
    attack = 'x"} or vector(1) or {a="'
    with pytest.raises(TemplateError):
        render('sum(rate(http_requests_total{path="{{ variables.path }}"}[1m]))', variables={"path": attack})


@pytest.mark.parametrize("value", ["", "api", "/api/v1/users", "a-b_c.d:e", "5.."])
def test_safe_variable_values_pass(value: str) -> None:
    assert validate_variable(value, "v") == value


def test_unused_unsafe_variable_is_harmless() -> None:
    assert render("vector(1)", variables={"v": '"}'}) == "vector(1)"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("namespace", "Shop"),
        ("namespace", "shop.prod"),
        ("namespace", "a" * 64),
        ("namespace", 'shop"}'),
        ("target", "-podinfo"),
        ("target", "podinfo-"),
        ("target", "pod info"),
        ("target", 'podinfo"} or vector(1)'),
        ("target", "a" * 254),
        ("target", "a..b"),
        ("service", "svc.x"),
        ("service", ""),
        ("name", "Canary"),
        ("name", "x\ny"),
    ],
)
def test_bad_names_are_refused(field: str, value: str) -> None:
    with pytest.raises(TemplateError, match="refusing to put it into a query"):
        render("vector(1)", **{field: value})


def test_dotted_names_are_subdomains() -> None:
    assert render('x{t="{{ target }}",n="{{ name }}"}', target="web.v2", name="a.b") == 'x{t="web.v2",n="a.b"}'
