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
let nv = null;
let baseIndex = 0;

function viewerConfig(focusMm) {
  const base = config.images[baseIndex];
  const opacity = Number(opacityInput.value) / 100;
  return {
    niivueUrl: config.niivueUrl,
    base: { url: base.url, name: `${base.name}.nii.gz`, colormap: "gray" },
    overlays: config.labels.filter((lab) => lab.visible).map((lab) => ({
      url: lab.url, name: `label-${lab.id}.nii.gz`, colormap: lab.colormap, opacity, cal_min: 0.5, cal_max: 1,
    })),
    sliceType: plane.value,
    focusMm,
  };
}

async function show() {
  status.textContent = "Loading…";
  root.dataset.ready = "";
  const focusMm = nv ? nv.bridge.crosshairMm() : null;
  const canvas = document.createElement("canvas");
  holder.replaceChildren(canvas);
  const cfg = viewerConfig(focusMm);
  nv = await mountViewer(canvas, cfg);
  root.dataset.overlays = String(cfg.overlays.length);
  nv.setOverlayOpacity(Number(opacityInput.value) / 100);
  status.textContent = "";
  root.dataset.ready = "1";
}

root.querySelector("[data-role=modality]").addEventListener("change", (e) => { baseIndex = Number(e.target.value); show(); });
document.querySelectorAll("[data-role=label-toggle]").forEach((box) => {
  box.addEventListener("change", () => { config.labels[Number(box.dataset.index)].visible = box.checked; show(); });
});
opacityInput.addEventListener("input", () => nv && nv.setOverlayOpacity(Number(opacityInput.value) / 100));
plane.addEventListener("change", () => nv && nv.setSliceType(plane.value));
show().catch((e) => { status.textContent = `Viewer failed: ${e}`; });
