"""Plotly figures of a study report (JSON for the page): preference with CIs, forest plot per reader,
reader x case heat map, side bias, time per item, preference vs Dice gap."""

import json

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

LAYOUT = {"margin": {"t": 40, "r": 10, "b": 50, "l": 60}, "height": 320, "template": "plotly_white"}


def _json(fig):
    return json.loads(pio.to_json(fig, validate=False))


def preference_figure(report):
    fig = go.Figure()
    for pair in report["pairs"]:
        p, hi = pair["preference"], pair["headline_interval"]["interval"]
        label = f"{p['arm_a']} vs {p['arm_b']}"
        share = p["share_a"]
        fig.add_trace(go.Scatter(
            x=[share], y=[label], mode="markers", marker={"size": 12}, name=label, showlegend=False,
            error_x={"type": "data", "symmetric": False, "array": [hi["high"] - share], "arrayminus": [share - hi["low"]]},
            hovertemplate=f"{p['arm_a']} preferred in %{{x:.1%}} ({hi['method']} CI {hi['low']:.1%}-{hi['high']:.1%})"))
    fig.add_vline(x=0.5, line_dash="dot")
    fig.update_layout(title={"text": "Share preferring the first arm (headline 95% CI)"},
                      xaxis={"range": [0, 1], "tickformat": ".0%"}, **LAYOUT)
    return _json(fig)


def forest_figure(pair):
    rows = pair["per_reader"]["rows"]
    fig = go.Figure(go.Scatter(
        x=[r["share_a"] for r in rows], y=[r["group"] for r in rows], mode="markers", marker={"size": 9},
        error_x={"type": "data", "symmetric": False,
                 "array": [r["wilson"]["high"] - r["share_a"] for r in rows],
                 "arrayminus": [r["share_a"] - r["wilson"]["low"] for r in rows]},
        hovertemplate="%{y}: %{x:.1%}"))
    fig.add_vline(x=pair["preference"]["share_a"], line_color="#2456d6", annotation_text="all readers")
    fig.add_vline(x=0.5, line_dash="dot")
    fig.update_layout(title={"text": f"Per reader: share preferring {pair['arm_a']} (Wilson 95% CI)"},
                      xaxis={"range": [0, 1], "tickformat": ".0%"},
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
    fig.update_layout(title={"text": f"Reader x case: {arm_a} (blue) vs {arm_b} (red)"},
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
    fig.update_layout(title={"text": f"Side bias: left chosen {side['overall']['share_left']:.1%} "
                                     f"(p = {side['overall']['p_value']:.3g})"},
                      yaxis={"range": [0, 1], "tickformat": ".0%"}, **LAYOUT)
    return _json(fig)


def time_figure(votes):
    fig = go.Figure()
    for reader, group in votes.groupby("reader"):
        if "time_ms" in group:
            fig.add_trace(go.Box(y=group["time_ms"] / 1000, name=str(reader), boxpoints=False))
    fig.update_layout(title={"text": "Time per item (s)"}, showlegend=False, **LAYOUT)
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
    fig.update_layout(title={"text": f"Preference for {pair['arm_a']} vs Dice gap ({pair['arm_a']} minus {pair['arm_b']})"},
                      yaxis={"range": [0, 1], "tickformat": ".0%"}, xaxis={"title": {"text": "Dice gap"}}, **LAYOUT)
    return _json(fig)


def all_figures(report, votes):
    figures = {"preference": preference_figure(report), "side_bias": side_bias_figure(report),
               "time": time_figure(votes) if "time_ms" in votes else None, "pairs": []}
    for pair in report["pairs"]:
        figures["pairs"].append({"name": f"{pair['arm_a']} vs {pair['arm_b']}", "forest": forest_figure(pair),
                                 "heatmap": heatmap_figure(votes, pair["arm_a"], pair["arm_b"]),
                                 "dice": dice_figure(pair)})
    return figures
