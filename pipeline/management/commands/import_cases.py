from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from pipeline.core.io.manifest import ManifestError, read_manifest
from pipeline.core.io.names import InvalidName, check_name
from pipeline.datasets.importing import import_entries
from pipeline.management.commands._import_report import write_report


class Command(BaseCommand):
    help = ("Import cases from a CSV/XLSX manifest: the rich format (case, file, modality, kind, source, rater, "
            "prediction_set, data_split) or the reference format (FILE, modality, data_split).")

    def add_arguments(self, parser):
        parser.add_argument("manifest")
        parser.add_argument("--dataset", required=True, help="dataset name (created if missing)")
        parser.add_argument("--strict", action="store_true",
                            help="refuse modalities on different grids instead of resampling them")
        parser.add_argument("--max-voxels", type=int, default=None, help="refuse volumes larger than this")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, manifest, dataset, strict, max_voxels, no_progress, **options):
        try:
            check_name(dataset, "dataset")
        except InvalidName as exc:
            raise CommandError(f"--dataset: {exc}") from None
        try:
            parsed = read_manifest(manifest)
        except ManifestError as exc:
            raise CommandError(str(exc)) from None
        for warning in parsed.warnings:
            self.stderr.write(self.style.WARNING(f"warning: {warning}"))
        cases = parsed.cases()
        bar = tqdm(total=len(cases), unit="case", desc=f"import {dataset}", disable=no_progress, file=self.stderr)

        def progress(done, total, case):
            bar.set_postfix_str(case)
            bar.update(1)

        report = import_entries(dataset, parsed.entries, strict=strict, max_voxels=max_voxels, progress=progress)
        bar.close()
        write_report(self, report)
