// The reader page: two synced viewers, answers by buttons or keys, a persistent outbox of votes that is
// retried until the server has them, visible-tab timing, and in-place moves to the (prefetched) next item.
//
// Keys never mean two things in a row: sides are letters (A, B, N for no preference) and digits are the
// confidence, read only once a side is chosen; in graded studies digits 1-5 are the five answers (left to
// right, as on screen) and no confidence is asked. Single-key shortcuts can be switched off (kept per browser).
import { mountSyncedPair, volumeCache } from "./viewer.js";
import { Outbox } from "./reader_outbox.js";

const cfg = JSON.parse(document.getElementById("reader-config").textContent);
const $ = (sel) => document.querySelector(sel);
const els = {
  progress: $("#reader-progress"), position: $("#reader-position"), status: $("#reader-status"),
  followup: $("#followup"), comment: $("#comment"), modality: $("#modality"), layout: $("#layout"),
  preset: $("#window-preset"), opacity: $("#opacity"), outline: $("#outline"), hide: $("#hide-overlays"),
  radiological: $("#radiological"), shortcuts: $("#shortcuts"), sliceInfo: $("#slice-info"),
  submit: $("#submit-answer"), answerButtons: Array.from(document.querySelectorAll("[data-choice]")),
  confidence: Array.from(document.querySelectorAll("input[name=confidence]")), root: $("#reader"),
};

let item = cfg.item;
let pair = null;
let choice = null;
let grade = null; // graded studies: -2..2, positive = A (left) better
const graded = Boolean(cfg.study && cfg.study.graded);
const SHORTCUTS_KEY = "labelgen-reader-shortcuts";
let shortcutsOn = localStorage.getItem(SHORTCUTS_KEY) !== "off";
let busy = true; // true while an item loads: answers are ignored until both viewers have drawn
let modality = item.viewer.modality;
let done = cfg.progress.done;
const answeredHere = new Set();
let nextPayload = null; // Promise of the next item's JSON (prefetched)
let nextPrepared = null; // Promise of the next item's decoded volumes (pair.prepare token)

// --- time on item: counted only while the tab is visible -------------------------------------------------
const timer = {
  total: 0, since: null,
  start() { this.total = 0; this.since = document.visibilityState === "visible" ? performance.now() : null; },
  pause() { if (this.since !== null) { this.total += performance.now() - this.since; this.since = null; } },
  resume() { if (this.since === null) this.since = performance.now(); },
  ms() { return Math.round(this.total + (this.since !== null ? performance.now() - this.since : 0)); },
};
document.addEventListener("visibilitychange", () => (document.visibilityState === "visible" ? timer.resume() : timer.pause()));

// --- votes: kept in localStorage until the server acknowledged them ---------------------------------------
const outbox = new Outbox(cfg.storageKey, () => cfg.csrfToken, showOutboxState);

function showOutboxState(state) {
  const s = els.status;
  s.className = "reader-status";
  if (state.closed) {
    s.textContent = state.closed; s.classList.add("is-error"); lockAnswers(); return;
  }
  if (state.rejected) { s.textContent = state.rejected; s.classList.add("is-error"); return; }
  if (state.pending && state.failing) {
    s.textContent = `${state.pending} answer(s) not sent yet (${state.reason}); they are kept in this page and retried automatically.`;
    s.classList.add("is-warning");
  } else if (state.pending) {
    s.textContent = "Saving…";
  } else {
    s.textContent = "";
  }
  s.dataset.pending = String(state.pending);
}

function lockAnswers() { busy = true; els.answerButtons.forEach((b) => { b.disabled = true; }); }

function setPressed(button, on) { button.setAttribute("aria-pressed", on ? "true" : "false"); }

function markChosen(pick) {
  els.answerButtons.forEach((b) => {
    const on = pick(b);
    b.classList.toggle("chosen", on);
    setPressed(b, on);
  });
}

// Slice numbers (1-based, of the base image) and the crosshair's position in mm, under the toolbar.
function showLocation() {
  const loc = pair && pair.location();
  if (!loc) return;
  const [i, j, k] = loc.vox, [nx, ny, nz] = loc.dims;
  const mm = loc.mm.map((x) => x.toFixed(1)).join(", ");
  els.sliceInfo.textContent = `Axial ${k + 1}/${nz} · Coronal ${j + 1}/${ny} · Sagittal ${i + 1}/${nx} · ${mm} mm · ` +
    (pair.radiological ? "radiological (patient left on screen right)" : "neurological (patient left on screen left)");
}

// --- item display -----------------------------------------------------------------------------------------
// the tab's title ends with the position too ("Study 1 · 2 / 7"): items after the first are shown in place
const titleStart = document.title.replace(/\d+ \/ \d+$/, "");

function renderProgress() {
  els.position.textContent = `${item.position} / ${item.total}`;
  document.title = `${titleStart}${item.position} / ${item.total}`;
  els.progress.textContent = `${Math.min(done, item.total)} answered`;
  els.root.dataset.position = String(item.position);
}

function resetAnswer() {
  choice = null;
  grade = null;
  els.followup.hidden = true;
  const a = item.answer;
  markChosen((b) => Boolean(a && (graded ? a.grade !== null && Number(b.dataset.grade) === a.grade : a.choice === b.dataset.choice)));
  els.confidence.forEach((r) => { r.checked = Boolean(item.answer && item.answer.confidence === Number(r.value)); });
  if (els.comment) els.comment.value = item.answer ? item.answer.comment : "";
}

function baseUrlFor(viewer) {
  return viewer.baseUrls[modality] || viewer.base.url;
}

async function show(payload, { first = false, prepared = null } = {}) {
  busy = true;
  els.root.dataset.ready = "0";
  item = payload;
  if (!(modality in item.viewer.baseUrls)) modality = item.viewer.modality;
  renderProgress();
  resetAnswer();
  if (first) {
    pair = await mountSyncedPair($("#canvas-left"), $("#canvas-right"), { ...item.viewer, base: { ...item.viewer.base, url: baseUrlFor(item.viewer) } });
    setPressed(els.radiological, pair.radiological);
    els.layout.value = pair.sliceType;
    pair.each((nv) => { nv.onLocationChange = () => showLocation(); });
    // for tests and the browser console; nextReady() settles once the next item is fetched and decoded
    window.labelgenReader = { pair, outbox, nextReady: () => (nextPrepared || Promise.resolve(null)).then((t) => t && t.images).then(() => true) };
  } else {
    await pair.load(item.viewer, baseUrlFor(item.viewer), prepared);
  }
  els.modality.value = modality;
  showLocation();
  if (!first) history.replaceState(null, "", item.urls.page);
  timer.start();
  busy = false;
  els.answerButtons.forEach((b) => { b.disabled = false; });
  els.root.dataset.ready = "1";
  performance.mark("labelgen:item-shown", { detail: { position: item.position } }); // read by bench/reader_bench.py
  const position = item.position;
  pair.whenDrawn().then(() => performance.mark("labelgen:item-drawn", { detail: { position } })); // ... and this
  prefetchNext();
}

// The next item's JSON and volumes are fetched, and its volumes decoded, while the reader looks at this one:
// answering then only swaps the images on the GPU.
function prefetchNext() {
  nextPayload = null;
  nextPrepared = null;
  if (!item.next) return;
  nextPayload = fetch(item.next.config, { credentials: "same-origin", redirect: "error" }).then((r) => {
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    return r.json();
  });
  prepareNext();
}

function prepareNext() {
  const payload = nextPayload;
  nextPrepared = payload.then((p) => {
    volumeCache.prefetch([baseUrlFor(p.viewer), ...p.viewer.overlays.map((o) => o.url)]);
    return pair.prepare(p.viewer, baseUrlFor(p.viewer));
  });
  nextPrepared.catch(() => {});
}

// --- answering ----------------------------------------------------------------------------------------------
function choose(c, g = null) {
  if (busy || !cfg.study || (c === "none" && !cfg.study.allowTie && !graded)) return;
  choice = c;
  grade = g;
  markChosen((b) => (graded ? Number(b.dataset.grade) === g : b.dataset.choice === c));
  if (cfg.study.askConfidence || cfg.study.askComment) {
    els.followup.hidden = false;
    (els.confidence.find((r) => r.checked) || els.confidence[0] || els.submit).focus();
  } else {
    submit();
  }
}

function confidenceValue() {
  const r = els.confidence.find((x) => x.checked);
  return r ? Number(r.value) : null;
}

async function submit() {
  if (busy || !choice) return;
  if (cfg.study.askConfidence && confidenceValue() === null) {
    els.status.textContent = "Choose your confidence (1-5) first.";
    els.status.className = "reader-status is-warning";
    return;
  }
  busy = true;
  const vote = { choice, confidence: confidenceValue(), comment: els.comment ? els.comment.value : "", time_ms: timer.ms() };
  if (graded) vote.grade = grade;
  if (!cfg.preview) {
    if (!item.answer && !answeredHere.has(item.position)) done += 1;
    answeredHere.add(item.position);
    outbox.add(item.urls.vote, vote, item.position);
  }
  await goNext();
}

async function goNext() {
  const nxt = item.next;
  if (nxt && !answeredHere.has(nxt.position) && nextPayload) {
    try {
      await show(await nextPayload, { prepared: await nextPrepared.catch(() => null) });
      return;
    } catch (e) {
      els.status.textContent = `Could not load the next item (${e.message}); reloading…`;
    }
  }
  // End of the list (or the next item could not be prefetched): let the server decide where to go once
  // every answer has been delivered.
  els.status.textContent = cfg.preview ? "" : "Saving your last answers…";
  await outbox.drain();
  window.location.assign(cfg.preview ? (nxt ? nxt.page : cfg.urls.done) : cfg.urls.resume);
}

// --- controls -----------------------------------------------------------------------------------------------
els.answerButtons.forEach((b) => b.addEventListener("click", () => choose(b.dataset.choice, graded ? Number(b.dataset.grade) : null)));
els.submit?.addEventListener("click", () => submit());
els.modality.addEventListener("change", async () => {
  const previous = modality;
  const wanted = els.modality.options[els.modality.selectedIndex]?.text || els.modality.value;
  modality = els.modality.value;
  busy = true;
  els.root.dataset.ready = "0";
  try {
    await pair.setBaseVolume(baseUrlFor(item.viewer));
    if (nextPayload) prepareNext(); // the next item will open on this modality too
    els.status.textContent = "";
  } catch (e) {
    // keep the page answerable: back to the modality that is still on screen, and say what failed
    modality = previous;
    els.modality.value = previous;
    els.status.textContent = `Could not show ${wanted} (${e.message}); still showing the previous modality.`;
    els.status.className = "reader-status is-error";
  } finally {
    busy = false;
    els.root.dataset.ready = "1";
  }
});
els.layout.addEventListener("change", () => { pair.setSliceType(els.layout.value); showLocation(); });
els.preset.addEventListener("change", () => {
  const p = item.viewer.windowPresets.find((x) => x.key === els.preset.value);
  pair.setWindowPreset(p && p.key !== "auto" ? p : null);
});
els.opacity.addEventListener("input", () => pair.setOverlayOpacity(Number(els.opacity.value) / 100));
els.outline.addEventListener("click", () => {
  const on = els.outline.getAttribute("aria-pressed") !== "true";
  pair.setOutline(on);
  setPressed(els.outline, on);
});
els.hide.addEventListener("click", () => setPressed(els.hide, pair.toggleOverlays()));
els.radiological.addEventListener("click", () => {
  pair.setRadiological(!pair.radiological);
  setPressed(els.radiological, pair.radiological);
  showLocation();
});
function showShortcuts() {
  setPressed(els.shortcuts, shortcutsOn);
  els.shortcuts.textContent = shortcutsOn ? "Key shortcuts on" : "Key shortcuts off";
}
els.shortcuts.addEventListener("click", () => {
  shortcutsOn = !shortcutsOn;
  localStorage.setItem(SHORTCUTS_KEY, shortcutsOn ? "on" : "off");
  showShortcuts();
});
showShortcuts();

document.addEventListener("keydown", (ev) => {
  const t = ev.target;
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (t && (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type === "text") || t.tagName === "SELECT")) {
    if (ev.key === "Enter" && t.tagName !== "TEXTAREA" && !els.followup.hidden) { ev.preventDefault(); submit(); }
    return;
  }
  const k = ev.key.toLowerCase();
  // Enter and Escape act on a chosen answer even with shortcuts off (they are not single-letter keys).
  if (!els.followup.hidden && choice) {
    if (k === "enter") { ev.preventDefault(); submit(); return; }
    if (k === "escape") { choice = null; resetAnswer(); return; }
  }
  if (!shortcutsOn) return;
  if (graded) {
    if (/^[1-5]$/.test(k)) {
      const b = els.answerButtons[Number(k) - 1];
      if (b) { b.click(); ev.preventDefault(); }
      return;
    }
  } else if (/^[1-5]$/.test(k)) {
    // Digits are a confidence only, and only once a side is chosen: pressed before, they do nothing.
    if (choice && cfg.study.askConfidence && !els.followup.hidden) {
      const r = els.confidence.find((x) => x.value === k);
      if (r) { r.checked = true; r.focus(); }
      ev.preventDefault();
    }
    return;
  }
  if (k === "h") { els.hide.click(); ev.preventDefault(); return; }
  if (k === "o") { els.outline.click(); ev.preventDefault(); return; }
  if (k === "r") { els.radiological.click(); ev.preventDefault(); return; }
  if (graded) return;
  if (k === "a") { choose("left"); ev.preventDefault(); }
  else if (k === "b") { choose("right"); ev.preventDefault(); }
  else if (k === "n") { choose("none"); ev.preventDefault(); }
});

window.addEventListener("beforeunload", (ev) => {
  if (outbox.pending()) { ev.preventDefault(); ev.returnValue = ""; }
});

outbox.flush();
show(item, { first: true }).catch((e) => {
  els.status.textContent = `The viewer could not start: ${e.message}`;
  els.status.className = "reader-status is-error";
});
