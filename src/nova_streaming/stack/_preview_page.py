"""The preview page: HTML, CSS and the JS that draws the panels with uPlot.

uPlot itself is served by the preview from ``node_modules`` (``/vendor/...``); this page
only turns each panel's data into uPlot options (and a table, a big number or a pie,
which uPlot does not draw), applying Grafana's units, thresholds and value mappings.
"""

# The page is HTML/JS kept readable as such, not wrapped to Python's line length.
# ruff: noqa: E501

from __future__ import annotations

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Nova Streaming - dashboard preview</title>
<link rel="stylesheet" href="/vendor/uPlot.min.css">
<style>
  body { background:#111217; color:#d8d9da; font:14px/1.4 system-ui, sans-serif; margin:0; }
  header { padding:12px 20px; background:#181b1f; border-bottom:1px solid #2c3235;
           display:flex; gap:20px; align-items:baseline; flex-wrap:wrap; }
  header h1 { font-size:18px; margin:0; color:#fff; }
  header .meta { color:#8e8e8e; font-size:12px; }
  header select { background:#22252b; color:#d8d9da; border:1px solid #2c3235; }
  main { display:grid; grid-template-columns:repeat(2, minmax(0, 1fr)); gap:12px; padding:12px 20px; }
  h2.row { grid-column:1 / -1; font-size:15px; color:#fff; margin:8px 0 0; border-bottom:1px solid #2c3235; }
  .panel { background:#181b1f; border:1px solid #2c3235; border-radius:4px; padding:8px 10px; min-height:120px; position:relative; }
  .panel.wide { grid-column:1 / -1; }
  .panel h3 { font-size:14px; margin:0 0 4px; color:#fff; font-weight:500; }
  .panel .query { font:11px monospace; color:#6e9fff; margin:0 0 6px; word-break:break-all; }
  .panel .foot { font-size:11px; color:#8e8e8e; margin-top:4px; }
  .panel .err { color:#f2495c; font-size:12px; }
  .stat { display:flex; align-items:center; justify-content:center; height:170px; border-radius:3px;
          font-size:64px; font-weight:600; color:#fff; position:relative; overflow:hidden; }
  .stat .spark { position:absolute; left:0; bottom:0; width:100%; }
  .stat .stat-value { position:relative; }
  .pie { display:flex; gap:16px; align-items:center; }
  .pie ul { list-style:none; padding:0; margin:0; font-size:12px; }
  .pie li span.sw { display:inline-block; width:10px; height:10px; margin-right:6px; }
  .exemplars { font-size:11px; color:#8e8e8e; margin-top:4px; }
  .exemplars span { color:#ff5286; margin-right:10px; }
  .tooltip { position:absolute; pointer-events:none; background:#22252bee; border:1px solid #464c54;
             padding:4px 6px; font-size:11px; z-index:10; white-space:nowrap; display:none; }
  .uplot { font-family:inherit; }
  .u-legend { font-size:11px; }
  .u-legend .u-marker { width:10px; height:10px; }
  table { border-collapse:collapse; width:100%; font-size:12px; }
  th, td { text-align:left; padding:4px 8px; border-bottom:1px solid #2c3235; }
  #alerts-wrap { padding:0 20px 20px; }
  #alerts-wrap h2 { font-size:15px; color:#fff; }
  tr[data-status="firing"] td:first-child { color:#f2495c; }
  tr[data-status="resolved"] td:first-child { color:#73bf69; }
</style>
</head>
<body data-ready="false">
<header>
  <h1 id="title">Nova Streaming</h1>
  <span class="meta" id="source"></span>
  <label class="meta">range
    <select id="range">
      <option value="5">last 5 min</option><option value="15">last 15 min</option>
      <option value="60">last 1 h</option>
    </select></label>
  <span class="meta" id="status">loading...</span>
</header>
<main id="panels"></main>
<div id="alerts-wrap">
  <h2>Alerts received from Alertmanager (local receiver)</h2>
  <section id="alerts" data-alert-count="0" data-firing-count="0">
    <table><thead><tr><th>status</th><th>alert</th><th>severity</th><th>receiver</th>
    <th>labels</th><th>summary</th><th>received</th></tr></thead><tbody></tbody></table>
  </section>
</div>
<script src="/vendor/uPlot.iife.min.js"></script>
<script>
"use strict";
const REFRESH_MS = __REFRESH_MS__;
const PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2",
                 "#b877d9", "#705da0", "#37872d", "#fade2a", "#96d98d", "#ffb357"];
const NAMED = { green: "#73bf69", red: "#f2495c", yellow: "#fade2a", orange: "#ff9830",
  blue: "#5794f2", purple: "#b877d9", "dark-red": "#c4162a", "dark-green": "#37872d",
  "dark-yellow": "#e0b400", "semi-dark-red": "#e02f44", "semi-dark-green": "#56a64b",
  "light-red": "#ff7383", "transparent": "transparent", text: "#d8d9da" };
const EXEMPLAR_COLOUR = "#ff5286";
const params = new URLSearchParams(location.search);
let minutes = Number(params.get("minutes")) || 15;
let panels = [];
const charts = new Map();   // panel index -> uPlot instance
const hidden = new Map();   // panel index -> Set of series labels the user switched off

function colour(name) { return NAMED[name] || name; }
function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// --- values: Grafana's value mappings, then units ----------------------------------------
function mapped(panel, v) {
  for (const m of panel.mappings || []) {
    const o = m.options || {};
    if (m.type === "value" && v !== null && o[String(v)]) return o[String(v)];
    if (m.type === "range" && v !== null && isFinite(v)
        && (o.from === null || o.from === undefined || v >= o.from)
        && (o.to === null || o.to === undefined || v <= o.to)) return o.result || {};
    if (m.type === "special" && (v === null || !isFinite(v))
        && ["null", "nan", "null+nan"].includes(o.match)) return o.result || {};
  }
  return null;
}
function withUnit(s, unit) {
  if (!unit || unit === "short" || unit === "none") return s;
  if (unit.startsWith("suffix:")) return s + " " + unit.slice(7).trim();
  if (unit.startsWith("prefix:")) return unit.slice(7).trim() + s;
  return s + " " + unit;
}
function number(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100 || Number.isInteger(v)) return String(Math.round(v * 100) / 100);
  if (a >= 1) return v.toFixed(2);
  if (a === 0) return "0";
  return v.toPrecision(2);
}
function fmtRaw(v, unit) {
  if (v === null || v === undefined || !isFinite(v)) return "-";
  if (unit === "percentunit") return (v * 100).toFixed(2) + "%";
  if (unit === "percent") return v.toFixed(1) + "%";
  return withUnit(number(v), unit);
}
// The text a panel shows for a value: a mapping's text (">= 1 s") wins over the number.
function fmtValue(panel, v, unit) {
  const m = mapped(panel, v);
  if (m && m.text) return m.text;
  return fmtRaw(v, unit === undefined ? panel.unit : unit);
}
function thresholdColour(panel, v) {
  const m = mapped(panel, v);
  if (m && m.color) return colour(m.color);
  let c = "green";
  for (const step of panel.thresholds) if (step.value === null || v >= step.value) c = step.color;
  return colour(c);
}
function lastValue(points) {
  for (let i = points.length - 1; i >= 0; i--) if (points[i][1] !== null) return points[i][1];
  return null;
}
function timeLabel(t) { return new Date(t * 1000).toTimeString().slice(0, 8); }
function shortId(s) { return s && s.length > 13 ? s.slice(0, 8) + "..." : s; }

// --- time series with uPlot -------------------------------------------------------------
// One x array for every series (uPlot aligns them): the query steps plus the exemplars'
// own timestamps; a series is null where it has no point, and lines span those gaps.
function aligned(data, withExemplars) {
  const xs = new Set();
  for (const s of data.series) for (const p of s.points) xs.add(p[0]);
  if (withExemplars) for (const e of data.exemplars) xs.add(e.t);
  const x = [...xs].sort((a, b) => a - b);
  const at = new Map(x.map((t, i) => [t, i]));
  const ys = data.series.map((s) => {
    const y = new Array(x.length).fill(null);
    for (const [t, v] of s.points) y[at.get(t)] = v;
    return y;
  });
  const ex = new Array(x.length).fill(null);
  const exAt = new Array(x.length).fill(null);
  if (withExemplars) for (const e of data.exemplars) {
    const i = at.get(e.t);
    if (ex[i] === null || e.value > ex[i]) { ex[i] = e.value; exAt[i] = e; }
  }
  return { x, ys, ex, exAt };
}
function stackedValues(ys) {
  const out = [], sum = new Array(ys.length ? ys[0].length : 0).fill(0);
  for (const y of ys) {
    out.push(y.map((v, i) => (v === null ? null : (sum[i] += v))));
  }
  return out;
}
function thresholdHook(panel) {
  return (u) => {
    if (panel.threshold_style === "off") return;
    const ctx = u.ctx;
    for (const step of panel.thresholds) {
      if (step.value === null) continue;
      const y = u.valToPos(step.value, "y", true);
      if (y < u.bbox.top || y > u.bbox.top + u.bbox.height) continue;
      ctx.save();
      ctx.strokeStyle = colour(step.color);
      ctx.setLineDash([6, 4]);
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.moveTo(u.bbox.left, y);
      ctx.lineTo(u.bbox.left + u.bbox.width, y);
      ctx.stroke();
      ctx.restore();
    }
  };
}
// The hover box: time, then every shown series' value as its legend formats it (raw
// value with mappings; for the exemplar points, the value and the stream they name).
function tooltipHook(box) {
  const tip = el("div", { class: "tooltip" });
  box.appendChild(tip);
  return (u) => {
    const i = u.cursor.idx;
    if (i === null || i === undefined || u.cursor.left < 0) { tip.style.display = "none"; return; }
    const rows = [timeLabel(u.data[0][i])];
    for (let k = 1; k < u.series.length; k++) {
      const s = u.series[k];
      if (!s.show || u.data[k][i] === null) continue;
      rows.push(`${s.label}: ${s.value(u, u.data[k][i], k, i)}`);
    }
    tip.replaceChildren(...rows.map((r) => el("div", {}, r)));
    tip.style.display = "block";
    tip.style.left = (u.over.offsetLeft + u.cursor.left + 12) + "px";
    tip.style.top = (u.over.offsetTop + u.cursor.top + 12) + "px";
  };
}
function drawTimeSeries(box, panel, data, node) {
  const kind = panel.kind;
  const exemplarsOn = panel.targets.some((t) => t.exemplar);
  const { x, ys, ex, exAt } = aligned(data, exemplarsOn);
  const stacked = kind === "stacked-bars";
  const drawn = stacked ? stackedValues(ys) : ys;
  const labels = data.series.map((s) => s.name || "(no name)");
  const off = hidden.get(panel.index) || new Set();
  const bars = kind === "bars" || stacked ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined;
  const entries = labels.map((label, i) => {
    const stroke = PALETTE[i % PALETTE.length];
    return { column: drawn[i], opt: {
      label, stroke, width: 1.6, spanGaps: true, show: !off.has(label),
      fill: bars ? stroke + "cc" : undefined, paths: bars,
      points: { show: !bars, size: 4 },
      // Hover values: the raw value (not the stacked sum), with the panel's mappings.
      value: (u, v, s, idx) => (idx === null ? "-" : fmtValue(panel, ys[i][idx])),
    } };
  });
  // Stacked bars: draw the largest cumulative first, so each smaller one sits on top.
  if (stacked) entries.reverse();
  if (exemplarsOn) {
    entries.push({ column: ex, opt: {
      label: "exemplars", stroke: EXEMPLAR_COLOUR, fill: EXEMPLAR_COLOUR, paths: () => null,
      show: !off.has("exemplars"),
      points: { show: true, size: 9, width: 1, stroke: "#fff", fill: EXEMPLAR_COLOUR },
      value: (u, v, s, idx) => {
        const e = idx === null ? null : exAt[idx];
        return e ? `${fmtValue(panel, e.value)} stream_id=${e.labels.stream_id || "?"}` : "-";
      },
    } });
  }
  const series = [{ value: (u, t) => (t === null ? "-" : timeLabel(t)) }, ...entries.map((e) => e.opt)];
  const columns = [x, ...entries.map((e) => e.column)];
  const finite = drawn.flat().concat(ex).filter((v) => v !== null && isFinite(v));
  const steps = panel.threshold_style === "off" ? [] :
    panel.thresholds.filter((t) => t.value !== null).map((t) => t.value);
  let top = Math.max(0, ...finite);
  // A threshold close above the data (within 3x) stays in view: the distance to it shows.
  for (const v of steps) if (v > top && v <= 3 * Math.max(top, 1e-9)) top = v;
  if (panel.max !== null && panel.max !== undefined) top = panel.max;
  const width = Math.max(300, box.clientWidth || 600);
  const opts = {
    width, height: 230,
    cursor: { drag: { x: true, y: false }, points: { size: 6 } },
    legend: { live: true },
    // The x range is the asked range, as in Grafana (not just where the data is).
    scales: { x: { time: true, range: [data.start, data.end] },
              y: { range: [panel.min ?? 0, top > 0 ? top * 1.08 : 1] } },
    axes: [
      { stroke: "#9fa1a6", grid: { stroke: "#2c3235" }, ticks: { stroke: "#2c3235" }, space: 70,
        values: (u, vals) => vals.map((v) => timeLabel(v).slice(0, (data.end - data.start) > 1800 ? 5 : 8)) },
      { stroke: "#9fa1a6", grid: { stroke: "#2c3235" }, ticks: { stroke: "#2c3235" }, size: 70,
        label: panel.axis_label || undefined, labelSize: panel.axis_label ? 16 : 0,
        values: (u, vals) => vals.map((v) => fmtRaw(v, panel.unit && panel.unit.startsWith("suffix:") ? "short" : panel.unit)) },
    ],
    series,
    hooks: {
      draw: [thresholdHook(panel)],
      setCursor: [tooltipHook(box)],
      setSeries: [(u, s) => {
        if (s === null) return;
        const set = hidden.get(panel.index) || new Set();
        if (u.series[s].show) set.delete(u.series[s].label); else set.add(u.series[s].label);
        hidden.set(panel.index, set);
        node.dataset.hiddenSeries = [...set].join(",");
      }],
    },
  };
  const chart = new uPlot(opts, columns, box);
  charts.set(panel.index, chart);
  node.dataset.uplot = chart.root.querySelector("canvas") ? "true" : "false";
  // The exemplars' streams, named under the chart too (the points name them on hover).
  const streams = [...new Set(data.exemplars.map((e) => e.labels.stream_id).filter(Boolean))];
  node.dataset.exemplarCount = String(exemplarsOn ? data.exemplars.length : 0);
  node.dataset.exemplarStreams = streams.join(" ");
  if (exemplarsOn) {
    const list = el("div", { class: "exemplars" }, data.exemplars.length ?
      `exemplars (${data.exemplars.length}), streams: ` : "no exemplars in range");
    for (const sid of streams) {
      const worst = Math.max(...data.exemplars.filter((e) => e.labels.stream_id === sid).map((e) => e.value));
      list.appendChild(el("span", { "data-stream-id": sid, title: sid }, `\u25c6 ${sid} (max ${fmtValue(panel, worst)})`));
    }
    box.appendChild(list);
  }
  // What the latest value reads as (e.g. ">= 1 s" from a mapping), for the page's checks.
  const latest = data.series.map((s) => lastValue(s.points)).filter((v) => v !== null);
  if (latest.length) node.dataset.lastText = fmtValue(panel, latest[0]);
}

// --- a stat: the number (mappings, threshold colour) over a uPlot sparkline --------------
function drawStat(box, panel, data, node) {
  const values = data.series.map((s) => lastValue(s.points)).filter((v) => v !== null);
  const v = values.length ? values.reduce((a, b) => a + b, 0) : null;
  const bg = v === null ? "#2c3235" : thresholdColour(panel, v);
  const div = el("div", { class: "stat", style: `background:${bg}` });
  box.appendChild(div);
  if (panel.graph_mode === "area") {
    const sums = new Map();
    for (const s of data.series) for (const [t, y] of s.points) if (y !== null) sums.set(t, (sums.get(t) || 0) + y);
    const pts = [...sums.entries()].sort((a, b) => a[0] - b[0]);
    if (pts.length >= 2) {
      const spark = el("div", { class: "spark" });
      div.appendChild(spark);
      const chart = new uPlot({
        width: Math.max(200, box.clientWidth || 500), height: 100, cursor: { show: false },
        legend: { show: false }, axes: [{ show: false }, { show: false }],
        scales: { x: { time: true, range: [data.start, data.end] }, y: { range: [0, Math.max(...pts.map((p) => p[1])) * 1.1 || 1] } },
        series: [{}, { stroke: "rgba(255,255,255,0.45)", fill: "rgba(255,255,255,0.18)", points: { show: false } }],
      }, [pts.map((p) => p[0]), pts.map((p) => p[1])], spark);
      charts.set(panel.index, chart);
      node.dataset.uplot = "true";
    }
  }
  div.appendChild(el("span", { class: "stat-value" }, v === null ? "-" : fmtValue(panel, v)));
  node.dataset.lastValue = v === null ? "" : String(v);
  node.dataset.lastText = v === null ? "" : fmtValue(panel, v);
  node.dataset.thresholdColor = bg;
}

// --- a pie (uPlot draws no pies): a canvas with a legend that shows values --------------
function drawPie(box, panel, data) {
  const slices = data.series.map((s, i) => ({ name: s.name || "(no name)", v: Math.max(0, lastValue(s.points) || 0), c: PALETTE[i % PALETTE.length] }));
  const total = slices.reduce((a, s) => a + s.v, 0);
  const wrap = el("div", { class: "pie" });
  const canvas = el("canvas", { width: 220, height: 220 });
  const ctx = canvas.getContext("2d");
  let angle = -Math.PI / 2;
  if (total <= 0) { ctx.fillStyle = "#2c3235"; ctx.beginPath(); ctx.arc(110, 110, 100, 0, 2 * Math.PI); ctx.fill(); }
  for (const s of slices) {
    if (s.v <= 0) continue;
    const sweep = 2 * Math.PI * s.v / total;
    ctx.fillStyle = s.c; ctx.strokeStyle = "#181b1f";
    ctx.beginPath(); ctx.moveTo(110, 110); ctx.arc(110, 110, 100, angle, angle + sweep); ctx.closePath();
    ctx.fill(); ctx.stroke();
    angle += sweep;
  }
  const list = el("ul");
  for (const s of slices) {
    const li = el("li", { title: `${s.name}: ${fmtValue(panel, s.v)}` });
    li.appendChild(el("span", { class: "sw", style: `background:${s.c}` }));
    li.appendChild(document.createTextNode(`${shortId(s.name)}: ${fmtValue(panel, s.v)}` + (total > 0 ? ` (${(100 * s.v / total).toFixed(0)}%)` : "")));
    list.appendChild(li);
  }
  wrap.append(canvas, list);
  box.appendChild(wrap);
}

// --- a table: instant series merged on their labels (Grafana's "merge"), renamed --------
function drawTable(box, panel, data, node) {
  const rows = new Map();
  const keys = new Set();
  const refs = [];
  for (const s of data.series) {
    const labels = Object.fromEntries(Object.entries(s.labels).filter(([k]) => k !== "__name__"));
    const id = labels.stream_id !== undefined ? "stream_id=" + labels.stream_id : JSON.stringify(labels);
    const row = rows.get(id) || {};
    Object.assign(row, labels);
    row["Value #" + s.refId] = lastValue(s.points);
    rows.set(id, row);
    Object.keys(labels).forEach((k) => keys.add(k));
    if (!refs.includes(s.refId)) refs.push(s.refId);
  }
  const order = ["stream_id", "region", "quality"];
  const labelCols = [...keys].sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99) || a.localeCompare(b));
  const valueCols = refs.sort().map((r) => "Value #" + r);
  const first = valueCols[0];
  const sorted = [...rows.values()].sort((a, b) => (b[first] ?? -Infinity) - (a[first] ?? -Infinity));
  const table = el("table", { class: "data" });
  const head = el("tr");
  for (const c of [...labelCols, ...valueCols]) head.appendChild(el("th", {}, (panel.rename || {})[c] || c));
  table.appendChild(el("thead")).appendChild(head);
  const body = table.appendChild(el("tbody"));
  for (const row of sorted) {
    const tr = el("tr", { "data-stream-id": row.stream_id || "" });
    for (const c of labelCols) tr.appendChild(el("td", {}, row[c] ?? ""));
    for (const c of valueCols) {
      const v = row[c];
      // The panel's unit and thresholds are the first column's (Grafana: field defaults).
      const td = el("td", {}, c === first ? fmtValue(panel, v) : fmtRaw(v, "short"));
      if (c === first && v !== null && v !== undefined) td.style.color = thresholdColour(panel, v);
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  box.appendChild(table);
  node.dataset.rowCount = String(sorted.length);
  node.dataset.firstRow = sorted.length ? (sorted[0].stream_id || "") : "";
}

function panelNode(panel) {
  const node = el("section", { class: "panel" + (panel.kind === "table" ? " wide" : ""),
    "data-panel-index": panel.index, "data-panel-title": panel.title, "data-panel-type": panel.type,
    "data-panel-kind": panel.kind, "data-unit": panel.unit, "data-row": panel.row || "",
    "data-state": "loading", "data-has-data": "false", "data-series-count": "0", "data-uplot": "false",
    "data-exemplar-count": "0", "data-exemplar-streams": "",
    "data-thresholds": panel.thresholds.map((t) => `${t.value === null ? "base" : t.value}:${t.color}`).join(" ") });
  node.appendChild(el("h3", {}, panel.title));
  for (const t of panel.targets) node.appendChild(el("p", { class: "query" }, t.expr));
  node.appendChild(el("div", { class: "body" }));
  const steps = panel.thresholds.map((t) => (t.value === null ? "base " : "from " + fmtRaw(t.value, panel.unit) + " ") + t.color);
  const maps = (panel.mappings || []).map((m) => (m.options && (m.options.result || {}).text) || m.type).filter(Boolean);
  node.appendChild(el("div", { class: "foot" },
    `${panel.type} (${panel.kind}) | unit ${panel.unit || "none"} | thresholds: ${steps.join(", ") || "none"}` +
    (maps.length ? ` | mappings: ${maps.join(", ")}` : "")));
  return node;
}

async function refreshPanel(panel, node) {
  const body = node.querySelector(".body");
  try {
    const response = await fetch(`/api/panels/${panel.index}?minutes=${minutes}`, { cache: "no-store" });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.statusText);
    const old = charts.get(panel.index);
    if (old) { old.destroy(); charts.delete(panel.index); }
    body.replaceChildren();
    const points = data.series.reduce((n, s) => n + s.points.filter((p) => p[1] !== null).length, 0);
    node.dataset.seriesCount = String(data.series.length);
    node.dataset.pointCount = String(points);
    node.dataset.hasData = points > 0 ? "true" : "false";
    if (panel.kind === "stat") drawStat(body, panel, data, node);
    else if (panel.kind === "pie") drawPie(body, panel, data);
    else if (panel.kind === "table") drawTable(body, panel, data, node);
    else drawTimeSeries(body, panel, data, node);
    if (!points) body.appendChild(el("div", { class: "foot" }, "no data in range"));
    node.dataset.state = "ok";
  } catch (err) {
    node.dataset.state = "error";
    node.dataset.hasData = "false";
    body.replaceChildren(el("div", { class: "err" }, "panel failed: " + err.message));
  }
}

async function refreshAlerts() {
  const section = document.getElementById("alerts");
  const tbody = section.querySelector("tbody");
  try {
    const response = await fetch("/api/alerts", { cache: "no-store" });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.statusText);
    tbody.replaceChildren();
    for (const a of data.alerts) {
      const extra = Object.entries(a.labels).filter(([k]) => !["alertname", "severity"].includes(k))
        .map(([k, v]) => `${k}=${v}`).join(" ");
      const tr = el("tr", { "data-alertname": a.alertname, "data-status": a.status });
      for (const text of [a.status, a.alertname, a.severity, a.receiver, extra, a.summary,
                          a.received_at ? timeLabel(a.received_at) : ""]) tr.appendChild(el("td", {}, text));
      tbody.appendChild(tr);
    }
    if (!data.alerts.length) {
      const tr = el("tr", {}); tr.appendChild(el("td", { colspan: 7 }, data.receiver ? "none received yet" : "no receiver configured"));
      tbody.appendChild(tr);
    }
    section.dataset.alertCount = String(data.alerts.length);
    section.dataset.firingCount = String(data.alerts.filter((a) => a.status === "firing").length);
    section.dataset.state = "ok";
  } catch (err) {
    section.dataset.state = "error";
    tbody.replaceChildren();
    const tr = el("tr", {}); tr.appendChild(el("td", { colspan: 7, class: "err" }, "alerts unavailable: " + err.message));
    tbody.appendChild(tr);
  }
}

async function refreshAll() {
  const nodes = [...document.querySelectorAll("section.panel")];
  await Promise.all([...panels.map((p, i) => refreshPanel(p, nodes[i])), refreshAlerts()]);
  const withData = nodes.filter((n) => n.dataset.hasData === "true").length;
  document.body.dataset.panelsWithData = String(withData);
  document.body.dataset.ready = "true";
  document.getElementById("status").textContent =
    `${withData}/${panels.length} panels with data | refreshed ${timeLabel(Date.now() / 1000)} | every ${REFRESH_MS / 1000}s`;
}

async function main() {
  const select = document.getElementById("range");
  select.value = String(minutes);
  select.addEventListener("change", () => { minutes = Number(select.value); refreshAll(); });
  if (typeof uPlot === "undefined") {
    document.getElementById("status").textContent =
      "uPlot missing: run ./scripts/setup (npm ci) so the preview can serve node_modules/uplot";
    document.body.dataset.ready = "error";
    return;
  }
  try {
    const response = await fetch("/api/dashboard", { cache: "no-store" });
    const dash = await response.json();
    if (!response.ok) throw new Error(dash.error || response.statusText);
    document.getElementById("title").textContent = dash.title;
    document.getElementById("source").textContent = `${dash.source} (uid ${dash.uid}) | Prometheus ${dash.prometheus}`;
    panels = dash.panels;
    document.body.dataset.panelCount = String(panels.length);
    const main = document.getElementById("panels");
    let row = "";
    for (const p of panels) {
      if ((p.row || "") !== row) {
        row = p.row || "";
        if (row) main.appendChild(el("h2", { class: "row", "data-row": row }, row));
      }
      main.appendChild(panelNode(p));
    }
  } catch (err) {
    document.getElementById("status").textContent = "dashboard unavailable: " + err.message;
    document.body.dataset.ready = "error";
    return;
  }
  await refreshAll();
  setInterval(refreshAll, REFRESH_MS);
}
main();
</script>
</body>
</html>
"""
