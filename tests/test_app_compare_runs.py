"""The Compare page and the Runs page's links and training form, through Streamlit's AppTest."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend import api
from tests.conftest import figure_of

APP = Path(__file__).resolve().parent.parent / "app"
MAIN = str(APP / "main.py")
COMPARE = "views/compare.py"  # relative to main.py, as st.navigation declares it
SUBMIT = "FormSubmitter:train-form-Start training"


def variant(store: api.RunStore, src: str, run_id: str, *, lr: float, accuracy_change: float, shift: float) -> None:
    """A copy of run ``src`` with another learning rate, test accuracy and c1..c4 (shifted by ``shift``)."""
    shutil.copytree(store.run_dir(src), store.root / run_id)
    info = store.read_run(run_id)
    info["run_id"] = run_id
    info["config"]["train"]["lr"] = lr
    info["final"]["test_accuracy"] += accuracy_change
    store.write_run(run_id, info)
    net = store.analysis.read(run_id, "network")
    net[["c1", "c2", "c3", "c4"]] += shift
    store.analysis.write(run_id, "network", net, params="{}", params_hash="test")


@pytest.fixture
def compare_store(analysed_store: tuple[api.RunStore, str], tmp_path: Path) -> api.RunStore:
    """tiny (lr 0.05), tiny-b (lr 0.01: every measure higher, test accuracy 10 points lower),
    tiny-c (lr 0.1: measures lower, accuracy 5 points higher) and tiny-raw (not analysed)."""
    src, run_id = analysed_store
    store = api.open_store(tmp_path / "store")
    shutil.copytree(src.run_dir(run_id), store.root / run_id)
    variant(store, run_id, "tiny-b", lr=0.01, accuracy_change=-0.10, shift=0.1)
    variant(store, run_id, "tiny-c", lr=0.1, accuracy_change=+0.05, shift=-0.1)
    shutil.copytree(src.run_dir(run_id), store.root / "tiny-raw", ignore=shutil.ignore_patterns("analysis"))
    return store


def open_page(store_root: Path, monkeypatch: pytest.MonkeyPatch, page: str | None = None, **params: str) -> AppTest:
    monkeypatch.setenv("CLUSTERSCOPE_STORE", str(store_root))
    at = AppTest.from_file(MAIN, default_timeout=90)
    for key, value in params.items():
        at.query_params[key] = value
    if page:
        at.switch_page(page)
    return at.run()


def chart(at: AppTest, key: str) -> dict:
    return figure_of(next(c for c in at.get("plotly_chart") if c.proto.id and key in c.proto.id))


# ---------------------------------------------------------------- Compare


def test_compare_two_runs(compare_store: api.RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(compare_store.root, monkeypatch, COMPARE, runs="tiny,tiny-b")
    assert not at.exception
    assert at.query_params["runs"] == "tiny,tiny-b" and at.query_params["colour"] == "train.lr"
    kendall = next(d.value for d in at.dataframe if "measure" in d.value.columns).set_index("measure")
    assert list(kendall.columns) == ["runs", "tau", "tau_b", "psi[train.lr]", "granulated_total", "total_axes"]
    # tiny-b has every c higher and a lower accuracy: a perfectly reversed order, by every variant of tau
    for m in ("c1", "c2", "c3", "c4"):
        assert kendall.loc[m, ["tau", "tau_b", "psi[train.lr]", "granulated_total"]].tolist() == [-1.0] * 4
    assert kendall.loc["class_purity", "tau"] == 0.0  # equal measures: the two ordered pairs cancel
    assert any("No tie counts as agreement" in c.value and "τ-b" in c.value for c in at.caption)

    net = api.read_analysis(compare_store, "tiny", "network").set_index("epoch")
    acc = api.read_run(compare_store, "tiny")["final"]["test_accuracy"]
    scatter = chart(at, "compare-scatter")
    assert [a["text"] for a in scatter["layout"]["annotations"][:4]][0].startswith("c1")
    first = {t["name"]: t for t in scatter["data"][:2]}  # the c1 panel: one trace per learning rate
    assert set(first) == {"0.01", "0.05"}
    assert first["0.05"]["x"] == pytest.approx([net.loc[2, "c1"]])
    assert first["0.01"]["x"] == pytest.approx([net.loc[2, "c1"] + 0.1])
    assert first["0.05"]["y"] == pytest.approx([acc * 100])
    assert first["0.01"]["y"] == pytest.approx([(acc - 0.1) * 100])
    assert "tiny" in first["0.05"]["customdata"][0]

    epochs = chart(at, "compare-epochs")
    assert len(epochs["data"]) == 2 * 6  # c1..c4, train and test accuracy, per run
    c1_lines = {t["name"]: t for t in epochs["data"] if t["xaxis"] in ("x", None) and t["yaxis"] in ("y", None)}
    assert set(c1_lines) == {"tiny", "tiny-b"}
    assert c1_lines["tiny"]["x"] == [0, 1, 2]
    assert c1_lines["tiny-b"]["y"] == pytest.approx((net["c1"] + 0.1).tolist())


def test_compare_restores_the_selection_from_the_url(compare_store: api.RunStore,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(compare_store.root, monkeypatch, COMPARE, runs="tiny,ghost,tiny-c", measures="c3",
                   colour="run_id")
    assert not at.exception
    assert at.multiselect(key="w-cmp-runs").value == ["tiny", "tiny-c"]  # the deleted run "ghost" is dropped
    assert at.multiselect(key="w-cmp-measures").value == ["c3"] and at.selectbox(key="w-cmp-colour").value == "run_id"
    scatter = chart(at, "compare-scatter")
    assert [t["name"] for t in scatter["data"]] == ["tiny", "tiny-c"]
    assert [a["text"] for a in scatter["layout"]["annotations"]] == ["c3 · variance ratio"]
    assert at.query_params["runs"] == "tiny,tiny-c"

    at.multiselect(key="w-cmp-runs").unselect("tiny-c").run()
    assert at.query_params["runs"] == "tiny"
    assert "at least two analysed runs" in at.info[0].value
    assert not at.get("plotly_chart")


def test_compare_lists_runs_that_are_not_analysed(compare_store: api.RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(compare_store.root, monkeypatch, COMPARE)
    assert at.multiselect(key="w-cmp-runs").value == ["tiny", "tiny-b", "tiny-c"]  # default: every analysed run
    at = open_page(compare_store.root, monkeypatch, COMPARE, runs="tiny,tiny-raw")
    assert not at.exception
    assert "Not analysed yet: tiny-raw" in at.warning[0].value
    assert "(1 chosen)" in at.info[0].value


# ---------------------------------------------------------------- Runs: links and the training form


def test_runs_page_links_into_the_other_pages(compare_store: api.RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(compare_store.root, monkeypatch)
    assert not at.exception
    links = [(p.proto.page, p.proto.query_string, p.proto.disabled) for p in at.get("page_link")]
    assert ("compare", "", False) in links
    assert ("embeddings", "run=tiny", False) in links and ("layers", "run=tiny-b", False) in links
    assert ("neurons", "run=tiny-raw", True) in links  # not analysed yet: disabled


def number_input(at: AppTest, label: str):
    return next(n for n in at.number_input if n.label == label)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("Learning rate", 0.0, "train.lr must be a number > 0; got 0.0"),
    ("Run id (optional)", "Bad Id!", "run_id must be 1-64 characters"),
    ("Model", "vgg", "'vgg' needs image inputs; synthclust gives vectors"),
])
def test_training_form_reports_a_bad_value_and_starts_nothing(store: api.RunStore, monkeypatch: pytest.MonkeyPatch,
                                                              field: str, value: object, message: str) -> None:
    at = open_page(store.root, monkeypatch)
    if field == "Learning rate":
        number_input(at, field).set_value(value)
    elif field == "Model":
        at.selectbox[0].select("synthclust")
        at.selectbox[2].select(value)
    else:
        at.text_input[0].input(value)
    at.button(key=SUBMIT).click().run()
    assert not at.exception
    assert any("Nothing was started: " in e.value and message in e.value for e in at.error), [e.value for e in at.error]
    assert not at.success
    assert not store.root.exists() or not any(store.root.iterdir())  # no run folder, no log


def test_training_form_starts_a_run_that_appears_in_the_table(store: api.RunStore,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(store.root, monkeypatch)
    at.selectbox[0].select("digits")
    at.selectbox[2].select("mlp")
    number_input(at, "Epochs").set_value(1)
    at.text_input[0].input("form-run")
    at.button(key=SUBMIT).click().run()
    assert not at.exception and not at.error
    message = at.success[0].value
    pid = int(re.search(r"process (\d+)", message).group(1))
    try:
        assert "form-run" in message
        deadline = time.monotonic() + 120
        while not store.run_json_path("form-run").is_file():
            assert time.monotonic() < deadline, (store.root / ".logs" / "form-run.log").read_text()
            time.sleep(0.5)
        info = api.read_run(store, "form-run")
        assert info["config"]["model"]["name"] == "mlp" and info["config"]["train"]["epochs"] == 1
        at.run()
        assert "form-run" in at.dataframe[0].value["run_id"].tolist()
    finally:
        stop_group(pid)


def stop_group(pid: int) -> None:
    """Terminate the training process group (it started its own session), then kill it if it lingers."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:
                return
            time.sleep(0.1)


# ---------------------------------------------------------------- the figure builders, without Streamlit


def test_compare_figure_builders() -> None:
    import pandas as pd

    from app.charts import compare as charts_compare

    metrics = pd.DataFrame({"epoch": [0, 1, 2, 3, 4] * 2, "split": ["train"] * 5 + ["test"] * 5,
                            "accuracy": [0.1, 0.5, 0.8, 0.9, 0.95] * 2, "lr": [0.1, 0.1, 0.02, 0.02, 0.004] * 2})
    assert charts_compare.lr_drops(metrics) == [2, 4]
    table = pd.DataFrame(columns=["granulated_total", "psi[train.lr]", "tau_b", "measure", "psi[data.name]", "tau", "runs"])
    assert charts_compare.kendall_columns(table) == ["measure", "runs", "tau", "tau_b", "psi[data.name]", "psi[train.lr]",
                                                     "granulated_total"]
    assert charts_compare.kendall_columns(table.assign(total_axes=1))[-2:] == ["granulated_total", "total_axes"]
    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "test_accuracy": [0.9, 0.8, 0.7], "epoch": [3, 3, 2],
                         "c1": [0.5, 0.6, float("nan")], "train.lr": [0.1, 0.01, 0.1], "data.name": ["digits", "synthclust", "digits"]})
    assert charts_compare.hyperparameter_columns(runs) == ["train.lr", "data.name"]
    fig = charts_compare.measure_scatter(runs, ["c1"], colour_by="train.lr", symbol_by="data.name")
    assert [t.name for t in fig.data] == ["0.01", "0.1"]  # numeric order, not string order
    assert list(fig.data[1].marker.symbol) == ["circle", "circle"] and list(fig.data[0].marker.symbol) == ["diamond"]
    assert list(fig.data[1].y) == pytest.approx([90.0, 70.0])


# ---------------------------------------------------------------- Compare: sweeps


@pytest.fixture
def sweep_store(analysed_store: tuple[api.RunStore, str], tmp_path: Path) -> api.RunStore:
    """Sweep "grid" of 4 runs (lr x width, the hand-computed example of tests/test_sweep.py: c1 .1/.3/.2/.25,
    test accuracy .70/.80/.90/.95), one failed sweep run, and a run outside any sweep."""
    src, run_id = analysed_store
    store = api.open_store(tmp_path / "store")
    shutil.copytree(src.run_dir(run_id), store.root / run_id)
    points = [(0.01, 8, 0.1, 0.70), (0.01, 16, 0.3, 0.80), (0.1, 8, 0.2, 0.90), (0.1, 16, 0.25, 0.95)]
    for i, (lr, width, c1, acc) in enumerate(points):
        rid = f"grid-{i}"
        shutil.copytree(src.run_dir(run_id), store.root / rid)
        info = store.read_run(rid)
        info["config"]["train"]["lr"], info["config"]["model"]["width"] = lr, width
        info["final"]["test_accuracy"] = acc
        info["sweep"] = {"name": "grid", "file": "", "axes": {"train.lr": lr, "model.width": width}, "trial": i}
        store.write_run(rid, info)
        net = store.analysis.read(rid, "network")
        net["c1"] = c1
        store.analysis.write(rid, "network", net, params="{}", params_hash="test")
    failed = store.read_run("grid-0") | {"status": "failed", "error": "DataError: boom"}
    failed["sweep"] = failed["sweep"] | {"trial": 4, "axes": {"train.lr": 1.0, "model.width": 8}}
    shutil.copytree(src.run_dir(run_id), store.root / "grid-4")
    store.write_run("grid-4", failed)
    return store


def test_compare_a_sweep(sweep_store: api.RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(sweep_store.root, monkeypatch, COMPARE)
    assert not at.exception
    assert at.selectbox(key="w-cmp-sweep").value == "grid" and at.query_params["sweep"] == "grid"  # default: the sweep
    assert at.multiselect(key="w-cmp-runs-grid").value == ["grid-0", "grid-1", "grid-2", "grid-3"]  # not the failed one
    assert any("Sweep **grid**: 5 runs (4 complete, 1 failed)" in c.value for c in at.caption)
    kendall = next(d.value for d in at.dataframe if "measure" in d.value.columns).set_index("measure")
    assert list(kendall.columns) == ["runs", "tau", "tau_b", "psi[model.width]", "psi[train.lr]", "granulated_total",
                                     "total_axes"]
    assert kendall.loc["c1", ["tau", "psi[train.lr]", "psi[model.width]", "granulated_total"]].tolist() == \
        pytest.approx([1 / 3, 0.0, 1.0, 0.5])
    colours = at.selectbox(key="w-cmp-colour").options
    assert "train.lr" in colours and "model.width" in colours

    k = chart(at, "compare-k")
    assert [t["name"] for t in k["data"]] == ["c1 · subclass selectivity", "c3 · variance ratio"]
    # identical activations in every copy: each k ties the four runs, so every coefficient is 0
    assert all(v == pytest.approx(0.0) for t in k["data"] for v in t["y"])
    assert k["data"][0]["x"][0] == pytest.approx(2.0)  # c1's k = 1 drawn at 1 x (10 digits / 5 superclasses)
    assert k["layout"]["xaxis"]["type"] == "log"
    assert len(chart(at, "compare-epochs")["data"]) == 3 * 6  # best, median and worst run by default
    assert at.multiselect(key="w-cmp-epochruns").value == ["grid-3", "grid-1", "grid-0"]

    at.radio(key="w-cmp-kcoef").set_value("tau").run()
    assert at.query_params["kcoef"] == "tau"
    at.selectbox(key="w-cmp-sweep").select("All runs").run()
    assert not at.exception and "sweep" not in at.query_params
    assert "tiny" in at.multiselect(key="w-cmp-runs").options


def test_compare_sweep_from_the_url(sweep_store: api.RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(sweep_store.root, monkeypatch, COMPARE, sweep="grid", runs="grid-0,grid-2", colour="run_id",
                   kcoef="granulated_total")
    assert not at.exception
    assert at.multiselect(key="w-cmp-runs-grid").value == ["grid-0", "grid-2"]
    assert at.selectbox(key="w-cmp-colour").value == "run_id"
    kendall = next(d.value for d in at.dataframe if "measure" in d.value.columns).set_index("measure")
    assert kendall.loc["c1", "psi[train.lr]"] == 1.0  # (.1, .70) vs (.2, .90), both at width 8
    assert "psi[model.width]" not in kendall  # the same width: not a column, as `compare grid-0 grid-2` has none
    at = open_page(sweep_store.root, monkeypatch, COMPARE, sweep="ghost")
    assert at.selectbox(key="w-cmp-sweep").value == "grid"  # a stale sweep name falls back to the default


def test_tau_vs_k_figure() -> None:
    import pandas as pd

    from app.charts import compare as charts_compare

    table = pd.DataFrame({"measure": ["c1", "c1", "c1", "c3", "c3", "c3"], "k": [1, 10, 100] * 2,
                          "tau": [0.5, 0.7, 0.1, 0.9, 0.6, float("nan")], "granulated_total": [float("nan")] * 6})
    fig = charts_compare.tau_vs_k(table, coefficient="tau", c1_scale=5.0, max_k=50)
    assert [t.name for t in fig.data] == ["c1 · subclass selectivity", "c3 · variance ratio"]
    assert list(fig.data[0].x) == [5.0, 50.0] and list(fig.data[1].x) == [1.0, 10.0]  # k <= max_k, c1 drawn at 5k
    assert list(fig.data[0].y) == [0.5, 0.7] and fig.layout.xaxis.type == "log"
    assert "c1 drawn at k × 5" in fig.layout.xaxis.title.text
    assert not charts_compare.tau_vs_k(table, coefficient="granulated_total").data  # all NaN: no line
