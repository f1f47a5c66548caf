"""A :class:`~canary.report.timeline.Timeline` drawn as one SVG picture.

From top to bottom: what happened (title, outcome, the rollback's cause), the phases as coloured
bands, the canary weight as a step line, then one small panel per check with its value over time
against its bounds (the allowed range shaded, each bound a dashed line, failed points red, points
without a verdict on the canary orange, points without a value hollow). A
rollback is a red vertical line through every panel. Elements carry ids and classes
(``weight``, ``check-panel``, ``bound-min``, ``point failed``, ``point held``, ``rollback``) so tests and
stylesheets can find them.

drawsvg builds the elements and escapes the text (check messages and Event messages come from
the cluster and may hold ``<`` or ``&``); the layout is ours.
"""

from __future__ import annotations

from datetime import datetime

import drawsvg as dw

from canary.domain.status import CheckResult, Phase
from canary.report.scale import LinearScale, nice_ticks, padded_range
from canary.report.timeline import CheckPoint, CheckSeries, Timeline

__all__ = ["render_svg"]

WIDTH = 960
LEFT, RIGHT = 80, 30
FONT = "sans-serif"
PHASE_TOP, PHASE_HEIGHT = 96, 22
WEIGHT_TOP, WEIGHT_HEIGHT = 150, 140
CHECK_HEIGHT, CHECK_GAP = 80, 40
AXIS_HEIGHT = 40
#: Longest text line before it is cut (the full text stays in the element's tooltip).
MAX_LINE = 130

PHASE_COLOURS = {
    Phase.INITIALIZING: "#d9d9d9",
    Phase.INITIALIZED: "#d9d9d9",
    Phase.WAITING: "#fde9a9",
    Phase.PROGRESSING: "#aecbf5",
    Phase.WAITING_PROMOTION: "#fde9a9",
    Phase.PROMOTING: "#b6e3b6",
    Phase.FINALISING: "#b6e3b6",
    Phase.SUCCEEDED: "#5cb85c",
    Phase.FAILED: "#d9534f",
    Phase.TERMINATING: "#d9d9d9",
    Phase.TERMINATED: "#d9d9d9",
}
PASS_COLOUR, FAIL_COLOUR, HELD_COLOUR = "#2b6cb0", "#d62728", "#e08a00"
BAND_COLOUR = "#e3f4e3"


def _cut(text: str, limit: int = MAX_LINE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _bounds_text(min_: float | None, max_: float | None) -> str:
    parts = ([f"min {_number(min_)}"] if min_ is not None else []) + (
        [f"max {_number(max_)}"] if max_ is not None else [])
    return ", ".join(parts) or "no bounds"


def describe_check(check: CheckResult) -> str:
    """One failing check, as the rollback marker names it: name, value, bounds, verdict."""
    return f"{check.name} = {_number(check.value)} ({_bounds_text(check.min, check.max)}): {check.verdict.value}"


class _Canvas:
    def __init__(self, timeline: Timeline, title: str) -> None:
        self.timeline = timeline
        self.title = title
        self.bottom = WEIGHT_TOP + WEIGHT_HEIGHT + len(timeline.checks) * (CHECK_HEIGHT + CHECK_GAP) + CHECK_GAP
        self.height = self.bottom + AXIS_HEIGHT
        self.drawing = dw.Drawing(WIDTH, self.height, font_family=FONT)
        self.x = LinearScale(0.0, max(timeline.seconds, 1.0), LEFT, WIDTH - RIGHT)

    def at(self, when: datetime) -> float:
        return self.x((when - self.timeline.start).total_seconds())

    def text(self, parent: dw.DrawingParentElement, content: str, size: float, x: float, y: float,
             **attrs: object) -> None:
        element = dw.Text(_cut(content), size, x, y, **attrs)
        if len(content) > MAX_LINE:
            element.append_title(content)
        parent.append(element)

    def header(self) -> None:
        tl = self.timeline
        group = dw.Group(id="header")
        outcome = tl.outcome.value if tl.outcome else "unknown"
        self.text(group, f"{self.title}: {outcome}", 18, LEFT, 26, font_weight="bold")
        self.text(group, f"revision {tl.revision or '-'} · started {tl.start:%Y-%m-%d %H:%M:%S} UTC · "
                         f"{tl.seconds:.0f} s · {len(tl.events)} Events", 12, LEFT, 46, fill="#444444")
        if tl.rollback is not None:
            self.text(group, f"{tl.rollback.reason} at +{(tl.rollback.time - tl.start).total_seconds():.0f} s: "
                             f"{tl.rollback.cause}", 12, LEFT, 66, fill=FAIL_COLOUR, id="rollback-cause")
            failing = "; ".join(describe_check(c) for c in tl.rollback.failing)
            if failing:
                self.text(group, f"failing: {failing}", 12, LEFT, 84, fill=FAIL_COLOUR)
        self.drawing.append(group)

    def phases(self) -> None:
        group = dw.Group(id="phases")
        self.text(group, "phase", 11, LEFT - 8, PHASE_TOP + 15, text_anchor="end")
        for span in self.timeline.phases:
            x0, x1 = self.at(span.start), self.at(span.end)
            # An instant phase (the last one) still gets a sliver, so it can be seen and hovered.
            rect = dw.Rectangle(x0, PHASE_TOP, max(x1 - x0, 3.0), PHASE_HEIGHT,
                                fill=PHASE_COLOURS.get(span.phase, "#d9d9d9"), class_="phase",
                                data_phase=span.phase.value)
            rect.append_title(f"{span.phase.value}: {span.start:%H:%M:%S} - {span.end:%H:%M:%S}")
            group.append(rect)
            if x1 - x0 > 7 * len(span.phase.value):
                self.text(group, span.phase.value, 11, x0 + 4, PHASE_TOP + 15)
        self.drawing.append(group)

    def weight(self) -> None:
        tl = self.timeline
        group = dw.Group(id="weight-panel")
        # Headroom above the highest step keeps its label clear of the panel's title.
        top_weight = max(step.weight for step in tl.weights)
        ceiling = min(100, (top_weight // 10 + 1) * 10)
        y = LinearScale(0, ceiling, WEIGHT_TOP + WEIGHT_HEIGHT, WEIGHT_TOP)
        self._frame(group, WEIGHT_TOP, WEIGHT_HEIGHT, "canary weight (%)")
        for tick in nice_ticks(0, ceiling, 5):
            self._hline(group, y(tick), f"{tick:g}%")
        path = dw.Path(id="weight", stroke=PASS_COLOUR, stroke_width=2.5, fill="none")
        first, *rest = tl.weights
        path.M(self.at(first.start), y(first.weight))
        for step in rest:
            path.H(self.at(step.start)).V(y(step.weight))
        path.H(self.at(tl.end))
        group.append(path)
        for step in tl.weights:
            self.text(group, f"{step.weight}%", 10, self.at(step.start) + 3, y(step.weight) - 4, fill=PASS_COLOUR)
        self.drawing.append(group)

    def checks(self) -> None:
        for index, series in enumerate(self.timeline.checks):
            top = WEIGHT_TOP + WEIGHT_HEIGHT + CHECK_GAP + index * (CHECK_HEIGHT + CHECK_GAP)
            self._check(series, top)

    def _check(self, series: CheckSeries, top: float) -> None:
        group = dw.Group(class_="check-panel", data_check=series.name)
        self._frame(group, top, CHECK_HEIGHT, f"{series.name} ({series.kind.value}; "
                                              f"{_bounds_text(series.min, series.max)})")
        values = [p.value for p in series.points if p.value is not None]
        bounds = [b for b in (series.min, series.max) if b is not None]
        lo, hi = padded_range(values + bounds)
        y = LinearScale(lo, hi, top + CHECK_HEIGHT, top)
        if bounds:
            allowed_top = y(series.max) if series.max is not None else top
            allowed_bottom = y(series.min) if series.min is not None else top + CHECK_HEIGHT
            group.append(dw.Rectangle(LEFT, allowed_top, WIDTH - RIGHT - LEFT, allowed_bottom - allowed_top,
                                      fill=BAND_COLOUR, class_="bound-band"))
        for tick in nice_ticks(lo, hi, 4):
            self._hline(group, y(tick), f"{tick:g}")
        for name, bound in (("min", series.min), ("max", series.max)):
            if bound is not None:
                group.append(dw.Line(LEFT, y(bound), WIDTH - RIGHT, y(bound), stroke=FAIL_COLOUR,
                                     stroke_dasharray="6 3", class_=f"bound-{name}"))
                self.text(group, f"{name} {_number(bound)}", 10, WIDTH - RIGHT - 4, y(bound) - 3,
                          text_anchor="end", fill=FAIL_COLOUR)
        measured = [p for p in series.points if p.value is not None]
        if len(measured) > 1:
            line = dw.Path(stroke=PASS_COLOUR, stroke_width=1.5, fill="none", class_="value")
            line.M(self.at(measured[0].time), y(measured[0].value or 0.0))
            for point in measured[1:]:
                line.L(self.at(point.time), y(point.value or 0.0))
            group.append(line)
        for point in series.points:
            group.append(self._point(point, y(point.value) if point.value is not None else top + CHECK_HEIGHT / 2))
        self.drawing.append(group)

    def _point(self, point: CheckPoint, y: float) -> dw.DrawingElement:
        state, colour = (("failed", FAIL_COLOUR) if point.failed else ("held", HELD_COLOUR) if point.held
                         else ("pass", PASS_COLOUR))
        if point.value is None:
            state += " no-value"
        circle = dw.Circle(self.at(point.time), y, 3.5 if state == "pass" else 5,
                           fill="white" if point.value is None else colour, stroke=colour, stroke_width=1.5,
                           class_=f"point {state}")
        samples = "" if point.samples is None else f", {point.samples:.0f} samples"
        circle.append_title(f"{point.time:%H:%M:%S} {_number(point.value)} {point.verdict.value}{samples}"
                            + (f": {point.message}" if point.message else ""))
        return circle

    def _frame(self, group: dw.Group, top: float, height: float, label: str) -> None:
        group.append(dw.Rectangle(LEFT, top, WIDTH - RIGHT - LEFT, height, fill="none", stroke="#bbbbbb"))
        self.text(group, label, 12, LEFT, top - 6, font_weight="bold")

    def _hline(self, group: dw.Group, y: float, label: str) -> None:
        group.append(dw.Line(LEFT, y, WIDTH - RIGHT, y, stroke="#eeeeee"))
        self.text(group, label, 10, LEFT - 6, y + 3, text_anchor="end", fill="#666666")

    def time_axis(self) -> None:
        group = dw.Group(id="time-axis")
        for second in nice_ticks(0, max(self.timeline.seconds, 1.0), 10):
            x = self.x(second)
            group.append(dw.Line(x, PHASE_TOP, x, self.bottom, stroke="#f2f2f2"))
            self.text(group, f"+{second:g}s", 10, x, self.bottom + 14, text_anchor="middle", fill="#666666")
        self.text(group, "seconds since the first Event of the run", 11, LEFT, self.bottom + 32, fill="#444444")
        self.drawing.append(group)

    def rollback(self) -> None:
        rollback = self.timeline.rollback
        if rollback is None:
            return
        x = self.at(rollback.time)
        group = dw.Group(id="rollback")
        group.append(dw.Line(x, PHASE_TOP - 4, x, self.bottom, stroke=FAIL_COLOUR, stroke_width=2))
        label = "rolled back" + "".join(f" · {describe_check(c)}" for c in rollback.failing)
        # Near the right edge the label reads leftwards from the line.
        anchor = "end" if x > (LEFT + WIDTH - RIGHT) / 2 else "start"
        # Between the phase band and the weight panel, where no line of the data runs.
        self.text(group, label, 11, x + (-4 if anchor == "end" else 4), PHASE_TOP + PHASE_HEIGHT + 13,
                  text_anchor=anchor, fill=FAIL_COLOUR, font_weight="bold")
        self.drawing.append(group)


def render_svg(timeline: Timeline, title: str) -> str:
    """The timeline as an SVG document (UTF-8 text)."""
    canvas = _Canvas(timeline, title)
    canvas.drawing.append(dw.Rectangle(0, 0, WIDTH, canvas.height, fill="white"))
    # Grid first, so everything else is drawn over it.
    canvas.time_axis()
    canvas.header()
    canvas.phases()
    canvas.weight()
    canvas.checks()
    canvas.rollback()
    return str(canvas.drawing.as_svg())
