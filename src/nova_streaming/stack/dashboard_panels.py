"""The panels of a Grafana dashboard JSON, as the preview and ``verify`` need them.

Read straight from ``k8s/monitoring/grafana-streaming-dashboard.json``: title, type,
the kind of chart Grafana would draw, unit, threshold steps and each target's PromQL,
so the preview and the checks can never disagree with what Grafana is given.

Example::

    >>> panels = panels_from_dashboard({"panels": [{"title": "Viewers", "type": "stat",
    ...     "targets": [{"expr": "sum(x)", "refId": "A"}]}]})
    >>> panels[0].kind, panels[0].targets[0].expr
    ('stat', 'sum(x)')
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DASHBOARD_FILE = Path("k8s/monitoring/grafana-streaming-dashboard.json")


@dataclass(frozen=True)
class Target:
    """One query of a panel: ``instant`` (one value per series, e.g. a table) or over a
    range; ``exemplar``: the panel shows the exemplars of the query's series."""

    ref_id: str
    expr: str
    legend: str
    instant: bool = False
    exemplar: bool = False


@dataclass(frozen=True)
class Threshold:
    """One threshold step: ``color`` from ``value`` up (None: the base step)."""

    value: float | None
    color: str


@dataclass(frozen=True)
class Panel:
    """One dashboard panel, reduced to what a preview needs.

    ``kind`` is the chart Grafana draws: ``lines``, ``stacked-bars``, ``bars``, ``pie``,
    ``stat`` or ``table``; ``threshold_style`` is Grafana's ``thresholdsStyle.mode``
    (``off``, ``line``, ``area``...); ``axis_label`` the y axis title; ``graph_mode`` a
    stat's sparkline (``area``) or none; ``mappings`` Grafana's value mappings as in the
    JSON (e.g. a range shown as text such as ">= 1 s"); ``rename`` a table's column
    names (its ``organize`` transformation); ``row`` the title of the row it is in.
    """

    index: int
    title: str
    type: str
    kind: str
    unit: str
    thresholds: tuple[Threshold, ...]
    threshold_style: str
    targets: tuple[Target, ...]
    description: str = ""
    axis_label: str = ""
    graph_mode: str = "none"
    mappings: tuple[dict[str, Any], ...] = ()
    rename: dict[str, str] = field(default_factory=dict)
    row: str = ""
    decimals: int | None = None
    min: float | None = None
    max: float | None = None

    def as_json(self) -> dict[str, Any]:
        """The panel as JSON-ready data."""
        return asdict(self)


def load_dashboard(path: Path) -> dict[str, Any]:
    """Read the dashboard JSON; a clear error when missing or not a dashboard."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"dashboard: {path} not found (run `make generate` to render k8s/monitoring/)"
        ) from exc
    except ValueError as exc:
        raise ValueError(f"dashboard: {path} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("panels"), list):
        raise ValueError(f"dashboard: {path} has no panels list")
    return data


def panels_from_dashboard(dashboard: Mapping[str, Any]) -> list[Panel]:
    """Every graph panel of ``dashboard`` in dashboard order, rows flattened: a row's
    panels are nested (collapsed row) or follow it (open row); each knows its row."""
    flat: list[tuple[str, Mapping[str, Any]]] = []
    row = ""
    for panel in dashboard.get("panels") or []:
        if panel.get("type") == "row":
            row = str(panel.get("title") or "")
            flat.extend((row, nested) for nested in panel.get("panels") or [])
        else:
            flat.append((row, panel))
    return [_panel(index, raw, row) for index, (row, raw) in enumerate(flat)]


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _rename(raw: Mapping[str, Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    for transformation in raw.get("transformations") or []:
        if transformation.get("id") == "organize":
            options = transformation.get("options") or {}
            names.update({str(k): str(v) for k, v in (options.get("renameByName") or {}).items()})
    return names


def _panel(index: int, raw: Mapping[str, Any], row: str = "") -> Panel:
    defaults = (raw.get("fieldConfig") or {}).get("defaults") or {}
    custom = defaults.get("custom") or {}
    panel_type = str(raw.get("type", ""))
    steps = ((defaults.get("thresholds") or {}).get("steps")) or []
    targets = tuple(
        Target(
            ref_id=str(target.get("refId", chr(ord("A") + n))),
            expr=str(target["expr"]),
            legend=str(target.get("legendFormat") or ""),
            instant=bool(target.get("instant")) and not target.get("range"),
            exemplar=bool(target.get("exemplar")),
        )
        for n, target in enumerate(raw.get("targets") or [])
        if target.get("expr")
    )
    return Panel(
        index=index,
        title=str(raw.get("title", f"panel {index + 1}")),
        type=panel_type,
        kind=_kind(panel_type, custom),
        unit=str(defaults.get("unit") or ""),
        thresholds=tuple(
            Threshold(
                value=None if step.get("value") is None else float(step["value"]),
                color=str(step.get("color", "green")),
            )
            for step in steps
        ),
        threshold_style=str((custom.get("thresholdsStyle") or {}).get("mode", "off")),
        targets=targets,
        description=str(raw.get("description") or ""),
        axis_label=str(custom.get("axisLabel") or ""),
        graph_mode=str((raw.get("options") or {}).get("graphMode") or "none"),
        mappings=tuple(dict(m) for m in defaults.get("mappings") or []),
        rename=_rename(raw),
        row=row,
        decimals=None if defaults.get("decimals") is None else int(defaults["decimals"]),
        min=_number(defaults.get("min")),
        max=_number(defaults.get("max")),
    )


def _kind(panel_type: str, custom: Mapping[str, Any]) -> str:
    if panel_type in ("stat", "gauge", "bargauge"):
        return "stat"
    if panel_type == "piechart":
        return "pie"
    if panel_type == "table":
        return "table"
    stacked = str((custom.get("stacking") or {}).get("mode", "none")) in ("normal", "percent")
    if panel_type == "barchart" or custom.get("drawStyle") == "bars":
        return "stacked-bars" if stacked or panel_type == "barchart" else "bars"
    return "lines"
