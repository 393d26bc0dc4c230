// Upload page: guess each file's role from its name, let the coordinator edit, then send the files and a
// rich-format manifest in one request, with an upload progress bar, and show the import report.
import { sendWithProgress, showReport } from "./import_report.js";

const root = document.getElementById("upload");
const input = document.getElementById("upload-files");
const table = document.getElementById("upload-table");
const go = document.getElementById("upload-go");
const bar = document.getElementById("upload-progress");
const statusEl = document.getElementById("upload-status");
const reportEl = document.getElementById("upload-report");
const csrf = root.querySelector("input[name=csrfmiddlewaretoken]").value;
const COLUMNS = ["case", "modality", "kind", "source", "rater", "prediction_set", "data_split"];
const CHOICES = { kind: ["image", "label"], source: ["", "expert", "ai", "prediction", "truth"], data_split: ["TRAIN", "VAL", "TEST"] };

function cell(name, value) {
  const td = document.createElement("td");
  let el;
  if (CHOICES[name]) {
    el = document.createElement("select");
    for (const v of CHOICES[name]) el.append(new Option(v || "—", v, false, v === value));
  } else {
    el = document.createElement("input");
    el.value = value || "";
  }
  el.name = name;
  td.append(el);
  return td;
}

input.addEventListener("change", async () => {
  const files = [...input.files];
  const tbody = table.querySelector("tbody");
  tbody.replaceChildren();
  reportEl.replaceChildren();
  if (!files.length) return;
  let guesses;
  try {
    const resp = await fetch(root.dataset.guessUrl, {
      method: "POST", headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ names: files.map((f) => f.name) }),
    });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(body.error || `the server answered ${resp.status}`);
    guesses = body.guesses;
  } catch (e) {
    // no guesses: one editable row per file, so the coordinator can still fill in the roles by hand
    statusEl.textContent = `Could not guess the files' roles (${e.message}); fill them in below.`;
    guesses = files.map((f) => ({ file: f.name, case: "", modality: "", kind: "image", source: "", rater: "" }));
  }
  for (const g of guesses) {
    const tr = document.createElement("tr");
    tr.dataset.file = g.file;
    const name = document.createElement("td");
    name.textContent = g.file;
    tr.append(name, cell("case", g.case), cell("modality", g.modality), cell("kind", g.kind),
      cell("source", g.source), cell("rater", g.rater), cell("prediction_set", ""), cell("data_split", "TRAIN"));
    tbody.append(tr);
  }
  table.hidden = false;
  go.disabled = false;
});

function csvCell(v) {
  return /[",\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
}

function manifest() {
  const lines = [["file", ...COLUMNS].join(",")];
  for (const tr of table.querySelectorAll("tbody tr")) {
    const values = COLUMNS.map((c) => tr.querySelector(`[name=${c}]`).value.trim());
    lines.push([tr.dataset.file, ...values].map(csvCell).join(","));
  }
  return lines.join("\n") + "\n";
}

go.addEventListener("click", async () => {
  const form = new FormData();
  for (const f of input.files) form.append("files", f, f.name);
  form.append("manifest", manifest());
  if (document.getElementById("upload-strict").checked) form.append("strict", "1");
  go.disabled = true;
  const report = await sendWithProgress(root.dataset.uploadUrl, form, csrf, bar, statusEl);
  go.disabled = false;
  root.dataset.done = "1";
  showReport(reportEl, report, root.dataset.datasetUrl);
});
