"""The randomized design of a reader study (no Django): per-reader case order, arm pair per case, sides.

Everything is a pure function of ``(cases, pairs, seed)``, so a reader's items can be re-derived from the
stored seed and checked. Balance is built in rather than left to chance:

* pairs (studies with 3+ arms): each reader gets a list of pairs with every pair ``floor(n/P)`` or
  ``ceil(n/P)`` times, shuffled over the cases (or every pair on every case when asked);
* sides: for each pair, exactly half of a reader's items show the first arm on the left (one more on one
  side when the count is odd, that side drawn at random), in a shuffled order;
* order: a uniform random permutation per reader.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["REREAD_GAP", "PlannedItem", "derive_seed", "plan_items", "plan_rereads"]


@dataclass(frozen=True)
class PlannedItem:
    """One item of a reader's study, in display order: the case and which arm is on each side."""

    case: Hashable
    left: Hashable
    right: Hashable


def derive_seed(study_seed: int, reader_key: str) -> int:
    """A reader's own 63-bit seed from the study seed and a stable reader key (e.g. the username)."""
    digest = hashlib.sha256(f"labelgen-study:{int(study_seed)}:{reader_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def plan_items(cases: Sequence[Hashable], pairs: Sequence[tuple[Hashable, Hashable]], seed: int, *,
               every_pair: bool = False) -> list[PlannedItem]:
    """Plan one reader's items.

    Parameters
    ----------
    cases : the study's cases in a canonical order (e.g. by external id); at least one, no duplicates.
    pairs : compared arm pairs ``(a, b)``, at least one, each with two different arms, no duplicates.
    seed : the reader's seed (see :func:`derive_seed`); the same inputs always give the same plan.
    every_pair : show every pair on every case (``len(cases) * len(pairs)`` items) instead of one pair per
        case.

    Returns
    -------
    list of :class:`PlannedItem` in the order the reader sees them.
    """
    cases, pairs = list(cases), [tuple(p) for p in pairs]
    if not cases:
        raise ValueError("a study needs at least one case")
    if len(set(cases)) != len(cases):
        raise ValueError("cases contain duplicates")
    if not pairs:
        raise ValueError("a study needs at least one pair of arms")
    for p in pairs:
        if len(p) != 2 or p[0] == p[1]:
            raise ValueError(f"pair {p!r} must name two different arms")
    if len({frozenset(p) for p in pairs}) != len(pairs):
        raise ValueError("pairs contain duplicates")
    rng = np.random.default_rng(int(seed))

    if every_pair:
        units = [(c, p) for c in cases for p in range(len(pairs))]
    else:
        reps = -(-len(cases) // len(pairs))
        which = np.tile(np.arange(len(pairs)), reps)[: len(cases)]
        rng.shuffle(which)
        units = [(c, int(p)) for c, p in zip(cases, which, strict=True)]

    # Sides balanced per pair: a shuffled half/half list of "first arm on the left" flags.
    first_left = {}
    for p in range(len(pairs)):
        idx = [i for i, (_, q) in enumerate(units) if q == p]
        flags = np.zeros(len(idx), dtype=bool)
        flags[: len(idx) // 2] = True
        if len(idx) % 2:
            flags[-1] = bool(rng.integers(2))
        rng.shuffle(flags)
        first_left.update(zip(idx, flags.tolist(), strict=True))

    order = rng.permutation(len(units))
    out = []
    for i in order.tolist():
        case, p = units[i]
        a, b = pairs[p]
        out.append(PlannedItem(case, a, b) if first_left[i] else PlannedItem(case, b, a))
    return out


#: A re-read comes after at least this many other items (never next to its first read).
REREAD_GAP = 2


def plan_rereads(n_items: int, share: float, seed: int) -> list[int]:
    """Insert planned re-reads into a reader's sequence of ``n_items`` first reads.

    Returns the new sequence: each entry is ``i`` (first read ``i``) or ``-(i + 1)`` (the re-read of first
    read ``i``). About
    ``share`` of the first reads are repeated (rounded; only items that leave room for the gap), each at a
    random place at least ``REREAD_GAP`` other items after its first read. The caller swaps the sides.
    """
    if not 0 <= share <= 0.5:
        raise ValueError(f"the re-read share must be between 0 and 0.5, got {share}")
    seq: list[int] = list(range(n_items))
    eligible = n_items - REREAD_GAP - 1
    k = min(int(round(share * n_items)), max(eligible, 0))
    if k <= 0:
        return seq
    rng = np.random.default_rng([int(seed), 1])
    for i in sorted(rng.choice(eligible, size=k, replace=False).tolist()):
        start = seq.index(i) + REREAD_GAP + 1
        seq.insert(int(rng.integers(start, len(seq) + 1)), -(i + 1))
    return seq
