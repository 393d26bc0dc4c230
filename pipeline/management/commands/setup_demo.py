"""Everything a newcomer needs to see labelgen working, on phantom data, made once (idempotent):

demo users (printed) -> a 20-case phantom dataset (three raters' outlines, and sparse input: some slices,
strokes or a box, on six cases) -> step 1 + step 2 (finished runs, AI labels with QA) -> an open annotation
task of two cases for reader1 (draw, make an AI label, accept it)
-> two U-Nets trained on expert vs AI labels (a finished comparison) -> an open blind study of their TEST
predictions for reader1 and reader2 -> a closed study with simulated votes, so the report has data
-> a PACS-style DICOM export of four more phantom patients (with a SEG outline) imported under pseudonyms,
and that outline exported back as DICOM SEG.
"""

from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

DEMO_DATASET = "phantom-demo"
DEMO_USERS = [
    ("admin", "admin", "admin-demo-pass"),
    ("coordinator", "coordinator", "coordinator-demo-pass"),
    ("reader1", "reader", "reader1-demo-pass"),
    ("reader2", "reader", "reader2-demo-pass"),
]
SIMULATED_READERS = ["sim-reader-a", "sim-reader-b", "sim-reader-c"]
OPEN_STUDY = "Demo: U-Net on expert labels vs on AI-assisted labels"
SIMULATED_STUDY = "Demo: simulated readers (closed)"
ANNOTATION_TASK = "Demo: mark two cases with strokes"
SPARSE_KINDS = ("slices", "scribbles", "box", "slices", "scribbles", "box")
DICOM_DATASET = "phantom-dicom"


class Command(BaseCommand):
    help = "Create demo users and demo data (idempotent). Local demos only: the passwords are public."

    def add_arguments(self, parser):
        parser.add_argument("--skip-data", action="store_true", help="users only")
        parser.add_argument("--cases", type=int, default=20)
        parser.add_argument("--clustering-epochs", type=int, default=None, help="override the fast preset")
        parser.add_argument("--unet-epochs", type=int, default=None, help="override the fast preset")

    def handle(self, skip_data, cases, clustering_epochs, unet_epochs, **options):
        User = get_user_model()
        for username, role, password in DEMO_USERS:
            if not User.objects.filter(username=username).exists():
                call_command("create_user", username, role=role, password=password, stdout=self.stdout)
        if not skip_data:
            self.demo_data(cases, clustering_epochs, unet_epochs)
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("Demo logins (http://127.0.0.1:8000/):"))
        for username, role, password in DEMO_USERS:
            self.stdout.write(f"  {role:<12} {username:<12} {password}")

    def demo_data(self, n_cases, clustering_epochs, unet_epochs):
        from pipeline.models import ComparisonRun, Dataset, RefinementRun

        if not Dataset.objects.filter(name=DEMO_DATASET).exists():
            folder = Path(settings.VAR_DIR) / "demo-data"
            call_command("make_phantoms", str(folder), cases=n_cases, size=128, depth=16, seed=7,
                         splits="0.5,0.2,0.3", stdout=self.stdout,
                         sparse=",".join(SPARSE_KINDS[: max(0, n_cases - 2)]))  # two cases left to draw on
            call_command("import_cases", str(folder / "manifest.csv"), dataset=DEMO_DATASET, no_progress=True,
                         stdout=self.stdout)
            Dataset.objects.filter(name=DEMO_DATASET).update(
                description="Phantom bone-tumour MRI (t1fsce + t2), 3 simulated raters, known truth.")
        dataset = Dataset.objects.get(name=DEMO_DATASET)
        if not RefinementRun.objects.filter(dataset=dataset, status="succeeded").exists():
            self.stdout.write("Generating AI labels (step 1 clustering, step 2 refinement)…")
            call_command("generate_labels", dataset=DEMO_DATASET, preset="fast",
                         config=self.config_file("clustering", {"max_epochs": clustering_epochs}),
                         stdout=self.stdout)
        if not ComparisonRun.objects.filter(dataset=dataset, status="succeeded").exists():
            self.stdout.write("Training two 3D U-Nets: on expert labels and on AI-assisted labels…")
            call_command("compare_models", dataset=DEMO_DATASET, arms="expert,ai", preset="fast",
                         config=self.config_file("unet", {"max_epochs": unet_epochs}), stdout=self.stdout)
        self.annotation_task(dataset)
        comparison = ComparisonRun.objects.filter(dataset=dataset, status="succeeded").latest("id")
        self.studies(dataset, comparison)
        self.dicom_demo()

    def dicom_demo(self):
        from pipeline.core.phantoms.dicom_demo import write_pacs_export
        from pipeline.models import Dataset

        if Dataset.objects.filter(name=DICOM_DATASET).exists():
            return
        folder = Path(settings.VAR_DIR) / "demo-dicom"
        archive = write_pacs_export(folder, n_patients=4, seed=40)
        self.stdout.write(f"Importing the DICOM export {archive} (pseudonymised case names)…")
        call_command("import_dicom", str(archive), dataset=DICOM_DATASET, case_name="hash", rater="pacs",
                     modality=["T1 FS CE*=t1fsce", "T2*=t2"], no_progress=True, stdout=self.stdout)
        Dataset.objects.filter(name=DICOM_DATASET).update(
            description="Imported from a PACS-style DICOM zip (var/demo-dicom/pacs.zip): case names are keyed "
                        "hashes of the PatientIDs; the expert label came in as DICOM SEG.")
        call_command("export_labels", dataset=DICOM_DATASET, source="expert", out=str(folder / "seg-export"),
                     format="dicom-seg", dicom_source=str(archive), stdout=self.stdout)

    def annotation_task(self, dataset):
        from pipeline.annotation.services import create_task
        from pipeline.models import AnnotationTask

        if AnnotationTask.objects.filter(name=ANNOTATION_TASK).exists():
            return
        # two cases without sparse input, so what reader1 draws is the only quick input they have
        cases = list(dataset.cases.exclude(labels__input__in=["slices", "scribbles", "box"])
                     .order_by("-external_id")[:2])
        create_task(dataset=dataset, name=ANNOTATION_TASK, input="scribbles", cases=cases,
                    radiologists=get_user_model().objects.filter(username="reader1"),
                    instructions="A few red strokes inside the tumour, a few green ones outside it, on one or two "
                                 "slices; then Make AI label, and accept, edit or reject it.")
        self.stdout.write(f"Opened the annotation task “{ANNOTATION_TASK}” (two cases) for reader1.")

    def config_file(self, name, overrides):
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if not overrides:
            return None
        import yaml

        path = Path(settings.VAR_DIR) / f"demo-{name}.yaml"
        path.write_text(yaml.safe_dump(overrides))
        return str(path)

    def studies(self, dataset, comparison):
        from evaluation.models import Study
        from evaluation.planning import plan_design
        from evaluation.services import create_study, set_status

        User = get_user_model()
        # The AI-label arm first: the primary endpoint is "the AI-label model was preferred".
        runs = sorted(comparison.arms_runs.order_by("id"), key=lambda run: run.label_source != "ai")
        sets = [run.prediction_set for run in runs]
        if not Study.objects.filter(title=OPEN_STUDY).exists():
            readers = list(User.objects.filter(username__in=["reader1", "reader2"]))
            # No public title: readers see the neutral "Study <n>", never the arms named in the internal one.
            create_study(dataset=dataset, prediction_sets=sets, title=OPEN_STUDY, readers=readers, open_now=True,
                         seed=2026, allow_tie=True, ask_confidence=True, allow_revisit=True, reread_share=0.1,
                         instructions="Pick the segmentation that better outlines the whole tumour "
                                      "(enhancing rim and necrotic core, not the surrounding oedema).")
            self.stdout.write(f"Opened the study “{OPEN_STUDY}” for reader1 and reader2.")
        if not Study.objects.filter(title=SIMULATED_STUDY).exists():
            simulated = []
            for name in SIMULATED_READERS:
                if not User.objects.filter(username=name).exists():
                    call_command("create_user", name, role="reader", stdout=self.stdout)
                simulated.append(User.objects.get(username=name))
            planned = plan_design(preference=0.7, readers=len(simulated), cases=dataset.cases.filter(
                split="TEST").count() or 4, reader_sd=0.5, case_sd=1.0, n_sim=60, seed=0)
            study = create_study(dataset=dataset, prediction_sets=sets, title=SIMULATED_STUDY, readers=simulated,
                                 open_now=True, seed=99, allow_tie=True, ask_confidence=True, reread_share=0.5,
                                 planned_power={k: planned[k] for k in ("power", "cases", "mc_se", "line", "design")})
            simulate_votes(study, seed=3)
            set_status(study, Study.Status.CLOSED)
            self.stdout.write(f"Closed “{SIMULATED_STUDY}” with simulated votes (see its report).")


def simulate_votes(study, seed=0):
    """Simulated readers prefer the overlay with the higher Dice against truth, with noise (demo only)."""
    from evaluation.services import record_vote
    from pipeline.models import CaseMetric

    rng = np.random.default_rng(seed)
    dice = {(m.case_id, m.run.prediction_set_id): m.metrics.get("dice") or 0.0
            for m in CaseMetric.objects.filter(reference="truth").select_related("run")}
    for assignment in study.assignments.filter(preview=False).select_related("reader"):
        bias = rng.normal(0, 0.05)
        for item in assignment.items.select_related("arm_left", "arm_right", "study_case"):
            case_id = item.study_case.case_id
            gap = dice.get((case_id, item.arm_left.prediction_set_id), 0) - dice.get(
                (case_id, item.arm_right.prediction_set_id), 0)
            p_left = 1 / (1 + np.exp(-(gap + bias) * 12))
            u = rng.random()
            choice = "none" if abs(p_left - 0.5) < 0.05 and u < 0.3 else ("left" if u < p_left else "right")
            record_vote(item, assignment.reader, {"choice": choice, "confidence": int(rng.integers(2, 6)),
                                                  "comment": "", "time_ms": int(rng.gamma(4, 2500))})
