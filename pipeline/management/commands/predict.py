"""Segment new NIfTI cases with a trained U-Net; works from an export folder without any database."""

from collections import defaultdict
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from pipeline.core.io.filenames import guess


class Command(BaseCommand):
    help = ("Segment NIfTI cases (files <case>_<modality>.nii.gz in --images) with a trained U-Net: --model is a "
            "training run id or an exported model folder (model.pt + config.json).")
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True)
        parser.add_argument("--images", required=True)
        parser.add_argument("--out", required=True)
        parser.add_argument("--device", default=None, help="auto (default: CUDA if present, else the CPU), cpu, cuda or cuda:N")

    def handle(self, model, images, out, device, **options):
        from pipeline.core.io.nifti import VolumeError, load_volume, save_nifti_atomic
        from pipeline.core.unet import UNetTrainer

        folder = Path(model)
        if not folder.is_dir():
            folder = self.run_export_folder(model)
        try:
            trainer = UNetTrainer.load_exported(folder, device=device)
        except (OSError, ValueError) as exc:
            raise CommandError(f"{folder}: not an exported U-Net ({exc})") from None
        modalities = list(trainer.modalities or [])
        if not modalities:
            raise CommandError(f"{folder}: the exported model does not name its modalities")
        cases = defaultdict(dict)
        for path in sorted(Path(images).glob("*.nii*")):
            g = guess(path.name, modalities)
            if g.kind == "image" and g.modality in modalities:
                cases[g.case][g.modality] = path
        if not cases:
            raise CommandError(f"no <case>_<modality>.nii(.gz) files for modalities {', '.join(modalities)} in {images}")
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        for case, files in sorted(cases.items()):
            missing = [m for m in modalities if m not in files]
            if missing:
                raise CommandError(f"case {case}: no {', '.join(missing)} image in {images}")
            try:
                volumes = [load_volume(files[m]) for m in modalities]
            except VolumeError as exc:
                raise CommandError(str(exc)) from None
            mask = trainer.predict([v.data for v in volumes])
            save_nifti_atomic(out_dir / f"{case}_prediction.nii.gz", mask, volumes[0].affine, dtype="uint8")
            self.stdout.write(f"{case}: {int(mask.sum())} tumour voxels")
        self.stdout.write(self.style.SUCCESS(f"{len(cases)} case(s) segmented into {out_dir}"))

    def run_export_folder(self, model):
        from pipeline.models import TrainingRun
        from pipeline.runs.execution import run_dir

        run = TrainingRun.objects.filter(pk=int(model)).first() if model.isdigit() else None
        if run is None:
            raise CommandError(f"--model {model!r} is neither a folder nor a training run id")
        folder = run_dir(run) / "export"
        if not (folder / "model.pt").exists():
            raise CommandError(f"{run} has no exported model (status {run.status})")
        return folder
