"""``manage.py create_study``: a reader study from the command line (same rules as the coordinator page)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from evaluation.models import Study
from evaluation.services import StudyError, create_study, readers_queryset
from pipeline.models import Dataset, PredictionSet


def _names(text, what):
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    if len(set(names)) != len(names):
        raise CommandError(f"--{what} names something twice: {text}")
    return names


class Command(BaseCommand):
    help = "Create a blinded reader study comparing prediction sets of a dataset, and assign readers."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="dataset name")
        parser.add_argument("--arms", required=True, help="comma-separated prediction set names (2 or more)")
        parser.add_argument("--readers", default="", help="comma-separated usernames (Readers group)")
        parser.add_argument("--title", required=True)
        parser.add_argument("--instructions", default="")
        parser.add_argument("--seed", type=int, default=None, help="default: random")
        parser.add_argument("--allow-tie", action="store_true", help="allow a “no preference” answer")
        parser.add_argument("--ask-confidence", action="store_true", help="ask confidence 1-5")
        parser.add_argument("--ask-comment", action="store_true", help="offer an optional comment")
        parser.add_argument("--allow-revisit", action="store_true", help="let readers change answers")
        parser.add_argument("--every-pair", action="store_true", help="3+ arms: every pair on every case")
        parser.add_argument("--modality", default="", help="base image shown first")
        parser.add_argument("--draft", action="store_true", help="leave the study as a draft (default: open)")
        parser.add_argument("--public-title", default="", help="what readers see (default: “Study <n>”)")
        parser.add_argument("--primary", help="X,Y: primary endpoint = share preferring set X over set Y "
                                              "(default with two arms: the first over the second)")
        parser.add_argument("--primary-method", choices=[c for c, _ in Study.Method.choices], default="mixed")
        parser.add_argument("--ties", choices=[c for c, _ in Study.Ties.choices], default="exclude")
        parser.add_argument("--alpha", type=float, default=0.05)
        parser.add_argument("--reread-share", type=float, default=0.0, help="0-0.5 of items re-read, sides swapped")
        parser.add_argument("--graded", action="store_true", help="five-point answers instead of A/B")
        parser.add_argument("--neurological", action="store_true", help="viewer default: patient left on left")

    def handle(self, *args, **opts):
        try:
            dataset = Dataset.objects.get(name=opts["dataset"])
        except Dataset.DoesNotExist:
            known = ", ".join(Dataset.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"Unknown dataset {opts['dataset']!r} (known: {known})") from None
        sets = []
        for name in _names(opts["arms"], "arms"):
            pset = PredictionSet.objects.filter(dataset=dataset, name=name).first()
            if pset is None:
                known = ", ".join(dataset.prediction_sets.values_list("name", flat=True)) or "none"
                raise CommandError(f"Unknown prediction set {name!r} in dataset {dataset.name!r} (known: {known})")
            sets.append(pset)
        readers = []
        for username in _names(opts["readers"], "readers"):
            user = get_user_model().objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"Unknown reader {username!r}")
            if not readers_queryset().filter(pk=user.pk).exists():
                raise CommandError(f"User {username!r} is not an active member of the Readers group")
            readers.append(user)
        primary = None
        if opts["primary"]:
            by_name = {p.name: p for p in sets}
            names = _names(opts["primary"], "primary")
            if len(names) != 2 or not set(names) <= set(by_name):
                raise CommandError(f"--primary must name two of the study's arms ({', '.join(by_name)}), "
                                   f"got {opts['primary']!r}")
            primary = (by_name[names[0]], by_name[names[1]])
        if not 0.001 <= opts["alpha"] <= 0.2:
            raise CommandError(f"--alpha must be between 0.001 and 0.2, got {opts['alpha']}")
        if not 0 <= opts["reread_share"] <= 0.5:
            raise CommandError(f"--reread-share must be between 0 and 0.5, got {opts['reread_share']}")
        if opts["graded"] and opts["ask_confidence"]:
            raise CommandError("graded answers already carry the strength: use --graded or --ask-confidence")
        if opts["modality"] and opts["modality"] not in dataset.modalities():
            raise CommandError(f"Dataset {dataset.name!r} has no modality {opts['modality']!r} "
                               f"(it has: {', '.join(dataset.modalities())})")
        try:
            study = create_study(
                dataset=dataset, prediction_sets=sets, title=opts["title"], readers=readers, seed=opts["seed"],
                open_now=not opts["draft"] and bool(readers), instructions=opts["instructions"],
                allow_tie=opts["allow_tie"], ask_confidence=opts["ask_confidence"], ask_comment=opts["ask_comment"],
                allow_revisit=opts["allow_revisit"], every_pair_each_case=opts["every_pair"],
                default_modality=opts["modality"], public_title=opts["public_title"], primary=primary,
                primary_method=opts["primary_method"], ties=opts["ties"], alpha=opts["alpha"],
                reread_share=opts["reread_share"], graded=opts["graded"], radiological=not opts["neurological"])
        except StudyError as exc:
            raise CommandError(exc.message) from None
        n_items = sum(a.items.count() for a in study.assignments.all())
        self.stdout.write(self.style.SUCCESS(
            f"Study {study.pk} “{study.title}”: {study.get_status_display().lower()}, {len(sets)} arms, "
            f"{study.study_cases.count()} cases, {len(readers)} readers, {n_items} items, seed {study.seed}"))
        if not readers and not opts["draft"]:
            self.stdout.write("No readers given: the study stays a draft until readers are assigned.")
