"""The Grafana dashboard: the guide's five panels, built with grafana-foundation-sdk.

Every query uses the ``datasource`` template variable (type prometheus), not a
``${DS_...}`` import input, which the Grafana sidecar cannot resolve. Queries keep a
literal ``[5m]`` and aggregate replica-safely: connections are summed across replicas,
the owner-only peak is taken with ``max``.

Example::

    >>> dash = dashboard()
    >>> dash["title"], len(dash["panels"])
    ('Nova Streaming Metrics Dashboard', 6)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dashboard_b
from grafana_foundation_sdk.builders import piechart as piechart_b
from grafana_foundation_sdk.builders import prometheus as prometheus_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import table as table_b
from grafana_foundation_sdk.builders import timeseries as timeseries_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dashboard_m
from grafana_foundation_sdk.models import piechart as piechart_m
from grafana_foundation_sdk.models import prometheus as prometheus_m

from nova_monitoring._types import Data
from nova_monitoring.promql import le_matcher
from streaming_metrics import definitions as d

__all__ = [
    "DASHBOARD_TITLE",
    "DASHBOARD_UID",
    "DATASOURCE_VARIABLE",
    "LATENCY_CAP_TEXT",
    "PANELS",
    "SLOW_FRAMES_EXPR",
    "WORST_STREAMS",
    "WORST_STREAMS_DROPS",
    "PanelSpec",
    "dashboard",
    "dashboard_json",
    "panel_queries",
]

DASHBOARD_TITLE = "Nova Streaming Metrics Dashboard"
DASHBOARD_UID = "nova-streaming-metrics"
DATASOURCE_VARIABLE = "datasource"
# The dashboard's queries are fixed to 5m (design: literal [5m]) whatever the rule
# files' rate window: the dashboard is not time-compressed for end-to-end runs.
_WINDOW = "5m"
_DATASOURCE = dashboard_m.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")


@dataclass(frozen=True, slots=True)
class PanelSpec:
    """One panel's identity and query, plain data the tests and the preview can use.

    Example::

        >>> PANELS[2].kind
        'stat'
    """

    id: int
    title: str
    kind: str
    expr: str
    legend: str


PANELS: tuple[PanelSpec, ...] = (
    PanelSpec(
        1,
        "Active Streaming Sessions",
        "timeseries",
        f"sum by (region) ({d.ACTIVE_STREAMS.name})",
        "{{region}}",
    ),
    PanelSpec(
        2,
        "Peak Viewers Distribution",
        "piechart",
        f"max by (stream_id) ({d.PEAK_VIEWERS.name})",
        "{{stream_id}}",
    ),
    PanelSpec(
        3,
        "Current Viewer Count",
        "stat",
        f"sum({d.WEBSOCKET_CONNECTIONS.name})",
        "viewers",
    ),
    PanelSpec(
        4,
        "Broadcast Error Rate",
        "timeseries",
        f"sum by (error_type) (rate({d.BROADCAST_ERRORS.name}[{_WINDOW}]))",
        "{{error_type}}",
    ),
    PanelSpec(
        5,
        "RTMP Ingestion Latency",
        "timeseries",
        "histogram_quantile(0.95, sum by (le) "
        f"(rate({d.RTMP_INGESTION_LATENCY_SECONDS.name}_bucket[{_WINDOW}]))) * 1000",
        "p95",
    ),
)


_LATENCY = d.RTMP_INGESTION_LATENCY_SECONDS.name
# histogram_quantile never returns more than the top finite bucket bound (1 s), so a
# p95 of exactly 1000 ms means "1 s or more": the panel says so instead of "1000 ms".
_LATENCY_CAP_MS = 1000.0 * max(d.RTMP_INGESTION_LATENCY_SECONDS.buckets)
LATENCY_CAP_TEXT = ">= 1 s"
SLOW_FRAMES_EXPR = (
    f"100 * (1 - sum(rate({_LATENCY}_bucket{{{le_matcher(1.0)}}}[{_WINDOW}]))"
    f" / sum(rate({_LATENCY}_count[{_WINDOW}])))"
)
"""Second query of the latency panel: the share (%) of frames slower than 1 s."""

# --- Worst streams now (design section 10) ---
# The owner's p95 lag per stream, with the stream's region (stream_info has region and
# stream_type, not quality) and a quality from the bitrate series (the stream's
# highest-bitrate rendition; a stream without a bitrate yet keeps its row, unlabelled).
# max by: replica-safe during a hand-over, when two replicas may export a stream.
_LAG_WITH_REGION = (
    f"max by (stream_id) ({d.STREAM_INGEST_LAG_SECONDS.name})"
    " * on (stream_id) group_left (region) "
    f"max by (stream_id, region) ({d.STREAM_INFO.name})"
)
_ONE_QUALITY = (
    f"topk by (stream_id) (1, max by (stream_id, quality) ({d.QUALITY_BITRATE_KBPS.name})) * 0 + 1"
)
WORST_STREAMS = PanelSpec(
    6,
    "Worst streams now",
    "table",
    f"topk(10, ({_LAG_WITH_REGION}) * on (stream_id) group_left (quality) ({_ONE_QUALITY})"
    f" or on (stream_id) ({_LAG_WITH_REGION}))",
    "",
)
WORST_STREAMS_DROPS = PanelSpec(
    6,
    "Worst streams now",
    "table",
    f"sum by (stream_id) (increase({d.STREAM_FRAME_DROPS.name}[{_WINDOW}]))"
    " and on (stream_id) "
    f"topk(10, max by (stream_id) ({d.STREAM_INGEST_LAG_SECONDS.name}))",
    "",
)


def _query(panel: PanelSpec, *, instant: bool = False) -> prometheus_b.Dataquery:
    query = (
        prometheus_b.Dataquery()
        .ref_id("A")
        .datasource(_DATASOURCE)
        .expr(panel.expr)
        .legend_format(panel.legend)
    )
    return query.instant() if instant else query.range()


def _steps(*steps: tuple[float | None, str]) -> dashboard_b.ThresholdsConfig:
    return (
        dashboard_b.ThresholdsConfig()
        .mode(dashboard_m.ThresholdsMode.ABSOLUTE)
        .steps([dashboard_m.Threshold(value=value, color=color) for value, color in steps])
    )


def _grid(x: int, y: int, w: int, h: int = 8) -> dashboard_m.GridPos:
    return dashboard_m.GridPos(h=h, w=w, x=x, y=y)


def _active_streams(panel: PanelSpec) -> timeseries_b.Panel:
    return (
        timeseries_b.Panel()
        .id(panel.id)
        .title(panel.title)
        .description("Streams being broadcast, per region (owner replicas only, summed).")
        .datasource(_DATASOURCE)
        .with_target(_query(panel))
        .grid_pos(_grid(0, 0, 12))
        .unit("short")
        .min(0)
        .thresholds(_steps((None, "green"), (1000, "red")))
        .thresholds_style(
            common_b.GraphThresholdsStyleConfig().mode(
                common_m.GraphThresholdsStyleMode.LINE_AND_AREA
            )
        )
    )


def _peak_viewers(panel: PanelSpec) -> piechart_b.Panel:
    return (
        piechart_b.Panel()
        .id(panel.id)
        .title(panel.title)
        .description("Peak concurrent viewers of each live stream (max: replica-safe).")
        .datasource(_DATASOURCE)
        .with_target(_query(panel, instant=True))
        .grid_pos(_grid(12, 0, 6))
        .unit("short")
        .reduce_options(
            common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields("")
        )
        .legend(
            piechart_b.PieChartLegendOptions()
            .show_legend(True)
            .display_mode(common_m.LegendDisplayMode.TABLE)
            .placement(common_m.LegendPlacement.RIGHT)
            .values([piechart_m.PieChartLegendValues.VALUE])
        )
    )


def _current_viewers(panel: PanelSpec) -> stat_b.Panel:
    return (
        stat_b.Panel()
        .id(panel.id)
        .title(panel.title)
        .description("WebSocket viewers connected now, summed over every replica.")
        .datasource(_DATASOURCE)
        .with_target(_query(panel))
        .grid_pos(_grid(18, 0, 6))
        .unit("short")
        .thresholds(_steps((None, "green"), (100, "yellow"), (1000, "red")))
        .color_mode(common_m.BigValueColorMode.BACKGROUND)
        .graph_mode(common_m.BigValueGraphMode.AREA)
        .reduce_options(
            common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields("")
        )
    )


def _error_rate(panel: PanelSpec) -> timeseries_b.Panel:
    return (
        timeseries_b.Panel()
        .id(panel.id)
        .title(panel.title)
        .description("Broadcast errors per second by error type, stacked.")
        .datasource(_DATASOURCE)
        .with_target(_query(panel))
        .grid_pos(_grid(0, 8, 12))
        .unit("suffix: errors/s")
        .min(0)
        .axis_label("errors/s")
        .draw_style(common_m.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(common_b.StackingConfig().mode(common_m.StackingMode.NORMAL))
    )


def _ingest_latency(panel: PanelSpec) -> timeseries_b.Panel:
    return (
        timeseries_b.Panel()
        .id(panel.id)
        .title(panel.title)
        .description(
            "p95 per-frame ingest lag over every replica; acceptable below 100 ms. The top"
            " finite bucket is 1 s, so the p95 cannot read above it: 1000 ms shows as"
            f" '{LATENCY_CAP_TEXT}' and means 'at least 1 s'. 'frames over 1 s' (right"
            " axis, %) says how many frames are beyond the cap."
        )
        .datasource(_DATASOURCE)
        # Exemplars on: each slow frame's point names its stream (design section 10).
        .with_target(_query(panel).exemplar(True))
        .with_target(
            prometheus_b.Dataquery()
            .ref_id("B")
            .datasource(_DATASOURCE)
            .expr(SLOW_FRAMES_EXPR)
            .legend_format("frames over 1 s")
            .range()
        )
        .grid_pos(_grid(12, 8, 12))
        .unit("ms")
        .min(0)
        .thresholds(_steps((None, "green"), (100, "red"), (_LATENCY_CAP_MS, "dark-red")))
        .thresholds_style(
            common_b.GraphThresholdsStyleConfig().mode(common_m.GraphThresholdsStyleMode.LINE)
        )
        .mappings(
            [
                dashboard_m.RangeMap(
                    options=dashboard_m.DashboardRangeMapOptions(
                        from_val=_LATENCY_CAP_MS,
                        to=None,
                        result=dashboard_m.ValueMappingResult(
                            text=LATENCY_CAP_TEXT, color="dark-red"
                        ),
                    )
                )
            ]
        )
        .override_by_query(
            "B",
            [
                dashboard_m.DynamicConfigValue(id_val="unit", value="percent"),
                dashboard_m.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
                dashboard_m.DynamicConfigValue(id_val="mappings", value=[]),
                dashboard_m.DynamicConfigValue(
                    id_val="thresholds",
                    value={"mode": "absolute", "steps": [{"value": None, "color": "green"}]},
                ),
            ],
        )
    )


def _worst_streams() -> table_b.Panel:
    lag, drops = WORST_STREAMS, WORST_STREAMS_DROPS
    return (
        table_b.Panel()
        .id(lag.id)
        .title(lag.title)
        .description(
            "The 10 streams with the highest ingest lag now (each owner's p95 over the "
            "last 10 s, not capped at 1 s like the histogram), their region and quality, "
            "and frames dropped in 5 minutes. The same list: GET /api/v1/streams?sort=lag."
        )
        .datasource(_DATASOURCE)
        .with_target(
            _query(lag, instant=True).ref_id("A").format(prometheus_m.PromQueryFormat.TABLE)
        )
        .with_target(
            _query(drops, instant=True).ref_id("B").format(prometheus_m.PromQueryFormat.TABLE)
        )
        .grid_pos(_grid(0, 16, 24))
        .unit("s")
        .thresholds(_steps((None, "green"), (0.5, "orange"), (1, "red")))
        .with_transformation(dashboard_m.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            dashboard_m.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True},
                    "renameByName": {"Value #A": "p95 lag", "Value #B": "drops (5m)"},
                },
            )
        )
        .sort_by([common_b.TableSortByFieldState().display_name("p95 lag").desc(True)])
        .override_by_name(
            "drops (5m)", [dashboard_m.DynamicConfigValue(id_val="unit", value="short")]
        )
    )


def _builder() -> dashboard_b.Dashboard:
    active, peak, current, errors, latency = PANELS
    return (
        dashboard_b.Dashboard(DASHBOARD_TITLE)
        .uid(DASHBOARD_UID)
        .description("Nova Streaming: live streams, viewers, broadcast errors, ingest latency.")
        .tags(["nova-streaming", "streaming"])
        .time("now-1h", "now")
        .refresh("30s")
        .tooltip(dashboard_m.DashboardCursorSync.CROSSHAIR)
        .with_variable(
            dashboard_b.DatasourceVariable(DATASOURCE_VARIABLE)
            .label("Data source")
            .type("prometheus")
        )
        .with_panel(_active_streams(active))
        .with_panel(_peak_viewers(peak))
        .with_panel(_current_viewers(current))
        .with_panel(_error_rate(errors))
        .with_panel(_ingest_latency(latency))
        .with_panel(_worst_streams())
    )


def dashboard() -> Data:
    """The dashboard as the JSON object Grafana imports.

    Example::

        >>> dashboard()["templating"]["list"][0]["type"]
        'datasource'
    """
    encoded = json.dumps(_builder().build(), cls=JSONEncoder)
    loaded: Data = json.loads(encoded)
    return loaded


def dashboard_json() -> str:
    """The dashboard as committed: sorted keys, two-space indent, trailing newline."""
    return json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"


def panel_queries(dash: Data) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of a dashboard JSON object.

    Tests and the local preview read queries from the rendered JSON with this, so what
    they prove is what Grafana runs.

    Example::

        >>> panel_queries(dashboard())[0]
        ('Active Streaming Sessions', 'sum by (region) (nova_streaming_active_streams)')
    """
    queries: list[tuple[str, str]] = []
    panels: list[Any] = dash.get("panels", [])
    for panel in panels:
        for target in panel.get("targets", []):
            queries.append((str(panel["title"]), str(target["expr"])))
    return queries
