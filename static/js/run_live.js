// Live run page: polls the run's status JSON, updates the facts and progress bar, and draws the
// recorded events as plotly curves (one trace per series and metric) without reloading the page.

const root = document.getElementById("run-state");
const chartsEl = document.getElementById("run-charts");
const metricsShown = chartsEl ? JSON.parse(chartsEl.dataset.metrics || "[]") : [];

function setField(name, value) {
  const el = root.querySelector(`[data-field="${name}"]`);
  if (!el) return;
  if (el.tagName === "PROGRESS") el.value = value;
  else el.textContent = value;
  if (name === "status") el.className = `status status-${value}`;
}

function fmtDuration(s) {
  if (s == null) return "—";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.round(s % 60);
  return (h ? `${h}h ` : "") + (h || m ? `${m}m ` : "") + `${sec}s`;
}

// Every cell is created before the first plot: plotly sizes a plot from its cell when it draws it, and a
// cell laid out alone spans the whole grid until its siblings arrive. A ResizeObserver keeps each plot at
// its cell's width afterwards (window resizes, the grid reflowing to fewer columns).
const cells = new Map();
const resizer = window.ResizeObserver
  ? new ResizeObserver((entries) => {
      for (const entry of entries) if (entry.target.dataset.drawn) window.Plotly.Plots.resize(entry.target);
    })
  : null;

function cellFor(metric) {
  if (!cells.has(metric.key)) {
    const el = document.createElement("div");
    el.id = `chart-${metric.key}`;
    el.className = "chart";
    chartsEl.appendChild(el);
    cells.set(metric.key, el);
    if (resizer) resizer.observe(el);
  }
  return cells.get(metric.key);
}

// plotly does not wrap titles: a long one ("VAL label agreement (Dice, picks the kept epoch)") ran past the edge of
// a chart a third of the page wide
function wrapped(text, width = 30) {
  const lines = [];
  for (const word of text.split(" ")) {
    const last = lines.length ? lines[lines.length - 1] : null;
    if (last !== null && `${last} ${word}`.length <= width) lines[lines.length - 1] = `${last} ${word}`;
    else lines.push(word);
  }
  return lines.join("<br>");
}

function drawCharts(series) {
  if (!chartsEl || !window.Plotly) return;
  metricsShown.forEach(cellFor);
  for (const metric of metricsShown) {
    const traces = [];
    for (const [name, points] of Object.entries(series)) {
      const pts = points.filter((p) => p[metric.key] != null);
      if (!pts.length) continue;
      traces.push({ x: pts.map((p) => p.step), y: pts.map((p) => p[metric.key]), mode: "lines+markers",
                    name: `${name} ${metric.label}` });
    }
    const el = cellFor(metric);
    const title = wrapped(metric.label);
    const extraLines = title.split("<br>").length - 1;
    window.Plotly.react(el, traces, { title: { text: title }, xaxis: { title: { text: metric.x || "epoch" } },
      margin: { t: 40 + 18 * extraLines, r: 10, b: 40, l: 50 }, height: 280 + 18 * extraLines, autosize: true },
      { displayModeBar: false, responsive: true });
    el.dataset.drawn = "1";
  }
}

async function poll() {
  try {
    const resp = await fetch(root.dataset.statusUrl, { headers: { Accept: "application/json" } });
    if (resp.ok) {
      const s = await resp.json();
      setField("status", s.status);
      setField("message", s.message);
      setField("progress", s.progress);
      setField("device", s.device || "—");
      setField("attempts", s.attempts);
      setField("duration", fmtDuration(s.duration_s));
      setField("error", s.error);
      drawCharts(s.series);
      const steps = Object.values(s.series).flat().map((p) => p.step);
      if (steps.length && !s.finished) document.querySelectorAll("[data-epochs-done]").forEach((el) => { el.textContent = Math.max(...steps); });
      root.dataset.status = s.status;
      // started or finished since the page was drawn: the page itself changes (start time, code version, Cancel,
      // cluster maps, the next step's link), so it is drawn again once
      const rendered = root.dataset.renderedStatus;
      if (rendered && s.status !== rendered && (s.finished || rendered === "queued")) {
        window.location.reload();
        return;
      }
      document.dispatchEvent(new CustomEvent("run-state", { detail: s }));
      if (s.finished) return;
    }
  } catch (e) {
    /* network hiccup: keep polling */
  }
  setTimeout(poll, 1500);
}

if (root) poll();
