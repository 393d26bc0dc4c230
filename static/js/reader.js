// The reader page: two synced viewers, answers by buttons or keys, a persistent outbox of votes that is
// retried until the server has them, visible-tab timing, and in-place moves to the (prefetched) next item.
import { mountSyncedPair, volumeCache } from "./viewer.js";
import { Outbox } from "./reader_outbox.js";

const cfg = JSON.parse(document.getElementById("reader-config").textContent);
const $ = (sel) => document.querySelector(sel);
const els = {
  progress: $("#reader-progress"), position: $("#reader-position"), status: $("#reader-status"),
  followup: $("#followup"), comment: $("#comment"), modality: $("#modality"), layout: $("#layout"),
  preset: $("#window-preset"), opacity: $("#opacity"), outline: $("#outline"), hide: $("#hide-overlays"),
  submit: $("#submit-answer"), answerButtons: Array.from(document.querySelectorAll("[data-choice]")),
  confidence: Array.from(document.querySelectorAll("input[name=confidence]")), root: $("#reader"),
};

let item = cfg.item;
let pair = null;
let choice = null;
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

// --- item display -----------------------------------------------------------------------------------------
function renderProgress() {
  els.position.textContent = `${item.position} / ${item.total}`;
  els.progress.textContent = `${Math.min(done, item.total)} answered`;
  els.root.dataset.position = String(item.position);
}

function resetAnswer() {
  choice = null;
  els.followup.hidden = true;
  els.answerButtons.forEach((b) => b.classList.toggle("chosen", Boolean(item.answer && item.answer.choice === b.dataset.choice)));
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
    // for tests and the browser console; nextReady() settles once the next item is fetched and decoded
    window.labelgenReader = { pair, outbox, nextReady: () => (nextPrepared || Promise.resolve(null)).then((t) => t && t.images).then(() => true) };
  } else {
    await pair.load(item.viewer, baseUrlFor(item.viewer), prepared);
  }
  els.modality.value = modality;
  if (!first) history.replaceState(null, "", item.urls.page);
  timer.start();
  busy = false;
  els.answerButtons.forEach((b) => { b.disabled = false; });
  els.root.dataset.ready = "1";
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
function choose(c) {
  if (busy || !cfg.study || (c === "none" && !cfg.study.allowTie)) return;
  choice = c;
  els.answerButtons.forEach((b) => b.classList.toggle("chosen", b.dataset.choice === c));
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
els.answerButtons.forEach((b) => b.addEventListener("click", () => choose(b.dataset.choice)));
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
els.layout.addEventListener("change", () => pair.setSliceType(els.layout.value));
els.preset.addEventListener("change", () => {
  const p = item.viewer.windowPresets.find((x) => x.key === els.preset.value);
  pair.setWindowPreset(p && p.key !== "auto" ? p : null);
});
els.opacity.addEventListener("input", () => pair.setOverlayOpacity(Number(els.opacity.value) / 100));
els.outline.addEventListener("change", () => pair.setOutline(els.outline.checked));
els.hide.addEventListener("click", () => { els.hide.classList.toggle("active", pair.toggleOverlays()); });

document.addEventListener("keydown", (ev) => {
  const t = ev.target;
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (t && (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type === "text") || t.tagName === "SELECT")) {
    if (ev.key === "Enter" && t.tagName !== "TEXTAREA" && !els.followup.hidden) { ev.preventDefault(); submit(); }
    return;
  }
  const k = ev.key.toLowerCase();
  if (!els.followup.hidden && choice) {
    if (/^[1-5]$/.test(k) && cfg.study.askConfidence) {
      const r = els.confidence.find((x) => x.value === k);
      if (r) { r.checked = true; r.focus(); }
      ev.preventDefault();
      return;
    }
    if (k === "enter") { ev.preventDefault(); submit(); return; }
    if (k === "escape") { choice = null; resetAnswer(); return; }
  }
  if (k === "h") { els.hide.click(); ev.preventDefault(); return; }
  if (!els.followup.hidden) return;
  if (k === "1" || k === "f") { choose("left"); ev.preventDefault(); }
  else if (k === "2" || k === "j") { choose("right"); ev.preventDefault(); }
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
