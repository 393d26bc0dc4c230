from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from pipeline.core.io.filenames import stem
from pipeline.core.io.manifest import ManifestEntry
from pipeline.core.io.names import InvalidName, check_name
from pipeline.datasets.importing import import_entries
from pipeline.models import Case, Dataset


class Command(BaseCommand):
    help = ("Import segmentations made elsewhere (e.g. nnU-Net) as a named prediction set: files named <case>.nii.gz "
            "or <case>_<anything>.nii.gz, each validated against its case's grid.")

    def add_arguments(self, parser):
        parser.add_argument("folder")
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--set", required=True, dest="set_name", help="name of the prediction set")

    def handle(self, folder, dataset, set_name, **options):
        try:
            check_name(set_name, "prediction_set")
        except InvalidName as exc:
            raise CommandError(f"--set: {exc}") from None
        ds = Dataset.objects.filter(name=dataset).first()
        if ds is None:
            raise CommandError(f"no dataset named {dataset!r}")
        cases = dict(Case.objects.filter(dataset=ds).values_list("external_id", "split"))
        entries, unmatched = [], []
        for i, path in enumerate(sorted(Path(folder).glob("*.nii*")), start=2):
            name = stem(path.name)
            case = name if name in cases else next((c for c in cases if name.startswith(f"{c}_")), None)
            if case is None:
                unmatched.append(path.name)
                continue
            entries.append(ManifestEntry(line=i, case=case, file=path, kind="label", source="prediction",
                                         prediction_set=set_name, split=cases[case]))
        if unmatched:
            raise CommandError(f"no case of {dataset} matches {', '.join(unmatched[:5])}"
                               f"{' …' if len(unmatched) > 5 else ''} (name files <case>.nii.gz)")
        if not entries:
            raise CommandError(f"no .nii/.nii.gz files in {folder}")
        report = import_entries(dataset, entries)
        for issue in report.issues:
            self.stdout.write(str(issue))
        if not report.ok:
            raise CommandError(f"{len(report.cases_failed)} prediction(s) refused; nothing stored for them")
        self.stdout.write(self.style.SUCCESS(f"prediction set {set_name!r}: {report.labels} segmentation(s) imported"))
