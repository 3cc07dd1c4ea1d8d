from __future__ import annotations

import numpy as np
import pandas as pd

from app import charts, charts_embeddings


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
    opacity = np.asarray(fig.data[0].marker.opacity)
    assert opacity[:2].tolist() == [0.95, 0.95] and (opacity[2:] == 0.12).all()
    assert fig.data[0].marker.colorbar.title.text == "unit 3"


def test_stratified_sample_keeps_class_shares() -> None:
    df = frame(3000)
    sub = charts_embeddings.stratified_sample(df, max_points=300, by="class_name")
    assert len(sub) == 300 and sub["class_name"].value_counts().tolist() == [100, 100, 100]
    assert charts_embeddings.stratified_sample(df, max_points=5000, by="class_name") is df


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
