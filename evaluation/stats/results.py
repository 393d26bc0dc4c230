"""The result objects of a whole study report: one :class:`PairReport` per arm pair and the
:class:`StudyReport` around them (built by :func:`evaluation.stats.study_report`)."""

from __future__ import annotations

import dataclasses

import pandas as pd

from evaluation.stats.agreement import AgreementResult
from evaluation.stats.base import Interval, to_jsonable
from evaluation.stats.bootstrap import BootstrapResult, Clustering, bootstrap_method
from evaluation.stats.bradley_terry import BradleyTerryResult
from evaluation.stats.mixed import MixedModelResult
from evaluation.stats.mrmc import MRMCResult
from evaluation.stats.preference import Breakdown, ConfidenceResult, DiceLinkResult, PreferenceResult
from evaluation.stats.primary import METHODS, AnalysisPlan, PrimaryResult
from evaluation.stats.quality import SideBiasResult, TimeSummary
from evaluation.stats.rereads import OrdinalResult, RereadResult
from evaluation.stats.text import report_text


@dataclasses.dataclass(frozen=True)
class Secondary:
    """One secondary analysis of a pair, oriented to the primary analysis' arm, with what it assumes."""

    name: str
    assumes: str
    estimate: float | None
    interval: Interval | None
    p_value: float | None
    note: str | None = None
    short: str = ""  # a chart label

    def to_dict(self) -> dict:
        return to_jsonable(self)


def _flip(iv: Interval | None, flip: bool) -> Interval | None:
    if iv is None or not flip:
        return iv
    return Interval(1 - iv.high, 1 - iv.low, iv.level, iv.method)


@dataclasses.dataclass(frozen=True)
class PairReport:
    """Everything computed for one arm pair (``arm_a < arm_b``; shares in the breakdowns are arm_a's).

    ``primary`` is the planned method applied to this pair (None while a mixed model is still being fitted
    elsewhere); ``is_primary`` says whether this pair is the plan's endpoint (always, without a named pair).
    ``mixed_model`` is fitted on the primary's oriented votes (tie rule applied).
    """

    arm_a: str
    arm_b: str
    preference: PreferenceResult
    per_reader: Breakdown
    per_case: Breakdown
    clustering: Clustering
    bootstrap: BootstrapResult | None
    mixed_model: MixedModelResult | None
    mrmc: MRMCResult
    primary: PrimaryResult | None
    is_primary: bool
    agreement: AgreementResult
    confidence: ConfidenceResult
    dice: DiceLinkResult | None
    ordinal: OrdinalResult | None = None

    def headline(self) -> str:
        if self.primary is None:
            return (f"Arms {self.arm_a} and {self.arm_b}: the primary analysis (logistic mixed model) is still "
                    "being computed.")
        return self.primary.headline()

    def secondary(self) -> list[Secondary]:
        """Every analysis but the primary, each saying what it assumes; shares are the primary arm's."""
        arm = self.primary.arm if self.primary else self.arm_a
        flip = arm != self.arm_a
        pr = self.preference
        share = None if pr.share_a is None else (1 - pr.share_a if flip else pr.share_a)
        method = self.primary.method if self.primary else "mixed"
        out = [Secondary("exact binomial test, Wilson interval (ties excluded)",
                         "every vote independent (ignores that readers and cases recur)", share,
                         _flip(pr.wilson, flip), pr.p_value, short="exact binomial / Wilson")]
        b = self.bootstrap
        if b is not None and method != "bootstrap":
            out.append(Secondary(bootstrap_method(b.resampled) if b.interval else "cluster bootstrap",
                                 "no model; readers and cases are a random sample (resampled)",
                                 None if b.share_a is None else (1 - b.share_a if flip else b.share_a),
                                 _flip(b.interval, flip), b.p_value, b.note, short="cluster bootstrap"))
        m = self.mixed_model
        if m is not None and method != "mixed":
            out.append(Secondary(METHODS["mixed"], "logistic-normal reader and case effects; estimate is a "
                                 "typical reader's probability", m.probability_a if m.fitted else None,
                                 m.interval, m.p_value, m.note, short="mixed model"))
        mr = self.mrmc
        out.append(Secondary("MRMC U-statistics (Gallas), ties excluded",
                             "readers and cases random, no model for the votes; normal interval",
                             None if mr.share_a is None else (1 - mr.share_a if flip else mr.share_a),
                             _flip(mr.interval, flip), mr.p_value, mr.note, short="MRMC U-statistics"))
        o = self.ordinal
        if o is not None:
            out.append(Secondary("graded answers: Wilcoxon signed-rank of reader mean grades",
                                 "each reader's mean grade is one observation (clustered by reader)",
                                 None, None, o.p_value, o.note, short="graded (Wilcoxon)"))
        return out

    def to_dict(self) -> dict:
        d = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            # PreferenceResult/Breakdown/PrimaryResult add derived fields in their own to_dict.
            d[f.name] = (value.to_dict() if isinstance(value, PreferenceResult | Breakdown | PrimaryResult)
                         else to_jsonable(value))
        d["headline"] = self.headline()
        d["secondary"] = [s.to_dict() for s in self.secondary()]
        return d

    def summary_row(self) -> dict:
        """Flat one-row summary (for CSV export / a results table); bounds are arm_a's share unless named."""
        pr, b, m, ag, pa = self.preference, self.bootstrap, self.mixed_model, self.agreement, self.primary
        return {
            "arm_a": self.arm_a,
            "arm_b": self.arm_b,
            "n_votes": pr.n_votes,
            "wins_a": pr.wins_a,
            "wins_b": pr.wins_b,
            "ties": pr.ties,
            "share_a": pr.share_a,
            "wilson_low": pr.wilson.low,
            "wilson_high": pr.wilson.high,
            "cp_low": pr.clopper_pearson.low,
            "cp_high": pr.clopper_pearson.high,
            "exact_p_value": pr.p_value,
            "primary_pair": self.is_primary,
            "primary_arm": pa.arm if pa else None,
            "primary_method": pa.method if pa else None,
            "primary_estimate": pa.estimate if pa else None,
            "primary_low": pa.interval.low if pa and pa.interval else None,
            "primary_high": pa.interval.high if pa and pa.interval else None,
            "primary_p_value": pa.p_value if pa else None,
            "bootstrap_low": b.interval.low if b and b.interval else None,
            "bootstrap_high": b.interval.high if b and b.interval else None,
            "mixed_probability_a": m.probability_a if m else None,
            "mrmc_se": self.mrmc.se,
            "fleiss_kappa": ag.fleiss_kappa,
            "mean_cohen_kappa": ag.mean_cohen_kappa,
            "percent_agreement": ag.percent_agreement,
            "headline": self.headline(),
        }


@dataclasses.dataclass(frozen=True)
class StudyReport:
    """All statistics of a study.

    ``pairs`` is sorted by (arm_a, arm_b); ``bradley_terry`` is set only for studies with 3+ arms;
    ``rereads`` only when the votes include planned re-reads (every other statistic uses first reads).
    """

    n_votes: int
    readers: tuple[str, ...]
    n_cases: int
    arms: tuple[str, ...]
    pairs: tuple[PairReport, ...]
    side_bias: SideBiasResult
    time: TimeSummary
    bradley_terry: BradleyTerryResult | None
    n_boot: int
    seed: int
    level: float
    plan: AnalysisPlan
    rereads: RereadResult | None = None
    n_rereads: int = 0
    notes: tuple[str, ...] = ()

    def pair(self, arm_1: str, arm_2: str) -> PairReport:
        """The report for a pair, in either order."""
        a, b = sorted((arm_1, arm_2))
        for p in self.pairs:
            if (p.arm_a, p.arm_b) == (a, b):
                return p
        raise KeyError(f"no votes compare arms {arm_1!r} and {arm_2!r}; pairs: "
                       f"{[(p.arm_a, p.arm_b) for p in self.pairs]}")

    @property
    def primary(self) -> PrimaryResult | None:
        """The plan's endpoint (None without a named pair, or while it is being computed)."""
        found = [p.primary for p in self.pairs if p.is_primary]
        return found[0] if self.plan.arm and found else None

    def summary_frame(self) -> pd.DataFrame:
        """One row per pair (see :meth:`PairReport.summary_row`), e.g. for ``--format csv``."""
        return pd.DataFrame([p.summary_row() for p in self.pairs])

    def headline(self) -> str:
        """The primary analysis: the plan's pair, or one sentence per pair when the plan names none."""
        return "\n".join(p.headline() for p in self.pairs if p.is_primary)

    def to_dict(self) -> dict:
        """JSON-ready dict (builtins only; NaN -> None)."""
        skip = ("pairs", "bradley_terry", "plan")  # converted by their own to_dict below
        d = {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name not in skip}
        d["pairs"] = [p.to_dict() for p in self.pairs]
        d["bradley_terry"] = self.bradley_terry.to_dict() if self.bradley_terry else None
        d["plan"] = self.plan.to_dict()
        d["primary"] = self.primary.to_dict() if self.primary else None
        d["headline"] = self.headline()
        return d

    def to_text(self) -> str:
        """Plain-text report for the terminal."""
        return report_text(self)
