"""Reader x case variance of a preference share by U-statistics (Gallas' one-shot MRMC method for binary
data, the approach behind the FDA's iMRMC), a secondary analysis that makes no model assumption.

For success indicators ``s[r, c]`` (1 = arm X preferred by reader r on case c) observed where the design
indicator ``d[r, c]`` is 1, the estimate is ``theta = sum(d s) / N`` with ``N = sum(d)``. Its variance is a
linear combination of four second moments:

    M1 = E[s_rc^2]        same reader, same case
    M2 = E[s_rc s_rc']    same reader, different cases
    M3 = E[s_rc s_r'c]    different readers, same case
    M4 = E[s_rc s_r'c']   different readers, different cases (= theta^2)

    Var(theta) = (K1 M1 + K2 M2 + K3 M3 + K4 M4) / N^2 - M4

where ``K1..K4`` count the pairs of observed cells of each kind (they sum to N^2). Each moment is estimated
without bias by the mean of the products over the pairs of that kind (a U-statistic), so the variance
estimate is unbiased for any fixed design, complete or not (Gallas, Pennello & Myers 2007, JOSA A 24:B70;
Gallas 2006, Acad Radiol 13:353). The interval is the normal one, theta +/- z SE, and can fall outside [0, 1]
for tiny studies; it is clipped and says so.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy import stats as sps

from evaluation.stats.base import Interval, to_jsonable


@dataclasses.dataclass(frozen=True)
class MRMCResult:
    """U-statistic MRMC analysis of arm_a's share (ties excluded). ``moments`` = (M1, M2, M3, M4);
    ``variance`` may come out negative in very small studies (an unbiased estimator can), then SE is None."""

    arm_a: str
    arm_b: str
    n_decisive: int
    n_readers: int
    n_cases: int
    share_a: float | None
    variance: float | None
    se: float | None
    interval: Interval | None
    p_value: float | None
    moments: tuple[float, float, float, float] | None
    note: str | None = None

    def to_dict(self) -> dict:
        return to_jsonable(self)


def mrmc_variance(s: np.ndarray, d: np.ndarray) -> tuple[float, float, tuple[float, float, float, float]]:
    """``(theta, variance, (M1, M2, M3, M4))`` for success matrix ``s`` and design matrix ``d``, both
    shape (readers, cases); cells with ``d = 0`` are ignored. Needs two readers and two cases."""
    s = np.where(d > 0, s, 0).astype(np.float64)
    d = (d > 0).astype(np.float64)
    n = d.sum()
    row_d, col_d = d.sum(axis=1), d.sum(axis=0)
    row_s, col_s = s.sum(axis=1), s.sum(axis=0)
    sum_s, sum_s2 = s.sum(), (s * s).sum()
    k1 = n
    k2 = float((row_d**2 - row_d).sum())
    k3 = float((col_d**2 - col_d).sum())
    k4 = n * n - k1 - k2 - k3
    if min(k2, k3, k4) <= 0:
        raise ValueError("the MRMC variance needs a reader with two cases, a case with two readers and two "
                         "readers on different cases")
    m1 = sum_s2 / k1
    m2 = float((row_s**2).sum() - sum_s2) / k2
    m3 = float((col_s**2).sum() - sum_s2) / k3
    m4 = float(sum_s**2 - (row_s**2).sum() - (col_s**2).sum() + sum_s2) / k4
    var = (k1 * m1 + k2 * m2 + k3 * m3 + k4 * m4) / n**2 - m4
    return sum_s / n, float(var), (m1, m2, m3, m4)


def mrmc(votes: pd.DataFrame, arm_a: str, arm_b: str, *, level: float = 0.95) -> MRMCResult:
    """Gallas U-statistic variance of arm_a's share of decisive votes (one pair's normalised votes), with a
    normal interval and z-test of 50%."""
    d = votes[votes["choice"].to_numpy() != "tie"]
    r_codes, readers = pd.factorize(d["reader"], sort=True)
    c_codes, cases = pd.factorize(d["case"], sort=True)
    base = dict(arm_a=arm_a, arm_b=arm_b, n_decisive=len(d), n_readers=len(readers), n_cases=len(cases))
    if len(readers) < 2 or len(cases) < 2:
        return MRMCResult(**base, share_a=None, variance=None, se=None, interval=None, p_value=None, moments=None,
                          note="needs at least two readers and two cases")
    s = np.zeros((len(readers), len(cases)))
    dm = np.zeros_like(s)
    np.add.at(s, (r_codes, c_codes), (d["choice"].to_numpy() == "a").astype(float))
    np.add.at(dm, (r_codes, c_codes), 1.0)
    try:
        theta, var, moments = mrmc_variance(s, dm)
    except ValueError as exc:
        return MRMCResult(**base, share_a=None, variance=None, se=None, interval=None, p_value=None, moments=None,
                          note=str(exc))
    if not var > 0:
        return MRMCResult(**base, share_a=theta, variance=var, se=None, interval=None, p_value=None,
                          moments=moments, note="the variance estimate is not positive (too few readers or cases)")
    se = float(np.sqrt(var))
    z = sps.norm.ppf(0.5 + level / 2)
    low, high = theta - z * se, theta + z * se
    note = "normal interval clipped to [0, 1]" if low < 0 or high > 1 else None
    return MRMCResult(
        **base, share_a=theta, variance=var, se=se,
        interval=Interval(max(0.0, low), min(1.0, high), level, "MRMC U-statistics (normal)"),
        p_value=float(2 * sps.norm.sf(abs(theta - 0.5) / se)), moments=moments, note=note)
