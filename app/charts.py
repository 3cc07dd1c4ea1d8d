"""Pure figure builders: DataFrame in, Plotly figure out. No Streamlit here.

Colours come from the Okabe-Ito palette (colour-blind safe); fonts are sized for projectors.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
SPLIT_COLOURS = {"train": OKABE_ITO[0], "test": OKABE_ITO[1]}
SPLIT_DASH = {"train": "solid", "test": "dash"}
FONT = {"size": 16}


def learning_curves(metrics: pd.DataFrame, *, metric: str, title: str = "") -> go.Figure:
    """Train and test ``metric`` ('accuracy' or 'loss') against epoch.

    metrics : DataFrame with columns epoch, split, loss, accuracy (one row per epoch and split).
    """
    fig = go.Figure()
    for split in ("train", "test"):
        rows = metrics[metrics["split"] == split].sort_values("epoch")
        values = rows[metric] * (100.0 if metric == "accuracy" else 1.0)
        fig.add_trace(go.Scatter(
            x=rows["epoch"], y=values, mode="lines+markers", name=split,
            line={"color": SPLIT_COLOURS[split], "dash": SPLIT_DASH[split], "width": 3}, marker={"size": 6},
        ))
    label = "accuracy (%)" if metric == "accuracy" else "cross-entropy loss (nats)"
    fig.update_layout(
        title=title or label, font=FONT, height=340, margin={"l": 60, "r": 20, "t": 50, "b": 50},
        xaxis_title="epoch", yaxis_title=label, legend={"orientation": "h", "y": -0.25},
        template="plotly_white",
    )
    if metric == "accuracy":
        fig.update_yaxes(range=[0, 101])
    return fig
