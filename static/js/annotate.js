// Annotation page: the radiologist marks one case with NiiVue's own drawing tools (tumour / background pens,
// filled outline, box, eraser, undo), the drawing is saved as NIfTI (NiiVue's saveImage bytes, gzipped) and
// autosaved; "Make AI label" runs step 2 on the server and overlays the result, which the radiologist accepts,
// corrects in place (the drawing layer then holds the AI label) or rejects. Time on the page is reported with
// each request and when the page is hidden.
import { loadNiivue, mountViewer, volumeCache } from "./viewer.js";

const root = document.getElementById("annotate");
const config = JSON.parse(document.getElementById("annotate-config").textContent);
const status = root.querySelector("[data-role=status]");
const holder = root.querySelector(".viewer-single");
const csrf = document.querySelector("[name=csrfmiddlewaretoken]").value;
const AI_OVERLAY = { name: "overlay.nii.gz", colormap: "blue", opacity: 0.45, cal_min: 0.5, cal_max: 1.0 };
const PEN = { PEN: 0, RECTANGLE: 1 };

let nv = null;
let mode = "input"; // "input": the drawing layer is the rough input; "correct": it is the AI label being edited
let dirty = false; // the rough input has changes not saved yet
let correctionDirty = false; // the AI label being edited has changes not saved yet
let saving = null;
let autosaveTimer = null;
let shortcutsOn = true;
let visibleSince = document.visibilityState === "visible" ? performance.now() : null;
let aiUrl = config.correctionUrl || config.aiUrl;

function say(text, isError = false) {
  status.textContent = text;
  status.classList.toggle("error", isError);
}

// Seconds the page was visible since the last report. The hidden handler calls this after the page
// has turned hidden, so the clock's state, not document.visibilityState, says whether to count.
function takeSeconds() {
  const now = performance.now();
  const s = visibleSince === null ? 0 : (now - visibleSince) / 1000;
  visibleSince = document.visibilityState === "visible" ? now : null;
  return s.toFixed(1);
}

async function post(url, body = null, params = {}) {
  const query = new URLSearchParams({ ...params, seconds: takeSeconds() });
  const init = { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf } };
  if (body instanceof FormData) init.body = body;
  else if (body) { init.body = body; init.headers["Content-Type"] = "application/octet-stream"; }
  const response = await fetch(`${url}?${query}`, init);
  const data = await response.json().catch(() => ({ error: `the server answered HTTP ${response.status}` }));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

async function gzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function drawingBytes() {
  return gzip(await nv.saveImage({ filename: "", isSaveDrawing: true, volumeByIndex: 0 }));
}

function fresh(url) {
  return `${url}?v=${Date.now()}`; // drawings change under one URL: never reuse a cached copy
}

// Put a stored label (fetched uncached) into NiiVue's drawing layer.
async function loadDrawing(url) {
  const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (!response.ok) throw new Error(`could not load the drawing (HTTP ${response.status})`);
  const { NVImage } = await loadNiivue(config.viewer.niivueUrl);
  const volume = await NVImage.loadFromUrl({ url: await response.arrayBuffer(), name: "drawing.nii.gz" });
  if (!nv.loadDrawing(volume)) throw new Error("the drawing is not on this case's grid");
}

function viewerConfig(baseUrl, withAi) {
  const shared = config.viewer;
  return {
    ...shared,
    base: { ...shared.base, url: baseUrl },
    overlays: withAi && aiUrl && mode === "input" ? [{ ...AI_OVERLAY, url: aiUrl }] : [],
    sliceType: root.querySelector("[data-role=plane]").value,
  };
}

function showSlice() {
  if (!nv || !nv.volumes.length) return;
  const vox = nv.frac2vox(nv.scene.crosshairPos);
  const dims = nv.volumes[0].hdr.dims;
  root.querySelector("[data-role=slice]").textContent = `slice ${Math.round(vox[2]) + 1} / ${dims[3]}`;
}

async function mount(baseUrl, keepBitmap = null) {
  const focus = nv ? nv.bridge.crosshairMm() : null;
  if (nv) nv.cleanup?.();
  const canvas = document.createElement("canvas");
  holder.replaceChildren(canvas);
  nv = await mountViewer(canvas, { ...viewerConfig(baseUrl, true), focusMm: focus });
  nv.setDrawingEnabled(true);
  nv.setDrawOpacity(0.6);
  if (keepBitmap) {
    nv.createEmptyDrawing();
    nv.drawBitmap.set(keepBitmap);
    nv.refreshDrawing(true);
  } else if (mode === "input" && config.drawingUrl) {
    await loadDrawing(config.drawingUrl);
  } else {
    nv.createEmptyDrawing();
  }
  root.viewer = nv; // for the browser tests: where a voxel is on the canvas
  // the drawing layer holds the rough input, or while correcting the AI label; a stored drawing loaded into it
  // is no change
  nv.onDrawingChanged = (action) => {
    if (action === "load") return;
    if (mode === "correct") { correctionDirty = true; return; }
    dirty = true;
    scheduleAutosave();
  };
  nv.onLocationChange = showSlice;
  useTool(root.querySelector("[data-tool].active")?.dataset.tool || defaultTool());
  showSlice();
  root.dataset.ready = "1";
}

function defaultTool() {
  return config.input === "box" ? "box" : config.input === "scribbles" ? "tumour" : "outline";
}

// Tools map onto NiiVue's pen: value 1 tumour (red), 2 background (green), 0 erases; filled pen closes outlines.
function useTool(tool) {
  if (!nv) return;
  const pens = {
    tumour: [1, false, PEN.PEN], background: [2, false, PEN.PEN], outline: [1, true, PEN.PEN],
    box: [1, true, PEN.RECTANGLE], eraser: [0, false, PEN.PEN],
  };
  root.querySelectorAll("[data-tool]").forEach((b) => {
    b.classList.toggle("active", b.dataset.tool === tool);
    b.setAttribute("aria-pressed", String(b.dataset.tool === tool));
  });
  if (tool === "navigate") { nv.setDrawingEnabled(false); return; }
  const [value, filled, penType] = pens[tool];
  nv.setDrawingEnabled(true);
  nv.opts.penType = penType;
  nv.setPenValue(value, filled);
}

function scheduleAutosave() {
  clearTimeout(autosaveTimer);
  autosaveTimer = setTimeout(() => { if (mode === "input" && dirty) save().catch(() => {}); }, 2500);
}

// While the AI label is edited the drawing layer holds it, not the rough input: saving it as the input, or
// leaving the case, would lose the radiologist's strokes or their edit.
function notWhileCorrecting() {
  if (mode === "correct") throw new Error("You are editing the AI label: press Save correction first (your rough input is already saved).");
}

async function save() {
  notWhileCorrecting();
  if (saving) return saving;
  saving = (async () => {
    try {
      say("Saving…");
      const data = await post(config.post.drawing, await drawingBytes());
      dirty = false;
      config.drawingUrl = data.drawingUrl;
      say(`Saved (${data.voxels} tumour voxels marked; ${data.seconds} s on this case).`);
      afterChange();
      root.dataset.saved = String(Number(root.dataset.saved || 0) + 1);
      return data;
    } catch (e) {
      say(`Not saved: ${e.message}`, true);
      throw e;
    } finally {
      saving = null;
    }
  })();
  return saving;
}

// The case's history (drawings, AI labels and their review) is drawn by the server: after each change it is
// fetched again with the page, so it never lags behind what the reader just did.
let historyAsked = 0;
async function refreshHistory() {
  const asked = ++historyAsked;
  const response = await fetch(window.location.href, { credentials: "same-origin" });
  if (!response.ok) return;
  const text = await response.text();
  if (asked !== historyAsked) return; // a later change asked again: its answer is the one to show
  const page = new DOMParser().parseFromString(text, "text/html");
  const fresh = page.querySelector("[data-role=history]");
  if (fresh) root.ownerDocument.querySelector("[data-role=history]")?.replaceWith(fresh);
}
const afterChange = () => { refreshHistory().catch(() => {}); };

async function makeAi() {
  notWhileCorrecting();
  if (dirty || !config.drawingUrl) await save();
  say("Making the AI label…");
  const data = await post(config.post.make_ai);
  aiUrl = fresh(data.aiUrl);
  config.aiUrl = data.aiUrl;
  setAiState(data.aiState);
  await mount(currentBase(), nv.drawBitmap.slice());
  say(`AI label made: ${data.voxels} voxels in ${data.lesions} lesion(s), ${data.serverSeconds} s on the server. Accept, edit or reject it.`);
  afterChange();
}

async function review(verdict) {
  const data = await post(config.post.review_ai, null, { verdict });
  setAiState(data.aiState);
  say(verdict === "accepted" ? "AI label accepted." : "AI label rejected: it will not be trained on.");
  afterChange();
}

// Editing the AI label: the drawing layer takes the AI label (the rough input is saved on the server first).
async function startCorrection() {
  if (dirty) await save();
  mode = "correct";
  await mount(currentBase());
  await loadDrawing(aiUrl.split("?")[0]);
  useTool("outline");
  correctionDirty = false;
  root.dataset.mode = "correct";
  say("Editing the AI label: add with the pens, remove with the eraser, then Save correction.");
}

async function saveCorrection() {
  const data = await post(config.post.correction, await drawingBytes());
  setAiState(data.aiState);
  aiUrl = fresh(data.correctionUrl);
  correctionDirty = false;
  mode = "input";
  root.dataset.mode = "input";
  await mount(currentBase());
  say(`Correction saved (${data.voxels} voxels); the original AI label is kept in the case history.`);
  afterChange();
}

function setAiState(state) {
  root.dataset.aiState = state || "";
  const names = { made: "made, not reviewed", accepted: "accepted", corrected: "corrected", rejected: "rejected" };
  root.querySelector("[data-role=ai-state]").textContent = state ? `AI label: ${names[state]}` : "No AI label yet";
  const has = Boolean(state);
  for (const b of root.querySelectorAll("[data-needs-ai]")) b.disabled = !has;
}

async function finish(statusName) {
  const form = new FormData();
  if (statusName === "skipped") {
    const reason = root.querySelector("[data-role=skip-reason]").value.trim();
    if (!reason) { say("Say why you skip this case (e.g. no lesion visible).", true); return; }
    form.append("reason", reason);
  } else {
    if (correctionDirty) notWhileCorrecting();
    if (mode === "input" && (dirty || !config.drawingUrl)) await save();
  }
  const data = await post(config.post.finish, form, { status: statusName });
  window.location.href = data.nextUrl;
}

function currentBase() {
  return config.images[Number(root.querySelector("[data-role=modality]").value)].url;
}

async function switchModality() {
  await mount(currentBase(), nv.drawBitmap.slice()); // same grid: the drawing carries over unchanged
}

function act(fn) {
  return () => fn().catch((e) => say(e.message, true));
}

const ACTIONS = {
  save: act(save), "make-ai": act(makeAi), accept: act(() => review("accepted")),
  reject: act(() => review("rejected")), edit: act(startCorrection), "save-correction": act(saveCorrection),
  done: act(() => finish("done")), skip: act(() => finish("skipped")),
  undo: () => nv && nv.drawUndo(),
};
const KEYS = {
  t: () => useTool("tumour"), b: () => useTool("background"), o: () => useTool("outline"), x: () => useTool("box"),
  e: () => useTool("eraser"), n: () => useTool("navigate"), u: ACTIONS.undo, s: ACTIONS.save,
  m: ACTIONS["make-ai"], a: ACTIONS.accept, r: ACTIONS.reject,
};

root.querySelectorAll("[data-tool]").forEach((b) => b.addEventListener("click", () => useTool(b.dataset.tool)));
root.querySelectorAll("[data-action]").forEach((b) => b.addEventListener("click", ACTIONS[b.dataset.action]));
root.querySelector("[data-role=modality]").addEventListener("change", act(switchModality));
root.querySelector("[data-role=plane]").addEventListener("change", (e) => nv && nv.setSliceType(e.target.value));
root.querySelector("[data-role=pen-size]").addEventListener("change", (e) => { if (nv) nv.opts.penSize = Number(e.target.value); });
const shortcutsBox = root.querySelector("[data-role=shortcuts]");
shortcutsBox.addEventListener("change", () => { shortcutsOn = shortcutsBox.checked; });
document.addEventListener("keydown", (e) => {
  if (!shortcutsOn || e.altKey || e.metaKey || e.target.closest("input, textarea, select")) return;
  if (e.ctrlKey && e.key.toLowerCase() === "z") { ACTIONS.undo(); e.preventDefault(); return; }
  if (e.ctrlKey) return;
  const fn = KEYS[e.key.toLowerCase()];
  if (fn) { fn(); e.preventDefault(); }
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") {
    const body = new FormData();
    body.append("csrfmiddlewaretoken", csrf);
    navigator.sendBeacon(`${config.post.time}?seconds=${takeSeconds()}`, body);
  } else {
    visibleSince = performance.now();
  }
});
window.addEventListener("beforeunload", (e) => { if (dirty || correctionDirty) e.preventDefault(); });

setAiState(config.aiState);
volumeCache.prefetch(config.images.map((i) => i.url));
mount(config.images[0].url).then(() => { if (status.textContent === "Loading…") say(""); }).catch((e) => { say(`The viewer could not start (${e.message || e}).`, true); root.dataset.ready = "error"; });
