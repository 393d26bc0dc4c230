"""Bradley-Terry strengths for studies with more than two arms, from all pairwise votes.

Model: ``P(i preferred over j) = pi_i / (pi_i + pi_j)``, ``pi_i = exp(beta_i)``, with the reference arm's
``beta`` fixed at 0. Fitted by Hunter's (2004) MM algorithm; standard errors from the observed Fisher
information (for Bradley-Terry it equals the expected information). Intervals treat votes as independent
(they do not account for reader/case clustering) and are Wald intervals on the log-strength scale.

Ties: excluded by default, so the model is fitted on exactly the decisive votes that the pairwise shares
and sign tests use. ``ties="half"`` instead counts a tie as half a win each way (it then pulls strengths
together and helps the MLE exist when one arm never lost).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.sparse.csgraph import connected_components

from evaluation.stats.base import to_jsonable


@dataclasses.dataclass(frozen=True)
class ArmStrength:
    """One arm's log-strength ``beta`` (0 for the reference), standard error and Wald interval."""

    arm: str
    log_strength: float
    se: float
    ci_low: float
    ci_high: float

    @property
    def strength(self) -> float:
        return math.exp(self.log_strength)


@dataclasses.dataclass(frozen=True)
class BradleyTerryResult:
    """Bradley-Terry fit over all arms; ``strengths`` is None (with ``note``) when the MLE does not exist."""

    arms: tuple[str, ...]
    reference: str
    ties: str
    n_comparisons: float
    strengths: tuple[ArmStrength, ...] | None
    iterations: int
    converged: bool
    level: float = 0.95
    note: str | None = None

    def win_probability(self, arm_i: str, arm_j: str) -> float | None:
        """Model probability that ``arm_i`` is preferred over ``arm_j``."""
        if self.strengths is None:
            return None
        beta = {s.arm: s.log_strength for s in self.strengths}
        return float(1 / (1 + math.exp(beta[arm_j] - beta[arm_i])))

    def to_dict(self) -> dict:
        d = to_jsonable(self)
        if self.strengths is not None:
            for row, s in zip(d["strengths"], self.strengths, strict=True):
                row["strength"] = s.strength
        return d


def win_matrix(votes: pd.DataFrame, ties: str = "exclude") -> tuple[list[str], np.ndarray]:
    """Arms (sorted) and ``W[i, j]`` = number of votes preferring arm i over arm j (ties per ``ties``)."""
    if ties not in ("exclude", "half"):
        raise ValueError(f"ties must be 'exclude' or 'half', got {ties!r}")
    arms = sorted(set(votes["arm_a"]) | set(votes["arm_b"]))
    index = {a: k for k, a in enumerate(arms)}
    i = votes["arm_a"].map(index).to_numpy()
    j = votes["arm_b"].map(index).to_numpy()
    choice = votes["choice"].to_numpy()
    w = np.zeros((len(arms), len(arms)))
    np.add.at(w, (i[choice == "a"], j[choice == "a"]), 1.0)
    np.add.at(w, (j[choice == "b"], i[choice == "b"]), 1.0)
    if ties == "half":
        t = choice == "tie"
        np.add.at(w, (i[t], j[t]), 0.5)
        np.add.at(w, (j[t], i[t]), 0.5)
    return arms, w


def fit_bradley_terry(
    w: np.ndarray, *, tol: float = 1e-10, max_iter: int = 10_000
) -> tuple[np.ndarray, int, bool]:
    """MM iterations ``pi_i <- W_i / sum_j n_ij / (pi_i + pi_j)`` on a win matrix (arms, arms).

    Returns log-strengths centred on arm 0 (``beta[0] = 0``), the iteration count and convergence flag.
    The caller must check the MLE exists (win graph strongly connected).
    """
    n = w + w.T
    wins = w.sum(1)
    pi = np.ones(len(w))
    for it in range(1, max_iter + 1):
        denom = (n / (pi[:, None] + pi[None, :])).sum(1)
        new = wins / denom
        new /= new[0]
        if np.max(np.abs(np.log(new) - np.log(pi))) < tol:
            return np.log(new), it, True
        pi = new
    return np.log(pi), max_iter, False


def bradley_terry(
    votes: pd.DataFrame, *, ties: str = "exclude", reference: str | None = None, level: float = 0.95
) -> BradleyTerryResult:
    """Bradley-Terry strengths with Wald intervals from a normalised vote table (any number of arms >= 2).

    Args:
        ties: ``"exclude"`` (default) or ``"half"`` (see module docstring).
        reference: arm whose log-strength is fixed at 0; default the first arm alphabetically.
    """
    arms, w = win_matrix(votes, ties)
    reference = arms[0] if reference is None else reference
    if reference not in arms:
        raise ValueError(f"reference arm {reference!r} is not among the voted arms {arms}")
    order = [reference] + [a for a in arms if a != reference]
    perm = [arms.index(a) for a in order]
    w = w[np.ix_(perm, perm)]
    total = float(w.sum())

    def no_fit(note: str) -> BradleyTerryResult:
        return BradleyTerryResult(
            arms=tuple(order),
            reference=reference,
            ties=ties,
            n_comparisons=total,
            strengths=None,
            iterations=0,
            converged=False,
            level=level,
            note=note,
        )

    if total == 0:
        return no_fit("no decisive votes: strengths cannot be estimated")
    # Hunter (2004): the MLE exists iff, for every split of the arms in two groups, some arm of each group
    # beat some arm of the other, i.e. the directed "i beat j" graph is strongly connected.
    n_comp, _ = connected_components(w > 0, directed=True, connection="strong")
    if n_comp > 1:
        return no_fit(
            "some arm (or group of arms) never lost, or never won, against the others: the "
            "Bradley-Terry estimates are infinite; try ties='half' or collect more votes"
        )
    beta, iterations, converged = fit_bradley_terry(w)
    # Fisher information: sum over pairs of n_ij p_ij (1 - p_ij) (e_i - e_j)(e_i - e_j)^T; drop the reference.
    n = w + w.T
    p = 1 / (1 + np.exp(beta[None, :] - beta[:, None]))
    c = n * p * p.T
    info = np.diag(c.sum(1)) - c
    cov = np.linalg.inv(info[1:, 1:])
    se = np.concatenate([[0.0], np.sqrt(np.diag(cov))])
    z = sps.norm.ppf(0.5 + level / 2)
    strengths = tuple(
        ArmStrength(
            arm=a, log_strength=float(b), se=float(s), ci_low=float(b - z * s), ci_high=float(b + z * s)
        )
        for a, b, s in zip(order, beta, se, strict=True)
    )
    return BradleyTerryResult(
        arms=tuple(order),
        reference=reference,
        ties=ties,
        n_comparisons=total,
        strengths=strengths,
        iterations=iterations,
        converged=converged,
        level=level,
        note=None if converged else "MM algorithm hit max_iter before converging",
    )
