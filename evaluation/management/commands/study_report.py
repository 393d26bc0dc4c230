import dataclasses
import json

from django.core.management.base import BaseCommand, CommandError

from evaluation.stats import METHODS, TIES, AnalysisPlan, VotesError, study_report
from evaluation.votes_csv import VotesCsvError, read_votes_csv


class Command(BaseCommand):
    help = ("Preference statistics of a reader study (by title or id), or of votes collected elsewhere "
            "(--from-csv with columns reader, case, arm_a, arm_b, choice; optional left, confidence, time_ms).")

    def add_arguments(self, parser):
        parser.add_argument("study", nargs="?", help="study id or title")
        parser.add_argument("--from-csv", dest="csv", help="votes CSV instead of a study")
        parser.add_argument("--format", choices=["text", "json", "csv"], default="text")
        parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (0 = skip)")
        parser.add_argument("--no-mixed-model", action="store_true", help="skip the (slow on big studies) mixed model")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--primary-method", choices=sorted(METHODS),
                            help="primary analysis (default: the study's plan; for a CSV the mixed model)")
        parser.add_argument("--ties", choices=sorted(TIES), help="tie rule of the primary endpoint")
        parser.add_argument("--alpha", type=float, help="two-sided alpha of the primary analysis (0.05)")
        parser.add_argument("--arm", help="the arm whose preference is the primary endpoint (with --comparator)")
        parser.add_argument("--comparator", help="the other arm of the primary endpoint")

    def handle(self, study, csv, format, n_boot, no_mixed_model, seed, **options):
        if bool(study) == bool(csv):
            raise CommandError("give either a STUDY or --from-csv VOTES.csv")
        plan = AnalysisPlan()
        if csv:
            try:
                votes = read_votes_csv(csv)
            except VotesCsvError as exc:
                raise CommandError(str(exc)) from None
        else:
            found, votes = self.study_votes(study, format)
            plan = found.analysis_plan()
        changes = {k: options[o] for k, o in (("method", "primary_method"), ("ties", "ties"), ("alpha", "alpha"),
                                              ("arm", "arm"), ("comparator", "comparator")) if options[o] is not None}
        try:
            plan = dataclasses.replace(plan, **changes)
        except ValueError as exc:
            raise CommandError(f"primary analysis: {exc}") from None
        if no_mixed_model and plan.method == "mixed":
            raise CommandError("the primary analysis is the mixed model; --no-mixed-model needs "
                               "--primary-method bootstrap")
        try:
            report = study_report(votes, plan=plan, n_boot=n_boot, seed=seed, fit_mixed_model=not no_mixed_model)
        except (VotesError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        if format == "json":
            self.stdout.write(json.dumps(report.to_dict(), indent=2))
        elif format == "csv":
            self.stdout.write(report.summary_frame().to_csv(index=False), ending="")
        else:
            self.stdout.write(report.to_text())

    def study_votes(self, study, format):
        from evaluation.reports import find_study, votes_frame

        found = find_study(study)
        if found is None:
            raise CommandError(f"no study with id or title {study!r}")
        votes = votes_frame(found)
        if votes.empty:
            raise CommandError(f"study {found.title!r} has no votes yet")
        return found, votes
