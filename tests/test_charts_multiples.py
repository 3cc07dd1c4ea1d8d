"""The Compare page's small multiples (app/charts/multiples.py): layer and epoch choices, panels, shared colours."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from app.charts import multiples as cm
from app.charts.base import OKABE_ITO


def layers_table(names: list[str], epochs: list[int]) -> pd.DataFrame:
    return pd.DataFrame([{"layer": n, "epoch": e, "depth": d} for d, n in enumerate(names) for e in epochs])


def points(classes: list[str], n: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    m = n * len(classes)
    return pd.DataFrame({"sample_id": np.arange(m), "cluster": rng.integers(-1, 3, m),
                         "umap_x": rng.normal(size=m), "umap_y": rng.normal(size=m),
                         "pca_x": rng.normal(size=m), "pca_y": rng.normal(size=m),
                         "colour_value": np.repeat(classes, n)})


def test_shared_layers_and_epochs() -> None:
    layers = {"a": layers_table(["fc1", "fc2", "fc3"], [0, 1, 5, 10]),
              "b": layers_table(["fc1", "fc2"], [0, 5, 10, 20])}
    assert cm.shared_layers(layers) == ["fc1", "fc2"]  # depth order, fc3 only in "a"
    resolved = cm.resolve_layers(layers, "fc2")
    assert resolved == {"a": "fc2", "b": "fc2"}
    assert cm.shared_epochs(layers, resolved) == [0, 5, 10]
    assert cm.last_epochs(layers, resolved) == {"a": 10, "b": 20}


def test_other_architectures_are_matched_by_depth_from_the_output() -> None:
    layers = {"mlp": layers_table(["fc1", "fc2", "fc3"], [0, 2]),
              "vgg": layers_table(["conv1", "conv2"], [0, 1])}
    assert cm.shared_layers(layers) == []
    assert cm.depth_positions(layers) == ["depth:1", "depth:2"]  # as deep as the shallower run
    assert [cm.layer_label(c) for c in cm.depth_positions(layers)] == ["last hidden layer", "2nd-to-last hidden layer"]
    assert cm.resolve_layers(layers, "depth:1") == {"mlp": "fc3", "vgg": "conv2"}
    assert cm.resolve_layers(layers, "depth:2") == {"mlp": "fc2", "vgg": "conv1"}
    assert cm.shared_epochs(layers, cm.resolve_layers(layers, "depth:1")) == [0]
    assert cm.layer_label("fc2") == "fc2"


def test_titles_name_the_run_accuracy_and_the_differing_hyperparameter() -> None:
    hparams = pd.DataFrame({"train.lr": [0.01, 0.1], "model.name": ["vgg", "vgg"]}, index=["r1", "r2"])
    assert cm.differing(hparams, "r2") == "lr=0.1"  # model.name is the same for both: left out
    # runs that each change one setting of a base run: each shows its change, the base none
    demo = pd.DataFrame({"train.lr": [0.05, 0.005, 0.05, 0.05], "train.augment": [False, False, True, False],
                         "model.width_factor": [0.5, 0.5, 0.5, 1.0]}, index=["base", "lr", "aug", "wide"])
    assert [cm.differing(demo, r) for r in demo.index] == ["", "lr=0.005", "augment=True", "width_factor=1.0"]
    assert cm.panel_title("r2", 0.9312, "lr=0.1") == "<b>r2</b> · test 93.1 %<br>lr=0.1"
    assert cm.panel_title("r3", None) == "<b>r3</b> · test accuracy n/a"


def test_grid_has_one_panel_per_run_shared_colours_and_one_legend() -> None:
    runs = [f"run{i}" for i in range(5)]
    panels = [cm.Panel(cm.panel_title(r, 0.8 + i / 100), points(["even", "odd"] if i else ["odd"], seed=i))
              for i, r in enumerate(runs)]
    colours = cm.shared_colours([{"even": OKABE_ITO[0], "odd": OKABE_ITO[1]}] * 5)
    fig = cm.embedding_grid(panels, projection="umap", colours=colours, legend_title="class")
    go.Figure(fig.to_dict())  # a valid figure
    spec = fig.to_dict()
    layout = spec["layout"]
    assert [a["text"] for a in layout["annotations"]] == [p.title for p in panels]
    assert {k for k in layout if k.startswith("xaxis")} == {"xaxis", *(f"xaxis{i}" for i in range(2, 7))}  # 2 x 3 grid
    traces = spec["data"]
    assert len(traces) == 9  # 1 class in the first panel, 2 in each of the other four
    for name, colour in colours.items():
        mine = [t for t in traces if t["name"] == name]
        assert {t["marker"]["color"] for t in mine} == {colour}  # the same colour in every panel
        assert sum(t["showlegend"] for t in mine) == 1  # and one legend entry
        assert {t["legendgroup"] for t in mine} == {name}
    assert {t["xaxis"] for t in traces} == {"x", *(f"x{i}" for i in range(2, 6))}
    assert layout["legend"]["title"]["text"] == "class"
    # axis titles: x on the lowest panel of each column, y on the first column
    assert layout["xaxis4"]["title"]["text"] == "UMAP 1 (a.u.)" and "text" not in layout["xaxis"].get("title", {})
    assert layout["xaxis3"]["title"]["text"] == "UMAP 1 (a.u.)"  # column 3 has no panel below it
    assert layout["yaxis4"]["title"]["text"] == "UMAP 2 (a.u.)" and "text" not in layout["yaxis2"].get("title", {})
    assert layout["font"]["color"] == "#1a1a1a"


def test_shared_colours_cover_runs_of_other_data_sets() -> None:
    same = cm.shared_colours([{"a": "#1", "b": "#2"}, {"b": "#2"}])
    assert same == {"a": "#1", "b": "#2"}
    mixed = cm.shared_colours([{"a": "#1"}, {"z": "#9"}])
    assert list(mixed) == ["a", "z"] and mixed["a"] == OKABE_ITO[0] and mixed["z"] == OKABE_ITO[1]


@pytest.mark.parametrize("present", [False, True])
def test_grid_height_grows_with_rows(present: bool) -> None:
    one = cm.embedding_grid([cm.Panel("a", points(["x"]))] * 3, projection="pca", colours={"x": "#000000"},
                            present=present)
    two = cm.embedding_grid([cm.Panel("a", points(["x"]))] * 4, projection="pca", colours={"x": "#000000"},
                            present=present)
    assert two.layout.height > one.layout.height
    assert one.layout.xaxis.title.text == "PC 1 (a.u.)"
