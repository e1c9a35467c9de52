"""The SLO dashboard: error budget left over 30 days and burn rates, per SLO.

A second dashboard (its own ConfigMap for the Grafana sidecar) rather than a row of the
guide's five-panel dashboard, which stays exactly the guide's. Queries are built from
:mod:`nova_monitoring.slo`, so they always match the recorded ratios and the alerts:
the burn-rate panels divide the recorded error ratios by the budget, and the budget
panel computes the 30-day ratio directly (no rule records a 30-day window).

Example::

    >>> dash = slo_dashboard()
    >>> dash["uid"], [p["title"] for p in dash["panels"]][0]
    ('nova-streaming-slo', 'Error budget remaining (30 days)')
"""

from __future__ import annotations

import json

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dashboard_b
from grafana_foundation_sdk.builders import prometheus as prometheus_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import timeseries as timeseries_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dashboard_m

from nova_monitoring._types import Data
from nova_monitoring.dashboard import DATASOURCE_VARIABLE
from nova_monitoring.options import format_number
from nova_monitoring.slo import BURN_WINDOWS, SLO, SLO_PERIOD, SLOS

__all__ = [
    "SLO_DASHBOARD_TITLE",
    "SLO_DASHBOARD_UID",
    "budget_remaining_expr",
    "burn_rate_expr",
    "slo_dashboard",
    "slo_dashboard_json",
]

SLO_DASHBOARD_TITLE = "Nova Streaming SLOs"
SLO_DASHBOARD_UID = "nova-streaming-slo"
_DATASOURCE = dashboard_m.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")


def budget_remaining_expr(slo: SLO) -> str:
    """Share of the 30-day error budget left: 1 - (30-day error ratio) / budget.

    Negative once the budget is spent; no series while no frame was ingested.

    Example::

        >>> from nova_monitoring.slo import ERRORS_SLO
        >>> budget_remaining_expr(ERRORS_SLO)  # doctest: +ELLIPSIS
        '1 - (sum(rate(nova_streaming_broadcast_errors_total[30d])) / ...) / 0.001'
    """
    return f"1 - ({slo.error_ratio(SLO_PERIOD)}) / {slo.budget}"


def burn_rate_expr(slo: SLO, window: str) -> str:
    """The burn rate over ``window``: the recorded error ratio divided by the budget.

    Example::

        >>> from nova_monitoring.slo import LATENCY_SLO
        >>> burn_rate_expr(LATENCY_SLO, "1h")
        'nova:slo_ingest_latency:error_ratio:rate1h / 0.01'
    """
    return f"{slo.record(window)} / {slo.budget}"


def _steps(*steps: tuple[float | None, str]) -> dashboard_b.ThresholdsConfig:
    return (
        dashboard_b.ThresholdsConfig()
        .mode(dashboard_m.ThresholdsMode.ABSOLUTE)
        .steps([dashboard_m.Threshold(value=value, color=color) for value, color in steps])
    )


def _budget_panel() -> stat_b.Panel:
    panel = (
        stat_b.Panel()
        .id(1)
        .title(f"Error budget remaining ({SLO_PERIOD.removesuffix('d')} days)")
        .description(
            "Share of each SLO's 30-day error budget not yet spent, from the 30-day error"
            " ratio over every replica. Below 0: the SLO is missed for the period."
        )
        .datasource(_DATASOURCE)
        .grid_pos(dashboard_m.GridPos(h=8, w=8, x=0, y=0))
        .unit("percentunit")
        .decimals(1)
        .thresholds(_steps((None, "red"), (0, "orange"), (0.25, "green")))
        .color_mode(common_m.BigValueColorMode.BACKGROUND)
        .graph_mode(common_m.BigValueGraphMode.NONE)
        .reduce_options(
            common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields("")
        )
    )
    for ref, slo in zip("AB", SLOS, strict=False):
        # Instant: a range query would re-read 30 days of samples at every step.
        panel = panel.with_target(
            prometheus_b.Dataquery()
            .ref_id(ref)
            .datasource(_DATASOURCE)
            .expr(budget_remaining_expr(slo))
            .legend_format(slo.title)
            .instant()
        )
    return panel


def _burn_panel(panel_id: int, slo: SLO, x: int) -> timeseries_b.Panel:
    factors = sorted({(w.factor, w.severity) for w in BURN_WINDOWS})
    colors = {1.0: "yellow", 3.0: "orange", 6.0: "red", 14.4: "dark-red"}
    panel = (
        timeseries_b.Panel()
        .id(panel_id)
        .title(f"{slo.title} SLO: burn rate")
        .description(
            f"{slo.meaning}. How fast the error budget burns over each alert's long window"
            " (1x spends exactly the budget in 30 days). Lines: the alert factors"
            " ("
            + ", ".join(f"{format_number(f)}x {s}" for f, s in factors)
            + "); an alert needs its short window above the factor too."
        )
        .datasource(_DATASOURCE)
        .grid_pos(dashboard_m.GridPos(h=8, w=8, x=x, y=0))
        .unit("suffix:x")
        .min(0)
        .thresholds(_steps((None, "green"), *((f, colors.get(f, "red")) for f, _ in factors)))
        .thresholds_style(
            common_b.GraphThresholdsStyleConfig().mode(common_m.GraphThresholdsStyleMode.LINE)
        )
        .legend(
            common_b.VizLegendOptions()
            .show_legend(True)
            .display_mode(common_m.LegendDisplayMode.TABLE)
            .placement(common_m.LegendPlacement.BOTTOM)
            .calcs(["lastNotNull", "max"])
        )
    )
    for ref, window in zip("ABCD", (w.long for w in BURN_WINDOWS), strict=True):
        panel = panel.with_target(
            prometheus_b.Dataquery()
            .ref_id(ref)
            .datasource(_DATASOURCE)
            .expr(burn_rate_expr(slo, window))
            .legend_format(window)
            .range()
        )
    return panel


def _builder() -> dashboard_b.Dashboard:
    builder = (
        dashboard_b.Dashboard(SLO_DASHBOARD_TITLE)
        .uid(SLO_DASHBOARD_UID)
        .description("Nova Streaming SLOs: error budget left over 30 days and burn rates.")
        .tags(["nova-streaming", "streaming", "slo"])
        .time("now-24h", "now")
        .refresh("1m")
        .tooltip(dashboard_m.DashboardCursorSync.CROSSHAIR)
        .with_variable(
            dashboard_b.DatasourceVariable(DATASOURCE_VARIABLE)
            .label("Data source")
            .type("prometheus")
        )
        .with_panel(_budget_panel())
    )
    for n, slo in enumerate(SLOS):
        builder = builder.with_panel(_burn_panel(2 + n, slo, 8 * (n + 1)))
    return builder


def slo_dashboard() -> Data:
    """The SLO dashboard as the JSON object Grafana imports."""
    loaded: Data = json.loads(json.dumps(_builder().build(), cls=JSONEncoder))
    return loaded


def slo_dashboard_json() -> str:
    """The SLO dashboard as committed: sorted keys, two-space indent, trailing newline."""
    return json.dumps(slo_dashboard(), indent=2, sort_keys=True) + "\n"
