"""How fast is the coordinator's report page for a big study? (issue 5: 100 readers x 2,000 cases < 2 s)

Builds a study directly in the database (rows only; no volumes are needed for the report): one pair of
arms, N readers each voting on every case, votes simulated with a 60% preference. Then times the report
page through Django's test client: cold (first view in a fresh process: imports + statistics, then
cached), warm (cached), the JSON export, and after a vote changes (statistics recomputed in a process that
has served the page before: what a coordinator waits for on a running server). The mixed model is computed off the request path (a background task) and is timed apart.

Run: .venv/bin/python bench/report_bench.py [--readers 100 --cases 2000 --warm-up]. Prints JSON. With
--warm-up, "cold" is the first view in a web process that has started (labelgen_web/wsgi.py warms it up).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=100)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--mixed-model", action="store_true", help="also time the background mixed model")
    parser.add_argument("--warm-up", action="store_true",
                        help="run what a web process runs at start (evaluation.warmup) before the first view")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="report-bench-")
    os.environ.update({"LABELGEN_VAR_DIR": tmp, "DJANGO_SETTINGS_MODULE": "labelgen_web.settings_test"})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import numpy as np
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import transaction
    from django.test import Client

    from evaluation.models import Arm, Assignment, Item, Study, StudyCase, Vote
    from pipeline.models import Case, Dataset, PredictionSet

    call_command("migrate", verbosity=0)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    with transaction.atomic():
        ds = Dataset.objects.create(name="big")
        cases = Case.objects.bulk_create([Case(dataset=ds, external_id=f"c{i:05d}", split="TEST")
                                          for i in range(args.cases)])
        sets = [PredictionSet.objects.create(dataset=ds, name=n) for n in ("model-ai", "model-expert")]
        study = Study.objects.create(title="big study", dataset=ds, status="open", allow_tie=True)
        arms = [Arm.objects.create(study=study, name=s.name, prediction_set=s) for s in sets]
        scs = StudyCase.objects.bulk_create([StudyCase(study=study, case=c) for c in cases])
        group = Group.objects.get_or_create(name="Readers")[0]
        for r in range(args.readers):
            user = User.objects.create(username=f"reader{r:03d}")
            user.groups.add(group)
            assignment = Assignment.objects.create(study=study, reader=user, seed=r)
            order = rng.permutation(len(scs))
            lefts = rng.random(len(scs)) < 0.5
            items = Item.objects.bulk_create([
                Item(assignment=assignment, position=p + 1, study_case=scs[k],
                     arm_left=arms[0] if lefts[k] else arms[1], arm_right=arms[1] if lefts[k] else arms[0])
                for p, k in enumerate(order)])
            u = rng.random(len(items))
            votes = []
            for item, x in zip(items, u, strict=True):
                choice = "none" if x > 0.95 else ("left" if (x < 0.6) == (item.arm_left_id == arms[0].pk) else "right")
                votes.append(Vote(item=item, choice=choice, time_ms=int(rng.gamma(4, 2500)),
                                  arm=None if choice == "none" else item.arm_for(choice)))
            Vote.objects.bulk_create(votes)
    build_s = time.perf_counter() - t0
    coordinator = User.objects.create(username="coord")
    coordinator.groups.add(Group.objects.get_or_create(name="Coordinators")[0])
    client = Client()
    client.force_login(coordinator)
    url = f"/studies/{study.pk}/report/"
    timings = {}
    if args.warm_up:  # what a web process does when it starts (labelgen_web/wsgi.py), timed apart
        from evaluation.warmup import warm_up

        t0 = time.perf_counter()
        warm_up()
        timings["warm_up_at_process_start"] = round(time.perf_counter() - t0, 3)
    for label in ("cold", "warm", "warm_again"):
        t0 = time.perf_counter()
        response = client.get(url)
        timings[label] = round(time.perf_counter() - t0, 3)
        assert response.status_code == 200, response.status_code
    t0 = time.perf_counter()
    client.get(f"/studies/{study.pk}/report.json")
    timings["json_warm"] = round(time.perf_counter() - t0, 3)
    # what a coordinator waits for on a running server after a vote arrives: statistics and figures are
    # recomputed, but the process has already imported scipy/statsmodels/plotly ("cold" includes that)
    vote = Vote.objects.order_by("pk").first()
    vote.choice = "left" if vote.choice != "left" else "right"
    vote.arm = vote.item.arm_for(vote.choice)
    vote.save()
    t0 = time.perf_counter()
    assert client.get(url).status_code == 200
    timings["after_a_vote_changes"] = round(time.perf_counter() - t0, 3)
    result = {"benchmark": "study_report_page", "readers": args.readers, "cases": args.cases,
              "votes": Vote.objects.count(), "build_seconds": round(build_s, 1), "page_seconds": timings,
              "page_bytes": len(response.content), "database": "sqlite"}
    if args.mixed_model:
        from evaluation.reports import compute_full_report, votes_fingerprint

        t0 = time.perf_counter()
        compute_full_report(study.pk, votes_fingerprint(study))
        result["mixed_model_background_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
