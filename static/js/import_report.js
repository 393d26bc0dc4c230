// The import report under an upload form (NIfTI or DICOM): the summary, every issue, a link to the dataset.
export function showReport(el, report, datasetUrl) {
  el.replaceChildren();
  const p = document.createElement("p");
  p.textContent = report.error || report.summary;
  p.className = report.ok ? "" : "error";
  el.append(p);
  if (report.issues && report.issues.length) {
    const ul = document.createElement("ul");
    ul.className = "issue-list";
    for (const i of report.issues) {
      const li = document.createElement("li");
      li.className = `issue-${i.level}`;
      // "-": an issue of the whole import, of no one case
      const where = [i.case !== "-" ? i.case : "", i.file || ""].filter(Boolean).join(" · ");
      li.textContent = `${i.level}: ${where ? where + ": " : ""}${i.message}`;
      ul.append(li);
    }
    el.append(ul);
  }
  if (report.cases_imported && report.cases_imported.length) {
    const a = document.createElement("a");
    a.href = datasetUrl;
    a.textContent = "See the dataset";
    el.append(a);
  }
}

// Send a FormData with an upload progress bar; resolve with the JSON report (or a report saying what failed).
export function sendWithProgress(url, form, csrf, bar, statusEl) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("X-CSRFToken", csrf);
    bar.hidden = false;
    bar.value = 0;
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) {
        bar.value = (100 * e.loaded) / e.total;
        statusEl.textContent = `Uploading… ${(e.loaded / 2 ** 20).toFixed(1)} / ${(e.total / 2 ** 20).toFixed(1)} MB`;
      }
    };
    xhr.upload.onload = () => { statusEl.textContent = "Uploaded; validating and importing…"; };
    xhr.onload = () => {
      statusEl.textContent = "";
      let report;
      try { report = JSON.parse(xhr.responseText); } catch { report = {}; }
      if (xhr.status >= 400 && !report.summary && !report.error) {
        // not the import report (e.g. a proxy's error page, a request too large): say what happened
        report = { ok: false, error: `The server refused the upload (${xhr.status} ${xhr.statusText}). Nothing was imported.` };
      }
      resolve(report);
    };
    xhr.onerror = () => resolve({ ok: false, error: "The upload failed (network). Nothing was imported; try again." });
    xhr.send(form);
  });
}
