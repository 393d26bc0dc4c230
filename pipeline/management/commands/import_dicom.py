from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from pipeline.core.io.case_names import CaseNameError, CaseNamer, read_mapping
from pipeline.datasets.dicom_import import (
    DicomImportError,
    DicomImportOptions,
    import_dicom,
    parse_modality_map,
    parse_rater,
    parse_split,
    pseudonym_key,
    scan_summary,
)
from pipeline.management.commands._import_report import write_report


class Command(BaseCommand):
    help = ("Import DICOM MR/CT series (a folder tree or a .zip) into a dataset: one case per patient (or per study "
            "with --by-study), modalities from the SeriesDescription through --modality; DICOM SEG objects that "
            "reference an imported series become expert labels. --scan lists the series descriptions first.")

    def add_arguments(self, parser):
        parser.add_argument("path", help="a folder (searched recursively) or a .zip of DICOM files")
        parser.add_argument("--dataset", help="dataset name (created with its first case)")
        parser.add_argument("--modality", action="append", default=[], metavar="SERIES_DESCRIPTION=MODALITY",
                            help="map series described so (case-insensitive; * and ? match anything) to a modality; "
                                 "repeat per modality, the first one given is the grid the others are resampled onto")
        parser.add_argument("--split", default="TRAIN", help="TRAIN (default), VAL or TEST")
        parser.add_argument("--by-study", action="store_true",
                            help="one case per StudyInstanceUID instead of per PatientID")
        parser.add_argument("--case-name", default="patient-id", choices=["patient-id", "hash"],
                            help="patient-id (default) or hash: a keyed HMAC of the PatientID (LABELGEN_PSEUDONYM_KEY)")
        parser.add_argument("--case-map", metavar="CSV",
                            help="pseudonymise from a CSV 'patient_id,case' ('study_uid,case' with --by-study)")
        parser.add_argument("--rater", default="", help="rater name for expert labels read from DICOM SEG")
        parser.add_argument("--strict", action="store_true",
                            help="refuse modalities on different grids instead of resampling them")
        parser.add_argument("--scan", action="store_true",
                            help="only list the series descriptions found (to write the --modality mapping)")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, path, dataset, modality, split, by_study, case_name, case_map, rater, strict, scan, no_progress,
               **options):
        try:
            if scan:
                return self._scan(path)
            if not dataset:
                raise CommandError("--dataset is required (or --scan to list the series first)")
            namer = self._namer(case_name, case_map)
            opts = DicomImportOptions(parse_modality_map(modality), parse_split(split), by_study, namer,
                                      parse_rater(rater), strict)
        except (DicomImportError, CaseNameError) as exc:
            raise CommandError(str(exc)) from None
        bar = tqdm(unit="case", desc=f"import {dataset}", disable=no_progress, file=self.stderr)

        def progress(done, total, case):
            bar.total = total
            bar.set_postfix_str(case)
            bar.update(1)

        try:
            report = import_dicom(dataset, path, opts, progress=progress)
        except DicomImportError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        write_report(self, report)
        if any(i.level == "error" for i in report.issues):
            raise CommandError("some files could not be read (listed above); the cases found were imported")

    def _namer(self, case_name, case_map):
        if case_map:
            return CaseNamer("map", mapping=read_mapping(case_map))
        if case_name == "hash":
            return CaseNamer("hash", key=pseudonym_key())
        return CaseNamer()

    def _scan(self, path):
        found = scan_summary(path)
        self.stdout.write(f"{found['patients']} patient(s); {found['not_dicom']} file(s) not DICOM, "
                          f"{found['unreadable']} unreadable")
        for row in found["descriptions"]:
            self.stdout.write(f"  {row['description'] or '(no description)'!r:40} {row['modality'] or '-':3} "
                              f"{row['kind']:8} {row['series']} series, {row['files']} file(s)")
