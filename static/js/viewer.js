// The NiiVue bridge: mounts viewers from a plain JSON configuration built on the server
// (evaluation/viewer_config.py). Used by the reader page, the case page and the viewer check page.
//
// Config (new style): { niivueUrl, base: {url, name, colormap}, overlays: [{url, name, colormap, opacity,
//   cal_min, cal_max}], baseUrls: {modality: url}, focusMm: [x, y, z] | null, sliceType, sync }
// Config (old style, still accepted by mountViewer): { niivueUrl, volumes: [{url, name, colormap}], sliceType }
//
//   const nv = await mountViewer(canvas, config);             // one canvas, base + all overlays
//   const p = await mountSyncedPair(canvasA, canvasB, config); // base + overlays[0] | base + overlays[1]
//   p.setOverlayOpacity(0.4); p.setOutline(true); p.setSliceType("axial"); p.setWindow(lo, hi);
//   p.setWindowPreset({lo: 0.2, hi: 0.8}); p.toggleOverlays(); await p.setBaseVolume(url); await p.load(cfg);
//
// Volumes are fetched once through `volumeCache` (also used to prefetch the next item) and handed to
// NiiVue as buffers; URLs carry no extension, so every spec has a `name` ending in .nii.gz.

import { gpuDone, setGradientPasses } from "./viewer_gl.js";

let niivueModule = null;

export async function loadNiivue(url) {
  if (!niivueModule) niivueModule = await import(url);
  return niivueModule;
}

const SLICE_TYPES = { axial: 0, coronal: 1, sagittal: 2, multiplanar: 3, render: 4 };
// Layouts beyond NiiVue's slice types: "hero" = multiplanar with a large axial view taking the space the 2x2
// grid leaves empty; "render" = multiplanar with the 3D render in the fourth quadrant.
const LAYOUTS = {
  hero: { sliceType: 3, heroImageFraction: 0.6, heroSliceType: 0, multiplanarShowRender: 0 },
  render: { sliceType: 3, heroImageFraction: 0, multiplanarShowRender: 1 },
  multiplanar: { sliceType: 3, heroImageFraction: 0, multiplanarShowRender: 0 },
};

export function sliceTypeOf(name) {
  if (name in LAYOUTS) return LAYOUTS[name].sliceType;
  if (!(name in SLICE_TYPES)) throw new Error(`unknown slice type ${name}`);
  return SLICE_TYPES[name];
}

// Set a layout's options on `nv` (without drawing) and return its NiiVue slice type.
function layoutOptions(nv, name) {
  const layout = LAYOUTS[name];
  if (layout) {
    nv.opts.heroImageFraction = layout.heroImageFraction;
    nv.opts.heroSliceType = layout.heroSliceType ?? nv.opts.heroSliceType;
    nv.opts.multiplanarShowRender = layout.multiplanarShowRender;
  } else {
    nv.opts.heroImageFraction = 0;
  }
  return sliceTypeOf(name);
}

// url -> Promise<ArrayBuffer>. The browser's HTTP cache (Cache-Control: private) backs it across pages.
class VolumeCache {
  constructor(limit = 24) {
    this.entries = new Map();
    this.limit = limit;
    this.bytes = 0;
  }
  get(url) {
    let entry = this.entries.get(url);
    if (!entry) {
      entry = fetch(url, { credentials: "same-origin", redirect: "error" }).then(async (r) => {
        if (!r.ok) throw new Error(`volume request failed (HTTP ${r.status})`);
        const buf = await r.arrayBuffer();
        this.bytes += buf.byteLength;
        return buf;
      });
      entry.catch(() => this.entries.delete(url)); // a failed fetch is retried next time
      this.entries.set(url, entry);
      while (this.entries.size > this.limit) this.entries.delete(this.entries.keys().next().value);
    } else {
      this.entries.delete(url); // most recently used last
      this.entries.set(url, entry);
    }
    return entry;
  }
  prefetch(urls) {
    for (const u of urls) this.get(u).catch(() => {});
  }
}

export const volumeCache = new VolumeCache();

function specsOf(config, overlays) {
  return [config.base, ...overlays];
}

async function createNiivue(canvas, config) {
  const { Niivue } = await loadNiivue(config.niivueUrl);
  const nv = new Niivue({
    backColor: [0, 0, 0, 1],
    show3Dcrosshair: true,
    isResizeCanvas: true,
    dragAndDropEnabled: false,
    crosshairColor: [0.2, 0.9, 1, 0.7], // thin cyan: never confused with the (red) overlays
    crosshairWidth: 0.4, // % of the field of view, so it stays thin on small volumes too
    crosshairWidthUnit: "percent",
    logLevel: "error",
    ...(config.options || {}),
  });
  await nv.attachToCanvas(canvas);
  return nv;
}

function layoutShowsRender(name) {
  return name === "render" || (LAYOUTS[name] ? LAYOUTS[name].multiplanarShowRender === 1 : false);
}

// Build NiiVue images from the cached buffers (NiiVue takes an ArrayBuffer as `url`, with `name` giving the
// format; each viewer gets its own copy of the bytes). This is the decompress-and-parse part of showing an
// item, done without touching the GPU, so it can run ahead of time (ViewerGroup.prepare).
async function decodeSpecs(specs, niivueUrl, trustCalMinMax = true) {
  const { NVImage } = await loadNiivue(niivueUrl);
  const buffers = await Promise.all(specs.map((s) => volumeCache.get(s.url)));
  return Promise.all(specs.map((s, i) => NVImage.loadFromUrl({
    url: buffers[i].slice(0), name: s.name || "volume.nii.gz", colormap: s.colormap || "gray",
    opacity: s.opacity ?? 1, cal_min: s.cal_min ?? NaN, cal_max: s.cal_max ?? NaN,
    trustCalMinMax,
  })));
}

// Replace all volumes of `nv` without touching the GPU; ViewerGroup.afterLoad uploads them in one pass once the
// layout, crosshair and look are set. nv.loadVolumes would refresh the textures once per added volume, and
// uploading before those settings cost another full draw per viewer: each is 0.1-0.5 s of software WebGL.
function assign(nv, images) {
  nv.volumes = images;
  nv.back = images[0];
  nv.overlays = images.slice(1);
}

async function loadSpecs(nv, specs, niivueUrl) {
  assign(nv, await decodeSpecs(specs, niivueUrl, nv.opts.trustCalMinMax));
}

function focus(nv, mm) {
  if (!mm || !nv.volumes.length) return;
  nv.scene.crosshairPos = nv.mm2frac(mm);
  nv.drawScene();
}

// A handle over one or more Niivue instances that always change together.
class ViewerGroup {
  constructor(viewers, config) {
    this.viewers = viewers;
    this.config = config;
    this.opacity = config.overlayOpacity ?? 0.5;
    this.overlaysHidden = false;
    this.outline = false;
    this.sliceType = config.sliceType || "multiplanar";
    this.radiological = Boolean(config.radiological);
    this.preset = null;
  }
  get nv() { return this.viewers[0].nv; }
  whenDrawn() { return Promise.all(this.viewers.map((v) => gpuDone(v.nv))); }
  each(fn) { for (const v of this.viewers) fn(v.nv); }
  // Sets overlay opacity/outline on the volumes; redraws (one texture refresh per viewer) unless redraw=false.
  applyOverlayLook(redraw = true) {
    this.each((nv) => {
      for (let i = 1; i < nv.volumes.length; i++) {
        const vol = nv.volumes[i];
        // Outline mode swaps the mask for its in-plane (axial) edge, drawn in the overlay's own colour
        // (NiiVue's built-in outline is black, invisible on dark MRI). The filled mask is kept to swap back.
        if (this.outline && !vol.filledImg) {
          vol.filledImg = vol.img;
          vol.img = maskEdges(vol.img, vol.hdr.dims);
        } else if (!this.outline && vol.filledImg) {
          vol.img = vol.filledImg;
          vol.filledImg = null;
        }
        vol.opacity = this.overlayOpacityNow();
      }
      if (redraw) nv.updateGLVolume();
    });
  }
  overlayOpacityNow() {
    const a = this.overlaysHidden ? 0 : this.opacity;
    return this.outline && a > 0 ? Math.max(a, 0.8) : a;
  }
  setOverlayOpacity(a) { this.opacity = Math.max(0, Math.min(1, Number(a))); this.applyOverlayLook(); }
  setOutline(on) { this.outline = Boolean(on); this.applyOverlayLook(); }
  toggleOverlays(hidden) {
    this.overlaysHidden = hidden === undefined ? !this.overlaysHidden : Boolean(hidden);
    this.applyOverlayLook();
    return this.overlaysHidden;
  }
  setSliceType(name) {
    this.sliceType = name;
    this.each((nv) => {
      if (this.lazyGradient) setGradientPasses(nv, layoutShowsRender(name));
      nv.setSliceType(layoutOptions(nv, name));
    });
  }
  // Radiological convention: patient left on screen right (NiiVue's default is neurological).
  setRadiological(on) {
    this.radiological = Boolean(on);
    this.each((nv) => { nv.opts.isRadiologicalConvention = this.radiological; nv.drawScene(); });
  }
  // Where the crosshair is: 1-based slice numbers per axis (voxel i, j, k of the base image), dims and mm.
  location() {
    const nv = this.nv;
    const v = nv.volumes[0];
    if (!v) return null;
    const vox = Array.from(nv.frac2vox(nv.scene.crosshairPos)).slice(0, 3).map((x) => Math.round(x));
    return { vox, dims: v.dims.slice(1, 4), mm: Array.from(nv.frac2mm(nv.scene.crosshairPos)).slice(0, 3) };
  }
  setWindow(lo, hi, redraw = true) {
    this.each((nv) => {
      if (!nv.volumes.length) return;
      nv.volumes[0].cal_min = lo;
      nv.volumes[0].cal_max = hi;
      if (redraw) nv.updateGLVolume();
    });
  }
  // preset: {lo, hi} as fractions of the base volume's robust (2-98th percentile) range; null = NiiVue's auto.
  setWindowPreset(preset, redraw = true) {
    this.preset = preset;
    const v = this.nv.volumes[0];
    if (!v) return;
    const rmin = v.robust_min ?? v.cal_min, rmax = v.robust_max ?? v.cal_max, span = rmax - rmin;
    const p = preset || { lo: 0, hi: 1 };
    this.setWindow(rmin + p.lo * span, rmin + p.hi * span, redraw);
  }
  crosshairMm() { return this.nv.volumes.length ? Array.from(this.nv.frac2mm(this.nv.scene.crosshairPos)).slice(0, 3) : null; }
  // After new volumes (assigned, not uploaded): layout, overlay look, window and crosshair, then one upload and
  // one draw per viewer (each is costly with software WebGL). look=false keeps each overlay's own opacity.
  afterLoad(focusMm, look = true) {
    this.each((nv) => {
      nv.opts.sliceType = layoutOptions(nv, this.sliceType);
      nv.opts.isRadiologicalConvention = this.radiological;
      if (focusMm && nv.volumes.length) nv.scene.crosshairPos = nv.mm2frac(focusMm);
    });
    if (look) this.applyOverlayLook(false);
    if (this.preset) this.setWindowPreset(this.preset, false);
    this.each((nv) => nv.updateGLVolume());
  }
  async setBaseVolume(url) {
    const keep = this.crosshairMm();
    const opacity = this.overlayOpacityNow();
    await Promise.all(this.viewers.map((v) => loadSpecs(v.nv, [{ ...this.config.base, url },
      ...v.overlays.map((o) => ({ ...o, opacity }))], this.config.niivueUrl)));
    this.config = { ...this.config, base: { ...this.config.base, url } };
    this.afterLoad(keep);
  }
  // The overlays each viewer of the group shows for an item's config.
  overlaysFor(config, i) {
    return this.viewers.length > 1 ? [config.overlays[i]] : config.overlays;
  }
  // Decode another item's volumes now (while the current one is being read), so that load() with the returned
  // token only uploads them. A token whose base no longer matches (another modality chosen since) is ignored.
  prepare(config, baseUrl) {
    const base = { ...config.base, url: baseUrl || config.base.url };
    const images = Promise.all(this.viewers.map((v, i) => decodeSpecs(specsOf({ ...config, base },
      this.overlaysFor(config, i)), config.niivueUrl, v.nv.opts.trustCalMinMax)));
    images.catch(() => {}); // load() decodes again if this failed
    return { config, baseUrl: base.url, images };
  }
  // Show another item (same canvases): new base and overlays, crosshair at its focus. `prepared`: a token from
  // prepare() for this config and base, if any.
  async load(config, baseUrl, prepared = null) {
    const base = { ...config.base, url: baseUrl || config.base.url };
    const opacity = this.overlayOpacityNow();
    this.viewers.forEach((v, i) => {
      v.overlays = this.overlaysFor(config, i).map((o) => ({ ...o, opacity }));
    });
    let images = null;
    if (prepared && prepared.config === config && prepared.baseUrl === base.url) {
      images = await prepared.images.catch(() => null);
    }
    this.lastLoad = images ? "prepared" : "decoded"; // read by the browser tests
    if (images) {
      this.viewers.forEach((v, i) => assign(v.nv, images[i]));
    } else {
      await Promise.all(this.viewers.map((v) => loadSpecs(v.nv, specsOf({ ...config, base }, v.overlays), config.niivueUrl)));
    }
    this.config = { ...config, base };
    this.afterLoad(config.focusMm);
    await nextFrame();
    this.each((nv) => { nv.canvas.dataset.ready = "1"; });
  }
}

// Voxels of a mask (X fastest, dims = NIfTI dims) with a 4-neighbour in the same axial slice outside it.
export function maskEdges(img, dims) {
  const [nx, ny, nz] = [dims[1], dims[2], dims[3] || 1];
  const out = new img.constructor(img.length);
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        const i = x + nx * (y + ny * z);
        if (!img[i]) continue;
        if (x === 0 || y === 0 || x === nx - 1 || y === ny - 1 || !img[i - 1] || !img[i + 1] || !img[i - nx] || !img[i + nx]) {
          out[i] = img[i];
        }
      }
    }
  }
  return out;
}

function nextFrame() {
  return new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
}

// Returns the Niivue instance itself (pages may call any NiiVue method on it), extended with the bridge's
// handle methods (setOverlayOpacity, setOutline, setWindow, setWindowPreset, toggleOverlays, setBaseVolume,
// load); setSliceType also accepts a name ("axial", ...). `nv.bridge` is the underlying handle.
export async function mountViewer(canvas, config) {
  if (config.volumes) config = { ...config, base: config.volumes[0], overlays: config.volumes.slice(1), volumes: undefined };
  const overlays = config.overlays || [];
  volumeCache.prefetch(specsOf(config, overlays).map((s) => s.url)); // downloads while WebGL starts
  const nv = await createNiivue(canvas, config);
  await loadSpecs(nv, specsOf(config, overlays), config.niivueUrl);
  const group = new ViewerGroup([{ nv, overlays }], config);
  const niivueSetSliceType = nv.setSliceType.bind(nv);
  nv.setSliceType = (st) => niivueSetSliceType(typeof st === "string" ? sliceTypeOf(st) : st);
  for (const name of ["setOverlayOpacity", "setOutline", "setWindow", "setWindowPreset", "toggleOverlays",
    "setBaseVolume", "load"]) {
    nv[name] = group[name].bind(group);
  }
  nv.bridge = group;
  group.afterLoad(config.focusMm, false);
  canvas.dataset.ready = "1";
  return nv;
}

// Two canvases, same base volume, overlays[0] on A and overlays[1] on B, synced both ways.
export async function mountSyncedPair(canvasA, canvasB, config) {
  if (!config.overlays || config.overlays.length !== 2) throw new Error("mountSyncedPair needs exactly two overlays");
  volumeCache.prefetch(specsOf(config, config.overlays).map((s) => s.url)); // downloads while WebGL starts
  // ... and is decoded in the gaps of the WebGL start (decompression is asynchronous), as a prepare() token
  const trust = (config.options || {}).trustCalMinMax ?? true; // NiiVue's default
  const early = { config, baseUrl: config.base.url,
    images: Promise.all(config.overlays.map((o) => decodeSpecs(specsOf(config, [o]), config.niivueUrl, trust))) };
  early.images.catch(() => {}); // load() decodes again if this failed
  const [a, b] = await Promise.all([createNiivue(canvasA, config), createNiivue(canvasB, config)]);
  const showsRender = layoutShowsRender(config.sliceType || "multiplanar");
  for (const nv of [a, b]) setGradientPasses(nv, showsRender);
  const sync = config.sync || { "2d": true, "3d": true };
  a.broadcastTo(b, sync);
  b.broadcastTo(a, sync);
  // NiiVue broadcasts only from the focused canvas: focus the one under the pointer, so that scrolling or
  // dragging on either side moves both without a click first.
  for (const c of [canvasA, canvasB]) {
    if (!c.hasAttribute("tabindex")) c.tabIndex = 0;
    c.addEventListener("pointerenter", () => c.focus({ preventScroll: true }));
  }
  const group = new ViewerGroup([{ nv: a, overlays: [config.overlays[0]] }, { nv: b, overlays: [config.overlays[1]] }], config);
  group.lazyGradient = true;
  await group.load(config, null, early);
  return group;
}
