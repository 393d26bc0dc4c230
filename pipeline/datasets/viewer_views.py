"""The NiiVue smoke-test page: a generated volume shown multiplanar, to check the viewer works here."""

import numpy as np
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control

from pipeline.core.io.nifti import viewer_nifti_bytes


def viewer_demo(request):
    return render(request, "pipeline/viewer_demo.html")


@cache_control(private=True, max_age=3600)
def viewer_demo_volume(request):
    """A 64x64x32 volume: a bright ellipsoid with a dark core in a gradient, spacing 1x1x2 mm."""
    x, y, z = np.meshgrid(np.linspace(-1, 1, 64), np.linspace(-1, 1, 64), np.linspace(-1, 1, 32), indexing="ij")
    r = np.sqrt((x / 0.7) ** 2 + (y / 0.5) ** 2 + (z / 0.8) ** 2)
    data = (400 * (r < 1) - 250 * (r < 0.5) + 100 * (x + 1)).astype(np.int16)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    return HttpResponse(viewer_nifti_bytes(data, affine), content_type="application/gzip")
