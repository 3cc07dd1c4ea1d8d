"""Pure figure builders and table helpers of the Neurons and Layers pages, on tiny hand-made frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.charts import layers as cl
from app.charts import neurons as cn


def samples(hierarchical: bool = True) -> pd.DataFrame:
    """8 samples: fine labels 0..3 (names a..d) in superclasses 0 (a, b) and 1 (c, d); the last two are test."""
    label = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    return pd.DataFrame({
        "sample_id": np.arange(8), "split": ["train"] * 6 + ["test"] * 2, "label": label,
        "label_name": np.array(list("abcd"))[label],
        "superclass": label // 2 if hierarchical else pd.array([pd.NA] * 8, dtype="Int64"),
        "superclass_name": np.array(["AB", "CD"])[label // 2] if hierarchical else [None] * 8,
    })


def labels(hierarchical: bool = True) -> pd.DataFrame:
    return cn.sample_labels(samples(hierarchical), {"target": "superclass" if hierarchical else "label"})


def units_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "layer": "fc1.relu", "epoch": 2, "unit": [0, 1, 2], "dead": [False, True, False], "c1": [0.5, 0.0, 1.5],
        "c1_subclass": [1, 0, 3], "c3": [0.7, 0.0, 0.9], "c3_class": [0, 0, 1], "hap": [0.9, np.nan, 0.6],
        "hap_class": [0, 0, 1], "hap_chance": [0.5, 0.5, 0.5], "hap_subclass_concentration": [0.1, 0.2, 0.3],
        "wtm": [0.4, np.nan, 2.0],
    })


# ------------------------------------------------------------------------------------------ neurons


def test_sample_labels_follow_the_training_target() -> None:
    hier = labels(True)
    assert hier["cls"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1] and hier["sub_name"].tolist()[:3] == ["a", "a", "b"]
    assert cn.has_subclasses(hier) and cn.names(hier, "cls") == {0: "AB", 1: "CD"}
    # trained on fine labels, superclasses known: classes are the fine labels, c1's hierarchy stays
    fine = cn.sample_labels(samples(True), {"target": "label"})
    assert fine["cls"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and fine["sup"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert cn.has_subclasses(fine)
    flat = labels(False)
    assert flat["cls"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and not cn.has_subclasses(flat)
    assert cn.names(flat, "sub") == {}


def test_units_table_names_labels_and_default_unit_skips_dead_units() -> None:
    table = cn.units_table(units_frame(), labels())
    assert table["best subclass"].tolist() == ["b", "a", "d"]
    assert table["class (c3)"].tolist() == ["AB", "AB", "CD"] and table["majority class"].tolist() == ["AB", "AB", "CD"]
    assert table["hap"].tolist()[0] == 0.9 and table["dead"].tolist() == [False, True, False]
    assert cn.default_unit(units_frame()) == 2
    no_hier = units_frame().assign(c1=np.nan)
    assert cn.default_unit(no_hier) == 2  # falls back to c3


def test_pick_epochs_keeps_first_last_and_chosen() -> None:
    epochs = list(range(0, 40, 2))
    picked = cn.pick_epochs(epochs, keep=14, at_most=6)
    assert picked[0] == 0 and picked[-1] == 38 and 14 in picked and len(picked) <= 6
    assert cn.pick_epochs([0, 1, 2], keep=1) == [0, 1, 2]


def test_unit_values_and_top_samples_use_training_samples_only() -> None:
    ids = np.arange(8)
    values = {0: (ids, np.zeros(8)), 3: (ids, np.arange(8, dtype=float))}
    long = cn.unit_values(values, labels())
    assert len(long) == 12 and set(long["epoch"]) == {0, 3} and (long["split"] == "train").all()
    top = cn.top_samples(ids, np.arange(8, dtype=float), labels(), k=3)
    assert top["sample_id"].tolist() == [5, 4, 3]  # 6 and 7 are test samples


def test_best_neuron_per_subclass_takes_the_max_over_units_of_each_subclass() -> None:
    units = pd.concat([units_frame(), units_frame().assign(layer="fc2.relu", c1=[2.5, 0.1, 1.0])])
    best = cn.best_neuron_per_subclass(units, {0: "a", 1: "b", 2: "c", 3: "d"})
    assert best["subclass_name"].tolist() == ["b", "d", "a"]  # c is no unit's best subclass
    assert best["c1"].tolist() == [2.5, 1.5, 0.1]
    assert best[["layer", "unit"]].values.tolist() == [["fc2.relu", 0], ["fc1.relu", 2], ["fc2.relu", 1]]
    fig = cn.best_neuron_histogram(best)
    assert sorted(fig.data[0].x) == [0.1, 1.5, 2.5] and fig.layout.annotations[0].text == "median 1.50"
    assert [s.x0 for s in fig.layout.shapes] == [1.5]
    assert fig.layout.xaxis.title.text.startswith("best neuron's selectivity c1")
    assert fig.layout.yaxis.title.text == "subclasses (count)"


def test_focus_distributions_split_subclass_rest_and_other_classes() -> None:
    ids = np.arange(8)
    long = cn.unit_values({0: (ids, np.arange(8.0)), 1: (ids, -np.arange(8.0))}, labels())
    fig = cn.distributions_over_epochs(long, focus=1, level="sub", class_colours={"AB": "#0072B2", "CD": "#E69F00"})
    by_name: dict[str, list[float]] = {}
    for trace in fig.data:
        assert trace.type == "violin"
        by_name.setdefault(trace.name, []).extend(trace.y)
    # train samples: 0, 1 (a), 2, 3 (b), 4, 5 (c); focus = subclass b
    assert sorted(by_name["subclass b"]) == [-3, -2, 2, 3]
    assert sorted(by_name["rest of AB"]) == [-1, 0, 0, 1]
    assert sorted(by_name["other classes"]) == [-5, -4, 4, 5]
    assert [t.showlegend for t in fig.data].count(True) == 3  # one legend entry per group
    assert fig.layout.xaxis.title.text == "epoch" and "pre-activation" in fig.layout.yaxis.title.text
    assert list(fig.layout.xaxis.categoryarray) == ["0", "1"]


def test_every_class_boxes_use_class_colours_and_flat_runs_focus_on_a_class() -> None:
    ids = np.arange(8)
    long = cn.unit_values({0: (ids, np.arange(8.0))}, labels())
    fig = cn.distributions_over_epochs(long, focus=None, level="sub", class_colours={"AB": "#111111", "CD": "#222222"})
    assert [(t.type, t.name, t.marker.color) for t in fig.data] == [("box", "AB", "#111111"), ("box", "CD", "#222222")]
    flat = cn.unit_values({0: (ids, np.arange(8.0))}, labels(False))
    fig = cn.distributions_over_epochs(flat, focus=2, level="cls", class_colours={})
    assert {t.name for t in fig.data} == {"class c", "other classes"}
    fine = cn.unit_values({0: (ids, np.arange(8.0))}, cn.sample_labels(samples(True), {"target": "label"}))
    groups = cn.focus_groups(fine, focus=0, level="sub")
    assert groups.tolist() == ["subclass a"] * 2 + ["rest of AB"] * 2 + ["other superclasses"] * 2


def test_unit_score_lines_show_three_scores_and_chance() -> None:
    history = pd.DataFrame({"epoch": [2, 0, 1], "c1": [1.0, 0.2, 0.5], "c3": [0.9, 1.1, 1.0], "hap": [0.8, 0.3, 0.5],
                            "hap_chance": [0.25, 0.25, 0.25]})
    fig = cn.unit_score_lines(history, epoch=1)
    names = [t.name for t in fig.data]
    assert names == ["selectivity c1", "variance ratio c3", "purity (%)", "chance (largest class)"]
    assert list(fig.data[0].x) == [0, 1, 2] and list(fig.data[0].y) == [0.2, 0.5, 1.0]
    assert list(fig.data[2].y) == pytest.approx([30, 50, 80]) and list(fig.data[3].y) == pytest.approx([25, 25, 25])
    assert fig.layout.xaxis3.title.text == "epoch" and fig.layout.yaxis3.range == (0, 101)


# ------------------------------------------------------------------------------------------ layers


def layers_frame() -> pd.DataFrame:
    rows = []
    for depth, layer in enumerate(["fc1.relu", "fc2.relu"]):
        for epoch in (0, 1, 2):
            rows.append({"layer": layer, "epoch": epoch, "depth": depth, "class_purity": 0.1 * (depth * 3 + epoch),
                         "noise_fraction": 0.5 - 0.1 * epoch - 0.05 * depth, "c2": np.nan})
    return pd.DataFrame(rows).iloc[::-1]  # order on disk must not matter


def test_heatmap_puts_layers_in_depth_order_with_clickable_cells() -> None:
    fig = cl.score_heatmap(layers_frame(), "class_purity")
    heat, cells = fig.data
    assert list(heat.y) == ["fc1.relu", "fc2.relu"] and list(heat.x) == ["0", "1", "2"]
    assert np.allclose(np.asarray(heat.z, dtype=float), [[0.0, 0.1, 0.2], [0.3, 0.4, 0.5]])
    assert (heat.zmin, heat.zmax) == (0.0, 1.0) and heat.colorscale[0][1] == "#440154"  # Viridis
    assert "class purity" in heat.colorbar.title.text and "0-1" in heat.colorbar.title.text
    assert cells.type == "scatter" and len(cells.x) == 6
    assert [list(c[:2]) for c in cells.customdata[:2]] == [["fc1.relu", 0], ["fc1.relu", 1]]
    assert fig.layout.xaxis.title.text == "epoch" and fig.layout.yaxis.autorange == "reversed"


def test_best_cell_respects_the_score_direction() -> None:
    assert cl.best_cell(layers_frame(), "class_purity") == ("fc2.relu", 2)
    assert cl.best_cell(layers_frame(), "noise_fraction") == ("fc2.relu", 2)  # lowest noise: 0.5 - 0.2 - 0.05
    assert cl.best_cell(layers_frame(), "c2") is None


def test_rotation_and_accuracy_share_the_epoch_axis() -> None:
    rotation = pd.DataFrame({"epoch": [0, 1, 0, 1, 0, 1], "layer": ["b", "b", "a", "a", "c", "c"],
                             "depth": [1, 1, 0, 0, 2, 2], "rotation": [0, 0.4, 0, 0.2, 0, 0.6]})
    metrics = pd.DataFrame({"epoch": [0, 0, 1, 1], "split": ["train", "test"] * 2, "accuracy": [0.1, 0.1, 0.9, 0.8]})
    fig = cl.rotation_and_accuracy(rotation, metrics, lr_steps=[1])
    assert [t.name for t in fig.data] == ["a", "b", "c", "train", "test"]
    colours = [t.line.color for t in fig.data[:3]]
    assert colours[0] == "rgb(68, 1, 84)" and colours[-1] == "rgb(253, 231, 37)"  # viridis: dark first, yellow last
    assert list(fig.data[1].y) == [0, 0.4] and list(fig.data[4].y) == pytest.approx([10, 80])
    assert fig.layout.yaxis.range == (0, 1) and fig.layout.yaxis.title.text == "rotation (1 - cos)"
    assert fig.layout.yaxis2.title.text == "accuracy (%)" and fig.layout.xaxis2.title.text == "epoch"
    assert fig.layout.xaxis.matches == "x2" or fig.layout.xaxis2.matches == "x"  # shared epoch axis
    assert sum(s.type == "line" and s.x0 == 1 for s in fig.layout.shapes) == 2  # lr drop on both panels


def test_network_measures_panel_per_measure_with_lr_drops() -> None:
    network = pd.DataFrame({"epoch": [2, 0, 1], "c1": [0.3, 0.1, 0.2], "c2": [0.1] * 3, "c3": [1.0] * 3, "c4": [1.2] * 3})
    fig = cl.network_measures(network, lr_steps=[1, 2])
    assert [t.name for t in fig.data] == ["c1", "c2", "c3", "c4"]
    assert list(fig.data[0].x) == [0, 1, 2] and list(fig.data[0].y) == [0.1, 0.2, 0.3]
    assert sum(s.type == "line" for s in fig.layout.shapes) == 8  # 2 drops x 4 panels
    assert [a.text for a in fig.layout.annotations][:4] == list(cl.NETWORK_MEASURES.values())
    assert fig.layout.xaxis3.title.text == "epoch" and fig.layout.xaxis4.title.text == "epoch"


def test_many_kernels_get_a_depth_colour_bar_instead_of_legend_entries() -> None:
    rotation = pd.DataFrame({"epoch": np.tile([0, 1], 14), "layer": np.repeat([f"k{i:02d}" for i in range(14)], 2),
                             "depth": np.repeat(np.arange(14), 2), "rotation": np.tile([0.0, 0.5], 14)})
    metrics = pd.DataFrame({"epoch": [0, 1] * 2, "split": ["train"] * 2 + ["test"] * 2, "accuracy": [0.1, 0.9] * 2})
    fig = cl.rotation_and_accuracy(rotation, metrics)
    assert not any(t.showlegend for t in fig.data[:14])
    bar = fig.data[14]
    assert bar.marker.showscale and bar.marker.colorbar.title.text == "kernel depth" and bar.marker.cmax == 13
    assert fig.layout.xaxis2.dtick == 1  # whole epochs only
