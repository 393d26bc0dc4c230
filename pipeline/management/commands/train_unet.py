from django.core.management.base import BaseCommand, CommandError

from pipeline import tasks
from pipeline.core.training.config_dict import PRESETS
from pipeline.management.commands._runs import run_here
from pipeline.models import Dataset, TrainingRun
from pipeline.runs.launch import launch
from pipeline.runs.presets import DEFAULT_PRESET, ConfigError, unet_config_file
from pipeline.unet.comparisons import check_arm, parse_arm
from pipeline.unet.runs import run_training


def add_unet_arguments(parser):
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--preset", choices=list(PRESETS), default=DEFAULT_PRESET)
    parser.add_argument("--config", help="YAML file overriding any U-Net parameter")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--queue", action="store_true", help="send to the gpu queue instead of running here")


def read_unet_config(preset, path, device):
    try:
        return unet_config_file(preset, path, device)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None


def get_dataset(name):
    dataset = Dataset.objects.filter(name=name).first()
    if dataset is None:
        raise CommandError(f"no dataset named {name!r}")
    return dataset


class Command(BaseCommand):
    help = "Train one 3D U-Net on a dataset's TRAIN labels of one source and predict its TEST split."

    def add_arguments(self, parser):
        add_unet_arguments(parser)
        parser.add_argument("--labels", required=True, help="expert, ai or truth (optionally :RATER, e.g. expert:r2)")

    def handle(self, dataset, preset, config, device, queue, labels, **options):
        ds = get_dataset(dataset)
        cfg = read_unet_config(preset, config, device)
        try:
            source, rater = parse_arm(labels)
            check_arm(ds, source, rater)
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        run = TrainingRun.objects.create(dataset=ds, label_source=source, expert_rater=rater,
                                         config={**cfg.to_dict(), "preset": preset})
        if queue:
            launch(run, tasks.train_unet)
            self.stdout.write(f"{run} queued on the gpu queue")
            return
        run = run_here(self, run, run_training, f"U-Net on {labels}")
        self.stdout.write(self.style.SUCCESS(f"{run}: {run.message}"))
