"""Pure figure builders for the Embeddings page: DataFrame in, Plotly figure out.

Scatter plots use WebGL (``Scattergl``): one trace per category, so legends toggle classes and a
class keeps its colour (``charts.category_colours``) in every figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.charts import base
from app.charts.base import HOUSE_TEMPLATE, NOISE_COLOUR, OKABE_ITO, SEQUENTIAL, category_colours, house_layout, style

AXES = {"umap": ("umap_x", "umap_y", "UMAP 1 (a.u.)", "UMAP 2 (a.u.)"),
        "pca": ("pca_x", "pca_y", "PC 1 (a.u.)", "PC 2 (a.u.)")}
PROJECTIONS = {"umap": "UMAP", "pca": "PCA"}  # the 2-D projections as the pages name them
# Numbers only in customdata ([sample_id, cluster]): an object array of strings costs ~10x more to
# validate, copy and serialise (benchmarks/dashboard.py). The class is the trace's name when colouring
# by class; the hover card (app/hover.py) adds the thumbnail and every label.
HOVER = "<b>%{fullData.name}</b><br>sample %{customdata[0]} · cluster %{customdata[1]}<extra></extra>"
HOVER_NUMERIC = "sample %{customdata[0]} · cluster %{customdata[1]}<br>activation %{marker.color:.3f}<extra></extra>"
META = "clusterscope-embedding"  # marks the figures whose points carry sample ids (app/hover.py looks for it)
POINTS = "cs-points"  # the point traces' own ``meta`` (the selection's highlight finds them: app/views/embeddings_highlight.py)
NUMERIC_COLUMNS = {"sample_id": np.int64, "cluster": np.int64, "umap_x": np.float64, "umap_y": np.float64,
                   "pca_x": np.float64, "pca_y": np.float64}
COLOUR_COLUMNS = {"class": "class_name", "fine": "subclass_name", "superclass": "superclass_name", "cluster": "cluster_name"}
# HDBSCAN clusters: the 8 Okabe-Ito colours (colour-blind safe and distinct; the Tol colours added before held
# near-identical blues and greens), then the same colours with the next marker shape: 8 x 8 distinct
# (colour, shape) pairs, after which the pairs repeat. embedding_scatter draws a repeated colour's next shape.
CLUSTER_PALETTE = OKABE_ITO
SYMBOLS = ["circle", "square", "diamond", "triangle-up", "x", "cross", "star", "hexagon"]
# The legend's title per colouring; cluster ids are per HDBSCAN run (layer, epoch): unrelated across them.
LEGEND_TITLES = {"class": "class (trained on)", "fine": "fine label", "superclass": "superclass",
                 "cluster": "HDBSCAN cluster<br>(ids are per layer<br>and epoch)", "correct": "prediction",
                 "matched": "HDBSCAN cluster<br>(colours: view A's cluster<br>holding most of its samples)",
                 "region": "cartography region (over the recorded epochs)"}
FIXED_COLOURS = {"correct": {"correct": OKABE_ITO[2], "wrong": OKABE_ITO[5], "unknown": NOISE_COLOUR}, "region": {  # events.py
    "easy-to-learn": OKABE_ITO[2], "ambiguous": OKABE_ITO[1], "hard-to-learn": OKABE_ITO[5], "unknown": NOISE_COLOUR}}


def label_samples(samples: pd.DataFrame, *, target: str) -> pd.DataFrame:
    """The probe samples' readable labels: sample_id, split, class_name, subclass_name, superclass_name.

    samples : the run's samples table (sample_id, split, label_name, superclass_name).
    target : what the run was trained on, "label" or "superclass"; that is its "class" (a run trained on
        superclasses has the fine labels as subclasses).
    """
    out = samples[["sample_id", "split"]].copy()
    out["subclass_name"] = samples["label_name"].astype(str)
    has_sup = samples["superclass_name"].notna().all()
    on_sup = base.classes_are_superclasses(target, has_superclasses=bool(has_sup))
    out["class_name"] = (samples["superclass_name"] if on_sup else samples["label_name"]).astype(str)
    out["superclass_name"] = samples["superclass_name"].astype(str)
    return out


def view_points(points: pd.DataFrame, labels: pd.DataFrame, *, colour: str, values: pd.DataFrame | None = None,
                max_points: int) -> pd.DataFrame:
    """The points of one (layer, epoch) with their labels and the colouring column ``colour_value``.

    points : the analysis ``points`` table (sample_id, umap_x/y, pca_x/y, cluster); labels : :func:`label_samples`.
    colour : "class", "fine", "superclass", "cluster", "correct" (``values``: sample_id, correct), or any other
        with ``values``: sample_id, colour_value (a neuron's activation, a neighbourhood change, a region).
    Above ``max_points`` rows, a stratified sample by class (:func:`base.stratified_sample`).
    """
    df = points.merge(labels, on="sample_id", how="left")
    for col, dtype in NUMERIC_COLUMNS.items():  # plain NumPy columns: Arrow-backed ones are converted on every draw
        if col in df:
            df[col] = df[col].to_numpy(dtype=dtype)
    clusters, which = np.unique(df["cluster"].to_numpy(), return_inverse=True)  # a name per cluster, not per row
    names = pd.Series(["noise" if c < 0 else f"cluster {c}" for c in clusters.tolist()], dtype="str")
    df["cluster_name"] = names.take(which.ravel()).set_axis(df.index)
    if colour == "correct":
        correct = df["sample_id"].map(values.set_index("sample_id")["correct"]) if values is not None else None
        df["colour_value"] = ("unknown" if correct is None else
                              correct.map({True: "correct", False: "wrong"}).fillna("unknown").astype(str))
    else:  # with values: a neuron's activation, a per-sample change or a cartography region (app/loaders_changes.py)
        df["colour_value"] = (df[COLOUR_COLUMNS[colour]] if values is None
                              else df["sample_id"].map(values.set_index("sample_id")["colour_value"]))
    return base.stratified_sample(df, max_points=max_points, by="class_name")


def point_customdata(ids: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """A point's customdata, [sample_id, cluster] per row (what the selection and the hover card read)."""
    return np.column_stack([ids, cluster]).astype(np.int32)  # shape (n, 2); int32: a JS typed array


TYPED = {np.dtype(np.float32): "f4", np.dtype(np.float64): "f8", np.dtype(np.int32): "i4"}


def typed_array(values: np.ndarray) -> dict[str, str]:
    """``values`` as a plotly.js typed-array spec (``{"dtype", "bdata"[, "shape"]}``), the form Plotly
    itself sends NumPy arrays in. Built once per cached figure: handing Plotly the arrays instead makes
    every ``st.plotly_chart`` call convert each of them again (~0.1 ms per array, whatever its size, and
    an embedding has three per class)."""
    import base64

    values = np.ascontiguousarray(values)
    spec = {"dtype": TYPED[values.dtype], "bdata": base64.b64encode(values.tobytes()).decode("ascii")}
    if values.ndim > 1:
        spec["shape"] = ", ".join(map(str, values.shape))
    return spec


def decode_typed(value: object) -> object:
    """The NumPy array of a typed-array spec (:func:`typed_array`); anything else unchanged."""
    import base64

    if isinstance(value, dict) and {"dtype", "bdata"} <= set(value):
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return arr.reshape([int(d) for d in value["shape"].split(",")]) if "shape" in value else arr
    return value


def fast_figure(traces: list[dict], layout: dict, frames: list[dict] | None = None) -> go.Figure:
    """A figure from plain dicts in Plotly's canonical form (``title={"text": ...}``, no ``x_title``
    shorthands), without Plotly's per-property validation: for the 10-20 WebGL traces of an embedding it
    costs more than the rest of an epoch switch (benchmarks/dashboard.py). tests/test_charts_embeddings.py
    validates every builder's output with ``go.Figure(fig.to_dict())``. ``frames``: Plotly frames, if any."""
    return go.Figure({"data": traces, "layout": layout, **({"frames": frames} if frames else {})}, _validate=False)


def embedding_scatter(df: pd.DataFrame, *, projection: str, colour: str, colours: dict[str, str] | None = None,
                      highlight: set[int] | None = None, title: str = "", present: bool = False,
                      colour_label: str = "", ranges: tuple[list[float], list[float]] | None = None,
                      legend_title: str = "", symbols: dict[str, str] | None = None) -> go.Figure:
    """2-D embedding coloured by a categorical column (``colours`` maps its values) or a numeric one.

    A colour that ``colours`` gives to several values is drawn with a new marker shape each time
    (:func:`marker_symbols`, unless ``symbols`` gives each value's), so every legend entry stays distinct.
    ``legend_title``: e.g. ``LEGEND_TITLES``.

    df : one row per point with sample_id, cluster, the projection's x/y columns and ``colour``.
    ``highlight``: sample ids drawn opaque, others faded. Each point's customdata is [sample_id, cluster].
    ``ranges``: fixed (x, y) axis ranges, e.g. the same for every frame of an animation.
    """
    x, y, xt, yt = AXES[projection]
    # float32 positions: a screen needs no more, and the figure's JSON (sent on every redraw) is 1/3 smaller
    xs, ys = (np.asarray(df[c].to_numpy(), dtype=np.float32) for c in (x, y))
    ids, cluster = (np.asarray(df[c].to_numpy()) for c in ("sample_id", "cluster"))
    size = 9 if present else 6
    opacity = np.where(np.isin(ids, list(highlight)), 0.95, 0.12) if highlight else None
    traces = []
    if colours is None:  # numeric colouring, e.g. a neuron's activation
        traces.append({
            "type": "scattergl", "x": typed_array(xs), "y": typed_array(ys), "mode": "markers", "meta": POINTS,
            "customdata": typed_array(point_customdata(ids, cluster)),
            "hovertemplate": HOVER_NUMERIC, "showlegend": False,
            "marker": {"size": size, "color": typed_array(df[colour].to_numpy(dtype=np.float64)), "colorscale": SEQUENTIAL,
                       "opacity": 0.8 if opacity is None else typed_array(opacity),
                       "colorbar": {"title": {"text": colour_label or colour}}},
        })
    else:
        values = np.asarray(df[colour].to_numpy())
        symbols = symbols or marker_symbols(colours)
        for name, colour_hex in colours.items():
            mask = values == name
            if not mask.any():
                continue
            traces.append({
                "type": "scattergl", "x": typed_array(xs[mask]), "y": typed_array(ys[mask]), "mode": "markers",
                "meta": POINTS, "name": str(name), "hovertemplate": HOVER,
                "customdata": typed_array(point_customdata(ids[mask], cluster[mask])),
                "marker": {"size": size, "color": colour_hex, "symbol": symbols[name],
                           "opacity": 0.8 if opacity is None else typed_array(opacity[mask]),
                           "line": {"width": 0}},
            })
    house = house_layout(present=present, height=540 if present else 560, title=title)  # as charts.style sets it; 540: fits 720 px
    xaxis, yaxis = ({"range": ranges[0]}, {"range": ranges[1]}) if ranges else ({}, {})
    layout = house | {"template": HOUSE_TEMPLATE, "title": {"text": title, **house["title"]},
                      "xaxis": {"title": {"text": xt}, **xaxis},
                      "yaxis": {"title": {"text": yt}, "scaleanchor": "x", "scaleratio": 1, **yaxis},
                      "legend": {"itemsizing": "constant", "title": {"text": legend_title}},
                      "uirevision": f"{projection}-{colour}",
                      "meta": META}
    return fast_figure(traces, layout)


SCRUB_FRAME = "cs-epoch-"  # frame names of a scrubbable figure: SCRUB_FRAME + epoch (app/views/embeddings_scrub.py switches them)


def with_epoch_frames(fig: go.Figure, df: pd.DataFrame, epochs: dict[int, pd.DataFrame], *, epoch: int,
                      projection: str, colour: str, colours: dict[str, str], titles: dict[int, str]) -> go.Figure:
    """``fig`` (:func:`embedding_scatter` of ``df``, categorical ``colours``) with one Plotly frame per epoch
    of ``epochs``, named ``SCRUB_FRAME + epoch``, so that the browser can switch epochs without the server.

    A frame sets each trace's x, y and customdata (the cluster is per epoch) and the title; the traces'
    categories and the highlight (marker opacity) are the figure's, so the colouring must not depend on the
    epoch, and an epoch is left out unless it holds exactly ``df``'s samples. Points keep ``df``'s order.
    ``epoch``: the one ``df`` shows; the layout's ``datarevision`` names the frame shown.
    """
    x, y, _, _ = AXES[projection]
    ids = df["sample_id"].to_numpy()
    values = np.asarray(df[colour].to_numpy())
    masks = [values == name for name in colours if (values == name).any()]  # embedding_scatter's traces, in order
    frames = []
    for e, part in epochs.items():
        if len(part) != len(ids) or not np.isin(ids, part["sample_id"].to_numpy()).all():
            continue
        part = part.set_index("sample_id").loc[ids]
        xs, ys = (part[c].to_numpy(dtype=np.float32) for c in (x, y))
        cluster = part["cluster"].to_numpy()
        data = [{"type": "scattergl", "x": typed_array(xs[m]), "y": typed_array(ys[m]),
                 "customdata": typed_array(point_customdata(ids[m], cluster[m]))} for m in masks]
        name = f"{SCRUB_FRAME}{e}"
        frames.append({"name": name, "data": data, "traces": list(range(len(masks))),
                       "layout": {"title": {"text": titles.get(e, "")}, "datarevision": name}})
    spec = fig.to_plotly_json()
    return fast_figure(spec["data"], spec["layout"] | {"datarevision": f"{SCRUB_FRAME}{epoch}"}, frames)


def without_frames(fig: go.Figure) -> go.Figure:
    """``fig`` as drawn, without the frames of :func:`with_epoch_frames` (a download shows one epoch)."""
    if not fig.frames:
        return fig
    spec = fig.to_plotly_json()
    return fast_figure(spec["data"], {k: v for k, v in spec["layout"].items() if k != "datarevision"})


def colour_map(df: pd.DataFrame, dataset: dict, colour: str) -> dict[str, str] | None:
    """The colours of an Embeddings colouring (``COLOUR_COLUMNS``, "correct" or "neuron"; None: numeric).

    df : the view (:func:`view_points`), whose ``colour_value`` holds the cluster names when colouring by cluster.
    dataset : the run's ``dataset`` record (label_names, superclass_names, target), so a class keeps its
        colour in every figure of the run.
    """
    if colour in ("neuron", "neighbour_change", "forgetting"):
        return None
    if colour in FIXED_COLOURS:
        return FIXED_COLOURS[colour]
    if colour == "cluster":
        ordered = sorted(df["colour_value"].unique(), key=lambda n: (n != "noise", int(n.split()[-1]) if n != "noise" else -1))
        return cluster_colours(ordered, CLUSTER_PALETTE)
    if colour == "class" and dataset.get("target") == "superclass" and dataset.get("superclass_names"):
        return category_colours(dataset["superclass_names"])
    if colour == "superclass":
        return category_colours(dataset.get("superclass_names") or [])
    return category_colours(dataset["label_names"])


def marker_symbols(colours: dict[str, str], shapes: list[str] = SYMBOLS) -> dict[str, str]:
    """Per category, its marker shape: the first of ``shapes`` (a circle), and for the n-th repeat of a colour the
    n-th of ``shapes``."""
    seen: dict[str, int] = {}
    out = {}
    for name, colour_hex in colours.items():
        out[name] = shapes[seen.get(colour_hex, 0) % len(shapes)]
        seen[colour_hex] = seen.get(colour_hex, 0) + 1
    return out


def cluster_colours(names: list[str], palette: list[str]) -> dict[str, str]:
    """Cluster names ("noise" first, grey) to colours."""
    out = {"noise": NOISE_COLOUR} if "noise" in names else {}
    real = [n for n in names if n != "noise"]
    out |= {n: palette[i % len(palette)] for i, n in enumerate(real)}
    return out


def embedding_animation(frames: pd.DataFrame, *, projection: str, colour: str, colours: dict[str, str],
                        title: str = "", present: bool = False) -> go.Figure:
    """The aligned layouts of one layer across epochs, with a play button and an epoch slider.

    frames : the rows of every epoch (column ``epoch``), same columns as for :func:`embedding_scatter`.
    One trace per category; each frame updates their x/y, so points move rather than blink.
    """
    x, y, xt, yt = AXES[projection]
    epochs = sorted(frames["epoch"].unique())

    symbols = marker_symbols(colours)

    def traces(epoch: int) -> list[go.Scattergl]:
        part = frames[frames["epoch"] == epoch]
        return [go.Scattergl(x=part.loc[part[colour] == n, x], y=part.loc[part[colour] == n, y], mode="markers",
                             name=str(n), marker={"size": 6, "color": c, "opacity": 0.8, "symbol": symbols[n]},
                             customdata=point_customdata(part.loc[part[colour] == n, "sample_id"].to_numpy(),
                                                part.loc[part[colour] == n, "cluster"].to_numpy()),
                             hovertemplate=HOVER)
                for n, c in colours.items()]

    fig = go.Figure(data=traces(epochs[0]), frames=[go.Frame(data=traces(e), name=str(e)) for e in epochs])
    steps = [{"label": str(e), "method": "animate",
              "args": [[str(e)], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}]} for e in epochs]
    fig.update_layout(
        title=title, xaxis_title=xt, yaxis_title=yt, meta=META,
        xaxis={"range": _range(frames[x])}, yaxis={"range": _range(frames[y])},
        updatemenus=[{"type": "buttons", "x": 0, "y": -0.12, "xanchor": "left", "showactive": False, "buttons": [
            {"label": "▶ play", "method": "animate",
             "args": [None, {"frame": {"duration": 700, "redraw": True}, "fromcurrent": True,
                             "transition": {"duration": 300}}]},
            {"label": "❚❚ pause", "method": "animate",
             "args": [[None], {"mode": "immediate", "frame": {"duration": 0, "redraw": False}}]},
        ]}],
        sliders=[{"active": 0, "steps": steps, "x": 0.15, "len": 0.85, "y": -0.05,
                  "currentvalue": {"prefix": "epoch "}}],
    )
    return style(fig, present=present, height=680)


def animation_ranges(frames: pd.DataFrame, *, projection: str) -> tuple[list[float], list[float]]:
    """(x, y) axis ranges that hold every epoch's points, so an animation's frame does not jump."""
    x, y, _, _ = AXES[projection]
    return _range(frames[x]), _range(frames[y])


def gif_from_pngs(pngs: list[bytes], *, duration_ms: int = 800) -> bytes:
    """An animated GIF (looping) of PNG images of one size, ``duration_ms`` per frame; the last frame is
    held three times as long so the final layout can be read."""
    import io

    from PIL import Image

    if not pngs:
        raise ValueError("gif_from_pngs needs at least one PNG image; got none.")
    frames = [Image.open(io.BytesIO(p)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT) for p in pngs]
    out = io.BytesIO()
    durations = [duration_ms] * (len(frames) - 1) + [3 * duration_ms]
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0, optimize=False)
    return out.getvalue()


def _range(values: pd.Series) -> list[float]:
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo or 1.0)
    return [lo - pad, hi + pad]


def composition(selected: pd.DataFrame) -> pd.DataFrame:
    """Class / subclass / cluster counts of a selection, largest first."""
    rows = []
    for level, col in (("class", "class_name"), ("subclass", "subclass_name"), ("cluster", "cluster_name")):
        counts = selected[col].value_counts()
        rows += [{"level": level, "value": str(k), "count": int(v), "share": v / len(selected)} for k, v in counts.items()]
    return pd.DataFrame(rows, columns=["level", "value", "count", "share"])


# ------------------------------------------------------------------ a selection's trajectories over epochs

TRAJECTORY_CAP = 200  # at most this many selected samples get a path (a seeded sample of them above it)
TRAJECTORY_HOVER = "sample %{customdata[0]} · cluster %{customdata[1]}<br>epoch %{meta}<extra>trajectory</extra>"


def trajectory_ids(ids: set[int] | frozenset[int], *, cap: int = TRAJECTORY_CAP, seed: int = 0) -> list[int]:
    """The sample ids whose trajectories are drawn, sorted: all of ``ids``, or a seeded sample of ``cap`` of them."""
    ordered = np.array(sorted(ids), dtype=np.int64)
    if len(ordered) > cap:
        ordered = np.sort(np.random.default_rng(seed).choice(ordered, size=cap, replace=False))
    return ordered.tolist()


def trajectory_traces(paths: pd.DataFrame, *, projection: str, colours: dict[str, str], epoch: int,
                      present: bool = False) -> list[dict]:
    """Each sample's path through the aligned layouts of one layer, ordered by epoch, as thin lines (one
    trace per class, samples separated by a NaN gap), and a ring at epoch ``epoch`` (one trace).

    paths : one row per (sample, epoch) with sample_id, epoch, cluster, class_name and the projection's x/y
        columns (docs/store.md: the 2-D UMAP layouts of a layer are aligned across epochs).
    colours : class name -> colour (:func:`colour_map` with "class"), so a path has its points' class colour.
    """
    x, y, _, _ = AXES[projection]
    paths = paths.sort_values(["sample_id", "epoch"], kind="stable")
    traces = []
    for name, colour_hex in colours.items():
        part = paths[paths["class_name"] == name]
        if part.empty:
            continue
        # a NaN row after each sample's last epoch breaks the line between two samples
        gap = part["sample_id"].to_numpy()[1:] != part["sample_id"].to_numpy()[:-1]
        at = np.flatnonzero(gap) + 1
        xs = np.insert(part[x].to_numpy(np.float32), at, np.nan)
        ys = np.insert(part[y].to_numpy(np.float32), at, np.nan)
        traces.append({"type": "scattergl", "x": typed_array(xs), "y": typed_array(ys), "mode": "lines",
                       "name": f"{name} trajectories", "showlegend": False, "hoverinfo": "skip", "connectgaps": False,
                       "line": {"color": colour_hex, "width": 1.5 if present else 1}, "opacity": 0.7})
    now = paths[paths["epoch"] == epoch]
    if not now.empty:
        traces.append({"type": "scattergl", "x": typed_array(now[x].to_numpy(np.float32)),
                       "y": typed_array(now[y].to_numpy(np.float32)), "mode": "markers", "name": f"epoch {epoch}",
                       "showlegend": False, "meta": int(epoch), "hovertemplate": TRAJECTORY_HOVER,
                       "customdata": typed_array(point_customdata(now["sample_id"].to_numpy(), now["cluster"].to_numpy())),
                       "marker": {"symbol": "circle-open", "size": 13 if present else 10,
                                  "color": [colours.get(c, NOISE_COLOUR) for c in now["class_name"]],
                                  "line": {"width": 2}}})
    return traces


def with_traces(fig: go.Figure, traces: list[dict]) -> go.Figure:
    """A new figure: ``fig``'s traces, then ``traces``, with its layout and its epoch frames, if any (they name
    the scatter's traces, so the added ones stay as they are while the browser switches epochs). ``fig`` may be
    a cached one: it is left unchanged."""
    spec = fig.to_dict()
    return fast_figure([*spec["data"], *traces], spec["layout"], spec.get("frames"))
