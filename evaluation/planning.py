"""Study planning for coordinators: power of the primary analysis and the cases it needs, from assumed or
pilot (a closed study's fitted) variance components. A thin shell around :mod:`evaluation.stats.power`,
shared by ``manage.py plan_study`` and the planner panel of the study form."""

from evaluation.stats import AnalysisPlan, cases_for_power, power

#: Simulated studies per design on the web panel (a request must answer in seconds; the command does more).
WEB_SIMS = {"mixed": 60, "bootstrap": 300}
WEB_SEARCH_SIMS = {"mixed": 25, "bootstrap": 150}


class PlanningError(ValueError):
    """A planning request that cannot be answered (e.g. a pilot study without a fitted model)."""


def plan_design(*, preference, readers, cases=None, target=None, reader_sd=0.0, case_sd=0.0, alpha=0.05,
                method="mixed", ties="exclude", tie_rate=0.0, n_sim=200, search_sims=None, seed=0,
                max_cases=400):
    """JSON-ready ``{"power", "cases", "mc_se", "design", "checked", "note"}``: the power at ``cases`` or, with
    ``target``, the fewest cases reaching it (``cases`` None when not reachable up to ``max_cases``)."""
    plan = AnalysisPlan(method=method, ties=ties or "exclude", alpha=alpha)
    common = dict(reader_sd=reader_sd, case_sd=case_sd, plan=plan, tie_rate=tie_rate or 0.0, seed=seed)
    design = {"preference": preference, "readers": readers, "reader_sd": reader_sd, "case_sd": case_sd,
              "alpha": alpha, "method": method, "ties": plan.ties, "tie_rate": tie_rate or 0.0, "seed": seed}
    if target:
        found = cases_for_power(preference, readers, target=target, max_cases=max_cases,
                                n_sim=search_sims or n_sim, **common)
        checked = [p.to_dict() for p in found.checked]
        if found.cases is None:
            return {"power": None, "cases": None, "mc_se": None, "target": target, "design": design,
                    "checked": checked, "note": found.note}
        cases = found.cases
    else:
        checked = []
    result = power(preference, readers, cases, n_sim=n_sim, **common)
    return {"power": result.power, "cases": cases, "mc_se": result.mc_se, "target": target, "design": design,
            "n_sim": n_sim, "checked": checked, "line": result.line(), "note": None}


def pilot_components(study):
    """``(reader_sd, case_sd)`` of a closed study's fitted primary mixed model (the pilot's)."""
    from evaluation.reports import cached_report

    if study.status != study.Status.CLOSED:
        raise PlanningError(f"study {study.title!r} is {study.status}: a pilot must be closed")
    report, _, _, _ = cached_report(study, full=True)
    if report is None:
        raise PlanningError(f"study {study.title!r} has no votes")
    for pair in report["pairs"]:
        m = pair.get("mixed_model") or {}
        if pair["is_primary"] and m.get("fitted"):
            return m.get("reader_sd") or 0.0, m.get("case_sd") or 0.0
    raise PlanningError(f"study {study.title!r} has no fitted mixed model to take variance components from")
