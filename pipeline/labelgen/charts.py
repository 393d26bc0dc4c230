"""Plotly figures of the label-generation pages (built server-side, drawn by plotly.js)."""


def qa_dice_figure(cases, series):
    """Grouped bars of Dice per case; ``series``: ``[(name, [dice or None per case])]`` -> figure JSON."""
    import plotly.graph_objects as go

    fig = go.Figure([go.Bar(name=name, x=cases, y=values) for name, values in series
                     if any(v is not None for v in values)])
    fig.update_layout(barmode="group", yaxis={"title": {"text": "Dice"}, "range": [0, 1]}, height=340,
                      margin={"t": 30, "r": 10, "b": 40, "l": 50}, legend={"orientation": "h"})
    return fig.to_json()
