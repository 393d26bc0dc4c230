// Case page: one NiiVue viewer showing a chosen modality with each label as a toggleable coloured overlay.
import { mountViewer, sliceTypeOf } from "./viewer.js";

const root = document.getElementById("case-viewer");
const config = JSON.parse(document.getElementById("case-viewer-config").textContent);
const canvas = root.querySelector("canvas");
const status = root.querySelector("[data-role=status]");
let nv = null;
let baseIndex = 0;

function overlayOpacity() {
  return Number(root.querySelector("[data-role=opacity]").value) / 100;
}

function volumeSpecs() {
  const base = config.images[baseIndex];
  return [
    { url: base.url, name: `${base.name}.nii.gz`, colormap: "gray" },
    ...config.labels.map((lab) => ({
      url: lab.url, name: `label-${lab.id}.nii.gz`, colormap: lab.colormap,
      opacity: lab.visible ? overlayOpacity() : 0, cal_min: 0.5, cal_max: 1,
    })),
  ];
}

function applyOverlays() {
  config.labels.forEach((lab, i) => nv.setOpacity(i + 1, lab.visible ? overlayOpacity() : 0));
}

async function load() {
  status.textContent = "Loading…";
  if (!nv) {
    nv = await mountViewer(canvas, { niivueUrl: config.niivueUrl, volumes: volumeSpecs(), sliceType: "multiplanar" });
  } else {
    await nv.loadVolumes(volumeSpecs());
  }
  applyOverlays();
  status.textContent = "Ready";
  root.dataset.ready = "1";
}

root.querySelector("[data-role=modality]").addEventListener("change", (e) => {
  baseIndex = Number(e.target.value);
  load();
});
root.querySelectorAll("[data-role=label-toggle]").forEach((box) => {
  box.addEventListener("change", () => {
    config.labels[Number(box.dataset.index)].visible = box.checked;
    applyOverlays();
  });
});
root.querySelector("[data-role=opacity]").addEventListener("input", applyOverlays);
root.querySelector("[data-role=plane]").addEventListener("change", (e) => nv.setSliceType(sliceTypeOf(e.target.value)));
load().catch((e) => { status.textContent = `Viewer failed: ${e}`; });
