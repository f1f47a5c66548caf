"""Builds ``canary.json``, the Grafana dashboard of the controller's own metrics.

The dashboard is generated, not hand-edited: its panels are Grafana Foundation SDK builders, so
a field Grafana renamed fails here (and in mypy) rather than silently in a browser. Run
``.venv/bin/python integrations/grafana/build_dashboard.py`` after a change;
``tests/grafana/test_dashboard.py`` fails while ``canary.json`` differs from what this script
writes, and ``e2e/test_grafana_dashboard.py`` runs every query below against real releases.

Every query reads only series that ``canary/telemetry.py`` exports, filtered by the template
variables; the names are the contract with that module.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prometheus_model

OUTPUT = Path(__file__).with_name("canary.json")
UID = "canary-controller"

#: Every panel and variable asks the data source the user picked at import time.
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")

#: The label filters of every per-Canary series (namespace and Canary are multi-value variables).
CANARY = 'namespace=~"$namespace", name=~"$canary"'
#: The filter of the controller's own series, which carry no Canary labels.
CONTROLLER = 'job=~"$job"'

Panel = timeseries.Panel | stat.Panel | statetimeline.Panel | table.Panel


def query(expr: str, legend: str, ref: str = "A", *, instant: bool = False) -> prometheus.Dataquery:
    built = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    return built.instant() if instant else built.range()


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=value, color=color) for value, color in steps]
    )


def variables() -> list[dash.DatasourceVariable | dash.QueryVariable]:
    def label_values(name: str, label: str, source: str, *, multi: bool) -> dash.QueryVariable:
        variable = (
            dash.QueryVariable(name).label(label).datasource(DATASOURCE).query(source)
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC)
        )
        # "All" stands for every value the query found; no allValue, so a series of a Canary
        # that was deleted in the time range still matches only when it is listed.
        return variable.multi(True).include_all(True) if multi else variable

    return [
        dash.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        label_values("job", "Controller job", "label_values(canary_leader, job)", multi=False),
        label_values("namespace", "Namespace", "label_values(canary_phase, namespace)", multi=True),
        label_values("canary", "Canary", 'label_values(canary_phase{namespace=~"$namespace"}, name)', multi=True),
        label_values("check", "Check",
                     f"label_values(canary_check_value{{{CANARY}}}, check)", multi=True),
    ]


def release_marks() -> list[cogbuilder.Builder[model.AnnotationQuery]]:
    """Grafana's own annotations, and a mark on every time axis where a release ended."""
    def ended(name: str, counter: str, by: str, color: str) -> dash.AnnotationQuery:
        expr = f"sum by ({by}) (increase({counter}{{{CANARY}}}[$__rate_interval])) > 0"
        return dash.AnnotationQuery().name(name).datasource(DATASOURCE).enable(True).icon_color(color).expr(expr)

    return [
        dash.AnnotationQuery().name("Annotations & Alerts").built_in(1).type("dashboard").enable(True).hide(True)
        .datasource(model.DataSourceRef(type_val="grafana", uid="-- Grafana --")).icon_color("rgba(0, 211, 255, 1)"),
        ended("Promotions", "canary_promotions_total", "namespace, name", "green"),
        ended("Rollbacks", "canary_rollbacks_total", "namespace, name, reason", "red"),
    ]


def releases_row() -> list[Panel]:
    promotions = query(f"sum by (namespace, name) (increase(canary_promotions_total{{{CANARY}}}[$__rate_interval]))",
                       "{{namespace}}/{{name}} promoted", "A")
    rollbacks = query(f"sum by (namespace, name) (increase(canary_rollbacks_total{{{CANARY}}}[$__rate_interval]))",
                      "{{namespace}}/{{name}} rolled back", "B")
    return [
        timeseries.Panel().title("Releases over time").span(24).height(8)
        .description("Runs that ended in the interval: promoted (green) or rolled back (red).")
        .with_target(promotions).with_target(rollbacks)
        .draw_style(common.GraphDrawStyle.BARS).fill_opacity(80).decimals(0).min(0)
        .override_by_regexp(".* promoted$", [model.DynamicConfigValue("color", {"mode": "fixed", "fixedColor": "green"})])
        .override_by_regexp(".* rolled back$", [model.DynamicConfigValue("color", {"mode": "fixed", "fixedColor": "red"})]),
    ]


def state_row() -> list[Panel]:
    return [
        timeseries.Panel().title("Canary weight").span(12).height(8)
        .description("Percent of traffic on the canary; 0 between releases.")
        .with_target(query(f"canary_weight{{{CANARY}}}", "{{namespace}}/{{name}}"))
        .unit("percent").min(0).max(100).line_interpolation(common.LineInterpolation.STEP_AFTER),
        statetimeline.Panel().title("Phase over time").span(12).height(8)
        .description("The phase each Canary was in (canary_phase is one-hot: 1 marks the current phase).")
        .with_target(query(f"canary_phase{{{CANARY}}} == 1", "{{namespace}}/{{name}} {{phase}}"))
        .show_value(common.VisibilityMode.NEVER),
        table.Panel().title("Current phase").span(12).height(6)
        .description("One line per Canary: its phase now.")
        .with_target(query(f"canary_phase{{{CANARY}}} == 1", "{{namespace}}/{{name}}", instant=True)
                     .format(prometheus_model.PromQueryFormat.TABLE)),
        stat.Panel().title("Stalled").span(6).height(6)
        .description("1 while the Canary's Stalled condition is True: rolled back, or an error it cannot get past.")
        .with_target(query(f"canary_stalled{{{CANARY}}}", "{{namespace}}/{{name}}"))
        .thresholds(thresholds((None, "green"), (1, "red"))).decimals(0),
        stat.Panel().title("Failed checks").span(6).height(6)
        .description("Failed checks counted in the current run (the rollback threshold counts these).")
        .with_target(query(f"canary_failed_checks{{{CANARY}}}", "{{namespace}}/{{name}}"))
        .thresholds(thresholds((None, "green"), (1, "orange"))).decimals(0),
    ]


def analysis_row() -> list[Panel]:
    per_check = f'{CANARY}, check=~"$check"'
    dashed = model.DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]})
    return [
        timeseries.Panel().title("Check $check against its bounds").span(12).height(8)
        .description("The last value each metric check measured, with the check's min and max from the spec "
                     "(a bound the check does not have is not drawn). A gap is a tick without data.")
        .repeat("check").repeat_direction("h").max_per_row(2)
        .with_target(query(f"canary_check_value{{{per_check}}}", "{{namespace}}/{{name}} {{check}}", "A"))
        .with_target(query(f"canary_check_min{{{per_check}}}", "{{namespace}}/{{name}} min", "B"))
        .with_target(query(f"canary_check_max{{{per_check}}}", "{{namespace}}/{{name}} max", "C"))
        .line_interpolation(common.LineInterpolation.STEP_AFTER)
        .override_by_regexp(".* (min|max)$", [dashed, model.DynamicConfigValue(
            "color", {"mode": "fixed", "fixedColor": "red"})]),
    ]


def rollbacks_row() -> list[Panel]:
    by_reason = f"sum by (reason) (increase(canary_rollbacks_total{{{CANARY}}}"
    return [
        timeseries.Panel().title("Rollbacks by cause over time").span(16).height(8)
        .description("threshold: failed checks reached the threshold; judge: the judge's evidence; webhook: a "
                     "gate or rollback webhook; deadline: the canary never became ready; annotation: on-call.")
        .with_target(query(f"{by_reason}[$__rate_interval]))", "{{reason}}"))
        .draw_style(common.GraphDrawStyle.BARS).fill_opacity(80).decimals(0).min(0)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL)),
        stat.Panel().title("Rollbacks in range").span(8).height(8)
        .description("Rollbacks per cause over the dashboard's time range.")
        .with_target(query(f"{by_reason}[$__range]))", "{{reason}}", instant=True))
        .decimals(0).thresholds(thresholds((None, "green"), (1, "red"))),
    ]


def health_row() -> list[Panel]:
    return [
        stat.Panel().title("Leader").span(6).height(6)
        .description("1 when a replica holds the leader Lease. 0 for a minute means no replica acts on Canaries.")
        .with_target(query(f"max(canary_leader{{{CONTROLLER}}})", "leader"))
        .thresholds(thresholds((None, "red"), (1, "green"))).decimals(0),
        stat.Panel().title("Replicas up").span(6).height(6)
        .description("Controller replicas Prometheus scraped successfully (up == 1).")
        .with_target(query(f"sum(up{{{CONTROLLER}}})", "up"))
        .thresholds(thresholds((None, "red"), (1, "green"))).decimals(0),
        timeseries.Panel().title("Replicas and leadership").span(12).height(6)
        .description("Per replica: scraped (up) and holding the Lease (leader).")
        .with_target(query(f"up{{{CONTROLLER}}}", "{{instance}} up", "A"))
        .with_target(query(f"canary_leader{{{CONTROLLER}}}", "{{instance}} leader", "B"))
        .min(0).max(1).decimals(0).line_interpolation(common.LineInterpolation.STEP_AFTER),
        timeseries.Panel().title("Reconcile errors").span(24).height(6)
        .description("Reconciliations that raised, per second: a Canary that keeps failing also reports Stalled.")
        .with_target(query(
            f"sum by (namespace, name) (rate(canary_reconcile_errors_total{{{CANARY}}}[$__rate_interval]))",
            "{{namespace}}/{{name}}"))
        .unit("ops").min(0),
    ]


def build() -> model.Dashboard:
    board = (
        dash.Dashboard("Canary").uid(UID).tags(["canary", "progressive-delivery"])
        .description("Releases, analysis and health of the canary controller, from its own /metrics.")
        .time("now-6h", "now").refresh("30s").timezone("browser").tooltip(model.DashboardCursorSync.CROSSHAIR)
    )
    for variable in variables():
        board = board.with_variable(variable)
    board = board.annotations(release_marks())
    rows: list[tuple[str, list[Panel]]] = [
        ("Releases", releases_row()),
        ("Current weight and phase", state_row()),
        ("Analysis: each check against its bounds", analysis_row()),
        ("Rollbacks by cause", rollbacks_row()),
        ("Controller health", health_row()),
    ]
    # Explicit ids, in layout order: Grafana keys panel links and repeats by id, and one it
    # assigns on import would differ between two imports of the same file.
    ids = iter(range(1, 1000))
    for title, panels in rows:
        board = board.with_row(dash.Row(title).id(next(ids)))
        for panel in panels:
            board = board.with_panel(panel.id(next(ids)).datasource(DATASOURCE))
    return board.build()


def render() -> str:
    """The dashboard as the JSON file holds it: stable key order, two-space indent, final newline."""
    return json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main() -> int:
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
