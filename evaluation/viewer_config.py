"""The blinded viewer configuration of one reader-study item (on the shared
:func:`pipeline.datasets.viewer_config.viewer_config`). Nothing here names an arm, a prediction set or a
run: overlays are "A" (left) and "B" (right), their URLs are opaque per (item, side), and both sides use the
same colormap.
"""

from django.urls import reverse

from evaluation.volumes import item_focus, volume_key
from pipeline.datasets.viewer_config import viewer_config


def _volume_url(item, what):
    return reverse("evaluation:volume", args=[item.token, volume_key(item, what)])


def item_viewer_config(item, modalities):
    """The blinded viewer configuration of a reader-study ``item``: left overlay "A", right overlay "B"."""
    base_urls = {m: _volume_url(item, f"base:{m}") for m in modalities}
    focus = item_focus(item)
    return viewer_config(base_urls=base_urls, overlays=[_volume_url(item, "left"), _volume_url(item, "right")],
                         focus_mm=focus["mm"], slice_type="hero", radiological=item.assignment.study.radiological)
