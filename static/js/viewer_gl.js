// What the bridge (viewer.js) does to NiiVue's WebGL directly: skipping the 3D gradient passes in 2D layouts, and
// telling when the GPU has finished an item's uploads and draws.

// NiiVue computes a gradient texture (a blur and a Sobel pass over every slice) each time a base image is
// uploaded; only the 3D render reads it. With software WebGL that took 0.4 s per viewer, most of a reader's
// first draw. In 2D layouts those passes run with a shader that shades no pixel; a layout with the 3D render
// restores NiiVue's shaders and computes the gradient of the image shown.
const GRADIENT_SHADERS = ["blurShader", "gradientPrePassShader", "sobelFirstOrderShader", "sobelSecondOrderShader"];

function noPixelShader(gl) {
  const stage = (type, src) => {
    const sh = gl.createShader(type);
    gl.shaderSource(sh, src);
    gl.compileShader(sh);
    return sh;
  };
  const program = gl.createProgram();
  // every vertex lies outside the clip volume, so the passes' quads cover no pixel
  gl.attachShader(program, stage(gl.VERTEX_SHADER, "#version 300 es\nvoid main() { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); }"));
  gl.attachShader(program, stage(gl.FRAGMENT_SHADER, "#version 300 es\nprecision lowp float;\nout vec4 c;\nvoid main() { c = vec4(0.0); }"));
  gl.linkProgram(program);
  return { program, uniforms: {}, use: (g) => g.useProgram(program) };
}

// on=false: skip the gradient passes from now on; on=true: NiiVue's own passes, and the gradient of the current
// base image if it was skipped.
export function setGradientPasses(nv, on) {
  if (!on && !nv.skippedGradient) {
    if (!GRADIENT_SHADERS.every((k) => nv[k])) return; // another NiiVue: leave it as it is
    const noop = noPixelShader(nv.gl);
    nv.gradientShaders = Object.fromEntries(GRADIENT_SHADERS.map((k) => [k, nv[k]]));
    for (const k of GRADIENT_SHADERS) nv[k] = noop;
    nv.skippedGradient = true;
  } else if (on && nv.skippedGradient) {
    Object.assign(nv, nv.gradientShaders);
    nv.skippedGradient = false;
    if (nv.back) nv.gradientGL(nv.back.hdr);
  }
}

// Resolves once the GPU has executed everything `nv` asked of it so far (a WebGL2 fence, polled without blocking):
// the browser may show an item's frame while software WebGL is still working through its uploads and draws.
export function gpuDone(nv) {
  const gl = nv.gl;
  const sync = gl.fenceSync(gl.SYNC_GPU_COMMANDS_COMPLETE, 0);
  gl.flush();
  return new Promise((resolve) => {
    const poll = () => {
      if (gl.isContextLost() || gl.getSyncParameter(sync, gl.SYNC_STATUS) === gl.SIGNALED) {
        gl.deleteSync(sync);
        resolve();
      } else {
        setTimeout(poll, 4);
      }
    };
    poll();
  });
}
