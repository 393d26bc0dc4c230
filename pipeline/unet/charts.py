"""Plotly figures and live-curve settings of the U-Net pages."""

import json

# The curves the run page draws live for a training run (keys of its per-epoch events).
CHART_METRICS = json.dumps([{"key": "train_loss", "label": "train loss"}, {"key": "val_dice", "label": "validation Dice"}])


def dice_box_figure(columns):
    """Box plots of TEST Dice; ``columns``: ``[(name, [dice per case])]`` -> figure JSON."""
    import plotly.graph_objects as go

    fig = go.Figure([go.Box(y=values, name=name, boxpoints="all", jitter=0.3) for name, values in columns])
    fig.update_layout(yaxis={"title": {"text": "Dice (TEST cases)"}, "range": [0, 1]}, height=360, showlegend=False,
                      margin={"t": 20, "r": 10, "b": 40, "l": 50})
    return fig.to_json()
