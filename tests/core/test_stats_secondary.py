"""The secondary analyses: agreement between readers, side bias, confidence, time, the Dice link, Bradley-Terry and the whole study report."""

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from evaluation.stats import (
    agreement,
    bradley_terry,
    confidence_weighted,
    dice_link,
    normalise_votes,
    preference,
    side_bias,
    study_report,
    time_summary,
)
from tests.core.test_stats import FLIP, crossed_votes

# ----------------------------------------------------------------------------------------- agreement


def test_agreement_hand_worked_and_against_statsmodels_sklearn():
    # 3 readers x 4 cases (rows = cases):   r1   r2   r3
    ratings = [["a", "a", "a"], ["a", "b", "a"], ["b", "b", "tie"], ["tie", "tie", "tie"]]
    raw = pd.DataFrame(
        [
            dict(reader=f"r{j + 1}", case=f"c{i}", arm_a="x", arm_b="y", choice=ch)
            for i, row in enumerate(ratings)
            for j, ch in enumerate(row)
        ]
    )
    res = agreement(normalise_votes(raw), "x", "y")
    # By hand: P_i = 1, 1/3, 1/3, 1 -> P_bar = 2/3; p_j = (5/12, 3/12, 4/12) -> P_e = 50/144.
    p_bar, p_e = 2 / 3, (25 + 9 + 16) / 144
    assert res.fleiss_kappa == pytest.approx((p_bar - p_e) / (1 - p_e))
    table, _ = aggregate_raters(np.array(ratings))
    assert res.fleiss_kappa == pytest.approx(fleiss_kappa(table, method="fleiss"))
    assert res.percent_agreement == pytest.approx(p_bar)
    arr = np.array(ratings)
    for pr in res.pairwise:
        i, j = int(pr.reader_1[1]) - 1, int(pr.reader_2[1]) - 1
        assert pr.cohen_kappa == pytest.approx(cohen_kappa_score(arr[:, i], arr[:, j]))
        assert pr.percent_agreement == pytest.approx(np.mean(arr[:, i] == arr[:, j]))


def test_pairwise_cohen_kappa_incomplete_design_matches_sklearn():
    raw = crossed_votes(5, 25, tie_rate=0.3, reader_sd=1.0, seed=8)
    raw = raw.sample(frac=0.7, random_state=0)  # readers share only some cases
    res = agreement(normalise_votes(raw), "ai", "expert")
    by = raw.pivot(index="case", columns="reader", values="choice")
    assert len(res.pairwise) == 10
    for pr in res.pairwise:
        both = by[[pr.reader_1, pr.reader_2]].dropna()
        assert pr.n_items == len(both)
        ref = cohen_kappa_score(both[pr.reader_1], both[pr.reader_2], labels=["a", "b", "tie"])
        assert pr.cohen_kappa == pytest.approx(ref)
    complete = by.dropna()
    assert res.n_items_complete == len(complete)
    table, _ = aggregate_raters(complete.to_numpy())
    assert res.fleiss_kappa == pytest.approx(fleiss_kappa(table))


# ----------------------------------------------------------------------------------------- side, time, conf


def test_side_bias_against_binomtest():
    raw = crossed_votes(3, 20, tie_rate=0.2, seed=9)
    rng = np.random.default_rng(0)
    raw["left"] = rng.choice(["a", "b"], len(raw))
    chose_left = raw["choice"] == raw["left"]
    decisive = raw["choice"] != "tie"
    flipped = raw.assign(
        arm_a="expert", arm_b="ai", choice=raw["choice"].map(FLIP), left=raw["left"].map(FLIP)
    )
    for frame in (raw, flipped):  # side bias must not depend on the stored arm order
        sb = side_bias(normalise_votes(frame))
        k, n = int(chose_left[decisive].sum()), int(decisive.sum())
        assert (sb.overall.left_chosen, sb.overall.n) == (k, n)
        assert sb.overall.p_value == pytest.approx(binomtest(k, n).pvalue)
        for row in sb.per_reader:
            m = decisive & (raw["reader"] == row.reader)
            assert row.left_chosen == int(chose_left[m].sum()) and row.n == int(m.sum())
    assert side_bias(normalise_votes(raw)).arm_a_left_share == pytest.approx(np.mean(raw["left"] == "a"))
    assert side_bias(normalise_votes(raw.drop(columns="left"))).overall is None


def test_confidence_weighted_and_time_summary_by_hand():
    raw = pd.DataFrame(
        {
            "reader": ["r1", "r1", "r2", "r2", "r2"],
            "case": list("abcde"),
            "arm_a": "x",
            "arm_b": "y",
            "choice": ["a", "b", "a", "tie", "a"],
            "confidence": [5, 1, 2, 4, np.nan],
            "time_ms": [1000, 3000, 2000, 4000, 10000],
        }
    )
    votes = normalise_votes(raw)
    c = confidence_weighted(votes, "x", "y")
    assert c.n == 3 and c.weighted_share_a == pytest.approx(7 / 8) and c.share_a == pytest.approx(2 / 3)
    assert c.mean_confidence == {"a": 3.5, "b": 1.0, "tie": 4.0}
    t = time_summary(votes)
    assert t.overall.median == 3000 and t.overall.q25 == 2000 and t.overall.q75 == 4000
    r2 = t.per_reader[1]
    assert (
        r2.reader == "r2"
        and r2.median == 4000
        and r2.iqr == pytest.approx(np.subtract(*np.percentile([2000, 4000, 10000], [75, 25])))
    )


def test_dice_link_by_hand():
    # gaps dice_a - dice_b: +0.2 (a chosen: agrees), +0.1 (b: disagrees), -0.3 (b: agrees), 0 (equal), tie.
    raw = pd.DataFrame(
        {
            "reader": "r",
            "case": list("abcde"),
            "arm_a": "x",
            "arm_b": "y",
            "choice": ["a", "b", "b", "a", "tie"],
            "dice_a": [0.8, 0.6, 0.4, 0.5, 0.9],
            "dice_b": [0.6, 0.5, 0.7, 0.5, 0.1],
        }
    )
    d = dice_link(normalise_votes(raw), "x", "y", n_bins=2)
    assert (d.n, d.agree, d.n_equal_dice) == (3, 2, 1)
    assert d.p_value == pytest.approx(binomtest(2, 3).pvalue)
    assert [b.n for b in d.bins] == [1, 3] and d.bins[1].share_a == pytest.approx(2 / 3)
    assert dice_link(normalise_votes(raw.drop(columns=["dice_a", "dice_b"])), "x", "y") is None


# ----------------------------------------------------------------------------------------- Bradley-Terry


def three_arm_votes(seed=0, n=400):
    rng = np.random.default_rng(seed)
    beta = {"a1": 0.0, "a2": 0.8, "a3": -0.5}
    rows = []
    for k in range(n):
        i, j = rng.choice(list(beta), 2, replace=False)
        win = rng.random() < expit(beta[i] - beta[j])
        choice = "tie" if rng.random() < 0.1 else ("a" if win else "b")
        rows.append(dict(reader=f"r{k % 7}", case=f"c{k}", arm_a=i, arm_b=j, choice=choice))
    return pd.DataFrame(rows)


def test_bradley_terry_matches_logistic_regression():
    import statsmodels.api as sm

    raw = three_arm_votes()
    bt = bradley_terry(normalise_votes(raw))
    assert bt.converged and bt.reference == "a1" and bt.strengths[0].log_strength == 0.0
    # Independent fit: logistic regression of "first arm won" on (e_i - e_j), reference column dropped.
    d = raw[raw["choice"] != "tie"]
    arms = ["a1", "a2", "a3"]
    x = np.zeros((len(d), 3))
    x[np.arange(len(d)), [arms.index(a) for a in d["arm_a"]]] += 1
    x[np.arange(len(d)), [arms.index(b) for b in d["arm_b"]]] -= 1
    fit = sm.GLM((d["choice"] == "a").astype(float).to_numpy(), x[:, 1:], family=sm.families.Binomial()).fit()
    got = {s.arm: s for s in bt.strengths}
    for k, arm in enumerate(["a2", "a3"]):
        assert got[arm].log_strength == pytest.approx(fit.params[k], abs=1e-6)
        assert got[arm].se == pytest.approx(fit.bse[k], rel=1e-4)
        lo, hi = fit.conf_int()[k]
        assert (got[arm].ci_low, got[arm].ci_high) == pytest.approx((lo, hi), abs=1e-5)
    assert bt.win_probability("a2", "a3") == pytest.approx(expit(fit.params[0] - fit.params[1]), abs=1e-6)
    half = bradley_terry(normalise_votes(raw), ties="half")
    assert half.n_comparisons == len(raw)
    assert abs({s.arm: s for s in half.strengths}["a2"].log_strength) < abs(got["a2"].log_strength)


def test_bradley_terry_without_finite_mle():
    raw = pd.DataFrame(
        {
            "reader": "r",
            "case": ["1", "2", "3"],
            "arm_a": ["x", "x", "y"],
            "arm_b": ["y", "z", "z"],
            "choice": ["a", "a", "a"],
        }
    )  # x never loses
    bt = bradley_terry(normalise_votes(raw))
    assert bt.strengths is None and "infinite" in bt.note


# ----------------------------------------------------------------------------------------- report


def test_report_with_three_arms_is_json_ready_and_printable():
    raw = three_arm_votes(n=150)
    raw["left"] = np.where(np.arange(len(raw)) % 2, "a", "b")
    raw["confidence"] = np.arange(len(raw)) % 5 + 1
    raw["time_ms"] = np.arange(len(raw)) * 10.0
    raw["dice_a"], raw["dice_b"] = 0.7, np.linspace(0.5, 0.9, len(raw))
    report = study_report(raw, n_boot=100)
    assert [(p.arm_a, p.arm_b) for p in report.pairs] == [("a1", "a2"), ("a1", "a3"), ("a2", "a3")]
    assert len(report.headline().splitlines()) == 3 and report.bradley_terry.strengths is not None
    d = report.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert "NaN" not in text and json.loads(text)["headline"] == report.headline()
    assert d["pairs"][0]["preference"]["n_decisive"] == report.pairs[0].preference.n_decisive
    for p in report.pairs:  # counts add up to the raw votes of that pair
        m = raw["arm_a"].isin([p.arm_a, p.arm_b]) & raw["arm_b"].isin([p.arm_a, p.arm_b])
        assert p.preference.n_votes == int(m.sum())

    def builtin_only(x):
        if isinstance(x, dict):
            return all(isinstance(k, str) and builtin_only(v) for k, v in x.items())
        if isinstance(x, list):
            return all(builtin_only(v) for v in x)
        return x is None or type(x) in (str, int, float, bool)

    assert builtin_only(d)
    frame = report.summary_frame()
    assert list(frame["wins_a"]) == [p.preference.wins_a for p in report.pairs]
    assert list(frame["headline"]) == report.headline().splitlines()
    out = report.to_text()
    assert report.pairs[0].headline() in out and "Bradley-Terry" in out and "Side bias" in out
    assert report.pair("a3", "a2") is report.pairs[2]
    with pytest.raises(KeyError, match="no votes"):
        report.pair("a1", "zz")


def test_report_pairs_are_independent_of_row_order():
    raw = three_arm_votes(n=120)
    r1 = study_report(raw, n_boot=50, fit_mixed_model=False).to_dict()
    r2 = study_report(raw.sample(frac=1, random_state=3), n_boot=50, fit_mixed_model=False).to_dict()
    for k in ("headline", "bradley_terry"):
        assert r1[k] == r2[k]
    for p1, p2 in zip(r1["pairs"], r2["pairs"], strict=True):
        assert p1["preference"] == p2["preference"] and p1["agreement"] == p2["agreement"]


def test_interval_combinations_cover_cartesian_smoke():
    # every (k, n) pair through the preference path gives ordered, in-range bounds
    for n, k in itertools.product([1, 3, 10], range(11)):
        if k > n:
            continue
        raw = pd.DataFrame(
            {
                "reader": "r",
                "case": [str(i) for i in range(n)],
                "arm_a": "x",
                "arm_b": "y",
                "choice": ["a"] * k + ["b"] * (n - k),
            }
        )
        (r,) = preference(normalise_votes(raw))
        for iv in (r.wilson, r.clopper_pearson):
            assert 0 <= iv.low <= r.share_a <= iv.high <= 1
