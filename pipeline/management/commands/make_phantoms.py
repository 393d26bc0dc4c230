from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from pipeline.core.phantoms import write_phantom_dataset, write_reference_manifest


class Command(BaseCommand):
    help = ("Write a phantom two-modality bone-tumour MRI dataset with known truth and simulated raters "
            "(NIfTI files + manifest.csv, plus reference.csv in the published reference format).")

    def add_arguments(self, parser):
        parser.add_argument("out")
        parser.add_argument("--cases", type=int, default=10)
        parser.add_argument("--size", type=int, default=128, help="in-plane size (>= 32)")
        parser.add_argument("--depth", type=int, default=16, help="slices (>= 5)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--raters", default="r1,r2,r3")
        parser.add_argument("--splits", default="0.6,0.2,0.2", help="TRAIN,VAL,TEST fractions")
        parser.add_argument("--sparse", default="", help="sparse input kinds for the first cases, e.g. "
                            "slices,scribbles,box: case i gets kind i, simulated from the first rater's outline")

    def handle(self, out, cases, size, depth, seed, raters, splits, sparse, **options):
        raters = tuple(r.strip() for r in raters.split(",") if r.strip())
        try:
            fractions = tuple(float(f) for f in splits.split(","))
        except ValueError:
            raise CommandError(f"--splits {splits!r}: give three numbers, e.g. 0.6,0.2,0.2") from None
        bar = tqdm(total=cases, unit="case", desc="phantoms", file=self.stderr)

        def progress(done, total):
            bar.update(done - bar.n)

        try:
            manifest = write_phantom_dataset(Path(out), n_cases=cases, size=size, depth=depth, seed=seed,
                                             raters=raters, split_fractions=fractions, progress=progress,
                                             sparse_kinds=tuple(k.strip() for k in sparse.split(",") if k.strip()))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        reference = write_reference_manifest(manifest, Path(out) / "reference.csv", rater=raters[0])
        self.stdout.write(self.style.SUCCESS(f"{cases} phantom case(s) in {out}; manifest: {manifest}; "
                                             f"reference-format manifest: {reference}"))
