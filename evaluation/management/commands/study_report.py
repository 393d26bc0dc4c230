import json

from django.core.management.base import BaseCommand, CommandError

from evaluation.stats import VotesError, study_report
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

    def handle(self, study, csv, format, n_boot, no_mixed_model, seed, **options):
        if bool(study) == bool(csv):
            raise CommandError("give either a STUDY or --from-csv VOTES.csv")
        if csv:
            try:
                votes = read_votes_csv(csv)
            except VotesCsvError as exc:
                raise CommandError(str(exc)) from None
        else:
            votes = self.study_votes(study, format)
        try:
            report = study_report(votes, n_boot=n_boot, seed=seed, fit_mixed_model=not no_mixed_model)
        except VotesError as exc:
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
        return votes
