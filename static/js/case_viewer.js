// Case page: one NiiVue viewer showing a chosen modality with the ticked labels as coloured overlays.
// Changing the modality or the ticked labels mounts a fresh viewer on a new canvas with exactly the visible
// volumes: NiiVue keeps stale overlay textures when layers are removed and does not redraw a layer whose
// opacity drops to 0. The bytes come from the bridge's volume cache, so only the drawing is redone.
import { mountViewer } from "./viewer.js";

const root = document.getElementById("case-viewer");
const config = JSON.parse(document.getElementById("case-viewer-config").textContent);
const holder = root.querySelector(".viewer-single");
const status = root.querySelector("[data-role=status]");
const opacityInput = root.querySelector("[data-role=opacity]");
const plane = root.querySelector("[data-role=plane]");
const radiological = root.querySelector("[data-role=radiological]");
let nv = null;
let baseIndex = 0;

// The shared viewer configuration (pipeline.datasets.viewer_config), with this page's choices applied.
function viewerConfig(focusMm) {
  const shared = config.viewer;
  const opacity = Number(opacityInput.value) / 100;
  return {
    ...shared,
    base: { ...shared.base, url: config.images[baseIndex].url },
    overlays: config.labels.filter((lab) => lab.visible).map((lab) => ({ ...lab.overlay, opacity })),
    sliceType: plane.value,
    radiological: radiological.checked, // the reader page's default convention too
    focusMm,
  };
}

async function show() {
  status.textContent = "Loading…";
  status.classList.remove("error");
  root.dataset.ready = "";
  const focusMm = nv ? nv.bridge.crosshairMm() : null;
  const canvas = document.createElement("canvas");
  holder.replaceChildren(canvas);
  const cfg = viewerConfig(focusMm);
  nv = await mountViewer(canvas, cfg);
  root.viewer = nv; // for the browser tests
  root.dataset.overlays = String(cfg.overlays.length);
  nv.setOverlayOpacity(Number(opacityInput.value) / 100);
  status.textContent = "";
  root.dataset.ready = "1";
}

// Every redraw reports its own failure on the page (no unhandled promise rejections).
function redraw() {
  return show().catch((e) => {
    status.textContent = `The viewer could not show this (${e.message || e}); change the modality or labels to try again.`;
    status.classList.add("error");
    root.dataset.ready = "error";
  });
}

root.querySelector("[data-role=modality]").addEventListener("change", (e) => { baseIndex = Number(e.target.value); redraw(); });
document.querySelectorAll("[data-role=label-toggle]").forEach((box) => {
  box.addEventListener("change", () => { config.labels[Number(box.dataset.index)].visible = box.checked; redraw(); });
});
opacityInput.addEventListener("input", () => nv && nv.setOverlayOpacity(Number(opacityInput.value) / 100));
plane.addEventListener("change", () => nv && nv.setSliceType(plane.value));
radiological.addEventListener("change", () => nv && nv.bridge.setRadiological(radiological.checked));
if (config.viewer) redraw();
else status.textContent = "This case has no image to show.";
