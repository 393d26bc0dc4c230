// DICOM upload: send the zip once to list its series descriptions (with a guessed modality each), let the
// coordinator map them, then send it again with the mapping and show the import report.
import { sendWithProgress, showReport } from "./import_report.js";

const root = document.getElementById("dicom");
const input = document.getElementById("dicom-file");
const table = document.getElementById("dicom-table");
const found = document.getElementById("dicom-found");
const go = document.getElementById("dicom-go");
const bar = document.getElementById("dicom-progress");
const statusEl = document.getElementById("dicom-status");
const reportEl = document.getElementById("dicom-report");
const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;

// A description is sent as an exact pattern: the server's patterns treat * ? [ as wildcards.
const exact = (text) => text.replace(/[*?[]/g, "[$&]");

function row(d) {
  const tr = document.createElement("tr");
  tr.dataset.description = d.description;
  for (const text of [d.description || "(no description)", d.modality || "—", d.series, d.files]) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  const td = document.createElement("td");
  if (d.kind === "image") {
    const el = document.createElement("input");
    el.name = "modality";
    el.value = d.guess || "";
    el.placeholder = "skip";
    el.setAttribute("list", "dicom-modalities");
    el.setAttribute("aria-label", `modality for ${d.description || "series without description"}`);
    td.append(el);
  } else {
    td.textContent = d.kind === "seg" ? "expert label (SEG)" : `not imported (${d.kind})`;
    td.className = "muted";
  }
  tr.append(td);
  return tr;
}

input.addEventListener("change", async () => {
  const tbody = table.querySelector("tbody");
  tbody.replaceChildren();
  reportEl.replaceChildren();
  table.hidden = true;
  go.disabled = true;
  const file = input.files[0];
  if (!file) return;
  const form = new FormData();
  form.append("archive", file, file.name);
  statusEl.textContent = "Reading the series in the zip…";
  const summary = await sendWithProgress(root.dataset.scanUrl, form, csrf, bar, statusEl);
  bar.hidden = true;
  if (!summary.ok) {
    showReport(reportEl, summary, root.dataset.datasetUrl);
    return;
  }
  found.textContent = `${summary.patients} patient(s); ${summary.descriptions.length} series description(s)` +
    (summary.not_dicom ? `; ${summary.not_dicom} file(s) that are not DICOM will be ignored` : "") +
    (summary.unreadable ? `; ${summary.unreadable} unreadable DICOM file(s)` : "");
  for (const d of summary.descriptions) tbody.append(row(d));
  table.hidden = false;
  document.getElementById("dicom-options").hidden = false;
  go.disabled = false;
});

go.addEventListener("click", async () => {
  const form = new FormData();
  form.append("archive", input.files[0], input.files[0].name);
  for (const tr of table.querySelectorAll("tbody tr")) {
    const el = tr.querySelector("input[name=modality]");
    if (el && el.value.trim()) form.append("modality", `${exact(tr.dataset.description)}=${el.value.trim()}`);
  }
  form.append("split", document.getElementById("dicom-split").value);
  form.append("case_name", document.getElementById("dicom-case-name").value);
  form.append("rater", document.getElementById("dicom-rater").value.trim());
  if (document.getElementById("dicom-strict").checked) form.append("strict", "1");
  go.disabled = true;
  const report = await sendWithProgress(root.dataset.importUrl, form, csrf, bar, statusEl);
  go.disabled = false;
  root.dataset.done = "1";
  showReport(reportEl, report, root.dataset.datasetUrl);
});
