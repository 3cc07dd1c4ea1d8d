"""Pure builders for the Neurons page: DataFrames in, DataFrames or Plotly figures out. No Streamlit.

"Class" is the training target; "subclass" is the fine label of a run trained on superclasses
(docs/store.md, analysis/). Measures use the training probe samples, so these helpers do too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.charts.base import FONT, NOISE_COLOUR, OKABE_ITO, classes_are_superclasses, set_template
from app.charts.layers import integer_epochs

PRE_LABEL = "pre-activation<br>(before ReLU, a.u.)"  # two short lines: one long line ran past a presentation-mode plot's height


# ------------------------------------------------------------------------------------------ labels


def sample_labels(samples: pd.DataFrame, dataset: Mapping[str, Any]) -> pd.DataFrame:
    """Class, subclass and superclass of every probe sample, as the analysis defines them.

    samples : samples.parquet (sample_id, split, label, label_name, superclass, superclass_name).
    dataset : run.json ``dataset`` (``target``). Returns columns sample_id, split and, each with a
    ``*_name`` twin: cls (the training target), sub (the fine label) and sup (its superclass). When
    the data have no superclasses, sub and sup are -1 with empty names. c1 needs more: a run trained
    on superclasses (the analysis leaves c1 out for runs trained on fine labels; api.intraclass_reason).
    """
    has_sup = bool(samples["superclass"].notna().all()) and not samples.empty
    out = pd.DataFrame({"sample_id": samples["sample_id"].to_numpy(), "split": samples["split"].to_numpy()})
    fine, fine_name = samples["label"].astype(int).to_numpy(), samples["label_name"].astype(str).to_numpy()
    if has_sup:
        sup, sup_name = samples["superclass"].astype(int).to_numpy(), samples["superclass_name"].astype(str).to_numpy()
        out["sub"], out["sub_name"], out["sup"], out["sup_name"] = fine, fine_name, sup, sup_name
    else:
        out["sub"], out["sub_name"], out["sup"], out["sup_name"] = -1, "", -1, ""
    on_sup = classes_are_superclasses(dataset.get("target"), has_superclasses=has_sup)
    out["cls"], out["cls_name"] = (out["sup"], out["sup_name"]) if on_sup else (fine, fine_name)
    return out


def has_subclasses(labels: pd.DataFrame) -> bool:
    return bool((labels["sup"] >= 0).all()) and not labels.empty


def names(labels: pd.DataFrame, level: str) -> dict[int, str]:
    """Label id -> name for ``level`` 'cls', 'sub' or 'sup', in id order (empty for a missing level)."""
    rows = labels[labels[level] >= 0].drop_duplicates(level).sort_values(level)
    return dict(zip(rows[level].astype(int), rows[f"{level}_name"], strict=True))


# ------------------------------------------------------------------------------------------ tables


def units_table(units: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The ``units`` analysis table of one (layer, epoch) with label ids replaced by names.

    units : columns unit, dead, c1, c1_subclass, c3, c3_class, hap, hap_class, hap_chance,
    hap_subclass_concentration, wtm. Subclass columns stay empty without a hierarchy.
    """
    cls, sub = names(labels, "cls"), names(labels, "sub")
    return pd.DataFrame({
        "unit": units["unit"].astype(int).to_numpy(),
        "dead": units["dead"].astype(bool).to_numpy(),
        "c1": units["c1"].to_numpy(),
        "best subclass": units["c1_subclass"].map(sub).to_numpy(),
        "c3": units["c3"].to_numpy(),
        "class (c3)": units["c3_class"].map(cls).to_numpy(),
        "hap": units["hap"].to_numpy(),
        "majority class": units["hap_class"].map(cls).to_numpy(),
        "chance": units["hap_chance"].to_numpy(),
        "wtm": units["wtm"].to_numpy(),
    })


def default_unit(units: pd.DataFrame) -> int:
    """The unit to show first: the most subclass-selective one (c1), else the highest variance ratio (c3)."""
    alive = units[~units["dead"].astype(bool)] if (~units["dead"].astype(bool)).any() else units
    score = alive["c1"] if alive["c1"].notna().any() else alive["c3"]
    return int(alive["unit"].iloc[int(np.nanargmax(score.to_numpy()))]) if score.notna().any() else int(units["unit"].iloc[0])


def pick_epochs(epochs: Sequence[int], *, keep: int, at_most: int = 12) -> list[int]:
    """At most ``at_most`` epochs spread evenly over ``epochs``, always with the first, the last and ``keep``."""
    epochs = sorted(int(e) for e in epochs)
    if len(epochs) <= at_most:
        return epochs
    idx = set(np.round(np.linspace(0, len(epochs) - 1, at_most - 1)).astype(int).tolist())
    chosen = {epochs[i] for i in idx} | ({keep} if keep in epochs else set())
    return sorted(chosen)


def unit_values(columns: Mapping[int, tuple[np.ndarray, np.ndarray]], labels: pd.DataFrame) -> pd.DataFrame:
    """Long table of one unit's pre-activations on the training samples over epochs.

    columns : epoch -> (sample_ids (n,), values (n,)). Returns epoch, sample_id, value and the label columns.
    """
    frames = [pd.DataFrame({"epoch": int(e), "sample_id": np.asarray(ids), "value": np.asarray(v, dtype=float)})
              for e, (ids, v) in sorted(columns.items())]
    if not frames:
        return pd.DataFrame(columns=["epoch", "sample_id", "value", *labels.columns.drop("sample_id")])
    long = pd.concat(frames, ignore_index=True).merge(labels, on="sample_id", how="inner")
    return long[long["split"] == "train"].reset_index(drop=True)


def top_samples(ids: np.ndarray, values: np.ndarray, labels: pd.DataFrame, *, k: int = 16) -> pd.DataFrame:
    """The ``k`` training samples with the highest pre-activation, highest first (ties by sample id).

    ids : (n,) sample ids; values : (n,) the unit's pre-activations on them.
    """
    frame = pd.DataFrame({"sample_id": np.asarray(ids), "value": np.asarray(values, dtype=float)})
    frame = frame.merge(labels, on="sample_id", how="inner")
    frame = frame[frame["split"] == "train"]
    return frame.sort_values(["value", "sample_id"], ascending=[False, True]).head(k).reset_index(drop=True)


def best_neuron_per_subclass(units: pd.DataFrame, sub_names: Mapping[int, str]) -> pd.DataFrame:
    """For each subclass, the largest c1 among the units whose best subclass it is (all layers given).

    An approximation of max_n sel(n, i): a unit only counts for its own best subclass, so a subclass
    that is no unit's best is missing. units : columns layer, unit, c1, c1_subclass.
    """
    alive = units[units["c1"].notna() & (units["c1_subclass"] >= 0)].reset_index(drop=True)
    if alive.empty:
        return pd.DataFrame(columns=["subclass", "subclass_name", "c1", "layer", "unit"])
    best = alive.loc[alive.groupby("c1_subclass")["c1"].idxmax()]
    return pd.DataFrame({
        "subclass": best["c1_subclass"].astype(int).to_numpy(),
        "subclass_name": best["c1_subclass"].map(sub_names).to_numpy(),
        "c1": best["c1"].to_numpy(), "layer": best["layer"].to_numpy(), "unit": best["unit"].astype(int).to_numpy(),
    }).sort_values("c1", ascending=False).reset_index(drop=True)


# ------------------------------------------------------------------------------------------ figures


def _fill(colour: str, alpha: float) -> str:
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def focus_groups(values: pd.DataFrame, *, focus: int, level: str) -> pd.Series:
    """Group of every row (SCIENCE.md 6.5). level 'sub': the focus subclass, the rest of its superclass,
    the other superclasses ("other classes" when the run is trained on superclasses). level 'cls': the
    focus class and the other classes."""
    hit = values[level] == focus
    name = values.loc[hit, f"{level}_name"].iloc[0] if hit.any() else str(focus)
    if level == "cls":
        return pd.Series(np.where(hit, f"class {name}", "other classes"), index=values.index)
    sup = values.loc[hit, "sup"].iloc[0] if hit.any() else -1
    sup_name = values.loc[hit, "sup_name"].iloc[0] if hit.any() else "?"
    others = "other classes" if (values["cls"] == values["sup"]).all() else "other superclasses"
    return pd.Series(np.where(hit, f"subclass {name}", np.where(values["sup"] == sup, f"rest of {sup_name}", others)),
                     index=values.index)


def distributions_over_epochs(values: pd.DataFrame, *, focus: int | None, level: str,
                              class_colours: Mapping[str, str], title: str = "") -> go.Figure:
    """Violins of one unit's pre-activations per recorded epoch (SCIENCE.md 6.5, thesis Fig. 2.8/2.9).

    values : :func:`unit_values` output. With ``focus`` (a subclass id for level 'sub', a class id for
    'cls'): focus group vs rest of its superclass vs other classes. Without: one box per class.
    """
    fig = go.Figure()
    x_all = values["epoch"].astype(str)
    if focus is None:
        for cid, name in names(values, "cls").items():
            rows = values["cls"] == cid
            colour = class_colours.get(name, OKABE_ITO[cid % len(OKABE_ITO)])
            fig.add_trace(go.Box(x=x_all[rows], y=values.loc[rows, "value"], name=name, boxpoints=False,
                                 marker_color=colour, line={"width": 1.5}, legendgroup=name))
        fig.update_layout(boxmode="group")
    else:
        groups = focus_groups(values, focus=focus, level=level)
        cls_of_focus = values.loc[values[level] == focus, "cls_name"]
        colour = class_colours.get(cls_of_focus.iloc[0], OKABE_ITO[0]) if not cls_of_focus.empty else OKABE_ITO[0]
        # One trace per (group, epoch), each its own scale group: plotly scales a trace's violins
        # together, so the narrow epoch-0 distribution would flatten every later one.
        for group in sorted(groups.unique(), key=_group_rank):
            focus_like = group.startswith(("subclass", "class"))
            other = group.startswith("other")
            line = NOISE_COLOUR if other else colour
            fill = _fill(colour, 0.55) if focus_like else _fill(NOISE_COLOUR, 0.35) if other else _fill(colour, 0.12)
            for k, epoch in enumerate(sorted(values["epoch"].unique())):
                rows = (groups == group) & (values["epoch"] == epoch)
                fig.add_trace(go.Violin(
                    x=x_all[rows], y=values.loc[rows, "value"], name=group, legendgroup=group, showlegend=k == 0,
                    offsetgroup=group, scalegroup=f"{group}@{epoch}", line={"color": line, "width": 1.5},
                    fillcolor=fill, spanmode="hard", points=False, box={"visible": True, "width": 0.35},
                    meanline={"visible": False}))
        fig.update_layout(violinmode="group", violingap=0.15, violingroupgap=0.05)
    fig.add_hline(y=0, line={"color": "#444444", "dash": "dot", "width": 1}, annotation_text="ReLU threshold",
                  annotation_position="bottom right")
    fig.update_layout(title=title or "Pre-activation distributions over training", font=FONT, height=460,
                      legend={"orientation": "h", "y": -0.2}, margin={"t": 60})
    fig.update_xaxes(title="epoch", type="category", categoryorder="array",
                     categoryarray=[str(e) for e in sorted(values["epoch"].unique())])
    fig.update_yaxes(title=PRE_LABEL)
    return set_template(fig)


def _group_rank(group: str) -> int:
    return 0 if group.startswith(("subclass", "class")) else 1 if group.startswith("rest of") else 2


def unit_score_lines(history: pd.DataFrame, *, epoch: int | None = None, title: str = "") -> go.Figure:
    """A unit's c1, c3 and high-activation purity against epoch, stacked on one epoch axis.

    history : one row per epoch with epoch, c1, c3, hap, hap_chance (rows of the ``units`` tables).
    """
    h = history.sort_values("epoch")
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    lines = [("c1", "selectivity c1", OKABE_ITO[0]), ("c3", "variance ratio c3", OKABE_ITO[2]),
             ("hap", "purity (%)", OKABE_ITO[5])]
    for row, (col, label, colour) in enumerate(lines, start=1):
        y = h[col] * (100.0 if col == "hap" else 1.0)
        fig.add_trace(go.Scatter(x=h["epoch"], y=y, mode="lines+markers", name=label, line={"color": colour, "width": 3},
                                 marker={"size": 6}), row=row, col=1)
        fig.update_yaxes(title_text=label, row=row, col=1)
    fig.add_trace(go.Scatter(x=h["epoch"], y=h["hap_chance"] * 100.0, mode="lines", name="chance (largest class)",
                             line={"color": NOISE_COLOUR, "dash": "dash", "width": 2}), row=3, col=1)
    fig.update_yaxes(range=[0, 101], row=3, col=1)
    if epoch is not None:
        fig.add_vline(x=epoch, line={"color": "#444444", "dash": "dot", "width": 1})
    fig.update_xaxes(title_text="epoch", row=3, col=1)
    integer_epochs(fig, h["epoch"])
    fig.update_layout(title=title or "Unit scores over training", font=FONT, height=560,
                      legend={"orientation": "h", "y": -0.18}, margin={"t": 60})
    return set_template(fig)


def best_neuron_histogram(best: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Histogram over subclasses of the best neuron's selectivity (SCIENCE.md 6.5).

    best : :func:`best_neuron_per_subclass` output (one row per subclass, column c1).
    """
    fig = go.Figure(go.Histogram(x=best["c1"], nbinsx=max(5, min(40, len(best))), marker_color=OKABE_ITO[0],
                                 marker_line={"color": "white", "width": 1}, name="subclasses",
                                 hovertemplate="c1 %{x}<br>%{y} subclass(es)<extra></extra>"))
    if len(best):
        median = float(best["c1"].median())
        fig.add_vline(x=median, line={"color": OKABE_ITO[5], "dash": "dash", "width": 2})
        fig.add_annotation(x=median, y=1, yref="paper", yanchor="bottom", showarrow=False, text=f"median {median:.2f}",
                           font={"color": OKABE_ITO[5]})
    fig.update_layout(title=title or "Best-neuron selectivity over subclasses", font=FONT, height=340,
                      showlegend=False, bargap=0.05,
                      xaxis_title="best neuron's selectivity c1 (std. units)", yaxis_title="subclasses (count)")
    return set_template(fig)
