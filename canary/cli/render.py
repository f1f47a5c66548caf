"""Views of a Canary for people on call. Pure: objects and ``now`` in, rich renderables or text out.

The input is the Canary exactly as the API server returns it (a mapping with ``metadata``,
``spec``, ``status``). A status the controller has not written yet, or a spec that no longer
parses, still renders: this is the view people open when something is wrong.

Layout is rich's: tables size their columns to the console's width and wrap the free text
(messages) on word boundaries inside its column; :func:`to_text` renders for a given width.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from canary.domain.judge import ERROR_RATE, LATENCY, check_name
from canary.domain.spec import BUILTIN_DURATION, BUILTIN_SUCCESS_RATE, AnalysisSpec, parse_analysis
from canary.domain.status import Annotation, CanaryStatus, CheckKind, CheckResult, Condition, format_time
from canary.errors import SpecError

__all__ = [
    "DEFAULT_WIDTH",
    "Unit",
    "canary_json",
    "canaries_view",
    "canary_view",
    "check_unit",
    "compact_view",
    "format_age",
    "format_count",
    "format_number",
    "format_range",
    "format_value",
    "progress_bar",
    "qualified_name",
    "read_status",
    "render_canaries",
    "render_canary",
    "render_compact",
    "summary_line",
    "to_text",
]

_LABEL_WIDTH = 18
#: Wide enough that a full view rarely wraps, for output that is not a terminal (logs, pipes).
DEFAULT_WIDTH = 120
_VERDICT_STYLES = {"Pass": "green", "Fail": "bold red", "Error": "red", "NoData": "yellow", "Unavailable": "yellow"}
_PHASE_STYLES = {"Succeeded": "green", "Failed": "bold red", "Progressing": "cyan", "Promoting": "cyan"}


def qualified_name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def read_status(obj: Mapping[str, Any]) -> CanaryStatus:
    """The Canary's status; an unreadable one reads as empty rather than hiding the Canary."""
    try:
        return CanaryStatus.from_dict(obj.get("status"))
    except (ValueError, TypeError, KeyError, AttributeError):
        return CanaryStatus()


def progress_bar(weight: int, width: int = 10) -> str:
    """``[#####.....] 50%``: the share of traffic the canary receives."""
    pct = min(100, max(0, weight))
    filled = pct * width // 100
    return f"[{'#' * filled}{'.' * (width - filled)}] {pct}%"


class Unit(StrEnum):
    """What a check's number measures, as far as the CLI can tell from the check's type."""

    NONE = ""
    PERCENT = "%"
    MILLISECONDS = "ms"


#: Decimals shown per unit: a success rate near its bound needs two, a p99 in ms one.
_DECIMALS = {Unit.PERCENT: 2, Unit.MILLISECONDS: 1}


def format_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def format_value(value: float | None, unit: Unit = Unit.NONE) -> str:
    """``99.25%``, ``612.4ms``, ``0.333333``; ``-`` for no value."""
    if value is None:
        return "-"
    if unit is Unit.NONE or not math.isfinite(value):
        return format_number(value) + unit.value
    shown = f"{value:.{_DECIMALS[unit]}f}".rstrip("0").rstrip(".")
    return ("0" if shown == "-0" else shown) + unit.value


def format_range(low: float | None, high: float | None, unit: Unit = Unit.NONE) -> str:
    """A check's bounds: ``>= 99%``, ``<= 500ms``, ``10ms .. 250.5ms``; ``-`` when unbounded."""
    if low is not None and high is not None:
        return f"{format_value(low, unit)} .. {format_value(high, unit)}"
    if low is not None:
        return f">= {format_value(low, unit)}"
    if high is not None:
        return f"<= {format_value(high, unit)}"
    return "-"


def format_count(value: float | None) -> str:
    """Requests are whole: Prometheus' ``increase()`` extrapolates to fractions, people count."""
    if value is None or not math.isfinite(value):
        return "-"
    return str(round(value))


def format_age(delta: timedelta) -> str:
    """The two largest units, as kubectl shows ages: ``45s``, ``3m20s``, ``2h5m``, ``3d4h``."""
    seconds = max(0, int(delta.total_seconds()))
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    parts: list[str] = []
    for suffix, size in units:
        count, seconds = divmod(seconds, size)
        if count or parts:
            parts.append(f"{count}{suffix}")
        if len(parts) == 2:
            break
    if not parts:
        return "0s"
    if len(parts) == 2 and parts[1].startswith("0"):
        parts.pop()
    return "".join(parts)


def to_text(renderable: RenderableType, width: int = DEFAULT_WIDTH) -> str:
    """``renderable`` as plain text ``width`` columns wide, without styles or trailing blanks."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False, highlight=False,
                      markup=False, emoji=False, soft_wrap=False)
    console.print(renderable)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def _table(*columns: str, wrap: str = "MESSAGE") -> Table:
    """Columns two spaces apart; only the ``wrap`` column wraps (on words), the others never."""
    table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 1), header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=column != wrap, overflow="fold")
    return table


def _styled(text: str, styles: Mapping[str, str]) -> Text:
    return Text(text, style=styles.get(text, ""))


@dataclass(frozen=True)
class _Analysis:
    threshold: int | None
    max_weight: int | None
    iterations: int | None
    error_limit: int | None = None
    no_data_limit: int | None = None
    #: Names of the spec's builtin metrics (no templateRef); None when the spec does not parse.
    builtins: frozenset[str] | None = None


def _analysis(obj: Mapping[str, Any]) -> _Analysis:
    raw = (obj.get("spec") or {}).get("analysis")
    if not isinstance(raw, Mapping):
        return _Analysis(None, None, None)
    try:
        parsed: AnalysisSpec = parse_analysis(raw)
    except SpecError:
        return _Analysis(None, None, None)
    return _Analysis(parsed.threshold, None if parsed.blue_green else parsed.max_weight,
                     parsed.iterations if parsed.blue_green else None,
                     parsed.consecutive_error_limit, parsed.consecutive_no_data_limit,
                     frozenset(m.name for m in parsed.metrics if m.is_builtin))


#: The builtin metrics and the judge's tests measure known things; a template's query may be anything.
_UNITS = {
    (CheckKind.METRIC, BUILTIN_SUCCESS_RATE): Unit.PERCENT,
    (CheckKind.METRIC, BUILTIN_DURATION): Unit.MILLISECONDS,
    (CheckKind.JUDGE, check_name(ERROR_RATE)): Unit.PERCENT,
    (CheckKind.JUDGE, check_name(LATENCY)): Unit.MILLISECONDS,
}


def check_unit(check: CheckResult, builtins: frozenset[str] | None) -> Unit:
    """The unit of a check's value: a metric named like a builtin counts only when it is one
    (a templated metric may reuse the name); without a readable spec, the name decides."""
    if check.kind is CheckKind.METRIC and builtins is not None and check.name not in builtins:
        return Unit.NONE
    return _UNITS.get((check.kind, check.name), Unit.NONE)


def _when(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "-"
    return f"{format_time(value)} ({format_age(now - value)} ago)"


def _ratio(count: int, limit: int | None) -> str:
    return f"{count}/{limit}" if limit is not None else str(count)


def _on_call(obj: Mapping[str, Any], status: CanaryStatus) -> list[str]:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    shown = []
    for annotation in Annotation:
        value = annotations.get(annotation.value)
        if value is None:
            continue
        handled = status.handled_annotations.get(annotation.short) == value
        shown.append(f"{annotation.value}={value} ({'handled' if handled else 'pending'})")
    return shown


def _checks_table(checks: Sequence[CheckResult], builtins: frozenset[str] | None) -> Table:
    table = _table("NAME", "KIND", "VALUE", "RANGE", "VERDICT", "SAMPLES", "MESSAGE")
    for c in checks:
        unit = check_unit(c, builtins)
        table.add_row(c.name, c.kind.value, format_value(c.value, unit), format_range(c.min, c.max, unit),
                      _styled(c.verdict.value, _VERDICT_STYLES), format_count(c.samples), c.message)
    return table


def _judge_table(checks: Sequence[CheckResult]) -> Table:
    table = _table("TEST", "VALUE", "REQUESTS", "EVIDENCE", "VERDICT", "MESSAGE")
    for c in checks:
        unit = check_unit(c, None)
        evidence = "-" if c.evidence is None else (
            f"{c.evidence:.3g} / {'-' if c.evidence_bound is None else f'{c.evidence_bound:.3g}'}")
        table.add_row(c.name.removeprefix("judge/"),
                      f"{format_value(c.value, unit)} / {format_value(c.primary_value, unit)}",
                      f"{format_count(c.samples)} / {format_count(c.primary_samples)}",
                      evidence, _styled(c.verdict.value, _VERDICT_STYLES), c.message)
    return table


def _without_repeat(message: str, reason: str) -> str:
    """A condition's message without the Canary's message, which the view has shown already: a
    failed Canary's reason also opens its Ready, Stalled and Promoted conditions' messages."""
    if not reason or not message.startswith(reason):
        return message
    return "see Message" + message.removeprefix(reason)


def _conditions_table(conditions: Sequence[Condition], reason: str) -> Table:
    table = _table("TYPE", "STATUS", "REASON", "MESSAGE")
    for c in conditions:
        table.add_row(c.type.value, "True" if c.status else "False", c.reason, _without_repeat(c.message, reason))
    return table


def _section(title: str, body: RenderableType | None) -> list[RenderableType]:
    """``  Title:`` and the body indented under it."""
    if body is None:
        return []
    return [Text(f"  {title}:"), Padding(body, (0, 0, 0, 4))]


def canary_view(obj: Mapping[str, Any], now: datetime) -> RenderableType:
    """The full view of one Canary, as ``canary status NAME`` shows it."""
    status = read_status(obj)
    analysis = _analysis(obj)
    phase = status.phase.value if status.phase else "Unknown (no status from the controller yet)"
    weight = progress_bar(status.canary_weight)
    if analysis.max_weight is not None:
        weight += f" (max {analysis.max_weight}%)"

    fields: list[tuple[str, str | Text]] = [
        ("Phase", _styled(phase, _PHASE_STYLES)),
        ("Weight", weight),
        ("Failed checks", _ratio(status.failed_checks, analysis.threshold)),
        ("Iterations", _ratio(status.iterations, analysis.iterations)),
    ]
    # Shown only while a hold is under way: which one it is, and how close to counting.
    if status.consecutive_errors:
        fields.append(("Metrics outage", f"{_ratio(status.consecutive_errors, analysis.error_limit)} ticks in a row"))
    if status.consecutive_no_data:
        fields.append(("No data", f"{_ratio(status.consecutive_no_data, analysis.no_data_limit)} ticks in a row"))
    if status.last_applied_spec or status.last_promoted_spec:
        fields.append(("Revision", f"{status.last_applied_spec or '-'} (primary: {status.last_promoted_spec or '-'})"))
    fields.append(("Last transition", _when(status.last_transition_time, now)))
    if status.last_analysis_time is not None:
        fields.append(("Last analysis", _when(status.last_analysis_time, now)))
    if status.message:
        fields.append(("Message", status.message))
    on_call = _on_call(obj, status)
    if on_call:
        fields.append(("On-call", ", ".join(on_call)))
    checks = [c for c in status.checks if c.kind is not CheckKind.JUDGE]
    judged = [c for c in status.checks if c.kind is CheckKind.JUDGE]
    if not checks and not judged:
        fields.append(("Checks", "none yet"))

    grid = Table.grid()
    grid.add_column(width=_LABEL_WIDTH, no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in fields:
        grid.add_row(f"{label}:", value)

    parts: list[RenderableType] = [Text(f"Canary {qualified_name(obj)}", style="bold"), Padding(grid, (0, 0, 0, 2))]
    if checks:
        parts += _section("Checks", _checks_table(checks, analysis.builtins))
    if judged:
        # The judge compares the versions: each number is shown for the canary, then the primary.
        parts += _section("Judge (canary / primary, this step; evidence over the run / needed to roll back)",
                          _judge_table(judged))
    if status.conditions:
        parts += _section("Conditions", _conditions_table(status.conditions, status.message))
    else:
        parts.append(Text(f"  {'Conditions:'.ljust(_LABEL_WIDTH)}none"))
    return Group(*parts)


def canaries_view(objs: Sequence[Mapping[str, Any]], now: datetime) -> RenderableType:
    """Full views one after the other, by namespace and name, a blank line apart."""
    views: list[RenderableType] = []
    for obj in sorted(objs, key=qualified_name):
        if views:
            views.append(Text(""))
        views.append(canary_view(obj, now))
    return Group(*views)


def compact_view(objs: Sequence[Mapping[str, Any]], now: datetime) -> RenderableType:
    """One line per Canary (``-A``): where each release stands, and the Canary's message."""
    table = _table("NAMESPACE", "NAME", "PHASE", "WEIGHT", "FAILED", "SINCE", "MESSAGE")
    for obj in sorted(objs, key=qualified_name):
        meta = obj.get("metadata") or {}
        status = read_status(obj)
        analysis = _analysis(obj)
        since = "-" if status.last_transition_time is None else format_age(now - status.last_transition_time)
        table.add_row(str(meta.get("namespace", "")), str(meta.get("name", "")),
                      _styled(status.phase.value if status.phase else "Unknown", _PHASE_STYLES),
                      f"{status.canary_weight}%", _ratio(status.failed_checks, analysis.threshold), since,
                      status.message)
    return table


def render_canary(obj: Mapping[str, Any], now: datetime, width: int = DEFAULT_WIDTH) -> str:
    return to_text(canary_view(obj, now), width)


def render_canaries(objs: Sequence[Mapping[str, Any]], now: datetime, width: int = DEFAULT_WIDTH) -> str:
    return to_text(canaries_view(objs, now), width)


def render_compact(objs: Sequence[Mapping[str, Any]], now: datetime, width: int = DEFAULT_WIDTH) -> str:
    return to_text(compact_view(objs, now), width)


def summary_line(obj: Mapping[str, Any]) -> str:
    """One line per change, as ``canary wait`` prints progress."""
    status = read_status(obj)
    analysis = _analysis(obj)
    phase = status.phase.value if status.phase else "Unknown"
    line = (f"{qualified_name(obj)} {phase} {progress_bar(status.canary_weight)}"
            f" failed checks {_ratio(status.failed_checks, analysis.threshold)}")
    if status.message:
        line += f": {status.message}"
    return line


def canary_json(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What ``-o json`` prints per Canary: its identity and the status as the controller wrote it."""
    meta = obj.get("metadata") or {}
    return {
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "annotations": {k: v for k, v in (meta.get("annotations") or {}).items()
                        if k in Annotation._value2member_map_},
        "status": obj.get("status") or {},
    }
