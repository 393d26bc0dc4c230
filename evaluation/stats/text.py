"""Plain-text rendering of a :class:`evaluation.stats.StudyReport` for the terminal (``study_report``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evaluation.stats.base import Interval, fmt_p

if TYPE_CHECKING:
    from evaluation.stats.report import PairReport, StudyReport

MAX_TABLE_ROWS = 30  # per-case tables of big studies go to JSON/CSV, not the terminal


def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def _iv(iv: Interval | None) -> str:
    return "n/a" if iv is None or iv.low != iv.low else iv.format()


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _breakdown_lines(p: PairReport, which: str) -> list[str]:
    bd = p.per_reader if which == "reader" else p.per_case
    lines = [f"  per {which} ({len(bd.rows)}):"]
    if len(bd.rows) > MAX_TABLE_ROWS:
        return [lines[0][:-1] + f": {len(bd.rows)} rows, see the JSON or CSV export"]
    width = max([len(which)] + [len(r.group or "") for r in bd.rows])
    lines.append(f"    {which:<{width}}  {'n':>5} {'a':>5} {'b':>5} {'tie':>5}  {'share a':>8}  Wilson")
    for r in bd.rows:
        lines.append(
            f"    {r.group:<{width}}  {r.n_votes:>5} {r.wins_a:>5} {r.wins_b:>5} {r.ties:>5}  "
            f"{_pct(r.share_a):>8}  {_iv(r.wilson)}"
        )
    return lines


def _pair_lines(p: PairReport) -> list[str]:
    pr = p.preference
    lines = [
        f"== {p.arm_a} (a) vs {p.arm_b} (b) ==",
        f"  {pr.n_votes} votes: {p.arm_a} {pr.wins_a}, {p.arm_b} {pr.wins_b}, ties {pr.ties}",
        f"  share of {p.arm_a} (ties excluded): {_pct(pr.share_a, 2)}",
    ]
    if p.primary is not None:
        lines.append(f"  {'PRIMARY' if p.is_primary else 'planned method (secondary for this pair)'}: "
                     f"{p.primary.headline()}")
    m = p.mixed_model
    if m is not None and m.fitted:
        sds = ", ".join(f"{f} SD {_num(getattr(m, f + '_sd'), '.2f')}" for f in m.random_effects)
        lines.append(f"  mixed model random effects: {sds} (logit scale)")
    lines.append("  secondary analyses (each states what it assumes; none is the headline):")
    for sec in p.secondary():
        est = "" if sec.estimate is None else f"{_pct(sec.estimate)} "
        pv = "" if sec.p_value is None else f"; {fmt_p(sec.p_value)}"
        lines.append(f"    - {sec.name}: {est}{_iv(sec.interval)}{pv} [assumes {sec.assumes}]"
                     + (f" ({sec.note})" if sec.note else ""))
    if p.ordinal is not None:
        o = p.ordinal
        lines.append(f"  graded answers ({o.n}, from {p.arm_a}'s side, -2..+2): "
                     + ", ".join(f"{g:+d}: {n}" for g, n in zip(range(-2, 3), o.counts, strict=True))
                     + f"; mean {_num(o.mean_grade, '+.2f')}")
    ag = p.agreement
    lines.append(
        f"  agreement: Fleiss kappa {_num(ag.fleiss_kappa)} ({ag.n_items_complete} cases rated by all "
        f"{ag.n_readers} readers); mean Cohen kappa {_num(ag.mean_cohen_kappa)}; percent agreement "
        f"{_pct(ag.percent_agreement)}" + (f" [{ag.note}]" if ag.note else "")
    )
    c = p.confidence
    if c.n:
        lines.append(
            f"  confidence-weighted share of {p.arm_a}: {_pct(c.weighted_share_a)} "
            f"(unweighted {_pct(c.share_a)} on the same {c.n} votes)"
        )
    if p.dice is not None and p.dice.n:
        d = p.dice
        lines.append(
            f"  preferred arm has the higher Dice in {_pct(d.share_agree)} of {d.n} votes "
            f"(Wilson {_iv(d.wilson)}; {fmt_p(d.p_value)}; {d.n_equal_dice} with equal Dice excluded)"
        )
    return lines + _breakdown_lines(p, "reader") + _breakdown_lines(p, "case")


def report_text(report: StudyReport) -> str:
    """Multi-line plain-text report: headline, one section per pair, Bradley-Terry, side bias, time, notes."""
    r = report
    out = [
        f"Reader study: {r.n_votes} votes, {len(r.readers)} readers, {r.n_cases} cases, "
        f"arms: {', '.join(r.arms)}",
        "",
        f"Primary analysis (pre-registered): {r.plan.describe()}",
        "",
        "Headline:",
    ]
    out += [f"  {p.headline()}" for p in r.pairs if p.is_primary] + [""]
    for p in r.pairs:
        out += _pair_lines(p) + [""]
    if r.rereads is not None:
        rr = r.rereads
        out.append("== Re-reads (sides swapped; not in the primary analysis) ==")
        out.append(
            f"  {rr.n} re-read items: same answer {_pct(rr.agreement)}, Cohen kappa {_num(rr.kappa)}; same arm "
            f"chosen again in {_pct(rr.swap_consistent)} of {rr.n_decisive} decisive pairs "
            f"(Wilson {_iv(rr.swap_interval)}), same side in {_pct(rr.same_side)}"
            + (f" [{rr.note}]" if rr.note else ""))
        out.append("")
    bt = r.bradley_terry
    if bt is not None:
        out.append(f"== Bradley-Terry (reference {bt.reference}, ties {bt.ties}) ==")
        if bt.strengths is None:
            out.append(f"  not estimated: {bt.note}")
        for s in bt.strengths or ():
            out.append(
                f"  {s.arm:<20} log-strength {s.log_strength:+.3f} "
                f"({100 * bt.level:g}% CI {s.ci_low:+.3f} to {s.ci_high:+.3f})"
            )
        out.append("")
    sb = r.side_bias
    out.append("== Side bias ==")
    if sb.overall is None:
        out.append(f"  {sb.note}")
    else:
        o = sb.overall
        out.append(
            f"  left arm chosen in {_pct(o.share_left)} of {o.n} decisive votes (Wilson {_iv(o.wilson)}; "
            f"{fmt_p(o.p_value)}); arm a shown left in {_pct(sb.arm_a_left_share)} "
            f"({fmt_p(sb.arm_a_left_p)})"
        )
    t = r.time
    out += ["", "== Time per item =="]
    if t.overall is None:
        out.append(f"  {t.note}")
    else:
        o = t.overall
        out.append(
            f"  median {o.median / 1000:.1f} s (IQR {o.q25 / 1000:.1f}-{o.q75 / 1000:.1f} s) over {o.n} votes"
        )
        if len(t.per_reader) <= MAX_TABLE_ROWS:
            out += [
                f"    {s.reader}: median {s.median / 1000:.1f} s "
                f"(IQR {s.q25 / 1000:.1f}-{s.q75 / 1000:.1f} s), n={s.n}"
                for s in t.per_reader
            ]
    if r.notes:
        out += ["", "Notes:"] + [f"  {n}" for n in r.notes]
    return "\n".join(out) + "\n"
