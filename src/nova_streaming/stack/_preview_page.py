"""The preview page: plain HTML with inline CSS, JS and SVG (no CDN: no network here)."""

# The page is HTML/JS kept readable as such, not wrapped to Python's line length.
# ruff: noqa: E501

from __future__ import annotations

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Nova Streaming - dashboard preview</title>
<style>
  body { background:#111217; color:#d8d9da; font:14px/1.4 system-ui, sans-serif; margin:0; }
  header { padding:12px 20px; background:#181b1f; border-bottom:1px solid #2c3235;
           display:flex; gap:20px; align-items:baseline; flex-wrap:wrap; }
  header h1 { font-size:18px; margin:0; color:#fff; }
  header .meta { color:#8e8e8e; font-size:12px; }
  header select { background:#22252b; color:#d8d9da; border:1px solid #2c3235; }
  main { display:grid; grid-template-columns:repeat(2, minmax(0, 1fr)); gap:12px; padding:12px 20px; }
  .panel { background:#181b1f; border:1px solid #2c3235; border-radius:4px; padding:8px 10px; min-height:120px; }
  .panel h2 { font-size:14px; margin:0 0 4px; color:#fff; font-weight:500; }
  .panel .query { font:11px monospace; color:#6e9fff; margin:0 0 6px; word-break:break-all; }
  .panel .foot { font-size:11px; color:#8e8e8e; margin-top:4px; }
  .panel .err { color:#f2495c; font-size:12px; }
  .legend { display:flex; flex-wrap:wrap; gap:4px 12px; font-size:11px; margin-top:4px; }
  .legend span.sw { display:inline-block; width:10px; height:10px; margin-right:4px; vertical-align:middle; }
  .stat { display:flex; align-items:center; justify-content:center; height:170px; border-radius:3px;
          font-size:64px; font-weight:600; color:#fff; position:relative; overflow:hidden; }
  .stat .spark { position:absolute; left:0; bottom:0; width:100%; height:60%; }
  .stat .stat-value { position:relative; }
  svg text { fill:#9fa1a6; font-size:10px; }
  #alerts-wrap { padding:0 20px 20px; }
  #alerts-wrap h2 { font-size:15px; color:#fff; }
  table { border-collapse:collapse; width:100%; font-size:12px; }
  th, td { text-align:left; padding:4px 8px; border-bottom:1px solid #2c3235; }
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
<script>
"use strict";
const REFRESH_MS = __REFRESH_MS__;
const PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2",
                 "#b877d9", "#705da0", "#37872d", "#fade2a", "#96d98d", "#ffb357"];
const NAMED = { green: "#73bf69", red: "#f2495c", yellow: "#fade2a", orange: "#ff9830",
  blue: "#5794f2", purple: "#b877d9", "dark-red": "#c4162a", "dark-green": "#37872d",
  "dark-yellow": "#e0b400", "semi-dark-red": "#e02f44", "semi-dark-green": "#56a64b",
  "light-red": "#ff7383", "transparent": "transparent", text: "#d8d9da" };
const NS = "http://www.w3.org/2000/svg";
const params = new URLSearchParams(location.search);
let minutes = Number(params.get("minutes")) || 15;
let panels = [];

function colour(name) { return NAMED[name] || name; }
function el(tag, attrs, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(NS, tag.slice(4))
                                      : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function fmt(v, unit) {
  if (v === null || v === undefined || !isFinite(v)) return "-";
  if (unit === "percentunit") return (v * 100).toFixed(1) + "%";
  let s;
  const a = Math.abs(v);
  if (a >= 1e6) s = (v / 1e6).toFixed(2) + "M";
  else if (a >= 1e4) s = (v / 1e3).toFixed(1) + "k";
  else if (a >= 100 || Number.isInteger(v)) s = String(Math.round(v * 100) / 100);
  else if (a >= 1) s = v.toFixed(2);
  else if (a === 0) s = "0";
  else s = v.toPrecision(2);
  return withUnit(s, unit);
}
function withUnit(s, unit) {
  if (!unit || unit === "short" || unit === "none") return s;
  if (unit.startsWith("suffix:")) return s + " " + unit.slice(7).trim();
  if (unit.startsWith("prefix:")) return unit.slice(7).trim() + s;
  return s + " " + unit;
}
// Axis ticks share the step's decimals: 0 0.5 1 1.5, 0 0.005 0.01 (not 0.50, 0.0050).
function fmtTick(v, step, unit) {
  if (unit === "percentunit") return fmt(v, unit);
  let d = 0;
  while (d < 8 && Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) > 1e-6) d++;
  const a = Math.abs(v);
  const s = a >= 1e6 ? (v / 1e6).toFixed(Math.max(0, d - 6)) + "M"
          : a >= 1e4 ? (v / 1e3).toFixed(Math.max(0, d - 3)) + "k" : v.toFixed(d);
  return withUnit(s, unit);
}
function thresholdColour(panel, v) {
  let c = "green";
  for (const step of panel.thresholds) {
    if (step.value === null || v >= step.value) c = step.color;
  }
  return colour(c);
}
function lastValue(points) {
  for (let i = points.length - 1; i >= 0; i--) if (points[i][1] !== null) return points[i][1];
  return null;
}
// Round axis steps (1, 2, 2.5, 5 x 10^k), as Grafana picks them: a count from 0 to 4
// gets ticks 0 1 2 3 4 5, never 1.25 or 3.75.
function niceScale(v) {
  if (!(v > 0)) return { max: 1, step: 0.25 };
  const raw = v / 5, p = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = 10 * p;
  for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * p) { step = m * p; break; }
  return { max: Math.ceil(v / step - 1e-9) * step, step };
}
function timeLabel(t) {
  return new Date(t * 1000).toTimeString().slice(0, 8);
}

// A threshold line close above the data (within 3x) stays on the chart, so the distance to
// it shows (latency 60 ms vs the 100 ms line); a far one (1000 streams) would flatten it.
function withThresholds(panel, max) {
  let top = max;
  if (panel.threshold_style === "off") return top;
  for (const step of panel.thresholds) {
    if (step.value !== null && step.value > top && step.value <= 3 * max) top = step.value;
  }
  return top;
}
function axes(svg, geo, data, scale, unit, label) {
  const yMax = scale.max;
  for (let i = 0; i * scale.step <= yMax + 1e-9; i++) {
    const v = i * scale.step, y = geo.y(v);
    svg.appendChild(el("svg:line", { x1: geo.left, x2: geo.right, y1: y, y2: y,
      stroke: "#2c3235" }));
    // Axis ticks carry the number (and a short unit); a "suffix:" unit is in the legend.
    const tickUnit = unit && unit.startsWith("suffix:") ? "short" : unit;
    svg.appendChild(el("svg:text", { x: geo.left - 4, y: y + 3, "text-anchor": "end" },
      fmtTick(v, scale.step, tickUnit)));
  }
  if (label) {
    const mid = (geo.top + geo.bottom) / 2;
    svg.appendChild(el("svg:text", { x: 10, y: mid, "text-anchor": "middle", class: "axis-label",
      transform: `rotate(-90 10 ${mid})` }, label));
  }
  for (let i = 0; i <= 4; i++) {
    const t = data.start + (data.end - data.start) * i / 4;
    svg.appendChild(el("svg:text", { x: geo.x(t), y: geo.bottom + 14,
      "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, timeLabel(t)));
  }
}
function geometry(data, yMax) {
  const W = 640, H = 230, left = 66, right = W - 10, top = 8, bottom = H - 22;
  return { W, H, left, right, top, bottom,
    x: (t) => left + (right - left) * (t - data.start) / Math.max(1, data.end - data.start),
    y: (v) => bottom - (bottom - top) * v / yMax };
}
function thresholdLines(svg, geo, panel, yMax) {
  if (panel.threshold_style === "off") return;
  for (const step of panel.thresholds) {
    if (step.value === null || step.value > yMax) continue;
    const y = geo.y(step.value);
    svg.appendChild(el("svg:line", { x1: geo.left, x2: geo.right, y1: y, y2: y,
      stroke: colour(step.color), "stroke-dasharray": "6 4", "data-threshold": step.value }));
  }
}

function drawLines(box, panel, data) {
  let max = 0;
  for (const s of data.series) for (const p of s.points) if (p[1] !== null) max = Math.max(max, p[1]);
  const scale = niceScale(withThresholds(panel, max) * 1.05), yMax = scale.max;
  const geo = geometry(data, yMax);
  const svg = el("svg:svg", { viewBox: `0 0 ${geo.W} ${geo.H}`, width: "100%" });
  axes(svg, geo, data, scale, panel.unit, panel.axis_label);
  data.series.forEach((s, i) => {
    let d = "", pen = false;
    for (const [t, v] of s.points) {
      if (v === null) { pen = false; continue; }
      d += (pen ? "L" : "M") + geo.x(t).toFixed(1) + "," + geo.y(v).toFixed(1);
      pen = true;
    }
    const stroke = PALETTE[i % PALETTE.length];
    svg.appendChild(el("svg:path", { d, fill: "none", stroke, "stroke-width": 1.6,
      "data-series": s.name }));
    const finite = s.points.filter((p) => p[1] !== null);
    // A series only seconds old is a dot or two: mark its points so it can be seen.
    if (finite.length <= 3) for (const [t, v] of finite) {
      svg.appendChild(el("svg:circle", { cx: geo.x(t), cy: geo.y(v), r: 3, fill: stroke }));
    }
  });
  thresholdLines(svg, geo, panel, yMax);
  box.appendChild(svg);
}

function drawBars(box, panel, data, stacked) {
  const times = [...new Set(data.series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const at = data.series.map((s) => new Map(s.points.map((p) => [p[0], p[1]])));
  let max = 0;
  for (const t of times) {
    let sum = 0;
    at.forEach((m) => { const v = m.get(t); if (v !== null && v !== undefined) sum = stacked ? sum + v : Math.max(sum, v); });
    max = Math.max(max, sum);
  }
  const scale = niceScale(withThresholds(panel, max) * 1.05), yMax = scale.max;
  const geo = geometry(data, yMax);
  const svg = el("svg:svg", { viewBox: `0 0 ${geo.W} ${geo.H}`, width: "100%" });
  axes(svg, geo, data, scale, panel.unit, panel.axis_label);
  const bw = Math.max(1, (geo.x(data.start + data.step) - geo.x(data.start)) * 0.8);
  for (const t of times) {
    let base = 0;
    at.forEach((m, i) => {
      const v = m.get(t);
      if (v === null || v === undefined || v <= 0) return;
      const y0 = geo.y(stacked ? base : 0), y1 = geo.y(stacked ? base + v : v);
      svg.appendChild(el("svg:rect", { x: (geo.x(t) - bw / 2).toFixed(1), y: y1.toFixed(1),
        width: bw.toFixed(1), height: Math.max(0.5, y0 - y1).toFixed(1),
        fill: PALETTE[i % PALETTE.length] }));
      if (stacked) base += v;
    });
  }
  thresholdLines(svg, geo, panel, yMax);
  box.appendChild(svg);
}

function drawPie(box, panel, data) {
  const values = data.series.map((s) => Math.max(0, lastValue(s.points) || 0));
  const total = values.reduce((a, b) => a + b, 0);
  const svg = el("svg:svg", { viewBox: "0 0 640 230", width: "100%" });
  const cx = 320, cy = 115, r = 100;
  if (total <= 0) {
    svg.appendChild(el("svg:circle", { cx, cy, r, fill: "#2c3235" }));
    svg.appendChild(el("svg:text", { x: cx, y: cy, "text-anchor": "middle" }, "all zero"));
  } else {
    let angle = -Math.PI / 2;
    values.forEach((v, i) => {
      if (v <= 0) return;
      const sweep = 2 * Math.PI * v / total;
      const fill = PALETTE[i % PALETTE.length];
      if (sweep >= 2 * Math.PI - 1e-9) {
        svg.appendChild(el("svg:circle", { cx, cy, r, fill }));
      } else {
        const x0 = cx + r * Math.cos(angle), y0 = cy + r * Math.sin(angle);
        const x1 = cx + r * Math.cos(angle + sweep), y1 = cy + r * Math.sin(angle + sweep);
        const large = sweep > Math.PI ? 1 : 0;
        svg.appendChild(el("svg:path", { d: `M${cx},${cy} L${x0},${y0} A${r},${r} 0 ${large} 1 ${x1},${y1} Z`,
          fill, stroke: "#181b1f" }));
      }
      angle += sweep;
    });
  }
  box.appendChild(svg);
}

// Grafana's stat graphMode "area": the summed series as a faint area behind the number.
function sparkline(div, data) {
  const sums = new Map();
  for (const s of data.series) for (const [t, v] of s.points) {
    if (v !== null) sums.set(t, (sums.get(t) || 0) + v);
  }
  const points = [...sums.entries()].sort((a, b) => a[0] - b[0]);
  if (points.length < 2) return;
  const max = Math.max(...points.map((p) => p[1])) || 1;
  const W = 600, H = 100, t0 = data.start, span = Math.max(1, data.end - data.start);
  let d = `M${(W * (points[0][0] - t0) / span).toFixed(1)},${H}`;
  for (const [t, v] of points) d += `L${(W * (t - t0) / span).toFixed(1)},${(H - H * 0.9 * v / max).toFixed(1)}`;
  d += `L${(W * (points[points.length - 1][0] - t0) / span).toFixed(1)},${H}Z`;
  const svg = el("svg:svg", { class: "spark", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  svg.appendChild(el("svg:path", { d, fill: "rgba(255,255,255,0.18)", stroke: "rgba(255,255,255,0.45)" }));
  div.appendChild(svg);
}
function drawStat(box, panel, data, node) {
  const values = data.series.map((s) => lastValue(s.points)).filter((v) => v !== null);
  const v = values.length ? values.reduce((a, b) => a + b, 0) : null;
  const bg = v === null ? "#2c3235" : thresholdColour(panel, v);
  const div = el("div", { class: "stat", style: `background:${bg}` });
  if (panel.graph_mode === "area") sparkline(div, data);
  div.appendChild(el("span", { class: "stat-value" }, fmt(v, panel.unit)));
  node.dataset.lastValue = v === null ? "" : String(v);
  node.dataset.thresholdColor = bg;
  box.appendChild(div);
}

function legend(box, panel, data) {
  const lg = el("div", { class: "legend" });
  data.series.forEach((s, i) => {
    const item = el("span", {});
    item.appendChild(el("span", { class: "sw", style: `background:${PALETTE[i % PALETTE.length]}` }));
    item.appendChild(document.createTextNode(`${s.name || "(no name)"}: ${fmt(lastValue(s.points), panel.unit)}`));
    lg.appendChild(item);
  });
  box.appendChild(lg);
}

function panelNode(panel) {
  const node = el("section", { class: "panel", "data-panel-index": panel.index,
    "data-panel-title": panel.title, "data-panel-type": panel.type, "data-panel-kind": panel.kind,
    "data-unit": panel.unit, "data-state": "loading", "data-has-data": "false",
    "data-series-count": "0",
    "data-thresholds": panel.thresholds.map((t) => `${t.value === null ? "base" : t.value}:${t.color}`).join(" ") });
  node.appendChild(el("h2", {}, panel.title));
  for (const t of panel.targets) node.appendChild(el("p", { class: "query" }, t.expr));
  node.appendChild(el("div", { class: "body" }));
  const steps = panel.thresholds.map((t) => (t.value === null ? "base " : "from " + fmt(t.value, panel.unit) + " ") + t.color);
  node.appendChild(el("div", { class: "foot" },
    `${panel.type} (${panel.kind}) | unit ${panel.unit || "none"} | thresholds: ${steps.join(", ") || "none"}`));
  return node;
}

async function refreshPanel(panel, node) {
  const body = node.querySelector(".body");
  try {
    const response = await fetch(`/api/panels/${panel.index}?minutes=${minutes}`, { cache: "no-store" });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.statusText);
    body.replaceChildren();
    const points = data.series.reduce((n, s) => n + s.points.filter((p) => p[1] !== null).length, 0);
    node.dataset.seriesCount = String(data.series.length);
    node.dataset.pointCount = String(points);
    node.dataset.hasData = points > 0 ? "true" : "false";
    if (panel.kind === "stat") drawStat(body, panel, data, node);
    else if (panel.kind === "pie") drawPie(body, panel, data);
    else if (panel.kind === "stacked-bars") drawBars(body, panel, data, true);
    else if (panel.kind === "bars") drawBars(body, panel, data, false);
    else drawLines(body, panel, data);
    if (panel.kind !== "stat") legend(body, panel, data);
    if (!points) body.appendChild(el("div", { class: "foot" }, "no data in range"));
    node.dataset.state = "ok";
  } catch (err) {
    node.dataset.state = "error";
    node.dataset.hasData = "false";
    body.replaceChildren(el("div", { class: "err" }, "query failed: " + err.message));
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
  try {
    const response = await fetch("/api/dashboard", { cache: "no-store" });
    const dash = await response.json();
    if (!response.ok) throw new Error(dash.error || response.statusText);
    document.getElementById("title").textContent = dash.title;
    document.getElementById("source").textContent = `${dash.source} (uid ${dash.uid}) | Prometheus ${dash.prometheus}`;
    panels = dash.panels;
    document.body.dataset.panelCount = String(panels.length);
    const main = document.getElementById("panels");
    for (const p of panels) main.appendChild(panelNode(p));
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
