"""The statistics behind study design (issue 17): the primary analysis, Gallas' MRMC variance, re-reads, graded
answers, power by simulation and the re-read plan, each against scipy/sklearn or hand-worked values."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.metrics import cohen_kappa_score

from evaluation.design import REREAD_GAP, plan_rereads
from evaluation.stats import (
    AnalysisPlan,
    VotesError,
    binomial_power,
    cases_for_power,
    mixed_model,
    mrmc,
    mrmc_variance,
    normalise_votes,
    ordinal_analysis,
    oriented_votes,
    power,
    primary_analysis,
    reread_agreement,
    simulate_votes,
    study_report,
)


def crossed(readers, cases, p, reader_sd=0.0, case_sd=0.0, seed=0, tie_rate=0.0):
    return simulate_votes(p, readers, cases, reader_sd=reader_sd, case_sd=case_sd, tie_rate=tie_rate,
                          rng=np.random.default_rng(seed))


# ------------------------------------------------------------------------------------- primary analysis


def test_mixed_primary_p_value_is_the_wald_test_of_its_own_interval():
    votes = normalise_votes(crossed(6, 30, 0.66, 0.5, 1.0, seed=4))
    res = primary_analysis(votes, "X", "Y", AnalysisPlan(arm="X", comparator="Y"))
    m = mixed_model(votes, "X", "Y")
    assert res.method == "mixed" and res.estimate == pytest.approx(m.probability_a)
    assert res.p_value == pytest.approx(2 * sps.norm.sf(abs(m.log_odds) / m.log_odds_sd))
    # the interval excludes 50% exactly when p < alpha (same SD, same normal quantile)
    assert (res.p_value < 0.05) == (not res.interval.low <= 0.5 <= res.interval.high)
    # stated for the comparator, the same analysis mirrors: 1 - estimate, same p (up to the variational
    # optimiser's tolerance: the mirrored model is a separate fit)
    other = primary_analysis(votes, "Y", "X", AnalysisPlan(arm="Y", comparator="X"))
    assert other.estimate == pytest.approx(1 - res.estimate, abs=5e-3)
    assert other.p_value == pytest.approx(res.p_value, rel=5e-2)


def test_ties_against_the_arm_count_as_losses():
    raw = pd.DataFrame({"reader": ["r1"] * 6, "case": [f"c{i}" for i in range(6)], "arm_a": "ai",
                        "arm_b": "expert", "choice": ["a", "a", "a", "tie", "tie", "b"]})
    votes = normalise_votes(raw)
    excl = primary_analysis(votes, "ai", "expert", AnalysisPlan(method="bootstrap", ties="exclude"))
    against = primary_analysis(votes, "ai", "expert", AnalysisPlan(method="bootstrap", ties="against"))
    assert (excl.wins, excl.losses, excl.ties, excl.share) == (3, 1, 2, 0.75)
    assert against.share == pytest.approx(3 / 6) and against.n_counted == 6
    # both fall back to the exact test (one reader, six votes), each on its own counts
    assert against.p_value == pytest.approx(sps.binomtest(3, 6).pvalue)
    assert excl.p_value == pytest.approx(sps.binomtest(3, 4).pvalue)
    assert (oriented_votes(votes, "ai", "expert", "against")["choice"] == "tie").sum() == 0


def test_plan_names_its_pair_and_other_pairs_are_secondary():
    raw = pd.concat([crossed(4, 12, 0.7, seed=1).assign(arm_a="ai", arm_b="expert"),
                     crossed(4, 12, 0.5, seed=2).assign(arm_a="ai", arm_b="third")])
    report = study_report(raw, n_boot=200, plan=AnalysisPlan(arm="expert", comparator="ai", method="bootstrap"))
    primary = report.primary
    assert (primary.arm, primary.comparator) == ("expert", "ai") and primary.estimate < 0.5
    assert report.headline().startswith("Arm expert was preferred in") and len(report.headline().splitlines()) == 1
    assert [p.is_primary for p in report.pairs] == [True, False]
    names = [s.name for s in report.pairs[0].secondary()]
    assert "exact binomial test, Wilson interval (ties excluded)" in names
    assert any(n.startswith("MRMC") for n in names) and not any("bootstrap" in n for n in names)
    with pytest.raises(ValueError, match="the votes' arms are"):
        study_report(raw, plan=AnalysisPlan(arm="ai", comparator="nope"))


# ------------------------------------------------------------------------------------------- MRMC


def test_mrmc_variance_hand_worked_two_by_two():
    # s = [[1, 0], [1, 1]]: K1..K4 = 4, 4, 4, 4; M1 = 3/4, M2 = M3 = M4 = 1/2 -> Var = 9/16 - 1/2 = 1/16
    theta, var, moments = mrmc_variance(np.array([[1, 0], [1, 1]]), np.ones((2, 2)))
    assert theta == 0.75 and moments == pytest.approx((0.75, 0.5, 0.5, 0.5)) and var == pytest.approx(1 / 16)


def test_mrmc_variance_is_unbiased_in_simulation():
    # Reader and case effects: the mean of the U-statistic variance estimates matches the variance of the
    # share across simulated studies (within the Monte Carlo error of 600 studies, about 6% here).
    rng = np.random.default_rng(7)
    shares, estimates = [], []
    for _ in range(600):
        v = normalise_votes(simulate_votes(0.65, 5, 20, reader_sd=0.5, case_sd=1.0, rng=rng))
        r = mrmc(v, "X", "Y")
        shares.append(r.share_a)
        estimates.append(r.variance)
    assert np.mean(estimates) == pytest.approx(np.var(shares, ddof=1), rel=0.15)


# ----------------------------------------------------------------------------- re-reads and grades


def test_reread_agreement_matches_sklearn_and_counts_side_swaps():
    first = pd.DataFrame({"reader": ["r1"] * 4 + ["r2"] * 4, "case": [f"c{i}" for i in range(4)] * 2,
                          "arm_a": "ai", "arm_b": "expert", "choice": ["a", "a", "b", "tie", "a", "b", "b", "a"]})
    again = first.assign(choice=["a", "b", "b", "tie", "a", "b", "a", "a"], reread=True)
    votes = normalise_votes(pd.concat([first.assign(reread=False), again]))
    rr = reread_agreement(votes)
    assert rr.n == 8 and rr.agree == 6
    assert rr.kappa == pytest.approx(cohen_kappa_score(first["choice"], again["choice"], labels=["a", "b", "tie"]))
    assert rr.n_decisive == 7 and rr.swap_consistent == pytest.approx(5 / 7)
    assert rr.same_side == pytest.approx(2 / 7)
    # every other statistic uses first reads only
    report = study_report(pd.concat([first.assign(reread=False), again]), n_boot=0, fit_mixed_model=False,
                          plan=AnalysisPlan(method="bootstrap"))
    assert report.n_votes == 8 and report.n_rereads == 8 and report.rereads.n == 8


def test_graded_answers_validate_and_test_reader_means_with_wilcoxon():
    rows = []
    for r in range(7):
        for c in range(6):
            g = [2, 1, 1, 0, -1, 1][(r + c) % 6]
            rows.append(dict(reader=f"r{r}", case=f"c{c}", arm_a="expert", arm_b="ai",
                             choice="a" if g > 0 else "b" if g < 0 else "tie", grade=g))
    votes = normalise_votes(pd.DataFrame(rows))
    # stored as (ai, expert) after canonical ordering: grades flip sign with the sides
    o = ordinal_analysis(votes, "ai", "expert")
    assert o.counts == (7, 21, 7, 7, 0) and o.mean_grade == pytest.approx(-4 / 6)
    means = votes.groupby("reader")["grade"].mean().to_numpy()
    assert o.p_value == pytest.approx(sps.wilcoxon(means).pvalue)
    bad = pd.DataFrame(rows[:1]).assign(grade=-1)
    with pytest.raises(VotesError, match="disagrees with choice"):
        normalise_votes(bad)
    with pytest.raises(VotesError, match="not a whole number"):
        normalise_votes(pd.DataFrame(rows[:1]).assign(grade=1.5))


# ------------------------------------------------------------------------------------------ power


def test_simulated_power_of_the_exact_test_matches_scipy_with_both_sds_zero():
    n = 4 * 15
    crit = [k for k in range(n + 1) if sps.binomtest(k, n, 0.5).pvalue < 0.05 and k > n / 2]
    exact = float(sum(sps.binom.pmf(k, n, 0.7) for k in crit))
    assert binomial_power(0.7, n) == pytest.approx(exact, rel=1e-9)
    sim = power(0.7, 4, 15, plan=AnalysisPlan(method="exact"), n_sim=3000, seed=0)
    assert abs(sim.power - exact) < 3 * sim.mc_se and sim.binomial_power == pytest.approx(exact)
    again = power(0.7, 4, 15, plan=AnalysisPlan(method="exact"), n_sim=3000, seed=0)
    assert again == sim  # seeded


def test_cluster_robust_methods_stay_below_the_independence_bound():
    # The price of not assuming independence (see the power module): with no reader or case variance the
    # bootstrap cannot be more powerful than the exact test on the same votes.
    boot = power(0.7, 4, 15, plan=AnalysisPlan(method="bootstrap"), n_sim=300, seed=0, n_boot=400)
    assert boot.power < boot.binomial_power - 2 * boot.mc_se


def test_cases_for_power_finds_the_smallest_design_and_reports_unreachable_targets():
    found = cases_for_power(0.7, 2, target=0.8, plan=AnalysisPlan(method="exact"), n_sim=400, seed=1)
    by_cases = {p.cases: p.power for p in found.checked}
    assert found.power.power >= 0.8 and all(v < 0.8 for c, v in by_cases.items() if c < found.cases)
    assert found.cases - 1 in by_cases or found.cases == 1
    none = cases_for_power(0.52, 1, target=0.9, max_cases=20, plan=AnalysisPlan(method="exact"), n_sim=100)
    assert none.cases is None and "not reached" in none.note


# ------------------------------------------------------------------------------------- re-read plan


@pytest.mark.parametrize("n,share", [(40, 0.2), (10, 0.5), (5, 0.25), (3, 0.5), (20, 0.0)])
def test_rereads_come_later_never_adjacent_and_cover_the_share(n, share):
    seq = plan_rereads(n, share, seed=9)
    firsts = [x for x in seq if x >= 0]
    rereads = [-x - 1 for x in seq if x < 0]
    assert firsts == list(range(n)) and len(set(rereads)) == len(rereads)
    assert len(rereads) == min(round(share * n), max(n - REREAD_GAP - 1, 0))
    for i in rereads:
        assert seq.index(-i - 1) - seq.index(i) > REREAD_GAP
    assert plan_rereads(n, share, seed=9) == seq


@pytest.mark.slow
def test_mixed_model_interval_covers_the_truth_93_to_97_percent():
    # 400 simulated studies of 6 readers x 40 cases, reader SD 0.5 and case SD 1.0 (logit), P = 0.65 for a
    # typical reader on a typical case: the planned primary analysis' 95% CI must contain 0.65 in 93-97% of
    # them (Monte Carlo SE 1.1%). bench/study_design_bench.py prints this and the other methods' figures.
    rng = np.random.default_rng(2)
    covered = fitted = 0
    for _ in range(400):
        votes = simulate_votes(0.65, 6, 40, reader_sd=0.5, case_sd=1.0, rng=rng)
        res = primary_analysis(votes, "X", "Y", AnalysisPlan(arm="X", comparator="Y"))
        fitted += res.method == "mixed"
        covered += res.interval.low <= 0.65 <= res.interval.high
    assert fitted == 400
    assert 0.93 <= covered / 400 <= 0.97
