"""The server side of the NiiVue bridge: plain JSON configurations that ``static/js/viewer.js`` mounts,
shared by every page with a viewer (the case page, the reader page, the run pages)."""

from django.templatetags.static import static

#: Sync both ways between the two canvases: crosshair/slice, zoom/pan, layout, window/level.
PAIR_SYNC = {"2d": True, "3d": True, "crosshair": True, "zoomPan": True, "sliceType": True,
             "cal_min": True, "cal_max": True}
#: Window presets relative to NiiVue's robust range (2-98th percentile): (low, high) as fractions of it.
WINDOW_PRESETS = [
    {"key": "auto", "label": "Auto", "lo": 0.0, "hi": 1.0},
    {"key": "wide", "label": "Wide", "lo": -0.25, "hi": 1.5},
    {"key": "narrow", "label": "Narrow", "lo": 0.2, "hi": 0.8},
    {"key": "bright", "label": "Bright lesion", "lo": 0.4, "hi": 1.25},
]
#: "hero": multiplanar with a large axial view filling the space the 2x2 grid leaves empty; "render":
#: multiplanar with NiiVue's 3D render in the fourth quadrant.
SLICE_TYPES = ("hero", "multiplanar", "render", "axial", "coronal", "sagittal")


def volume_spec(url, *, colormap="gray", opacity=1.0, cal_min=None, cal_max=None, name="volume.nii.gz"):
    """One volume for NiiVue. ``name`` only tells NiiVue the format (URLs carry no extension)."""
    spec = {"url": url, "name": name, "colormap": colormap, "opacity": opacity}
    if cal_min is not None:
        spec["cal_min"] = cal_min
    if cal_max is not None:
        spec["cal_max"] = cal_max
    return spec


def overlay_spec(url, *, colormap="red", opacity=0.5):
    """A 0/1 mask overlay: 0 is transparent (below cal_min), 1 drawn in ``colormap``."""
    return volume_spec(url, colormap=colormap, opacity=opacity, cal_min=0.5, cal_max=1.0, name="overlay.nii.gz")


def viewer_config(*, base_urls, modality=None, overlays=(), focus_mm=None, slice_type="multiplanar",
                  sync=PAIR_SYNC, overlay_opacity=0.5, show_render=False, radiological=False):
    """Configuration for ``mountViewer`` (one overlay or none) or ``mountSyncedPair`` (two overlays).

    ``base_urls``: ``{modality: url}`` of the base images (first = shown first unless ``modality``);
    ``overlays``: overlay URLs, one per canvas (a single viewer shows them all); ``focus_mm``: world point
    (x, y, z) the crosshair starts at; ``show_render``: add NiiVue's 3D render tile to the multiplanar
    layout (off by default: of little use for judging contours, and seconds per redraw without a GPU);
    ``radiological``: patient left on screen right (the radiologists' convention) instead of NiiVue's default.
    """
    if not base_urls:
        raise ValueError("viewer_config needs at least one base image")
    if slice_type not in SLICE_TYPES:
        raise ValueError(f"slice_type must be one of {SLICE_TYPES}, got {slice_type!r}")
    modality = modality if modality in base_urls else next(iter(base_urls))
    return {
        "niivueUrl": static("niivue/index.js"),
        "modality": modality,
        "baseUrls": dict(base_urls),
        "base": volume_spec(base_urls[modality], name="image.nii.gz"),
        "overlays": [overlay_spec(u, opacity=overlay_opacity) for u in overlays],
        "overlayOpacity": overlay_opacity,
        "focusMm": list(focus_mm) if focus_mm is not None else None,
        "sliceType": slice_type,
        "radiological": bool(radiological),
        "sliceTypes": list(SLICE_TYPES),
        "windowPresets": WINDOW_PRESETS,
        "sync": dict(sync),
        "options": {"multiplanarShowRender": 2 if show_render else 0},  # NiiVue: 0 never, 2 auto
    }
