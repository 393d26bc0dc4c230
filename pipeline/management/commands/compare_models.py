from django.core.management.base import BaseCommand, CommandError

from pipeline import tasks
from pipeline.management.commands._runs import run_here
from pipeline.management.commands.train_unet import add_unet_arguments, get_dataset, read_unet_config
from pipeline.runs.launch import launch
from pipeline.runs.presets import ConfigError
from pipeline.unet.comparisons import check_arm, create_comparison, parse_arm
from pipeline.unet.runs import finalize_comparison, run_training


def summary_lines(comparison):
    lines = []
    for arm, info in comparison.summary.get("arms", {}).items():
        for ref in ("truth", "expert"):
            stats = info.get(f"vs_{ref}")
            if stats:
                d, h = stats["dice"], stats["hd95_mm"]
                fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
                lines.append(f"{arm:<14} vs {ref:<7} Dice mean {fmt(d['mean'])} median {fmt(d['median'])} "
                             f"(n={d['n']}) · HD95 mean {fmt(h['mean'])} mm")
    for name, test in comparison.summary.get("paired_tests", {}).items():
        p = test.get("wilcoxon_p")
        what = f"Dice vs {test['reference']}, {test['a']} minus {test['b']}" if "a" in test else f"paired {name}"
        lines.append(f"{what}: mean difference {test.get('mean_difference'):+.3f}, Wilcoxon p = "
                     f"{'—' if p is None else f'{p:.3g}'} (n={test.get('n')})")
    return lines


class Command(BaseCommand):
    help = "Train one U-Net per arm with the same config and seed, predict TEST with each, and compare them."

    def add_arguments(self, parser):
        add_unet_arguments(parser)
        parser.add_argument("--arms", default="expert,ai", help="comma-separated label sources (default expert,ai)")

    def handle(self, dataset, preset, config, device, queue, arms, **options):
        ds = get_dataset(dataset)
        cfg = read_unet_config(preset, config, device)
        arm_list = [a.strip() for a in arms.split(",") if a.strip()]
        try:
            for arm in arm_list:
                check_arm(ds, *parse_arm(arm))
            comparison, runs = create_comparison(ds, arm_list, cfg, preset)
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        if queue:
            for run in runs:
                launch(run, tasks.train_unet)
            self.stdout.write(f"{comparison} queued: {', '.join(str(r) for r in runs)}")
            return
        for run in runs:
            try:
                run_here(self, run, run_training, f"arm {run.arm_name}")
            finally:
                comparison = finalize_comparison(comparison.pk)
        for line in summary_lines(comparison):
            self.stdout.write(line)
        names = [r.prediction_set.name for r in comparison.arms_runs.order_by("id") if r.prediction_set_id]
        self.stdout.write(self.style.SUCCESS(f"{comparison}: prediction sets {', '.join(names)}"))
