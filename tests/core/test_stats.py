"""Tests for evaluation.stats: every statistic against an independent computation (scipy / statsmodels /
sklearn called here directly, hand-worked examples, or simulations with a known effect)."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from scipy.stats import binomtest
from statsmodels.stats.proportion import proportion_confint

from evaluation.stats import (
    AnalysisPlan,
    VotesError,
    clopper_pearson_interval,
    cluster_bootstrap,
    mixed_model,
    normalise_votes,
    preference,
    preference_breakdown,
    sign_test,
    study_report,
    wilson_interval,
)

FLIP = {"a": "b", "b": "a", "tie": "tie"}


def votes_37_of_60(distinct_readers=True):
    """37 votes for "ai", 23 for "expert"; half the rows stored in (expert, ai) order."""
    rows = []
    for i in range(60):
        choice = "a" if i < 37 else "b"  # "a" = ai
        row = dict(
            reader=f"r{i}" if distinct_readers else "r0",
            case=f"c{i}",
            arm_a="ai",
            arm_b="expert",
            choice=choice,
        )
        if i % 2:
            row.update(arm_a="expert", arm_b="ai", choice=FLIP[choice])
        rows.append(row)
    return pd.DataFrame(rows)


def crossed_votes(
    n_readers, n_cases, p_a=0.6, reader_sd=0.0, case_sd=0.0, tie_rate=0.0, seed=0, arms=("ai", "expert")
):
    """Every reader votes on every case (logistic model with reader and case random intercepts)."""
    rng = np.random.default_rng(seed)
    r = np.repeat(np.arange(n_readers), n_cases)
    c = np.tile(np.arange(n_cases), n_readers)
    logit = (
        np.log(p_a / (1 - p_a)) + rng.normal(0, reader_sd, n_readers)[r] + rng.normal(0, case_sd, n_cases)[c]
    )
    win = rng.random(r.size) < expit(logit)
    tie = rng.random(r.size) < tie_rate
    return pd.DataFrame(
        {
            "reader": [f"r{x:02d}" for x in r],
            "case": [f"c{x:03d}" for x in c],
            "arm_a": arms[0],
            "arm_b": arms[1],
            "choice": np.where(tie, "tie", np.where(win, "a", "b")),
        }
    )


# ----------------------------------------------------------------------------------------- preference


def test_37_of_60_matches_spec_and_scipy():
    (res,) = preference(normalise_votes(votes_37_of_60()))
    assert (res.arm_a, res.arm_b, res.wins_a, res.wins_b, res.ties) == ("ai", "expert", 37, 23, 0)
    assert res.share_a == pytest.approx(37 / 60)
    ref = binomtest(37, 60, 0.5)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert round(res.p_value, 4) == 0.0925
    w = ref.proportion_ci(0.95, method="wilson")
    cp = ref.proportion_ci(0.95, method="exact")
    assert (res.wilson.low, res.wilson.high) == pytest.approx((w.low, w.high), rel=1e-12)
    assert (round(res.wilson.low, 3), round(res.wilson.high, 3)) == (0.490, 0.729)
    assert (res.clopper_pearson.low, res.clopper_pearson.high) == pytest.approx((cp.low, cp.high), rel=1e-9)
    assert res.preferred == "ai"


def test_37_of_60_headline_sentence():
    # 60 readers x 60 cases, one vote each: no random effect is identifiable, so the planned mixed model falls
    # back to the exact binomial test, and the headline's interval is the same method's (Clopper-Pearson).
    report = study_report(votes_37_of_60(), n_boot=200)
    pa = report.pairs[0].primary
    assert pa.method == "exact" and "no random effect is identifiable" in pa.fallback_reason
    cp = binomtest(37, 60).proportion_ci(0.95, method="exact")
    assert (pa.interval.low, pa.interval.high) == pytest.approx((cp.low, cp.high), rel=1e-9)
    assert pa.p_value == pytest.approx(binomtest(37, 60).pvalue)
    headline = report.headline()
    assert headline.startswith("Arm ai was preferred in 61.67% of 60 decisive evaluations. Primary analysis "
                               "(exact binomial test with Clopper-Pearson interval, the planned fallback")
    assert headline.endswith("share preferring ai 61.7% (95% CI 48.2%-73.9%; p = 0.092; not significant at "
                             "alpha 0.05).")
    # Flipping the labels of every vote must name the other arm with the same numbers.
    flipped = votes_37_of_60().assign(choice=lambda d: d["choice"].map(FLIP))
    assert study_report(flipped, n_boot=0).headline().startswith("Arm expert was preferred in 61.67% of 60")


@pytest.mark.parametrize("n", [0, 1, 2, 7, 30, 61])
def test_vectorised_intervals_and_sign_test_match_references(n):
    k = np.arange(n + 1)
    p = sign_test(k, np.full_like(k, n))
    wl, wh = wilson_interval(k, n)
    cl, ch = clopper_pearson_interval(k, n)
    if n == 0:
        assert np.isnan(p).all() and np.isnan(wl).all() and np.isnan(cl).all()
        return
    for i in k:
        assert p[i] == pytest.approx(binomtest(int(i), n).pvalue, rel=1e-10)
        assert (wl[i], wh[i]) == pytest.approx(proportion_confint(i, n, method="wilson"), abs=1e-12)
        assert (cl[i], ch[i]) == pytest.approx(proportion_confint(i, n, method="beta"), abs=1e-9)


def test_breakdowns_match_independent_crosstab():
    raw = crossed_votes(4, 15, tie_rate=0.2, seed=3)
    raw = raw[~((raw.reader == "r02") & (raw.case < "c005"))]  # unbalanced
    votes = normalise_votes(raw)
    for by in ("reader", "case"):
        (bd,) = preference_breakdown(votes, by)
        table = pd.crosstab(raw[by], raw["choice"]).reindex(columns=["a", "b", "tie"], fill_value=0)
        assert [r.group for r in bd.rows] == sorted(raw[by].unique())
        for r in bd.rows:
            a, b, t = table.loc[r.group]
            assert (r.wins_a, r.wins_b, r.ties) == (a, b, t)
            if a + b:
                assert r.p_value == pytest.approx(binomtest(int(a), int(a + b)).pvalue)
                assert r.share_a == pytest.approx(a / (a + b))
    frame = bd.to_frame()
    assert list(frame["case"]) == [r.group for r in bd.rows]


# ----------------------------------------------------------------------------------------- validation


def test_normalise_canonicalises_pairs_and_sides():
    raw = pd.DataFrame(
        {
            "reader": [1, 1],
            "case": ["x ", "y"],
            "arm_a": ["zeta", "alpha"],
            "arm_b": ["alpha", "zeta"],
            "choice": [" A", "tie"],
            "left": ["a", "B"],
            "dice_a": [0.9, 0.5],
            "dice_b": [0.1, 0.6],
            "confidence": [5, None],
        }
    )
    v = normalise_votes(raw)
    assert list(v["arm_a"]) == ["alpha", "alpha"] and list(v["arm_b"]) == ["zeta", "zeta"]
    assert list(v["choice"]) == ["b", "tie"]  # row 0 preferred zeta, now arm_b
    assert list(v["left"]) == ["b", "b"]  # zeta was on the left in row 0
    assert list(v["dice_a"]) == [0.1, 0.5] and list(v["dice_b"]) == [0.9, 0.6]
    assert list(v["reader"]) == ["1", "1"] and list(v["case"]) == ["x", "y"]
    assert np.isnan(v["time_ms"]).all() and np.isnan(v.loc[1, "confidence"])


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d.iloc[0:0], "empty"),
        (lambda d: d.drop(columns="choice"), "missing required column"),
        (lambda d: d.assign(choice=["maybe"] + ["a"] * 59), "'maybe'"),
        (lambda d: d.assign(arm_b=d["arm_a"]), "two different arms"),
        (lambda d: d.assign(reader=[""] + ["r"] * 59), "column 'reader': empty"),
        (lambda d: d.assign(confidence=[7] + [3] * 59), "confidence"),
        (lambda d: d.assign(time_ms=["slow"] + [1.0] * 59), "'slow'"),
        (lambda d: d.assign(left=["up"] + ["a"] * 59), "column 'left'"),
        (lambda d: pd.concat([d, d.iloc[[1]].assign(arm_a="ai", arm_b="expert", choice="a")]), "second vote"),
    ],
)
def test_normalise_rejects_bad_tables(mutate, match):
    with pytest.raises(VotesError, match=match):
        normalise_votes(mutate(votes_37_of_60()))


def test_empty_input_is_a_clear_error():
    with pytest.raises(VotesError, match="empty"):
        study_report(pd.DataFrame(columns=["reader", "case", "arm_a", "arm_b", "choice"]))
    with pytest.raises(VotesError, match="DataFrame"):
        study_report([])


# ----------------------------------------------------------------------------------------- edge cases


def test_ties_only():
    raw = crossed_votes(3, 5).assign(choice="tie")
    report = study_report(raw, n_boot=100)
    p = report.pairs[0]
    assert p.preference.ties == 15 and p.preference.share_a is None and p.preference.p_value is None
    assert "no decisive votes (15 ties)" in report.headline()
    assert p.bootstrap.interval is None and "ties only" in p.bootstrap.note
    assert p.primary.estimate is None and p.primary.p_value is None
    assert p.agreement.fleiss_kappa is None and p.agreement.percent_agreement == 1.0
    json.dumps(report.to_dict(), allow_nan=False)


def test_reader_without_votes_is_absent_not_missing_data():
    raw = crossed_votes(3, 12, tie_rate=0.1, seed=5)
    report = study_report(
        raw, n_boot=100, fit_mixed_model=False, expected_readers=["r00", "r01", "r02", "r99"]
    )
    assert report.readers == ("r00", "r01", "r02")
    assert any("r99" in n for n in report.notes)
    ag = report.pairs[0].agreement
    assert ag.n_readers == 3 and ag.n_items_complete == 12  # r99 does not make any case incomplete
    assert [r.group for r in report.pairs[0].per_reader.rows] == ["r00", "r01", "r02"]


def test_single_reader():
    report = study_report(votes_37_of_60(distinct_readers=False), n_boot=300)
    p = report.pairs[0]
    assert p.agreement.fleiss_kappa is None and p.agreement.mean_cohen_kappa is None
    assert "only one reader" in p.agreement.note
    assert not p.mixed_model.fitted and "one reader" in p.mixed_model.note
    assert p.primary.method == "exact" and "one reader" in p.primary.fallback_reason
    assert "single reader" in p.bootstrap.note and any("single reader" in n for n in report.notes)


def test_all_votes_one_way():
    raw = crossed_votes(4, 10).assign(choice="a")
    report = study_report(raw, n_boot=200)
    p = report.pairs[0]
    ref = binomtest(40, 40)
    assert p.preference.p_value == pytest.approx(ref.pvalue) == pytest.approx(2 * 0.5**40)
    w = ref.proportion_ci(method="wilson")
    assert (p.preference.wilson.low, p.preference.wilson.high) == pytest.approx((w.low, w.high))
    assert p.preference.wilson.low < 1 and p.preference.clopper_pearson.high == 1.0
    assert not p.mixed_model.fitted and "separation" in p.mixed_model.note
    assert "collapses" in p.bootstrap.note
    assert p.primary.method == "exact" and "separation" in p.primary.fallback_reason
    boot = study_report(raw, n_boot=200, plan=AnalysisPlan(method="bootstrap")).pairs[0].primary
    assert boot.method == "exact" and "same share" in boot.fallback_reason


# ----------------------------------------------------------------------------------------- clustering


def test_bootstrap_reader_clustering_matches_closed_form():
    # Each reader always picks the same side; cases are exchangeable, so only reader resampling varies the
    # share, and the bootstrap SE is that of a mean of R Bernoulli readers: sqrt(p (1 - p) / R).
    n_r, n_c = 20, 30
    raw = crossed_votes(n_r, n_c)
    raw["choice"] = np.where(raw["reader"] < "r08", "a", "b")  # 8 of 20 readers prefer ai
    votes = normalise_votes(raw)
    boot = cluster_bootstrap(votes, "ai", "expert", n_boot=4000, seed=1)
    assert boot.share_a == pytest.approx(0.4)
    assert boot.se == pytest.approx(np.sqrt(0.4 * 0.6 / n_r), rel=0.08)
    (pref,) = preference(votes)
    assert pref.wilson.high - pref.wilson.low < 0.2 < boot.interval.high - boot.interval.low
    # Same by case: each case always judged the same way.
    raw["choice"] = np.where(raw["case"] < "c012", "a", "b")
    boot = cluster_bootstrap(normalise_votes(raw), "ai", "expert", n_boot=4000, seed=2)
    assert boot.se == pytest.approx(np.sqrt(0.4 * 0.6 / n_c), rel=0.08)


def test_bootstrap_of_independent_votes_is_binomial_and_seeded():
    votes = normalise_votes(votes_37_of_60(distinct_readers=False))  # one reader: plain vote bootstrap
    boot = cluster_bootstrap(votes, "ai", "expert", n_boot=4000, seed=0)
    assert boot.resampled == ()
    p = 37 / 60
    assert boot.se == pytest.approx(np.sqrt(p * (1 - p) / 60), rel=0.08)
    again = cluster_bootstrap(votes, "ai", "expert", n_boot=4000, seed=0)
    other = cluster_bootstrap(votes, "ai", "expert", n_boot=4000, seed=1)
    assert again.interval == boot.interval and other.se != boot.se
    small_blocks = cluster_bootstrap(votes, "ai", "expert", n_boot=4000, seed=0, max_block_bytes=1)
    assert small_blocks.se == pytest.approx(boot.se, rel=0.1)


def test_bootstrap_nested_design_resamples_readers_only():
    # 10 readers, each on 20 cases of their own (cases nested in readers, one vote each): the right scheme
    # resamples readers only; its SE is the linearised cluster SE sqrt(sum_r (k_r - p n_r)^2) / N.
    rng = np.random.default_rng(11)
    p_r = expit(0.4 + rng.normal(0, 0.8, 10))
    raw = pd.DataFrame(
        [
            dict(
                reader=f"r{r}",
                case=f"r{r}c{c}",
                arm_a="ai",
                arm_b="expert",
                choice="a" if rng.random() < p_r[r] else "b",
            )
            for r in range(10)
            for c in range(20)
        ]
    )
    votes = normalise_votes(raw)
    boot = cluster_bootstrap(votes, "ai", "expert", n_boot=4000, seed=0)
    assert boot.resampled == ("reader",) and boot.interval.method == "cluster bootstrap over readers"
    k = raw.groupby("reader")["choice"].apply(lambda c: (c == "a").sum()).to_numpy()
    p = k.sum() / 200
    assert boot.se == pytest.approx(np.sqrt(((k - p * 20) ** 2).sum()) / 200, rel=0.1)
    both = cluster_bootstrap(votes, "ai", "expert", n_boot=4000, seed=0, resample="both")
    assert both.resampled == ("reader", "case") and both.se > 1.1 * boot.se  # vote noise counted twice
    pa = study_report(raw, n_boot=500, plan=AnalysisPlan(method="bootstrap")).pairs[0].primary
    assert pa.method == "bootstrap" and pa.method_name == "cluster bootstrap over readers"


def test_bootstrap_primary_takes_estimate_interval_and_p_from_the_same_replicates():
    raw = crossed_votes(6, 20, p_a=0.65, reader_sd=0.5, seed=2)
    report = study_report(raw, n_boot=500, fit_mixed_model=False, plan=AnalysisPlan(method="bootstrap"))
    p = report.pairs[0]
    assert p.primary.method_name == "two-way cluster bootstrap" and p.primary.interval == p.bootstrap.interval
    assert p.primary.p_value == p.bootstrap.p_value and p.primary.estimate == p.preference.share_a
    # The p-value agrees with the interval: it excludes 50% exactly when p < alpha.
    assert (p.primary.p_value < 0.05) == (not p.primary.interval.low <= 0.5 <= p.primary.interval.high)
    assert "two-way cluster bootstrap" in report.headline() and "Wilson" not in report.headline()
    # Without the mixed model the planned mixed-model primary analysis is pending, never silently replaced.
    pending = study_report(raw, n_boot=0, fit_mixed_model=False).pairs[0]
    assert pending.primary is None and "still being computed" in pending.headline()


def test_mixed_model_recovers_known_effect_and_matches_statsmodels_formula():
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    raw = crossed_votes(12, 40, p_a=0.75, reader_sd=0.6, case_sd=0.6, seed=4)
    votes = normalise_votes(raw)
    mm = mixed_model(votes, "ai", "expert", seed=0)
    assert mm.fitted and mm.random_effects == ("reader", "case")
    assert mm.interval.low < 0.75 < mm.interval.high
    assert mm.interval.low < mm.probability_a < mm.interval.high
    # Independent fit through the formula interface.
    data = raw.assign(y=(raw["choice"] == "a").astype(float))
    ref = BinomialBayesMixedGLM.from_formula(
        "y ~ 1", {"reader": "0 + C(reader)", "case": "0 + C(case)"}, data
    ).fit_vb(rng=0)
    assert mm.log_odds == pytest.approx(ref.fe_mean[0], abs=0.02)
    assert mm.log_odds_sd_vb == pytest.approx(ref.fe_sd[0], rel=0.1)
    assert mm.probability_a == pytest.approx(expit(ref.fe_mean[0]), abs=0.005)
    # Laplace-corrected SD, recomputed densely: H = X' W X + prior precision at the reference fit's means,
    # X = [1 | reader dummies | case dummies] in the formula's column order; SD = sqrt(inv(H)[0, 0]).
    x = np.column_stack(
        [
            np.ones(len(data)),
            pd.get_dummies(data["reader"]).to_numpy(float),
            pd.get_dummies(data["case"]).to_numpy(float),
        ]
    )
    p = expit(x @ np.concatenate([ref.fe_mean, ref.vc_mean]))
    prior_sd = np.concatenate([[2.0], np.exp(ref.vcp_mean)[ref.model.ident]])
    h = x.T @ (x * (p * (1 - p))[:, None]) + np.diag(1 / prior_sd**2)
    assert mm.log_odds_sd == pytest.approx(np.sqrt(np.linalg.inv(h)[0, 0]), rel=0.05)
    # Mean-field VB alone badly understates the intercept's uncertainty; the corrected SD must not.
    assert mm.log_odds_sd > 1.3 * mm.log_odds_sd_vb


def test_mixed_model_degrades():
    votes = normalise_votes(crossed_votes(2, 3))
    assert "too few" in mixed_model(votes, "ai", "expert").note
    votes = normalise_votes(votes_37_of_60(distinct_readers=True))
    mm = mixed_model(votes, "ai", "expert")
    assert not mm.fitted and "no random effect" in mm.note
