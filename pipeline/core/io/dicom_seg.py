"""Binary labels as DICOM Segmentation objects and back, through highdicom (no Django).

A labelgen label is one binary mask ``(X, Y, Z)`` on its case's reference image grid. :func:`write_seg` wraps
it as a one-segment BINARY SEG that references the source series it was drawn on (so a PACS viewer overlays it
on that series); :func:`read_seg` turns any SEG (from labelgen or a PACS tool) into a mask on a given grid,
the union of the segments chosen. Frames the SEG omits (empty slices) come back as zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from pipeline.core.io.dicom_series import SeriesError, from_labelgen, to_labelgen

SOFTWARE = "labelgen"


@dataclass(frozen=True)
class SegmentInfo:
    """What the SEG says about the mask: its label, whether a person or an algorithm made it, and which."""

    label: str = "Tumour"
    algorithm: str = ""  # empty: drawn by a person (MANUAL); else the algorithm's name (AUTOMATIC)
    algorithm_version: str = "1"
    series_description: str = "labelgen label"
    series_number: int = 900


def write_seg(mask: np.ndarray, affine: np.ndarray, source_images, info: SegmentInfo = SegmentInfo()):
    """A highdicom ``Segmentation`` of ``mask`` ``(X, Y, Z)`` (nonzero = inside) on the grid ``affine`` (RAS).

    ``source_images``: the source series' datasets (with pixel data), the grid the mask lies on. Raises
    :class:`~pipeline.core.io.dicom_series.SeriesError` if the mask is not on that grid.
    """
    import highdicom as hd

    source_images = list(source_images)
    frame_uid = str(source_images[0].FrameOfReferenceUID)
    volume = from_labelgen((np.asarray(mask) > 0).astype(np.uint8), affine, frame_uid)
    source_geometry = _source_geometry(source_images)
    if source_geometry is not None:
        try:  # the same grid, perhaps stacked the other way round: put the mask in the source's own order
            volume = volume.match_geometry(source_geometry, tol=1e-3)
        except Exception as exc:  # noqa: BLE001
            raise SeriesError(f"the label's grid is not the source series' grid ({exc})") from None
        if volume.spatial_shape != source_geometry.spatial_shape:
            raise SeriesError("the label's grid is not the source series' grid")
    if info.algorithm:
        algorithm_type = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        identification = hd.AlgorithmIdentificationSequence(
            name=info.algorithm, family=codes.cid7162.ArtificialIntelligence, version=info.algorithm_version)
    else:
        algorithm_type, identification = hd.seg.SegmentAlgorithmTypeValues.MANUAL, None
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label=info.label[:64],
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm, algorithm_type=algorithm_type,
        algorithm_identification=identification, tracking_uid=generate_uid(), tracking_id=info.label[:64])
    return hd.seg.Segmentation(
        source_images=source_images, pixel_array=volume, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment], series_instance_uid=generate_uid(), series_number=info.series_number,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=SOFTWARE,
        manufacturer_model_name=SOFTWARE, software_versions="1", device_serial_number="0",
        series_description=info.series_description[:64], omit_empty_frames=False)


def read_seg(seg, shape, affine, *, segments=None) -> np.ndarray:
    """The union of ``segments`` (default: all) of ``seg`` (a path or dataset) as uint8 0/1 ``(X, Y, Z)`` on the
    grid ``shape``/``affine`` (RAS). Raises :class:`SeriesError` if the SEG does not lie on that grid."""
    import highdicom as hd

    if not isinstance(seg, hd.seg.Segmentation):
        seg = hd.seg.segread(seg)
    numbers = list(segments or seg.segment_numbers)
    try:
        volume = seg.get_volume(segment_numbers=numbers, combine_segments=True, relabel=True, dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - highdicom raises ValueError/RuntimeError on irregular frames
        raise SeriesError(f"the SEG's frames are not a regular volume ({exc})") from None
    target = from_labelgen(np.zeros(shape, dtype=np.uint8), affine, volume.frame_of_reference_uid)
    try:
        matched = volume.match_geometry(target, tol=1e-3)
    except Exception as exc:  # noqa: BLE001
        raise SeriesError(f"the SEG does not lie on its image's grid ({exc})") from None
    out = to_labelgen(matched, name="seg").data
    return (out > 0).astype(np.uint8)


def referenced_series_uids(seg_header) -> set[str]:
    """SeriesInstanceUIDs a SEG (header only is enough) says it was drawn on."""
    uids = set()
    for study in seg_header.get("ReferencedSeriesSequence", []) or []:
        if "SeriesInstanceUID" in study:
            uids.add(str(study.SeriesInstanceUID))
    for item in seg_header.get("SourceImageEvidenceSequence", []) or []:
        for series in item.get("ReferencedSeriesSequence", []) or []:
            uids.add(str(series.SeriesInstanceUID))
    return uids


def _source_geometry(source_images):
    import highdicom as hd

    try:
        if len(source_images) == 1:
            return hd.Image.from_dataset(source_images[0], copy=False).get_volume_geometry()
        return hd.get_volume_from_series(source_images).get_geometry()
    except Exception:  # noqa: BLE001 - highdicom makes the final check itself when it builds the SEG
        return None
