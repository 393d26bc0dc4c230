import json

from django.core.management.base import BaseCommand, CommandError

from evaluation.planning import PlanningError, pilot_components, plan_design
from evaluation.stats import METHODS, TIES


class Command(BaseCommand):
    help = ("Power of a reader study's primary analysis by simulation, or the cases needed for a target power "
            "(readers x cases, every reader reads every case).")

    def add_arguments(self, parser):
        parser.add_argument("--preference", type=float, required=True,
                            help="expected P(arm preferred) for a typical reader on a typical case, e.g. 0.65")
        parser.add_argument("--readers", type=int, required=True)
        size = parser.add_mutually_exclusive_group(required=True)
        size.add_argument("--cases", type=int, help="power at this many cases")
        size.add_argument("--power", type=float, dest="target", help="cases needed for this power, e.g. 0.8")
        parser.add_argument("--reader-sd", type=float, help="reader random-effect SD (logit; default 0.5)")
        parser.add_argument("--case-sd", type=float, help="case random-effect SD (logit; default 1.0)")
        parser.add_argument("--from-study", help="take the SDs from this closed study's fitted mixed model")
        parser.add_argument("--alpha", type=float, default=0.05)
        parser.add_argument("--method", choices=sorted(METHODS), default="mixed", help="primary method")
        parser.add_argument("--ties", choices=sorted(TIES), default="exclude")
        parser.add_argument("--tie-rate", type=float, default=0.0, help="share of votes that are ties")
        parser.add_argument("--sims", type=int, default=400, help="simulated studies per design")
        parser.add_argument("--max-cases", type=int, default=400)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--format", choices=["text", "json"], default="text")

    def handle(self, *args, **o):
        reader_sd, case_sd = o["reader_sd"], o["case_sd"]
        if o["from_study"]:
            if reader_sd is not None or case_sd is not None:
                raise CommandError("give either --reader-sd/--case-sd or --from-study, not both")
            from evaluation.reports import find_study

            study = find_study(o["from_study"])
            if study is None:
                raise CommandError(f"no study with id or title {o['from_study']!r}")
            try:
                reader_sd, case_sd = pilot_components(study)
            except PlanningError as exc:
                raise CommandError(str(exc)) from None
        reader_sd = 0.5 if reader_sd is None else reader_sd
        case_sd = 1.0 if case_sd is None else case_sd
        try:
            result = plan_design(preference=o["preference"], readers=o["readers"], cases=o["cases"],
                                 target=o["target"], reader_sd=reader_sd, case_sd=case_sd, alpha=o["alpha"],
                                 method=o["method"], ties=o["ties"], tie_rate=o["tie_rate"], n_sim=o["sims"],
                                 seed=o["seed"], max_cases=o["max_cases"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if o["format"] == "json":
            self.stdout.write(json.dumps(result, indent=2))
        elif result["power"] is None:
            self.stdout.write(result["note"])
        else:
            lead = f"{result['cases']} cases needed for {result['target']:.0%} power: " if o["target"] else ""
            self.stdout.write(lead + result["line"])
