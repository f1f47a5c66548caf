"""Rendering of MetricTemplate queries, and the checks that make substitution injection-safe.

A query may use these placeholders, with or without spaces inside the braces:

``{{ name }}``
    the Canary's name
``{{ namespace }}``
    the Canary's namespace
``{{ target }}``
    the canary workload (``spec.targetRef.name``)
``{{ service }}``
    the apex Service
``{{ interval }}``
    the query window as a Prometheus range (``1m``, ``1m30s``, ``500ms``)
``{{ variables.NAME }}``
    ``templateVariables[NAME]`` of the Canary's metric

Any other placeholder, a variable the metric does not set, or a ``{{`` that is not closed raises
:class:`TemplateError` naming it and the placeholders that would work.

Safety rule. A rendered value lands inside PromQL, usually between the quotes of a label matcher
(``{deployment="{{ target }}"}``), and must never be able to end that string or matcher and add
PromQL of its own (``x"} or vector(1) or {a="``). So every value is checked before substitution:

* ``namespace`` and ``service`` must be RFC 1123 DNS labels (lower-case letters, digits and ``-``,
  starting and ending with a letter or digit, at most 63 characters); ``name`` and ``target`` must
  be DNS subdomains (DNS labels joined by ``.``, at most 253 characters). The API server enforces
  the same rules, so real objects always pass.
* variable values may only contain ASCII letters, digits and ``- _ . : /`` (at most 1024
  characters; empty is allowed). That excludes quotes, braces, brackets, parentheses,
  backslashes, commas, spaces, newlines, ``=``, ``~``, ``!``, ``|`` and ``#``, so a value can
  neither close a string or matcher, nor add a matcher, operator or comment.

Inside a regex matcher (``=~``) a ``.`` in a value still means "any character"; that can only
widen the match, never escape it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

from canary.domain.durations import format_duration
from canary.errors import TemplateError
from canary.metrics.base import MeasureRequest

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_LABEL_MAX = 63
_DNS_SUBDOMAIN_MAX = 253
_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.:/-]*")
_SAFE_VALUE_MAX = 1024

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_VARIABLE_PREFIX = "variables."
_FIXED_PLACEHOLDERS = ("name", "namespace", "target", "service", "interval")


def validate_dns_label(value: str, what: str) -> str:
    """Return ``value`` if it is an RFC 1123 DNS label, else raise :class:`TemplateError`."""
    if len(value) > _DNS_LABEL_MAX or not _DNS_LABEL.fullmatch(value):
        raise TemplateError(
            f"{what} {value!r} is not a valid DNS label (lower-case letters, digits and '-', "
            f"at most {_DNS_LABEL_MAX} characters); refusing to put it into a query"
        )
    return value


def validate_dns_subdomain(value: str, what: str) -> str:
    """Return ``value`` if it is an RFC 1123 DNS subdomain, else raise :class:`TemplateError`."""
    labels = value.split(".")
    if len(value) > _DNS_SUBDOMAIN_MAX or not all(
        len(label) <= _DNS_LABEL_MAX and _DNS_LABEL.fullmatch(label) for label in labels
    ):
        raise TemplateError(
            f"{what} {value!r} is not a valid DNS subdomain (lower-case letters, digits, '-' and "
            f"'.', at most {_DNS_SUBDOMAIN_MAX} characters); refusing to put it into a query"
        )
    return value


def validate_variable(value: str, name: str) -> str:
    """Return ``value`` if it only uses the safe charset described in the module docstring."""
    if len(value) > _SAFE_VALUE_MAX or not _SAFE_VALUE.fullmatch(value):
        raise TemplateError(
            f"templateVariables.{name} {value!r} may only contain letters, digits and '-_.:/' "
            f"(at most {_SAFE_VALUE_MAX} characters), so that it cannot change the query's meaning"
        )
    return value


def render_query(
    query: str,
    *,
    name: str,
    namespace: str,
    target: str,
    service: str,
    window: timedelta,
    variables: Mapping[str, str],
) -> str:
    """Substitute every placeholder of ``query``; raises :class:`TemplateError` (see module doc)."""
    values: dict[str, str] = {
        "name": validate_dns_subdomain(name, "Canary name"),
        "namespace": validate_dns_label(namespace, "namespace"),
        "target": validate_dns_subdomain(target, "target"),
        "service": validate_dns_label(service, "service"),
        "interval": format_duration(window),
    }

    def known() -> str:
        names = [*_FIXED_PLACEHOLDERS, *(_VARIABLE_PREFIX + v for v in sorted(variables))]
        return ", ".join("{{ %s }}" % n for n in names)

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in values:
            return values[key]
        if key.startswith(_VARIABLE_PREFIX):
            var = key[len(_VARIABLE_PREFIX):]
            if var not in variables:
                raise TemplateError(
                    f"query uses {{{{ {key} }}}} but the metric sets no templateVariables.{var}; "
                    f"known placeholders: {known()}"
                )
            return validate_variable(variables[var], var)
        raise TemplateError(f"unknown placeholder {{{{ {key} }}}} in query; known placeholders: {known()}")

    rendered = _PLACEHOLDER.sub(substitute, query)
    # Checked on the template, not the output: values cannot contain braces, so any leftover
    # "{{" comes from the template itself, and PromQL never needs two opening braces in a row.
    leftover = _PLACEHOLDER.sub("", query).find("{{")
    if leftover >= 0:
        snippet = query[leftover:leftover + 30]
        raise TemplateError(f"unclosed or malformed placeholder at {snippet!r}; known placeholders: {known()}")
    return rendered


def render_request(query: str, request: MeasureRequest) -> str:
    """Render ``query`` with the names, window and variables of one measurement request."""
    return render_query(
        query,
        name=request.name,
        namespace=request.namespace,
        target=request.target,
        service=request.service,
        window=request.window,
        variables=request.metric.template_variables,
    )
