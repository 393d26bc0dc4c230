from django.core.management.base import BaseCommand, CommandError

from pipeline import tasks
from pipeline.core.training.config_dict import PRESETS
from pipeline.labelgen.runs import DatasetNotReady, check_clustering_inputs, run_clustering
from pipeline.management.commands._runs import run_here
from pipeline.models import ClusteringRun, Dataset
from pipeline.runs.launch import launch
from pipeline.runs.presets import DEFAULT_PRESET, ConfigError, clustering_config, read_config_file


def add_clustering_arguments(parser):
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--preset", choices=list(PRESETS), default=DEFAULT_PRESET)
    parser.add_argument("--config", help="YAML file overriding any parameter of the preset")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the config's)")
    parser.add_argument("--queue", action="store_true", help="send to the gpu queue instead of running here")


def create_clustering_run(dataset_name, preset, config_path, device):
    """A validated, unsaved-to-queue ClusteringRun; errors name the dataset, case or config key."""
    dataset = Dataset.objects.filter(name=dataset_name).first()
    if dataset is None:
        raise CommandError(f"no dataset named {dataset_name!r}")
    try:
        overrides, refine = read_config_file(config_path) if config_path else ({}, {})
        config = clustering_config(preset, overrides, device)
        check_clustering_inputs(dataset, config)
    except (ConfigError, DatasetNotReady) as exc:
        raise CommandError(str(exc)) from None
    run = ClusteringRun.objects.create(dataset=dataset, config={**config.to_dict(), "preset": preset})
    return run, refine


class Command(BaseCommand):
    help = "Step 1: train the multi-modal clustering network on a dataset and store a cluster map per case."

    def add_arguments(self, parser):
        add_clustering_arguments(parser)

    def handle(self, dataset, preset, config, device, queue, **options):
        run, _ = create_clustering_run(dataset, preset, config, device)
        if queue:
            launch(run, tasks.train_clustering)
            self.stdout.write(f"{run} queued on the gpu queue")
            return
        run = run_here(self, run, run_clustering, f"clustering {dataset}")
        self.stdout.write(self.style.SUCCESS(f"{run}: {run.message}; device {run.device}"))
