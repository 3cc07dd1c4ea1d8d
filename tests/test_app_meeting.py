"""Issue 14 ("fit for a meeting", smaller points) through AppTest on the analysed tiny run: the view a link
names, the Neurons page's best-subclass note, the Embeddings colourings and captions."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from app.charts import neurons as cn
from backend import api
from tests.conftest import figure_of
from tests.test_app_embeddings import open_embeddings
from tests.test_app_neurons_layers import open_page


def _units_by_top_images(store: api.RunStore, run_id: str, layer: str, epoch: int) -> tuple[list[int], list[int]]:
    """(units whose 16 top images miss their best subclass, units whose top images include it)."""
    info = api.read_run(store, run_id)
    labels = cn.sample_labels(api.read_samples(store, run_id), info["dataset"])
    units = api.read_analysis(store, run_id, "units", layer, epoch)
    ids, acts = api.read_activations(store, run_id, layer, epoch)
    missing, present = [], []
    for row in units.itertuples():
        if row.c1_subclass < 0:
            continue
        top = cn.top_samples(ids, acts[:, int(row.unit)], labels, k=16)
        (present if int(row.c1_subclass) in set(top["sub"]) else missing).append(int(row.unit))
    return missing, present


def test_neurons_page_explains_best_subclass_when_top_images_are_of_other_subclasses(
        analysed_store: tuple[api.RunStore, str], monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    missing, present = _units_by_top_images(store, run_id, "fc2.relu", 2)
    assert missing and present, (missing, present)  # the tiny run has both kinds of unit
    at = open_page("neurons", store.root, monkeypatch, run=run_id, layer="fc2.relu", epoch="2", unit=str(missing[0]))
    assert not at.exception
    notes = [i.value for i in at.info if "best subclass" in i.value]
    assert len(notes) == 1 and "highest c1" in notes[0] and "top images" in notes[0], notes
    at = open_page("neurons", store.root, monkeypatch, run=run_id, layer="fc2.relu", epoch="2", unit=str(present[0]))
    assert not [i.value for i in at.info if "best subclass" in i.value]


# ---------------------------------------------------------------- Embeddings: colours, options, links


def test_cluster_colours_are_distinct_and_say_ids_are_per_layer(analysed_store: tuple[api.RunStore, str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from app.charts import embeddings as charts_embeddings

    names = ["noise"] + [f"cluster {i}" for i in range(20)]
    colours = charts_embeddings.cluster_colours(names, charts_embeddings.CLUSTER_PALETTE)
    symbols = charts_embeddings.marker_symbols(colours)
    assert len({(colours[n], symbols[n]) for n in names}) == len(names)  # every legend entry differs
    real = sorted({colours[n] for n in names[1:]})
    rgb = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in real]
    closest = min(sum((a - b) ** 2 for a, b in zip(p, q, strict=True)) ** 0.5 for i, p in enumerate(rgb) for q in rgb[i + 1:])
    assert closest > 65, f"two cluster colours are {closest:.0f} apart in RGB"  # the old palette: #56B4E9 vs #88CCEE, 56
    store, run_id = analysed_store
    at = open_embeddings(store.root, monkeypatch, run=run_id, layer="fc2.relu", epoch="2", colour="cluster")
    assert not at.exception
    fig = figure_of(at.get("plotly_chart")[0])
    assert "per layer and epoch" in fig["layout"]["legend"]["title"]["text"].replace("<br>", " ")
    drawn = [(t["marker"]["color"], t["marker"]["symbol"]) for t in fig["data"]]
    assert len(set(drawn)) == len(drawn)


def test_superclass_is_not_offered_when_it_is_the_class(analysed_store: tuple[api.RunStore, str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store  # trained on superclasses: its classes are the superclasses
    at = open_embeddings(store.root, monkeypatch, run=run_id, colour="superclass")
    assert not at.exception
    picker = at.sidebar.selectbox(key="w-colour")
    assert "superclass" not in picker.options and "Superclass" not in picker.options
    assert picker.value == "class"  # a link asking for the superclasses gets them, as the classes


def test_a_link_reopens_max_points_and_names_what_does_not_exist(analysed_store: tuple[api.RunStore, str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    at = open_embeddings(store.root, monkeypatch, run=run_id, layer="fc2.relu", epoch="2", maxpts="1000")
    assert not at.exception and at.sidebar.number_input(key="w-maxpts").value == 1000
    assert abs(sum(len(t["x"]) for t in figure_of(at.get("plotly_chart")[0])["data"]) - 1000) <= 5  # of 1,797
    assert not at.warning
    at.sidebar.number_input(key="w-maxpts").set_value(1500).run()
    assert at.query_params["maxpts"] in ("1500", ["1500"])  # written back: a copied link carries it
    for params, words in (({"run": "no-such-run"}, ("run", "no-such-run", run_id)),
                          ({"run": run_id, "layer": "conv9.relu"}, ("layer", "conv9.relu", "fc2.relu")),
                          ({"run": run_id, "layer": "fc1.relu", "epoch": "7"}, ("epoch", "7", "2"))):
        at = open_embeddings(store.root, monkeypatch, **params)
        assert not at.exception
        warnings = [w.value for w in at.warning]
        assert len(warnings) == 1 and all(w in warnings[0] for w in words), (params, warnings)
        assert "not in" in warnings[0]


def test_hover_caption_says_what_has_no_image() -> None:
    from app.views.embeddings import hover_caption

    text = hover_caption(1797, 25158)
    assert "labels (all 25,158 points" in text and "first 1,797 of them by sample id" in text and "MB" in text


def test_png_export_shows_progress_then_a_save_button(analysed_store: tuple[api.RunStore, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    at = open_page("layers", store.root, monkeypatch, run=run_id)
    assert not at.exception
    png = next(b for b in at.button if b.label == "PNG")
    png.click().run()
    assert not at.exception and not at.error
    saves = [b for b in at.get("download_button") if b.proto.label == "Save PNG"]
    assert len(saves) == 1


# ---------------------------------------------------------------- Runs page


def test_runs_table_shows_hyperparameters_and_full_progress_when_finished(
        analysed_store: tuple[api.RunStore, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from tests.conftest import tiny_config
    from tests.test_app_compare_runs import open_page as open_runs

    src, run_id = analysed_store
    store = api.open_store(tmp_path / "store")
    shutil.copytree(src.run_dir(run_id), store.run_dir(run_id))  # 2 epochs
    api.train(tiny_config('run_id="short"', "train.epochs=1", "snapshots.epochs=[1]", "train.lr=0.01",
                          "model.width=8"), store, progress=False)
    at = open_runs(store.root, monkeypatch)
    assert not at.exception
    table = at.dataframe[0].value.set_index("run_id")
    assert {"dataset", "target", "model", "width", "lr", "augment", "optimizer"} <= set(table.columns)
    assert table.loc["short", "lr"] == 0.01 and table.loc[run_id, "lr"] == 0.05
    assert table.loc["short", "width"] == "8" and table.loc[run_id, "width"] == "16"
    assert table.loc["short", "progress"] == 1.0 and table.loc[run_id, "progress"] == 1.0  # both finished


def test_training_form_defaults_are_the_demo_runs_settings(store: api.RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.config import to_dict
    from backend.jobs.demo import DEMO_RUNS, demo_configs
    from tests.test_app_compare_runs import SUBMIT, number_input, stop_group
    from tests.test_app_compare_runs import open_page as open_runs

    at = open_runs(store.root, monkeypatch)
    number_input(at, "Epochs").set_value(1)  # the one change: a short run
    at.text_input[0].input("form-default")
    at.button(key=SUBMIT).click().run()
    assert not at.exception and not at.error
    pid = int(re.search(r"process (\d+)", at.success[0].value).group(1))
    try:
        deadline = time.monotonic() + 120
        while not store.run_json_path("form-default").is_file():
            assert time.monotonic() < deadline, (store.root / ".logs" / "form-default.log").read_text()
            time.sleep(0.5)
        got = api.read_run(store, "form-default")["config"]
    finally:
        stop_group(pid)
    demo = next(cfg for r, cfg in demo_configs(DEMO_RUNS[:1]))  # demo-digits-base
    want = json.loads(json.dumps(to_dict(demo)))
    for section in ("data", "model"):
        assert got[section] == want[section], section
    for key in ("optimizer", "lr", "batch_size", "momentum", "lr_steps", "augment", "seed"):
        assert got["train"][key] == want["train"][key], key


# ---------------------------------------------------------------- Upload page


def test_upload_names_the_run_and_warns_about_torchscript_only_for_torchscript(
        trained_store: tuple[api.RunStore, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    import torch

    from tests.test_app_upload import checkpoint_bytes, open_upload, wait_for_job

    root = tmp_path / "store"
    at = open_upload(root, monkeypatch)
    state_dict = ("epoch=2.pt", checkpoint_bytes(trained_store, 2), "application/octet-stream")
    at.get("file_uploader")[0].set_value([state_dict])
    at.run()
    assert not at.warning and not at.checkbox  # a state_dict runs no code: no TorchScript warning
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), buf)
    at.get("file_uploader")[0].set_value([("model.pt", buf.getvalue(), "application/octet-stream")])
    at.run()
    assert "TorchScript archives contain code" in at.warning[0].value and at.checkbox(key="up-trust")
    monkeypatch.setenv("CLUSTERSCOPE_ALLOW_TORCHSCRIPT", "0")
    at.run()
    assert "switched off" in at.info[0].value and not at.checkbox
    monkeypatch.delenv("CLUSTERSCOPE_ALLOW_TORCHSCRIPT")
    at.get("file_uploader")[0].set_value([state_dict])
    at.number_input(key="up-ptrain").set_value(300)
    at.number_input(key="up-ptest").set_value(100)
    at.text_input(key="up-name").input("my-upload")
    at.run()
    at.button(key="up-go").click().run()
    assert not at.error, [e.value for e in at.error]
    at = wait_for_job(at)
    assert "Imported run **my-upload**" in at.success[0].value
    assert api.open_store(root).run_ids() == ["my-upload"]


def test_the_demo_records_training_dynamics_for_the_mechanisms_page() -> None:
    from backend.jobs.demo import demo_configs

    recorded = [r.run_id for r, cfg in demo_configs() if cfg.dynamics.enabled]
    assert recorded == ["demo-synthclust"]  # one small run (measured: no slower than without dynamics, ~1.5 min)
