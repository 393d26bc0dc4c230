"""Plotly figures of a study report (JSON for the page): primary analysis with secondary CIs, forest plot per
reader, reader x case heat map, graded answers, side bias, time per item, preference vs Dice gap."""

import json
import textwrap

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

LAYOUT = {"margin": {"t": 64, "r": 10, "b": 50, "l": 60}, "height": 340, "template": "plotly_white"}
# a share from 0% to 100%, a little room beyond so markers and whiskers at either end are not cut in half, and
# a tick every 25% (on a narrow chart plotly's own choice was 0% and 50% only)
SHARE_AXIS = {"range": [-0.04, 1.04], "tickvals": [0, 0.25, 0.5, 0.75, 1], "tickformat": ".0%", "zeroline": False}


def _json(fig):
    return json.loads(pio.to_json(fig, validate=False))


def _title(text, width=48):
    """A chart title wrapped onto lines (plotly does not wrap, and cuts long titles off on narrow charts)."""
    return {"text": "<br>".join(textwrap.wrap(text, width)), "font": {"size": 14}, "x": 0.02, "xanchor": "left"}


def preference_figure(report):
    """Per pair: the primary analysis' estimate and CI, and the secondary intervals below it (primary arm's)."""
    fig = go.Figure()
    for pair in report["pairs"]:
        pa = pair.get("primary")
        arm = pa["arm"] if pa else pair["arm_a"]
        label = f"{arm} over {pa['comparator'] if pa else pair['arm_b']}"
        rows = []
        if pa and pa.get("estimate") is not None and pa.get("interval"):
            short = {"mixed": "mixed model", "bootstrap": "cluster bootstrap"}.get(pa["method"], "exact binomial")
            rows.append((f"PRIMARY: {short}", pa["estimate"], pa["interval"]))
        for sec in pair.get("secondary", []):
            if sec.get("estimate") is not None and sec.get("interval"):
                rows.append((sec.get("short") or sec["name"][:30], sec["estimate"], sec["interval"]))
        for k, (name, est, iv) in enumerate(rows):
            fig.add_trace(go.Scatter(
                x=[est], y=[f"{label}<br>{name}"], mode="markers", showlegend=False,
                marker={"size": 13 if k == 0 else 9, "color": "#2456d6" if k == 0 else "#7f8c8d"},
                error_x={"type": "data", "symmetric": False, "array": [iv["high"] - est],
                         "arrayminus": [est - iv["low"]]},
                hovertemplate=f"{name}: %{{x:.1%}} (CI {iv['low']:.1%}-{iv['high']:.1%})<extra></extra>"))
    fig.add_vline(x=0.5, line_dash="dot")
    n_rows = sum(len(t.y) for t in fig.data)
    fig.update_layout(title=_title("Preference for the primary arm: primary analysis (blue) and secondary "
                                   "analyses (grey), 95% CI"),
                      xaxis={"range": [0, 1], "tickformat": ".0%"},
                      **{**LAYOUT, "height": max(260, 90 + 46 * n_rows), "margin": {**LAYOUT["margin"], "l": 200}})
    return _json(fig)


def grades_figure(pair):
    """Counts of graded answers, -2 (arm_b much better) .. +2 (arm_a much better)."""
    o = pair.get("ordinal")
    if not o:
        return None
    labels = [f"{pair['arm_b']} much better", f"{pair['arm_b']} better", "about equal",
              f"{pair['arm_a']} better", f"{pair['arm_a']} much better"]
    fig = go.Figure(go.Bar(x=labels, y=o["counts"], marker={"color": ["#c0392b", "#e6a19a", "#cccccc",
                                                                      "#9db4ea", "#2456d6"]}))
    fig.update_layout(title=_title(f"Graded answers: {pair['arm_a']} vs {pair['arm_b']} (votes)"), **LAYOUT)
    return _json(fig)


def forest_figure(pair):
    rows = pair["per_reader"]["rows"]
    fig = go.Figure(go.Scatter(
        x=[r["share_a"] for r in rows], y=[r["group"] for r in rows], mode="markers", marker={"size": 9},
        error_x={"type": "data", "symmetric": False,
                 "array": [r["wilson"]["high"] - r["share_a"] for r in rows],
                 "arrayminus": [r["share_a"] - r["wilson"]["low"] for r in rows]},
        hovertemplate="%{y}: %{x:.1%}"))
    # the label above the plot, where no reader's interval or the 50% line runs through it
    fig.add_vline(x=pair["preference"]["share_a"], line_color="#2456d6", annotation_text="all readers",
                  annotation_position="top", annotation_yanchor="bottom", annotation_font_color="#2456d6")
    fig.add_vline(x=0.5, line_dash="dot")
    fig.update_layout(title=_title(f"Per reader: share preferring {pair['arm_a']} (Wilson 95% CI)"),
                      xaxis=SHARE_AXIS,
                      **{**LAYOUT, "height": max(260, 40 + 22 * len(rows))})
    return _json(fig)


def heatmap_figure(votes, arm_a, arm_b):
    """+1: arm_a preferred, -1: arm_b, 0: no preference; blank: not scored."""
    pair = votes[((votes["arm_a"] == arm_a) & (votes["arm_b"] == arm_b))
                 | ((votes["arm_a"] == arm_b) & (votes["arm_b"] == arm_a))]
    value = np.where(pair["choice"] == "tie", 0, np.where(
        (pair["choice"] == "a") == (pair["arm_a"] == arm_a), 1, -1))
    table = pair.assign(v=value).pivot_table(index="reader", columns="case", values="v", aggfunc="mean")
    fig = go.Figure(go.Heatmap(z=table.to_numpy(), x=list(table.columns), y=list(table.index), zmin=-1, zmax=1,
                               colorscale=[[0, "#c0392b"], [0.5, "#f2f2f2"], [1, "#2456d6"]],
                               colorbar={"tickvals": [-1, 0, 1], "ticktext": [arm_b, "none", arm_a]},
                               hovertemplate="%{y} on %{x}: %{z}<extra></extra>"))
    fig.update_layout(title=_title(f"Reader x case: {arm_a} (blue) vs {arm_b} (red)"),
                      **{**LAYOUT, "height": max(260, 80 + 18 * len(table.index))})
    return _json(fig)


def side_bias_figure(report):
    side = report["side_bias"]
    rows = [side["overall"], *side["per_reader"]]
    fig = go.Figure(go.Bar(
        x=["all readers" if r["reader"] is None else r["reader"] for r in rows], y=[r["share_left"] for r in rows],
        error_y={"type": "data", "symmetric": False, "array": [r["wilson"]["high"] - r["share_left"] for r in rows],
                 "arrayminus": [r["share_left"] - r["wilson"]["low"] for r in rows]}))
    fig.add_hline(y=0.5, line_dash="dot")
    fig.update_layout(title=_title(f"Side bias: left (A) chosen in {side['overall']['share_left']:.1%} of "
                                   f"decisive votes (p = {side['overall']['p_value']:.3g})"),
                      yaxis={"range": [0, 1], "tickformat": ".0%"}, **LAYOUT)
    return _json(fig)


def time_figure(votes):
    fig = go.Figure()
    for reader, group in votes.groupby("reader"):
        if "time_ms" in group:
            fig.add_trace(go.Box(y=group["time_ms"] / 1000, name=str(reader), boxpoints=False))
    fig.update_layout(title=_title("Time per item (s)"), showlegend=False, yaxis={"title": {"text": "s"}},
                      **LAYOUT)
    return _json(fig)


def dice_figure(pair):
    dice = pair.get("dice")
    if not dice or not dice.get("bins"):
        return None
    bins = [b for b in dice["bins"] if b["n"]]
    fig = go.Figure(go.Scatter(x=[(b["gap_low"] + b["gap_high"]) / 2 for b in bins],
                               y=[b["share_a"] for b in bins], mode="markers+lines",
                               marker={"size": [6 + 2 * np.sqrt(b["n"]) for b in bins]},
                               text=[f"n={b['n']}" for b in bins]))
    fig.update_layout(title=_title(f"Preference for {pair['arm_a']} vs Dice gap ({pair['arm_a']} minus "
                                   f"{pair['arm_b']})"),
                      yaxis=SHARE_AXIS, xaxis={"title": {"text": "Dice gap"}}, **LAYOUT)
    return _json(fig)


def all_figures(report, votes):
    figures = {"preference": preference_figure(report), "side_bias": side_bias_figure(report),
               "time": time_figure(votes) if "time_ms" in votes else None, "pairs": []}
    for pair in report["pairs"]:
        figures["pairs"].append({"name": f"{pair['arm_a']} vs {pair['arm_b']}", "forest": forest_figure(pair),
                                 "heatmap": heatmap_figure(votes, pair["arm_a"], pair["arm_b"]),
                                 "dice": dice_figure(pair), "grades": grades_figure(pair)})
    return figures
