from django.core.management.base import BaseCommand, CommandError

from pipeline import tasks
from pipeline.labelgen.runs import run_clustering, run_refinement
from pipeline.management.commands._runs import run_here
from pipeline.management.commands.train_clustering import add_clustering_arguments, create_clustering_run
from pipeline.models import RefinementRun
from pipeline.runs.launch import launch
from pipeline.runs.presets import ConfigError, refine_config


def qa_table(run):
    """Rows (case, dice vs combined expert, dice vs truth, hd95 vs truth) and the means."""
    rows = []
    for qa in run.qa.select_related("case").order_by("case__external_id"):
        truth, expert_truth = qa.vs_truth or {}, qa.expert_vs_truth or {}
        rows.append((qa.case.external_id, qa.case.split, qa.vs_expert["dice"], truth.get("dice"),
                     expert_truth.get("dice"), truth.get("hd95_mm")))
    return rows


class Command(BaseCommand):
    help = "Steps 1 and 2: cluster a dataset, then refine its expert labels into AI labels, with a QA table."

    def add_arguments(self, parser):
        add_clustering_arguments(parser)
        parser.add_argument("--split", action="append", choices=["TRAIN", "VAL", "TEST"],
                            help="label only these splits (repeatable; default all)")
        parser.add_argument("--expert-rater", help="refine from one rater's labels only (default: all raters)")

    def handle(self, dataset, preset, config, device, queue, split, expert_rater, **options):
        clustering, refine_overrides = create_clustering_run(dataset, preset, config, device)
        if split:
            refine_overrides["splits"] = split
        if expert_rater:
            refine_overrides["expert_rater"] = expert_rater
        try:
            refine = refine_config(refine_overrides)
        except ConfigError as exc:
            clustering.delete()
            raise CommandError(str(exc)) from None
        refinement = RefinementRun.objects.create(dataset=clustering.dataset, clustering_run=clustering, config=refine)
        if queue:
            launch(clustering, tasks.train_clustering)  # its task queues the refinement when it succeeds
            self.stdout.write(f"{clustering} queued; {refinement} follows it")
            return
        run_here(self, clustering, run_clustering, f"step 1 {dataset}")
        self.stdout.write(f"{clustering}: {clustering.message}")
        run_here(self, refinement, run_refinement, f"step 2 {dataset}")
        rows = qa_table(refinement)
        fmt = lambda v: "   —" if v is None else f"{v:.3f}"  # noqa: E731
        self.stdout.write(f"\n{'case':<12}{'split':<6}{'AI vs expert':>13}{'AI vs truth':>12}{'expert vs truth':>16}"
                          f"{'HD95 mm':>9}")
        for case, sp, d_exp, d_truth, d_rough, hd in rows:
            self.stdout.write(f"{case:<12}{sp:<6}{fmt(d_exp):>13}{fmt(d_truth):>12}{fmt(d_rough):>16}{fmt(hd):>9}")
        for i, name in ((2, "AI vs expert"), (3, "AI vs truth"), (4, "expert vs truth")):
            values = [r[i] for r in rows if r[i] is not None]
            if values:
                self.stdout.write(f"mean Dice {name}: {sum(values) / len(values):.3f} over {len(values)} case(s)")
        self.stdout.write(self.style.SUCCESS(f"{refinement}: {refinement.message}"))
