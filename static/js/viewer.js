// The NiiVue bridge: mounts viewers from a plain JSON configuration built on the server.
// Config: { niivueUrl, volumes: [{url, name, colormap, opacity}], sliceType, crosshair }
// NiiVue is loaded lazily from the static bundle so pages without a viewer do not pay for it.

let niivueModule = null;

export async function loadNiivue(url) {
  if (!niivueModule) niivueModule = await import(url);
  return niivueModule;
}

const SLICE_TYPES = { axial: 0, coronal: 1, sagittal: 2, multiplanar: 3, render: 4 };

export function sliceTypeOf(name) {
  if (!(name in SLICE_TYPES)) throw new Error(`unknown slice type ${name}`);
  return SLICE_TYPES[name];
}

export async function mountViewer(canvas, config) {
  const { Niivue } = await loadNiivue(config.niivueUrl);
  const nv = new Niivue({
    backColor: [0, 0, 0, 1],
    show3Dcrosshair: true,
    isResizeCanvas: true,
    logLevel: "error",
    ...(config.options || {}),
  });
  await nv.attachToCanvas(canvas);
  await nv.loadVolumes(config.volumes);
  nv.setSliceType(sliceTypeOf(config.sliceType || "multiplanar"));
  canvas.dataset.ready = "1";
  return nv;
}
