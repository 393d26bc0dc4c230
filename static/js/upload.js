// Upload page: guess each file's role from its name, let the coordinator edit, then send the files and a
// rich-format manifest in one request, with an upload progress bar, and show the import report.
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

function showReport(report) {
  reportEl.replaceChildren();
  const p = document.createElement("p");
  p.textContent = report.error || report.summary;
  p.className = report.ok ? "" : "error";
  reportEl.append(p);
  if (report.issues && report.issues.length) {
    const ul = document.createElement("ul");
    ul.className = "issue-list";
    for (const i of report.issues) {
      const li = document.createElement("li");
      li.className = `issue-${i.level}`;
      li.textContent = `${i.level}: ${i.case}${i.file ? " · " + i.file : ""}: ${i.message}`;
      ul.append(li);
    }
    reportEl.append(ul);
  }
  if (report.cases_imported && report.cases_imported.length) {
    const a = document.createElement("a");
    a.href = root.dataset.datasetUrl;
    a.textContent = "See the dataset";
    reportEl.append(a);
  }
}

go.addEventListener("click", () => {
  const form = new FormData();
  for (const f of input.files) form.append("files", f, f.name);
  form.append("manifest", manifest());
  if (document.getElementById("upload-strict").checked) form.append("strict", "1");
  const xhr = new XMLHttpRequest();
  xhr.open("POST", root.dataset.uploadUrl);
  xhr.setRequestHeader("X-CSRFToken", csrf);
  bar.hidden = false;
  bar.value = 0;
  go.disabled = true;
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) {
      bar.value = (100 * e.loaded) / e.total;
      statusEl.textContent = `Uploading… ${(e.loaded / 2 ** 20).toFixed(1)} / ${(e.total / 2 ** 20).toFixed(1)} MB`;
    }
  };
  xhr.upload.onload = () => { statusEl.textContent = "Uploaded; validating and importing…"; };
  xhr.onload = () => {
    go.disabled = false;
    statusEl.textContent = "";
    let report;
    try { report = JSON.parse(xhr.responseText); } catch { report = {}; }
    if (xhr.status >= 400 && !report.summary && !report.error) {
      // not the import report (e.g. a proxy's error page, a request too large): say what happened
      report = { ok: false, error: `The server refused the upload (${xhr.status} ${xhr.statusText}). Nothing was imported.` };
    }
    root.dataset.done = "1";
    showReport(report);
  };
  xhr.onerror = () => { go.disabled = false; statusEl.textContent = "The upload failed (network). Nothing was imported; try again."; };
  xhr.send(form);
});
