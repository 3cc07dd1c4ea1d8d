from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.charts import base as charts
from app.charts import embeddings as charts_embeddings


def frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "sample_id": np.arange(n), "split": ["train"] * n, "umap_x": rng.normal(size=n), "umap_y": rng.normal(size=n),
        "pca_x": rng.normal(size=n), "pca_y": rng.normal(size=n), "class_name": np.repeat(["a", "b", "c"], n // 3),
        "subclass_name": np.tile(["s1", "s2"], n // 2), "cluster_name": ["cluster 0"] * n, "cluster": 0,
    })


def test_scatter_has_one_webgl_trace_per_class_in_palette_order() -> None:
    df = frame().assign(colour_value=lambda d: d["class_name"])
    colours = charts.category_colours(["a", "b", "c"])
    fig = charts_embeddings.embedding_scatter(df, projection="umap", colour="colour_value", colours=colours, title="t")
    assert [t.type for t in fig.data] == ["scattergl"] * 3
    assert [t.name for t in fig.data] == ["a", "b", "c"]
    assert [t.marker.color for t in fig.data] == list(colours.values()) == charts.OKABE_ITO[:3]
    assert fig.layout.xaxis.title.text == "UMAP 1 (a.u.)"


def test_highlight_fades_the_rest_and_numeric_colouring_has_a_colour_bar() -> None:
    df = frame().assign(colour_value=lambda d: d["pca_x"])
    fig = charts_embeddings.embedding_scatter(df, projection="pca", colour="colour_value", highlight={0, 1},
                                              colour_label="unit 3")
    opacity = charts_embeddings.decode_typed(fig.data[0].marker.opacity)
    assert opacity[:2].tolist() == [0.95, 0.95] and (opacity[2:] == 0.12).all()
    assert fig.data[0].marker.colorbar.title.text == "unit 3"


def test_stratified_sample_keeps_class_shares() -> None:
    df = frame(3000)
    sub = charts.stratified_sample(df, max_points=300, by="class_name")
    assert len(sub) == 300 and sub["class_name"].value_counts().tolist() == [100, 100, 100]
    assert charts.stratified_sample(df, max_points=5000, by="class_name") is df
    assert sub.index.is_monotonic_increasing and not sub.index.duplicated().any()  # rows kept in order, once each
    again = charts.stratified_sample(df.assign(umap_x=0.0), max_points=300, by="class_name")
    assert again.index.equals(sub.index)  # another epoch of the same samples: the same rows drawn
    rare = pd.concat([df, df.iloc[:1].assign(class_name="rare")], ignore_index=True)
    assert (charts.stratified_sample(rare, max_points=300, by="class_name")["class_name"] == "rare").sum() == 1


def test_animation_frames_and_composition() -> None:
    df = pd.concat([frame().assign(epoch=e, colour_value=lambda d: d["class_name"]) for e in (0, 5)])
    fig = charts_embeddings.embedding_animation(df, projection="umap", colour="colour_value",
                                                colours=charts.category_colours(["a", "b", "c"]))
    assert [f.name for f in fig.frames] == ["0", "5"] and len(fig.frames[1].data) == 3
    comp = charts_embeddings.composition(frame(6))
    assert comp[comp["level"] == "class"]["count"].tolist() == [2, 2, 2]
    assert comp["share"].between(0, 1).all()


def test_category_colours_are_stable_and_colour_blind_safe_up_to_ten() -> None:
    ten = [str(i) for i in range(10)]
    assert charts.category_colours(ten)["3"] == charts.TOL_MUTED[3]
    assert len(set(charts.category_colours(ten).values())) == 10
    assert charts.category_colours(["x", "y"]) == {"x": charts.OKABE_ITO[0], "y": charts.OKABE_ITO[1]}


def test_scatter_is_a_valid_plotly_figure_with_numeric_customdata() -> None:
    """The scatter is built without Plotly's validation (charts_embeddings.fast_figure): validating its
    output must accept it unchanged, and customdata must stay numeric ([sample_id, cluster])."""
    import json

    import plotly.graph_objects as go

    df = frame().assign(colour_value=lambda d: d["class_name"], cluster=lambda d: np.arange(len(d)) % 4 - 1)
    fig = charts_embeddings.embedding_scatter(df, projection="umap", colour="colour_value",
                                              colours=charts.category_colours(["a", "b", "c"]), title="T", present=True)
    checked = go.Figure(fig.to_dict())  # raises on any unknown or malformed property
    assert json.loads(checked.to_json()) == json.loads(fig.to_json())
    assert fig.layout.title.text == "T" and fig.layout.title.font.size == 26 and fig.layout.height == 540  # fits 1280x720
    assert fig.layout.template == charts.HOUSE_TEMPLATE and fig.layout.meta == charts_embeddings.META
    custom = charts_embeddings.decode_typed(fig.data[1].customdata)
    assert custom.dtype.kind == "i" and custom.shape == (20, 2)
    assert custom[:, 0].tolist() == list(range(20, 40)) and custom[:, 1].tolist() == (np.arange(20, 40) % 4 - 1).tolist()
    # the arrays are typed-array specs, as Plotly sends NumPy arrays: positions float32, exact to that precision
    xs = charts_embeddings.decode_typed(fig.data[1].x)
    assert xs.dtype == np.float32 and xs.tolist() == df["umap_x"].to_numpy(dtype=np.float32)[20:40].tolist()


def test_view_points_labels_colours_and_caps() -> None:
    points = frame(300)[["sample_id", "umap_x", "umap_y", "pca_x", "pca_y"]].assign(cluster=lambda d: d["sample_id"] % 3 - 1)
    samples = pd.DataFrame({"sample_id": np.arange(300), "split": "train", "label_name": np.tile(["0", "1", "2"], 100),
                            "superclass_name": np.tile(["round", "stroke", "round"], 100)})
    labels = charts_embeddings.label_samples(samples, target="superclass")
    assert labels["class_name"].tolist()[:3] == ["round", "stroke", "round"] and labels["subclass_name"].tolist()[:2] == ["0", "1"]
    df = charts_embeddings.view_points(points, labels, colour="cluster", max_points=1000)
    assert df["colour_value"].tolist()[:3] == ["noise", "cluster 0", "cluster 1"] and df["umap_x"].dtype == np.float64
    pred = pd.DataFrame({"sample_id": np.arange(0, 300, 2), "correct": np.arange(150) % 2 == 0})
    df = charts_embeddings.view_points(points, labels, colour="correct", values=pred, max_points=1000)
    assert df["colour_value"].tolist()[:4] == ["correct", "unknown", "wrong", "unknown"]
    df = charts_embeddings.view_points(points, labels, colour="class", max_points=150)
    assert len(df) == 150 and df["class_name"].value_counts().to_dict() == {"round": 100, "stroke": 50}


def test_hover_table_budget_and_script_survive_the_sanitiser() -> None:
    import re

    from app import hover

    labels = pd.DataFrame({"sample_id": [3, 1, 2], "split": ["train", "test", "train"], "class_name": ["a", "b", "a"],
                           "subclass_name": ["x", "y", "</script><b>z"], "superclass_name": ["a", "b", "a"]})
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 30  # 38 bytes: 52 base64 characters
    thumbs = pd.Series({1: png, 2: png, 3: None})
    data, n = hover.table(labels, thumbs, np.array([1, 2, 3]), budget=60)
    assert n == 1 and data["fields"] == ["class", "subclass", "split"]  # superclass repeats the class: left out
    assert data["samples"][1][:3] == ["b", "y", "test"] and data["samples"][1][3].startswith("data:image/png;base64,")
    assert data["samples"][2][3] is None and data["samples"][3][3] is None  # over budget; no thumbnail
    text = hover.script(data)
    body = text[len("<script>"):-len("</script>")]
    assert text.startswith("<script>") and not re.search(r"<[/\w!]", body)  # DOMPurify keeps it; nothing closes it early
    assert "plotly_hover" in body and charts_embeddings.META in body


def test_gif_from_pngs_is_a_looping_multi_frame_gif() -> None:
    import io

    from PIL import Image

    def png(colour: tuple[int, int, int]) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (40, 30), colour).save(out, format="PNG")
        return out.getvalue()

    gif = charts_embeddings.gif_from_pngs([png((255, 0, 0)), png((0, 0, 255)), png((0, 128, 0))], duration_ms=500)
    image = Image.open(io.BytesIO(gif))
    assert image.format == "GIF" and image.n_frames == 3 and image.size == (40, 30) and image.info["loop"] == 0
    image.seek(1)
    assert image.convert("RGB").getpixel((5, 5)) == (0, 0, 255)
    assert image.info["duration"] == 500


def paths_frame() -> pd.DataFrame:
    """Samples 5 (class a), 7 and 9 (class b) over epochs 0, 1, 2, rows shuffled; x = 10 * sample + epoch."""
    rows = [{"sample_id": s, "epoch": e, "class_name": c, "cluster": 0, "umap_x": 10.0 * s + e, "umap_y": float(e)}
            for s, c in ((5, "a"), (7, "b"), (9, "b")) for e in (0, 1, 2)]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1)


def test_trajectories_one_line_per_class_ordered_by_epoch_with_gaps_and_a_ring_now() -> None:
    import plotly.graph_objects as go

    colours = charts.category_colours(["a", "b", "c"])
    traces = charts_embeddings.trajectory_traces(paths_frame(), projection="umap", colours=colours, epoch=1)
    lines, rings = traces[:-1], traces[-1]
    assert [t["name"] for t in lines] == ["a trajectories", "b trajectories"]  # class c has no selected sample
    assert all(t["mode"] == "lines" and t["line"]["color"] == colours[t["name"][0]] for t in lines)
    xs = [charts_embeddings.decode_typed(t["x"]) for t in lines]
    assert xs[0].tolist() == [50, 51, 52]  # one sample: its epochs in order, no gap
    b = xs[1]  # two samples: epochs in order, a NaN between them
    assert np.isnan(b[3]) and b[:3].tolist() == [70, 71, 72] and b[4:].tolist() == [90, 91, 92]
    assert rings["mode"] == "markers" and rings["marker"]["symbol"] == "circle-open"
    assert charts_embeddings.decode_typed(rings["x"]).tolist() == [51, 71, 91]  # the current epoch's positions
    assert rings["marker"]["color"] == [colours["a"], colours["b"], colours["b"]]
    assert charts_embeddings.decode_typed(rings["customdata"])[:, 0].tolist() == [5, 7, 9]
    base = charts_embeddings.embedding_scatter(frame().assign(colour_value=lambda d: d["class_name"]), projection="umap",
                                               colour="colour_value", colours=colours)
    fig = charts_embeddings.with_traces(base, traces)
    assert len(fig.data) == len(base.data) + 3 and len(base.data) == 3  # the cached figure is left unchanged
    go.Figure(fig.to_dict())  # valid for Plotly


def test_trajectory_ids_are_capped_by_a_fixed_sample() -> None:
    assert charts_embeddings.trajectory_ids({3, 1, 2}) == [1, 2, 3]
    many = set(range(1000))
    first = charts_embeddings.trajectory_ids(many, cap=200)
    assert len(first) == 200 == len(set(first)) and first == sorted(first) and set(first) <= many
    assert first == charts_embeddings.trajectory_ids(many, cap=200) and first != list(range(200))


def test_epoch_frames_move_each_sample_to_its_epochs_layout_and_keep_the_highlight() -> None:
    import plotly.graph_objects as go

    df = frame().assign(colour_value=lambda d: d["class_name"])
    later = df.sample(frac=1, random_state=1).assign(umap_x=lambda d: d["umap_x"] + 10, cluster=lambda d: d["sample_id"] % 4)
    partial = df.head(30)  # another sample set: left out, the browser cannot switch to it
    colours = charts.category_colours(["a", "b", "c"])
    fig = charts_embeddings.embedding_scatter(df, projection="umap", colour="colour_value", colours=colours, highlight={0, 1})
    out = charts_embeddings.with_epoch_frames(fig, df, {1: df, 2: later, 3: partial}, epoch=1, projection="umap",
                                              colour="colour_value", colours=colours, titles={1: "e1", 2: "e2", 3: "e3"})
    go.Figure(out.to_dict())  # valid for Plotly
    names = [f.name for f in out.frames]
    assert names == ["cs-epoch-1", "cs-epoch-2"] and out.layout.datarevision == "cs-epoch-1"
    extended = charts_embeddings.with_traces(out, [{"type": "scattergl", "x": [0], "y": [0], "name": "paths"}])
    assert [f.name for f in extended.frames] == names and len(extended.data) == len(out.data) + 1  # trajectories keep the frames
    second = out.frames[1]
    assert second.layout.title.text == "e2" and second.layout.datarevision == "cs-epoch-2"
    by_id = later.set_index("sample_id")
    for base, moved in zip(out.data, second.data, strict=True):  # each trace keeps its samples, in its order
        ids = charts_embeddings.decode_typed(base.customdata)[:, 0]
        custom = charts_embeddings.decode_typed(moved.customdata)
        assert (custom[:, 0] == ids).all() and (custom[:, 1] == by_id.loc[ids, "cluster"].to_numpy()).all()
        assert np.allclose(charts_embeddings.decode_typed(moved.x), by_id.loc[ids, "umap_x"].to_numpy(), atol=1e-5)
    assert charts_embeddings.decode_typed(out.data[0].marker.opacity)[:2].tolist() == [0.95, 0.95]
    still = charts_embeddings.without_frames(out)  # what the downloads get: the epoch shown, no frames
    assert not still.frames and still.to_dict()["data"] == fig.to_dict()["data"] and still.layout.title.text == fig.layout.title.text


def test_scrubbing_is_offered_for_epoch_independent_colourings_within_the_budget(monkeypatch) -> None:
    from app.views import embeddings_scrub as scrub

    assert scrub.scrubbable("class", 10_000, 20) and scrub.scrubbable("fine", 100_000, 10)
    assert not scrub.scrubbable("cluster", 100, 3) and not scrub.scrubbable("neuron", 100, 3)
    assert not scrub.scrubbable("class", 100, 1) and not scrub.scrubbable("class", 100_001, 10)
    monkeypatch.setenv("CLUSTERSCOPE_SCRUB_POINTS", "0")
    assert not scrub.scrubbable("class", 10, 2)
    # nothing in the script that Streamlit's HTML sanitiser could take for markup (see app/hover.py's script)
    assert "<" not in scrub.SCRIPT.removeprefix("<script>\n").removesuffix("\n</script>")


def test_legend_below_puts_the_legend_in_rows_under_the_plot_and_leaves_the_cached_figure_alone() -> None:
    df = frame().assign(colour_value=lambda d: d["class_name"])
    fig = charts_embeddings.embedding_scatter(df, projection="umap", colour="colour_value", legend_title="class",
                                              colours=charts.category_colours(["a", "b", "c"]))
    below = charts.legend_below(fig)
    legend = go.Figure(below.to_dict()).layout.legend  # valid for Plotly (raises on an unknown property)
    assert (legend.orientation, legend.yref, legend.yanchor, legend.maxheight) == ("h", "container", "bottom", 0.25)
    assert legend.title.text == "class" and legend.itemsizing == "constant"  # the rest of the legend kept
    assert fig.layout.legend.orientation is None  # the (cached) figure given is unchanged
    assert [t.name for t in below.data] == [t.name for t in fig.data]
