"""Numbers a researcher can trust (issue 12): c1/c2 only where subclasses are hidden, their noise floor,
k's share of the units; end to end on two real tiny runs, one trained on superclasses, one on fine labels."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from backend import api, schema
from backend.analysis import caveats
from backend.analysis import measures as M
from backend.cli import cli
from tests.conftest import tiny_config

APP = Path(__file__).resolve().parent.parent / "app"
MAIN = str(APP / "main.py")


def blobs(seed: int = 0, n: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2 superclasses x 2 subclasses x n samples; unit j fires for subclass j (plus 4 noise units)."""
    rng = np.random.default_rng(seed)
    sub = np.repeat(np.arange(4), n)
    sup = sub // 2
    pre = rng.normal(0, 1, (4 * n, 8))
    pre[np.arange(4 * n), sub] += 4.0
    return pre, sub, sup


# ------------------------------------------------------------------------------------------ noise floor, unit level


def test_shuffle_within_keeps_superclasses_and_sizes() -> None:
    pre, sub, sup = blobs()
    shuffled = M.shuffle_within(sub, sup, seed=3)
    np.testing.assert_array_equal(M.shuffle_within(sub, sup, seed=3), shuffled)  # fixed seed
    assert not np.array_equal(shuffled, sub)
    np.testing.assert_array_equal(shuffled // 2, sup)  # every sample keeps a subclass of its own superclass
    np.testing.assert_array_equal(np.bincount(shuffled), np.bincount(sub))  # subclass sizes kept
    with pytest.raises(ValueError, match="superclass"):
        M.shuffle_within(np.array([0, 0, 1]), np.array([0, 1, 1]))  # subclass 0 in two superclasses


def test_shuffled_subclasses_push_c1_and_c2_to_their_floor() -> None:
    """SCIENCE.md 3.1, "Invariances": shuffling within superclasses gives c1's noise floor and c2 about 0."""
    pre, sub, sup = blobs()
    shuffled = M.shuffle_within(sub, sup, seed=0)
    c1, floor1 = M.c1([pre], subclass=sub, superclass=sup, k=1), M.c1([pre], subclass=shuffled, superclass=sup, k=1)
    assert c1 > 1.0 and floor1 < 0.4
    post = np.maximum(pre, 0)
    sil = M.subclass_silhouettes(post, subclass=sub, superclass=sup)
    floor2 = M.subclass_silhouettes(post, subclass=shuffled, superclass=sup)
    assert M.layer_c2(sil) > 0.1 and abs(M.layer_c2(floor2)) < 0.05


# ------------------------------------------------------------------------------------------ caveats


def test_k_warning_above_ten_percent_of_the_units() -> None:
    assert caveats.k_warning(30, 30, 2880) is None  # the thesis: 1 %
    assert caveats.k_warning(30, 30, 300) is None  # exactly 10 %: not flagged
    text = caveats.k_warning(30, 3, 32)  # c3's k = 3 is 9 %: only c1 is flagged
    assert text and text.startswith("k = 30 for c1 is 94% of the network's 32 units") and "for c3" not in text
    assert "for c3 is 16%" in caveats.k_warning(30, 5, 32)
    assert caveats.k_warning(30, 30, float("nan")) is None  # a version-1 network table: units unknown


def test_layer_k_warning_names_the_narrow_layers() -> None:
    assert caveats.layer_k_warning(5, {"conv1": 64, "conv2": 128}) is None  # 8 % and 4 %
    text = caveats.layer_k_warning(5, {"conv1": 16, "conv2": 128, "fc": 3})
    assert text and "conv1 (31% of 16), fc (100% of 3)" in text and "conv2" not in text


def test_intraclass_reason_by_target_and_data() -> None:
    hier = {"name": "digits", "superclass_names": ["a", "b"]}
    assert caveats.intraclass_reason({"dataset": hier | {"target": "superclass"}}) is None
    fine = caveats.intraclass_reason({"dataset": hier | {"target": "label"}})
    assert fine and "fine labels" in fine and "class separation" in fine
    flat = caveats.intraclass_reason({"dataset": {"name": "mnist", "superclass_names": None, "target": "label"}})
    assert flat and "no superclasses" in flat


# ------------------------------------------------------------------------------------------ store version 2


def test_version_1_network_table_reads_with_nan_columns(analysed_store: tuple[api.RunStore, str], tmp_path: Path) -> None:
    src, run_id = analysed_store
    store = api.open_store(tmp_path / "store")
    shutil.copytree(src.run_dir(run_id), store.root / run_id)
    path = store.analysis.path(run_id, "network")
    v1 = pq.read_table(path).select(["epoch", "c1", "c2", "c3", "c4", "k_c1", "k_c2", "k_c3", "k_c4"])
    meta = {b"clusterscope.schema_version": b"1", b"clusterscope.params_hash": b"old"}
    pq.write_table(pa.Table.from_pandas(v1.to_pandas(), preserve_index=False).replace_schema_metadata(meta), path)
    net = api.read_analysis(store, run_id, "network")
    assert {"c1_shuffled", "c2_shuffled", "n_units"} <= set(net.columns) and net["c1_shuffled"].isna().all()
    assert net["c1"].notna().all()
    assert store.analysis.read(run_id, "network", columns=["epoch", "n_units"])["n_units"].isna().all()
    measures = api.run_measures(store, run_id)
    assert np.isnan(measures["c1_shuffled"]) and np.isfinite(measures["c1"])
    api.analyze(store, run_id)  # the stale hash redoes the table in the current form
    net = store.analysis.read(run_id, "network")
    assert net["c1_shuffled"].notna().all() and (net["n_units"] == 32).all()
    assert pq.read_schema(path).metadata[b"clusterscope.schema_version"] == str(schema.SCHEMA_VERSION).encode() == b"4"


# ------------------------------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def two_runs(analysed_store: tuple[api.RunStore, str], tmp_path_factory: pytest.TempPathFactory) -> api.RunStore:
    """'tiny' (digits, trained on superclasses, analysed) and 'fine' (the same trained on the digits)."""
    src, run_id = analysed_store
    store = api.open_store(tmp_path_factory.mktemp("two"))
    shutil.copytree(src.run_dir(run_id), store.root / run_id)
    fine = api.train(tiny_config('run_id="fine"', 'data.target="label"', "snapshots.epochs=[0, 2]"), store,
                     progress=False)
    report = api.analyze(store, fine)
    assert not report.errors, report.errors
    return store


def test_superclass_run_has_c1_c2_above_their_noise_floor(two_runs: api.RunStore) -> None:
    net = two_runs.analysis.read("tiny", "network")
    assert net[["c1", "c2", "c1_shuffled", "c2_shuffled"]].notna().all().all()
    last = net.iloc[-1]
    assert last["c1"] > last["c1_shuffled"] and last["c2"] > last["c2_shuffled"]
    assert abs(last["c2_shuffled"]) < 0.1  # c2's floor is about 0
    assert (net["n_units"] == 32).all() and (net["k_c1"] == 30).all()  # 2 layers x 16 units; k = 30 is 94 %
    assert api.k_warning(last) and "94%" in api.k_warning(last)
    assert api.intraclass_reason(two_runs.read_run("tiny")) is None


def test_fine_label_run_has_no_intraclass_measures(two_runs: api.RunStore) -> None:
    net = two_runs.analysis.read("fine", "network")
    assert net["c1"].isna().all() and net["c2"].isna().all()  # the fine labels are this run's classes
    assert net[["c1_shuffled", "c2_shuffled"]].isna().all().all()
    assert net[["c3", "c4"]].notna().all().all() and (net["n_units"] == 32).all()
    layers = two_runs.analysis.read_all("fine", "layers")
    assert layers[["c1", "c2", "subclass_purity", "ari_subclass", "wtm_fraction"]].isna().all().all()
    assert layers[["c3", "c4", "class_purity"]].notna().all().all()
    units = two_runs.analysis.read("fine", "units", "fc2.relu", 2)
    assert units[["c1", "wtm", "hap_subclass_concentration"]].isna().all().all() and (units["c1_subclass"] == -1).all()
    groups = two_runs.analysis.read_all("fine", "groups")
    assert set(groups["kind"]) == {"c4_ratio"}
    measures = api.run_measures(two_runs, "fine")
    assert np.isnan(measures["c1"]) and np.isnan(measures["c2"]) and np.isfinite(measures["c3"])
    assert api.k_sensitivity(two_runs, ["fine"])["measure"].unique().tolist() == ["c3"]
    assert "fine labels" in api.intraclass_reason(two_runs.read_run("fine"))


def test_cli_compare_shows_noise_floor_k_and_why(two_runs: api.RunStore) -> None:
    result = CliRunner().invoke(cli, ["compare", "tiny", "fine", "--store", str(two_runs.root)])
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if line.split()[:1] == ["run_id"])
    assert all(c in header.split() for c in ("c1", "c1_shuffled", "c2_shuffled", "k_c1", "k_c3", "n_units"))
    assert re.search(r"note: run tiny: k = 30 for c1 is 94%", result.output)
    assert re.search(r"note: run fine: no c1, c2, .*fine labels", result.output)
    assert "note: run tiny: no c1" not in result.output


def open_page(root: Path, monkeypatch: pytest.MonkeyPatch, page: str, **params: str) -> AppTest:
    monkeypatch.setenv("CLUSTERSCOPE_STORE", str(root))
    at = AppTest.from_file(MAIN, default_timeout=120)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(f"views/{page}.py")
    return at.run()


def texts(at: AppTest) -> str:
    return "\n".join(e.value for kind in ("caption", "info", "warning", "markdown") for e in at.get(kind)
                     if isinstance(getattr(e, "value", None), str))


def test_layers_page_shows_noise_floor_k_and_why(two_runs: api.RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(two_runs.root, monkeypatch, "layers", run="tiny")
    assert not at.exception and not at.error
    table = next(d.value for d in at.dataframe if "noise floor" in d.value.columns)
    row = table.set_index("measure")
    net = two_runs.analysis.read("tiny", "network").iloc[-1]
    assert row.loc["c1", "noise floor"] == pytest.approx(net["c1_shuffled"]) and "of 32 (94%)" in row.loc["c1", "k"]
    assert np.isnan(row.loc["c3", "noise floor"])
    assert "k = 30 for c1 is 94%" in texts(at) and "not computed" not in texts(at)
    fine = open_page(two_runs.root, monkeypatch, "layers", run="fine")
    assert not fine.exception and not fine.error
    assert "c1 and c2 are empty for this run" in texts(fine) and "fine labels" in texts(fine)
    assert api.analysis_params(two_runs, "tiny")["layer_top_k"] == 5
    at.selectbox(key="w-score").set_value("c3").run()  # layer-wise c3: top-5 of 16 units per layer
    assert not at.exception and "k = 5: the mean of each layer's top 5 units" in texts(at)
    assert "fc1.relu (31% of 16), fc2.relu (31% of 16)" in texts(at)
    assert not [o for o in fine.selectbox(key="w-score").options if o.startswith(("c1", "c2", "subclass purity", "WTM"))]


def test_neurons_compare_and_embeddings_pages_say_why(two_runs: api.RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(two_runs.root, monkeypatch, "neurons", run="fine")
    assert not at.exception and not at.error
    assert "The c1, subclass and WTM columns are empty" in texts(at)
    assert not [s for s in at.subheader if "Best neuron per subclass" in s.value]
    cmp = open_page(two_runs.root, monkeypatch, "compare", runs="tiny,fine", data="all")  # two training targets
    assert not cmp.exception and not cmp.error
    assert re.search(r"left out for 1 of 2 run\(s\) \(fine\)", texts(cmp))
    table = next(d.value for d in cmp.dataframe if "c1_shuffled" in d.value.columns).set_index("run_id")
    assert np.isfinite(table.loc["tiny", "c1_shuffled"]) and np.isnan(table.loc["fine", "c1_shuffled"])
    assert table.loc["tiny", "k share"] == pytest.approx(30 / 32)
    assert "**tiny**: k = 30 for c1 is 94%" in texts(cmp)
    emb = open_page(two_runs.root, monkeypatch, "embeddings", run="fine")
    assert not emb.exception and not emb.error
    assert "Subclass purity n/a: This run was trained on the fine labels" in texts(emb)
