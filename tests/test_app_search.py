"""The Embeddings page's search box and nearest-neighbours list through AppTest, on the analysed tiny run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from app.charts import embeddings as charts_embeddings
from app.charts import query as charts_query
from backend import api
from tests.conftest import figure_of, highlighted_ids
from tests.test_app_embeddings import open_embeddings


def highlighted(at) -> set[int]:
    """The sample ids the page highlights (the plots' opacities are set in the browser: conftest.highlighted_ids)."""
    return highlighted_ids(at)


def test_search_highlights_and_selects_the_matches(analysed_store: tuple[api.RunStore, str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    at = open_embeddings(store.root, monkeypatch, run=run_id, layer="fc1.relu", epoch="1")
    assert not at.exception and highlighted(at) == set()
    assert "records no file names" in at.text_input(key="w-search").help  # digits have none
    labels = charts_embeddings.label_samples(api.read_samples(store, run_id), target="superclass")
    hooks = set(labels.loc[labels["superclass_name"] == "hook", "sample_id"].tolist())
    assert 0 < len(hooks) < len(labels)

    at.text_input(key="w-search").input("HOO").run()  # a part of the superclass "hook", any case
    assert not at.exception
    assert any(f"**{len(hooks):,}** samples match “HOO”; **{len(hooks):,}** of them are drawn" in m.value for m in at.markdown)
    assert highlighted(at) == hooks
    assert any(h.value == f"Selection: {len(hooks)} samples" for h in at.subheader)

    at.sidebar.number_input(key="w-maxpts").set_value(500).run()  # a stratified sample: fewer of them drawn
    drawn = len(hooks & {int(r[0]) for t in figure_of(at.get("plotly_chart")[0])["data"] for r in t["customdata"]})
    assert drawn < len(hooks)
    assert any(f"**{len(hooks):,}** samples match “HOO”; **{drawn:,}** of them are drawn" in m.value for m in at.markdown)

    at.text_input(key="w-search").input("zebra").run()
    assert not at.exception
    assert any("No sample matches “zebra”" in i.value for i in at.info)
    at.selectbox(key="w-search-in").set_value("id").run()  # a sample id search needs integers: one clear message
    assert any("sample id search must be integers" in e.value for e in at.error)


def test_neighbours_of_a_single_match_are_listed_with_thumbnails(analysed_store: tuple[api.RunStore, str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    at = open_embeddings(store.root, monkeypatch, run=run_id, layer="fc1.relu", epoch="1")
    assert not at.exception
    assert any("select one point, to list its nearest neighbours" in c.value for c in at.caption)
    at.text_input(key="w-search").input("12").run()  # one sample selected: it fills the neighbours' id box
    assert not at.exception and highlighted(at) == {12}
    assert any(m.value == "**1** sample matches “12”; it is drawn." for m in at.markdown)
    assert at.number_input(key="w-nn-id").value == 12
    marks = {t["name"]: t for t in figure_of(at.get("plotly_chart")[0])["data"] if t.get("meta") == charts_query.QUERY_META}
    assert [c[0] for c in marks[charts_query.QUERY]["customdata"]] == [12]  # the plot marks the query sample

    ids, acts = api.read_activations(store, run_id, "fc1.relu", 1)
    post = np.maximum(acts.astype(np.float64), 0)  # by default post-ReLU, what the picture is computed from
    order = np.argsort(np.sqrt(((post - post[list(ids).index(12)]) ** 2).sum(axis=1)), kind="stable")
    expected = [int(i) for i in ids[order] if i != 12][:10]
    table = next(d.value for d in at.dataframe if "rank" in d.value.columns)  # (the "what changed" tables follow)
    assert table["sample_id"].tolist() == expected and table["rank"].tolist() == list(range(1, 11))
    assert (np.diff(table["distance"].to_numpy()) >= 0).all()
    assert any("of its nearest neighbours in the layer are also among its 10 nearest points in the UMAP picture"
               in c.value for c in at.caption)
    images = next(i for i in at.get("image") if i.captions and i.captions[0] == "sample 12")  # it and its neighbours
    assert images.captions[:2] == ["sample 12", f"1. {expected[0]} · {table['distance'][0]:.3g}"]
    assert len(images.captions) == 11 and all(url for url in images.value)

    at.number_input(key="w-nn-k").set_value(3).run()
    at.radio(key="w-nn-metric").set_value("cosine").run()
    at.radio(key="w-nn-values").set_value("pre").run()
    cosine = api.nearest_neighbours(ids, acts, 12, k=3, metric="cosine")["sample_id"].tolist()
    assert next(d.value for d in at.dataframe if "rank" in d.value.columns)["sample_id"].tolist() == cosine
    marks = {t["name"]: t for t in figure_of(at.get("plotly_chart")[0])["data"] if t.get("meta") == charts_query.QUERY_META}
    assert sorted(c[0] for c in marks[charts_query.neighbours_name(3, "fc1.relu", 1)]["customdata"]) == sorted(cosine)  # and its neighbours
    at.button(key="w-nn-select").click().run()
    assert not at.exception and highlighted(at) == {12, *cosine}


def query_marks(at, i: int) -> dict[str, dict]:
    """The query marks of the page's i-th plot by legend entry."""
    return {t["name"]: t for t in figure_of(at.get("plotly_chart")[i])["data"] if t.get("meta") == charts_query.QUERY_META}


def test_the_query_marks_name_their_view_and_go_with_clear_selection_and_another_run(
        analysed_store: tuple[api.RunStore, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rings' legend entry names the layer and epoch the neighbours were found in, also in a second view of
    another epoch (where they are not that view's neighbours); Clear selection and another run drop the query, whose
    star and rings stayed on the plots before."""
    src, run_id = analysed_store
    store = api.open_store(tmp_path / "store")
    for rid in (run_id, "tiny-b"):
        shutil.copytree(src.run_dir(run_id), store.root / rid)
    info = store.read_run("tiny-b")
    store.write_run("tiny-b", info | {"run_id": "tiny-b"})
    at = open_embeddings(store.root, monkeypatch, run=run_id, layer="fc1.relu", epoch="1")
    at.text_input(key="w-search").input("12").run()
    at.sidebar.selectbox(key="w-second").set_value("epoch").run()
    assert not at.exception and at.number_input(key="w-nn-id").value == 12 and len(at.get("plotly_chart")) >= 2
    rings = charts_query.neighbours_name(10, "fc1.relu", 1)
    assert rings == "its 10 nearest neighbours in fc1.relu at epoch 1"
    for i in (0, 1):  # view A and view B (another epoch): the same entry, naming view A's layer and epoch
        assert set(query_marks(at, i)) == {charts_query.QUERY, rings}, i
    at.button(key="w-clear-selection").click().run()
    assert not at.exception and at.number_input(key="w-nn-id").value is None and highlighted(at) == set()
    assert query_marks(at, 0) == {} and query_marks(at, 1) == {}
    at.number_input(key="w-nn-id").set_value(12).run()
    assert set(query_marks(at, 0)) == {charts_query.QUERY, rings}
    at.sidebar.selectbox(key="w-run").set_value("tiny-b").run()
    assert not at.exception and at.number_input(key="w-nn-id").value is None
    assert all(query_marks(at, i) == {} for i in range(len(at.get("plotly_chart"))))


def test_search_by_file_name(analysed_store: tuple[api.RunStore, str], monkeypatch: pytest.MonkeyPatch,
                             tmp_path) -> None:
    """A data set that names its files (an image folder): "File name" search selects the matching samples."""
    import shutil

    store, run_id = analysed_store
    copy = api.RunStore(tmp_path / "store")
    shutil.copytree(store.run_dir(run_id), copy.root / run_id)
    samples = copy.read_samples(run_id)
    samples["file_name"] = [f"digit{label}/img{i}.png" for i, label in zip(samples["sample_id"], samples["label"],
                                                                           strict=True)]
    copy.write_samples(run_id, pa.Table.from_pandas(samples, preserve_index=False))
    at = open_embeddings(copy.root, monkeypatch, run=run_id, layer="fc1.relu", epoch="1")
    assert not at.exception and "records no file names" not in at.text_input(key="w-search").help
    at.selectbox(key="w-search-in").set_value("file").run()
    at.text_input(key="w-search").input("DIGIT3/").run()
    threes = set(samples.loc[samples["label"] == 3, "sample_id"].tolist())
    assert not at.exception and highlighted(at) == threes
    at.text_input(key="w-search").input("3").run()  # in file names, a number is text: img3.png and digit3/...
    expected = set(samples.loc[samples["file_name"].str.contains("3"), "sample_id"].tolist())
    assert highlighted(at) == expected and expected > threes
