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

function drawCharts(series) {
  if (!chartsEl || !window.Plotly) return;
  for (const metric of metricsShown) {
    const traces = [];
    for (const [name, points] of Object.entries(series)) {
      const pts = points.filter((p) => p[metric.key] != null);
      if (!pts.length) continue;
      traces.push({ x: pts.map((p) => p.step), y: pts.map((p) => p[metric.key]), mode: "lines+markers",
                    name: `${name} ${metric.label}` });
    }
    let el = document.getElementById(`chart-${metric.key}`);
    if (!el) {
      el = document.createElement("div");
      el.id = `chart-${metric.key}`;
      el.className = "chart";
      chartsEl.appendChild(el);
    }
    window.Plotly.react(el, traces, { title: { text: metric.label }, xaxis: { title: { text: metric.x || "epoch" } },
      margin: { t: 40, r: 10, b: 40, l: 50 }, height: 280 }, { displayModeBar: false, responsive: true });
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
      root.dataset.status = s.status;
      document.dispatchEvent(new CustomEvent("run-state", { detail: s }));
      if (s.finished) return;
    }
  } catch (e) {
    /* network hiccup: keep polling */
  }
  setTimeout(poll, 1500);
}

if (root) poll();
