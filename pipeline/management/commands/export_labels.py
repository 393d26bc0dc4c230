import os
import shutil
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from pipeline.datasets.dicom_export import SegExportError, export_seg
from pipeline.models import Dataset, Label


def export_name(label, suffix=".nii.gz"):
    """``<case>_<source>[_<rater>][_<modality>].nii.gz``; predictions: ``<case>_prediction_<set>.nii.gz``."""
    parts = [label.case.external_id, label.source]
    if label.prediction_set_id:
        parts.append(label.prediction_set.name)
    if label.rater:
        parts.append(label.rater)
    if label.modality and label.source == Label.Source.EXPERT:
        parts.append(label.modality)
    return "_".join(parts) + suffix


class Command(BaseCommand):
    help = ("Write a dataset's labels of one source as NIfTI files on each case's original image grid and affine, "
            "or as DICOM SEG objects referencing the series the case was imported from (--format dicom-seg).")

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--source", required=True, choices=[s.value for s in Label.Source])
        parser.add_argument("--out", required=True, help="folder (created if missing)")
        parser.add_argument("--rater", help="only this rater's labels")
        parser.add_argument("--prediction-set", help="only this prediction set")
        parser.add_argument("--include-rejected", action="store_true", help="AI labels a coordinator rejected too")
        parser.add_argument("--original", action="store_true",
                            help="AI labels as step 2 made them, not as a radiologist corrected them")
        parser.add_argument("--format", default="nifti", choices=["nifti", "dicom-seg"])
        parser.add_argument("--dicom-source", metavar="PATH",
                            help="with --format dicom-seg: the DICOM folder or zip the cases were imported from")

    def handle(self, dataset, source, out, rater, prediction_set, include_rejected, original, format, dicom_source,
               **options):
        if format == "dicom-seg" and not dicom_source:
            raise CommandError("--format dicom-seg needs --dicom-source PATH (the DICOM the cases came from)")
        ds = Dataset.objects.filter(name=dataset).first()
        if ds is None:
            raise CommandError(f"no dataset named {dataset!r}")
        labels = Label.objects.filter(case__dataset=ds, source=source).select_related("case", "prediction_set")
        if rater:
            labels = labels.filter(rater=rater)
        if prediction_set:
            labels = labels.filter(prediction_set__name=prediction_set)
        if source == Label.Source.AI and not include_rejected:
            labels = labels.exclude(review=Label.Review.REJECTED)
        labels = labels.filter(corrected_from=None).select_related("correction")
        labels = list(labels.order_by("case__external_id", "rater", "modality"))
        if not original:  # a radiologist's correction replaces its original (same file name)
            labels = [getattr(lab, "correction", None) or lab for lab in labels]
        if not labels:
            raise CommandError(f"dataset {dataset!r} has no {source} labels matching the filters")
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        if format == "dicom-seg":
            return self._export_seg(labels, dicom_source, out, source)
        for label in tqdm(labels, unit="label", desc=f"export {source}", file=self.stderr):
            target = out / export_name(label)
            fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{target.name}.", suffix=".tmp")
            os.close(fd)
            try:
                shutil.copyfile(label.path, tmp)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        self.stdout.write(self.style.SUCCESS(f"{len(labels)} {source} label(s) written to {out}"))

    def _export_seg(self, labels, dicom_source, out, source):
        try:
            result = export_seg(labels, dicom_source, out, lambda label: export_name(label, ".dcm"))
        except SegExportError as exc:
            raise CommandError(str(exc)) from None
        for failure in result.failed:
            self.stdout.write(self.style.ERROR(f"ERROR {failure}"))
        self.stdout.write(f"{len(result.written)} {source} label(s) written to {out} as DICOM SEG")
        if result.failed:
            raise CommandError(f"{len(result.failed)} label(s) could not be written as DICOM SEG (listed above)")
