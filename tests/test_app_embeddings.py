"""The Embeddings page through AppTest, on the analysed tiny run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend import api
from tests.conftest import figure_of, highlighted_ids

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")


def open_embeddings(root: Path, monkeypatch: pytest.MonkeyPatch, **params: str) -> AppTest:
    monkeypatch.setenv("CLUSTERSCOPE_STORE", str(root))
    at = AppTest.from_file(MAIN, default_timeout=90)
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page("views/embeddings.py")
    return at.run()


def xs(at: AppTest, i: int = 0) -> list[float]:
    fig = figure_of(at.get("plotly_chart")[i])
    return [x for trace in fig["data"] for x in trace["x"]]


def test_query_params_restore_the_view_and_epoch_changes_the_data(analysed_store: tuple[api.RunStore, str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    at = open_embeddings(store.root, monkeypatch, run=run_id, layer="fc1.relu", epoch="1", proj="pca")
    assert not at.exception
    assert at.sidebar.selectbox(key="w-layer").value == "fc1.relu"
    assert at.sidebar.select_slider(key="w-epoch").value == 1
    fig = figure_of(at.get("plotly_chart")[0])
    assert fig["layout"]["xaxis"]["title"]["text"] == "PC 1 (a.u.)"
    assert [t["name"] for t in fig["data"]] == ["round", "stroke", "bend", "twin-curve", "hook"]  # trained on superclasses
    points = api.read_analysis(store, run_id, "points", "fc1.relu", 1)
    assert sorted(xs(at)) == pytest.approx(sorted(points["pca_x"].tolist()), rel=1e-5)
    before = xs(at)
    at.sidebar.select_slider(key="w-epoch").set_value(2).run()
    assert not at.exception and xs(at) != before
    assert at.query_params["epoch"] == ["2"] or at.query_params["epoch"] == "2"
    assert {m.label for m in at.metric} >= {"Class purity", "Subclass purity", "Clusters"}


def test_colourings_and_second_view(analysed_store: tuple[api.RunStore, str], monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    at = open_embeddings(store.root, monkeypatch, run=run_id, layer="fc2.relu", epoch="2")
    for colour in ("fine", "cluster", "correct", "neuron"):  # "superclass": the classes of this run (test_app_meeting)
        at.sidebar.selectbox(key="w-colour").set_value(colour).run()
        assert not at.exception, colour
        fig = figure_of(at.get("plotly_chart")[0])
        if colour == "fine":
            assert len(fig["data"]) == 10
        if colour == "correct":
            assert {t["name"] for t in fig["data"]} <= {"correct", "wrong"}
        if colour == "neuron":
            assert fig["data"][0]["marker"]["colorbar"]["title"]["text"].startswith("unit 0")
    at.sidebar.selectbox(key="w-second").set_value("layer").run()
    assert not at.exception and len(at.get("plotly_chart")) == 2
    titles = [figure_of(c)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert "fc2.relu" in titles[0] and "fc1.relu" in titles[1]  # layer B defaults to another layer: the one before
    assert all(t.startswith(f"{run_id}<br>") for t in titles)  # half the width: the run's name on its own line
    at.sidebar.selectbox(key="w-second").set_value("epoch").run()
    assert not at.exception and at.sidebar.select_slider(key="w-epoch_b").value == 0  # another epoch: the first
    titles = [figure_of(c)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert "epoch 2" in titles[0] and "epoch 0" in titles[1]


def test_sampling_is_announced(analysed_store: tuple[api.RunStore, str], monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    at = open_embeddings(store.root, monkeypatch, run=run_id)
    at.sidebar.number_input(key="w-maxpts").set_value(500).run()
    assert not at.exception
    import re

    assert any(re.search(r"stratified sample of 4\d\d of 1,797 samples", c.value) for c in at.caption)
    assert len(xs(at)) == pytest.approx(500, abs=10)


def test_unanalysed_run_and_corrupt_file(analysed_store: tuple[api.RunStore, str], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    copy = api.open_store(tmp_path / "s")
    shutil.copytree(store.run_dir(run_id), copy.root / run_id)
    copy.analysis.path(run_id, "points", "fc2.relu", 2).write_bytes(b"garbage")
    at = open_embeddings(copy.root, monkeypatch, run=run_id, layer="fc2.relu", epoch="2")
    assert not at.exception
    assert any("not a readable Parquet file" in e.value for e in at.error)
    shutil.rmtree(copy.analysis.root(run_id))
    at = open_embeddings(copy.root, monkeypatch, run=run_id)
    assert not at.exception
    assert any("no analysis yet" in i.value for i in at.info), [e.value for e in [*at.info, *at.error, *at.warning]]


def test_first_visit_starts_on_an_analysed_run(analysed_store: tuple[api.RunStore, str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """While the demo builder still analyses runs, Embeddings, Neurons and Layers open on one that has
    pictures, not on the first run in the list; a run named in the URL, or chosen on another page of the
    session, is still shown as asked."""
    import json

    store, run_id = analysed_store
    copy = api.open_store(tmp_path / "s")
    shutil.copytree(store.run_dir(run_id), copy.root / run_id)
    early = "aaa-not-analysed-yet"  # sorts first
    shutil.copytree(store.run_dir(run_id), copy.root / early)
    shutil.rmtree(copy.analysis.root(early))
    info = json.loads((copy.root / early / "run.json").read_text())
    (copy.root / early / "run.json").write_text(json.dumps(info | {"run_id": early}))
    assert copy.run_ids()[0] == early
    at = open_embeddings(copy.root, monkeypatch)
    assert not at.exception
    assert at.sidebar.selectbox(key="w-run").value == run_id and at.get("plotly_chart")
    for page in ("views/neurons.py", "views/layers.py"):  # a first visit each: a new session
        other = AppTest.from_file(MAIN, default_timeout=90)
        other.switch_page(page).run()
        assert not other.exception and other.sidebar.selectbox(key="w-run").value == run_id, page
    at = open_embeddings(copy.root, monkeypatch, run=early)
    assert at.sidebar.selectbox(key="w-run").value == early
    assert any("no analysis yet" in i.value for i in at.info)
    # Moving to another page in the sidebar drops the URL's parameters: the session remembers the run
    at.query_params.clear()
    at.switch_page("views/neurons.py").run()
    assert not at.exception and at.sidebar.selectbox(key="w-run").value == early
    assert at.query_params["run"] in (early, [early])


def test_points_carry_sample_ids_and_hover_cards_get_thumbnails(analysed_store: tuple[api.RunStore, str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    at = open_embeddings(store.root, monkeypatch, run=run_id, layer="fc1.relu", epoch="1")
    assert not at.exception
    fig = figure_of(at.get("plotly_chart")[0])
    assert fig["layout"]["meta"] == "clusterscope-embedding"
    ids = [int(row[0]) for trace in fig["data"] for row in trace["customdata"]]
    points = api.read_analysis(store, run_id, "points", "fc1.relu", 1)
    assert sorted(ids) == sorted(points["sample_id"].tolist())
    clusters = dict(zip(points["sample_id"], points["cluster"], strict=True))
    assert all(int(row[1]) == clusters[int(row[0])] for trace in fig["data"] for row in trace["customdata"][:50])
    scripts = [h.proto.body for h in at.get("html") if "cs-hover-card" in h.proto.body]
    assert len(scripts) == 1
    samples = api.read_samples(store, run_id, thumbnails=True)
    first = samples.sort_values("sample_id").iloc[0]
    import base64

    assert base64.b64encode(first["thumbnail"]).decode()[:40] in scripts[0]  # its PNG, as a data URL


def test_animation_downloads_an_animated_gif(analysed_store: tuple[api.RunStore, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from PIL import Image

    from app.views.embeddings import DEFAULT_MAX_POINTS

    store, run_id = analysed_store
    at = open_embeddings(store.root, monkeypatch, run=run_id, layer="fc2.relu")
    at.toggle(key="w-animate").set_value(True).run()
    assert not at.exception
    fig = figure_of(at.get("plotly_chart")[0])
    assert [f["name"] for f in fig["frames"]] == ["0", "1", "2"]
    assert not [b for b in at.get("download_button") if "GIF" in b.proto.label]  # rendered only when asked for
    at.button(key="w-make-gif").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    image = Image.open(io.BytesIO(at.session_state[f"gif:{run_id}:fc2.relu:umap:class:{DEFAULT_MAX_POINTS}:0,1,2"]))
    assert image.format == "GIF" and image.n_frames == 3 and image.size == (1000, 800)
    assert [b for b in at.get("download_button") if "GIF" in b.proto.label]


def test_animation_while_colouring_by_a_neuron_draws_the_classes(analysed_store: tuple[api.RunStore, str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The animation has no per-point numeric colouring: coloured by a neuron, it shows the classes."""
    store, run_id = analysed_store
    at = open_embeddings(store.root, monkeypatch, run=run_id, layer="fc2.relu", colour="neuron")
    assert at.sidebar.selectbox(key="w-colour").value == "neuron"
    at.toggle(key="w-animate").set_value(True).run()
    assert not at.exception
    fig = figure_of(at.get("plotly_chart")[0])
    assert [t["name"] for t in fig["data"]] == ["round", "stroke", "bend", "twin-curve", "hook"]
    assert all(len(f["data"]) == 5 for f in fig["frames"])


def test_selection_follows_the_epoch_and_layer_and_its_trajectories_are_drawn(
        analysed_store: tuple[api.RunStore, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A selection (here put in the page's memo, as a box in the browser would: tests/test_e2e_selection.py)
    stays highlighted when the epoch and the layer change; the trajectories toggle, off by default and disabled
    without a selection, draws each selected sample's path over the layer's epochs and a ring at the current one."""
    from app.charts import embeddings as charts_embeddings
    from app.views.embeddings import SELECTION

    store, run_id = analysed_store
    at = open_embeddings(store.root, monkeypatch, run=run_id, layer="fc2.relu", epoch="1")
    assert at.toggle(key="w-trajectories").value is False and at.toggle(key="w-trajectories").proto.disabled
    assert any("Select points to draw their trajectories" in c.value for c in at.caption)
    ids = {3, 10, 42, 77, 500}
    at.session_state[SELECTION] = {"run": run_id, "ids": frozenset(ids), "reports": {}}
    at.run()

    def opaque() -> set[int]:  # highlighted in the browser, from the ids the page hands it
        return highlighted_ids(at)

    assert not at.exception and opaque() == ids
    at.sidebar.select_slider(key="w-epoch").set_value(2).run()
    assert not at.exception and opaque() == ids
    at.sidebar.selectbox(key="w-layer").set_value("fc1.relu").run()
    assert not at.exception and opaque() == ids
    assert any(h.value == f"Selection: {len(ids)} samples" for h in at.subheader)

    at.toggle(key="w-trajectories").set_value(True).run()
    assert not at.exception
    fig = figure_of(at.get("plotly_chart")[0])
    lines = [t for t in fig["data"] if t.get("mode") == "lines"]
    ring = fig["data"][-1]
    points = {e: api.read_analysis(store, run_id, "points", "fc1.relu", e).set_index("sample_id") for e in (0, 1, 2)}
    labels = charts_embeddings.label_samples(api.read_samples(store, run_id), target="superclass").set_index("sample_id")
    assert len(lines) == labels.loc[sorted(ids), "class_name"].nunique()
    xs = [x for t in lines for x in t["x"]]
    assert sum(x is None or x != x for x in xs) == len(ids) - len(lines)  # a gap between two samples of a class
    first = min(ids & set(labels.index[labels["class_name"] == lines[0]["name"].removesuffix(" trajectories")]))
    assert lines[0]["x"][:3] == pytest.approx([points[e].loc[first, "umap_x"] for e in (0, 1, 2)], rel=1e-5)
    assert sorted(int(r[0]) for r in ring["customdata"]) == sorted(ids)
    assert ring["x"] == pytest.approx(points[2].loc[sorted(ids), "umap_x"].tolist(), rel=1e-5)  # at epoch 2
    at.sidebar.radio(key="w-proj").set_value("pca").run()
    assert not at.exception and at.toggle(key="w-trajectories").proto.disabled
    assert not [t for t in figure_of(at.get("plotly_chart")[0])["data"] if t.get("mode") == "lines"]


def test_a_view_that_draws_only_some_of_the_selection_says_so(analysed_store: tuple[api.RunStore, str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The selection outlives a lower *Max points drawn*: the page says how many of its samples are drawn."""
    import re

    from app.views.embeddings import SELECTION

    store, run_id = analysed_store
    at = open_embeddings(store.root, monkeypatch, run=run_id, layer="fc2.relu", epoch="1")
    at.session_state[SELECTION] = {"run": run_id, "ids": frozenset(range(0, 1000, 10)), "reports": {}}
    at.run()
    assert not at.exception and not [c for c in at.caption if "selected samples are drawn here" in c.value]
    at.sidebar.number_input(key="w-maxpts").set_value(500).run()
    drawn = [re.search(r"(\d+) of the 100 selected samples are drawn here", c.value) for c in at.caption]
    drawn = [int(m.group(1)) for m in drawn if m]
    assert not at.exception and len(drawn) == 1 and 10 < drawn[0] < 50  # about 500 / 1,797 of them
