"""Benchmark: the server-side time of an epoch switch on the Embeddings page against the minimal work.

Targets (issue): switching the epoch of an embedding with 10,000 points redraws in under 300 ms on the
server side; at 10,000 and 100,000 points the switch on the Embeddings page costs at most 1.5x "the
minimal work (read the embedding with pyarrow and build the Plotly figure directly)". The figure is the
one the page draws, so the baseline the target is checked against (``same figure``) reads the epoch's
points with pyarrow and builds that figure with Plotly's graph objects: one ``Scattergl`` per class in
its colour, each point's [sample id, cluster] hover data and the page's hover template, title, axis
titles and template, then ``fig.to_json()``. Printed next to it: a ``bare trace`` (one x/y
``Scattergl``, no colours or hover data, i.e. less than the page shows), the same bare work as a
one-slider Streamlit page through AppTest (``plain page``: the harness's and Streamlit's own per-rerun
cost, which no page avoids), AppTest's floor and the cost of recompiling the scripts.

"Epoch switch" is what the server does when a user moves the epoch slider: Streamlit's AppTest
sets the sidebar slider to the other epoch and reruns the whole app script (``app/main.py``:
navigation, then the Embeddings page), with the page's default settings (UMAP, colour by class,
"Max points drawn" 10,000: above that a stratified sample is drawn). The browser's side (sending
the figure, Plotly.js drawing it) is not part of it. Both epochs are viewed once before timing,
so the page's loaders serve them from Streamlit's cache, as in a session where the user moves back
and forth; ``first view`` times the switch with the page's per-(layer, epoch) caches emptied first.

The store is synthetic: one run, ``n`` probe samples in 10 classes grouped in 5 superclasses, one
layer, epochs 1 and 2 with different layouts, written through ``RunStore`` (run.json,
samples.parquet and the ``points`` and ``layers`` analysis tables the page reads; no activations,
which the page reads only when colouring by a neuron). Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `app` is imported from the checkout, as `streamlit run app/main.py` does

from backend import api  # noqa: E402
from backend.config import RunConfig, to_dict  # noqa: E402
from backend.schema import ANALYSIS_SCHEMAS, SAMPLES_SCHEMA  # noqa: E402

try:  # run as a script: benchmarks/ is on sys.path
    from _common import contention_note, median, paired, table, timed
except ModuleNotFoundError:  # run as ``python -m benchmarks.dashboard``
    from benchmarks._common import contention_note, median, paired, table, timed

TARGET = 1.5
RUN_ID = "bench-dashboard"
LAYER = "fc1.relu"
EPOCHS = (1, 2)
CLASSES = 10
SUPERCLASSES = ("round", "stroke", "bend", "twin-curve", "hook")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run (~30 s): 2,000 and 20,000 points, 3 repeats")
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="point counts (default 10000 100000)")
    p.add_argument("--repeats", type=int, default=None, help="timed switches per size and side (default 9, quick 3)")
    p.add_argument("--max-wait", type=float, default=0.05,
                   help="remeasure a pair when a side spent more than this share of its thread time waiting for a CPU")
    p.add_argument("--retries", type=int, default=2, help="remeasurements allowed per pair")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds after the start past which disturbed pairs are no longer remeasured (default 170, quick 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic layouts")
    args = p.parse_args(argv)
    args.sizes = args.sizes or ([2_000, 20_000] if args.quick else [10_000, 100_000])
    args.repeats = args.repeats or (3 if args.quick else 9)
    args.budget = args.budget if args.budget is not None else (20.0 if args.quick else 170.0)
    return args


# ---------------------------------------------------------------- the synthetic store


def run_info(n: int, layers: tuple[str, ...] = (LAYER,)) -> dict:
    labels = [str(d) for d in range(CLASSES)]
    return {
        "status": "complete", "seed": 0, "config": to_dict(RunConfig()), "origin": {"kind": "trained"},
        "dataset": {"name": "digits", "kind": "image", "input_shape": [1, 8, 8], "target": "superclass",
                    "label_names": labels, "superclass_names": list(SUPERCLASSES), "n_train": n, "n_test": 0,
                    "n_probe_train": n, "n_probe_test": 0},
        "model": {"name": "mlp", "parameters": 0},
        "layers": [{"name": name, "units": 64, "kind": "linear", "module": name, "call": 0} for name in layers],
        "reduction": "max", "snapshot_epochs": list(EPOCHS), "recorded_epochs": list(EPOCHS),
        "epochs_completed": max(EPOCHS), "final": {"train_accuracy": 1.0, "test_accuracy": 0.9}, "error": None,
    }


def build_store(root: Path, n: int, seed: int, *, layers: tuple[str, ...] = (LAYER,),
                thumbnail: bytes | None = None) -> api.RunStore:
    """One analysed run of ``n`` probe samples: samples (each with ``thumbnail``, a PNG, if given), and per
    layer and epoch the points and layers tables."""
    rng = np.random.default_rng(seed)
    store = api.open_store(root)
    store.create_run(RUN_ID, run_info(n, layers))
    label = np.arange(n) % CLASSES
    thumbs = pa.nulls(n, pa.binary()) if thumbnail is None else pa.array([thumbnail] * n, pa.binary())
    samples = pa.table({
        "sample_id": np.arange(n, dtype=np.int64), "split": np.full(n, "train"), "label": label.astype(np.int32),
        "label_name": label.astype(str), "superclass": (label // 2).astype(np.int32),
        "superclass_name": np.asarray(SUPERCLASSES)[label // 2], "thumbnail": thumbs,
        "file_name": pa.nulls(n, pa.string()),
    }, schema=SAMPLES_SCHEMA)
    store.write_samples(RUN_ID, samples)
    for layer in layers:
        for epoch in EPOCHS:
            centres = rng.normal(0, 10, (CLASSES, 2))
            xy = centres[label] + rng.normal(0, 1, (n, 2))
            points = pd.DataFrame({
                "sample_id": np.arange(n, dtype=np.int64), "umap_x": xy[:, 0], "umap_y": xy[:, 1],
                "pca_x": xy[:, 1], "pca_y": xy[:, 0], "cluster": label.astype(np.int32), "cluster_probability": 1.0})
            store.analysis.write(RUN_ID, "points", points, params="{}", params_hash="bench", layer=layer, epoch=epoch)
            row = {f.name: ("" if pa.types.is_string(f.type) else 0.5) for f in ANALYSIS_SCHEMAS["layers"]
                   if f.name not in ("layer", "epoch")} | {"depth": 0, "n_units": 64, "n_alive": 64, "n_points": n,
                                                    "min_cluster_size": 10, "n_clusters": CLASSES}
            store.analysis.write(RUN_ID, "layers", pd.DataFrame([row]), params="{}", params_hash="bench", layer=layer,
                                 epoch=epoch)
    return store


# ---------------------------------------------------------------- the two sides


def serve_like_the_cli() -> None:
    """Streamlit's settings as ``clusterscope app`` sets them (its environment variables), for every
    script this process runs, the page and the baselines alike."""
    from streamlit import config

    from backend.serve import APP_STREAMLIT_DEFAULTS

    for option, value in APP_STREAMLIT_DEFAULTS.items():
        config.set_option(option, value)


def page_switcher(store: api.RunStore) -> tuple[Callable[[], str], Callable[[], None]]:
    """(switch, forget): ``switch`` moves the Embeddings page's epoch slider to the other epoch and
    reruns the app, returning the figure's title; ``forget`` empties the loaders' analysis cache."""
    from streamlit.testing.v1 import AppTest

    from app import loaders

    serve_like_the_cli()
    os.environ["CLUSTERSCOPE_STORE"] = str(store.root)
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=600)
    at.query_params.update({"run": RUN_ID, "layer": LAYER, "epoch": str(EPOCHS[0])})
    at.switch_page("views/embeddings.py")
    at.run()
    current = [EPOCHS[0]]

    def switch() -> str:
        current[0] = EPOCHS[1] if current[0] == EPOCHS[0] else EPOCHS[0]
        at.sidebar.select_slider(key="w-epoch").set_value(current[0]).run()
        if at.exception:
            raise RuntimeError(at.exception[0].message)
        return at.get("plotly_chart")[0].proto.spec

    def forget() -> None:  # what the page keeps per (layer, epoch): its tables, the labelled view, the figure
        for cached in (loaders._analysis, loaders._embedding_view, loaders._embedding_figure):
            cached.clear()

    return switch, forget


def minimal_drawer(store: api.RunStore) -> Callable[[], str]:
    """Read the other epoch's embedding with pyarrow, build one Scattergl trace, serialise the figure."""
    paths = [store.analysis.path(RUN_ID, "points", LAYER, e) for e in EPOCHS]
    current = [0]

    def draw() -> str:
        current[0] = 1 - current[0]
        t = pq.read_table(paths[current[0]], columns=["umap_x", "umap_y"])
        fig = go.Figure(go.Scattergl(x=t["umap_x"].to_numpy(), y=t["umap_y"].to_numpy(), mode="markers"))
        return fig.to_json()

    return draw


def same_figure_drawer(store: api.RunStore, n: int, cap: int = 10_000) -> Callable[[], str]:
    """The figure the page draws, built directly with Plotly's graph objects and serialised.

    Per switch: read the other epoch's points (sample id, x, y, cluster) with pyarrow, one ``go.Scattergl``
    per class in the class's colour with the page's hover data ([sample id, cluster] per point) and its
    hover template, the page's title, axis titles and template, ``fig.to_json()``. Like the page, above
    ``cap`` points a sample of ``cap`` is drawn. In the baseline's favour, the class labels are read and
    the sample is drawn once, outside the timing (they do not change with the epoch), the sample is a
    plain uniform one rather than stratified, and there are no widgets, score panel, hover cards or downloads.
    """
    from app.charts.base import category_colours

    paths = [store.analysis.path(RUN_ID, "points", LAYER, e) for e in EPOCHS]
    labels = pq.read_table(store.samples_path(RUN_ID), columns=["label_name"])["label_name"].to_numpy(zero_copy_only=False)
    keep = np.sort(np.random.default_rng(0).choice(n, cap, replace=False)) if n > cap else np.arange(n)
    labels = labels[keep]
    colours = category_colours([str(d) for d in range(CLASSES)])
    masks = {name: labels == name for name in colours}
    current = [0]

    def draw() -> str:
        current[0] = 1 - current[0]
        t = pq.read_table(paths[current[0]], columns=["sample_id", "umap_x", "umap_y", "cluster"])
        ids, x, y, cluster = (t[c].to_numpy()[keep] for c in ("sample_id", "umap_x", "umap_y", "cluster"))
        fig = go.Figure(  # the white template comes as the default (see main), as Plotly applies it: not validated again
            [go.Scattergl(x=x[m], y=y[m], mode="markers", name=name, customdata=np.column_stack([ids[m], cluster[m]]),
                          hovertemplate="<b>%{fullData.name}</b><br>sample %{customdata[0]} · cluster %{customdata[1]}",
                          marker={"size": 6, "color": colours[name], "opacity": 0.8})
             for name, m in masks.items()],
            layout={"title": {"text": f"{RUN_ID} · {LAYER} · epoch {EPOCHS[current[0]]} · UMAP"}, "height": 560,
                    "xaxis": {"title": {"text": "UMAP 1 (a.u.)"}}, "yaxis": {"title": {"text": "UMAP 2 (a.u.)"}}})
        return fig.to_json()

    return draw


def plain_page(store: api.RunStore) -> Callable[[], None]:
    """The least a Streamlit page can do for an epoch switch: a slider, then the minimal work handed to
    ``st.plotly_chart`` (which validates and serialises the figure once more), through AppTest."""
    from streamlit.testing.v1 import AppTest

    paths = {e: str(store.analysis.path(RUN_ID, "points", LAYER, e)) for e in EPOCHS}
    at = AppTest.from_string(
        "import plotly.graph_objects as go, pyarrow.parquet as pq, streamlit as st\n"
        f"paths = {paths!r}\n"
        f"epoch = st.select_slider('Epoch', options={list(EPOCHS)!r}, key='e')\n"
        "t = pq.read_table(paths[epoch], columns=['umap_x', 'umap_y'])\n"
        "st.plotly_chart(go.Figure(go.Scattergl(x=t['umap_x'].to_numpy(), y=t['umap_y'].to_numpy(), mode='markers')))\n",
        default_timeout=600)
    at.run()
    current = [EPOCHS[0]]

    def rerun() -> None:
        current[0] = EPOCHS[1] if current[0] == EPOCHS[0] else EPOCHS[0]
        at.select_slider(key="e").set_value(current[0]).run()

    return rerun


def apptest_floor() -> Callable[[], None]:
    """A rerun of a one-widget script through AppTest: the harness's own cost, part of every page switch."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string("import streamlit as st\nst.select_slider('Epoch', options=[1, 2], key='e')\n")
    at.run()
    current = [1]

    def rerun() -> None:
        current[0] = 3 - current[0]
        at.select_slider(key="e").set_value(current[0]).run()

    return rerun


def recompile_cost() -> Callable[[], None]:
    """Compiling main.py and the Embeddings page (with Streamlit's "magic" rewrite): AppTest gives every
    rerun a new script cache, so it pays this on each switch; a real server compiles them once."""
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache

    scripts = [str(ROOT / "app" / "main.py"), str(ROOT / "app" / "views" / "embeddings.py")]

    def compile_both() -> None:
        cache = ScriptCache()
        for path in scripts:
            cache.get_bytecode(path)

    return compile_both


# ---------------------------------------------------------------- main


def measure(n: int, args: argparse.Namespace, tmp: Path, deadline: float) -> dict[str, float | int]:
    store = build_store(tmp / f"n{n}", n, args.seed)
    switch, forget = page_switcher(store)
    draw = minimal_drawer(store)
    same_figure = same_figure_drawer(store, n)
    for _ in range(2):  # warm-up: both epochs viewed (and cached), every code path run
        timed(switch), timed(draw), timed(same_figure)
    spec = switch()
    assert f"epoch {EPOCHS[1]}" in spec or f"epoch {EPOCHS[0]}" in spec, "the page did not draw the embedding"
    page, same, disturbed = paired(switch, same_figure, repeats=args.repeats, max_wait=args.max_wait,
                                   retries=args.retries, deadline=deadline)
    page_b, minimal, disturbed_b = paired(switch, draw, repeats=args.repeats, max_wait=args.max_wait,
                                          retries=args.retries, deadline=deadline)
    page += page_b

    def first_view() -> str:
        forget()
        return switch()

    cold = [timed(first_view) for _ in range(max(3, args.repeats // 3))]
    floor = apptest_floor()
    floor()
    bare = [timed(floor) for _ in range(args.repeats)]
    compile_both = recompile_cost()
    compiles = [timed(compile_both) for _ in range(args.repeats)]
    plain = plain_page(store)
    plain()
    plains = [timed(plain) for _ in range(args.repeats)]
    m_page, m_same, m_min, m_cold, m_floor, m_compile, m_plain = (
        median([t.wall for t in ts]) for ts in (page, same, minimal, cold, bare, compiles, plains))
    return {"n": n, "page": m_page, "same": m_same, "minimal": m_min, "cold": m_cold, "floor": m_floor,
            "compile": m_compile, "plain": m_plain, "disturbed": int(disturbed) + int(disturbed_b)}


def main(argv: list[str] | None = None) -> list[float]:
    started = time.monotonic()
    args = parse_args(argv)
    import plotly
    import streamlit

    print("ClusterScope benchmark: Embeddings page epoch switch vs minimal work (pyarrow read + Plotly figure + JSON)")
    print(f"python {sys.version.split()[0]}, streamlit {streamlit.__version__}, plotly {plotly.__version__}, "
          f"pandas {pd.__version__}, pyarrow {pa.__version__}, {os.cpu_count()} CPUs")
    print(f"sizes {args.sizes}, {args.repeats} timed switches per side; page defaults (max points drawn 10,000)")
    # Every figure of this process gets the page's white template the cheap way, as Plotly applies its default
    # template (an explicit template="plotly_white" would add ~10 ms of re-validation to the baselines).
    pio.templates.default = "plotly_white"
    tmp = Path(tempfile.mkdtemp(prefix="clusterscope-bench-dash-"))
    results = []
    try:
        for n in args.sizes:
            results.append(measure(n, args, tmp, started + args.budget))
            r = results[-1]
            print(f"  {n:,} points: page {r['page'] * 1e3:.0f} ms, same figure {r['same'] * 1e3:.0f} ms, "
                  f"bare trace {r['minimal'] * 1e3:.0f} ms", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(table(["points", "page switch ms", "same figure ms", "page/same", "first view/same", "bare trace ms",
                 "page/bare", "AppTest floor ms", "recompile ms", "plain page ms", "page/plain"],
                [[f"{r['n']:,}", f"{r['page'] * 1e3:.1f}", f"{r['same'] * 1e3:.1f}", f"{r['page'] / r['same']:.2f}",
                  f"{r['cold'] / r['same']:.2f}", f"{r['minimal'] * 1e3:.1f}", f"{r['page'] / r['minimal']:.2f}",
                  f"{r['floor'] * 1e3:.1f}", f"{r['compile'] * 1e3:.1f}", f"{r['plain'] * 1e3:.1f}",
                  f"{r['page'] / r['plain']:.2f}"] for r in results]))
    print("(medians. 'same figure': the page's figure (one Scattergl per class, hover data, titles) built directly with "
          "Plotly and serialised, after a pyarrow read. 'first view': the page's caches emptied before the switch. "
          "'bare trace': pyarrow read, one x/y Scattergl, to_json. 'AppTest floor': a rerun of a one-slider script "
          "through AppTest. 'recompile': compiling main.py and the page, which AppTest repeats on every rerun and a "
          "real server does once. 'plain page': a one-slider script that does the bare-trace work and hands the "
          f"figure to st.plotly_chart, through AppTest. Wall time of the benchmark {time.monotonic() - started:.0f} s.)")
    disturbed = sum(int(r["disturbed"]) for r in results)
    if disturbed:
        print(contention_note(disturbed, args.max_wait).split(" Rerun")[0] + " Rerun on a quiet machine.")
    ratios = []
    for r in results:
        ratios.append(r["page"] / r["same"])
        print(f"RATIO epoch switch/same figure built directly at {r['n']} points = {ratios[-1]:.2f} (target <= {TARGET})")
        print(f"RATIO epoch switch/bare trace at {r['n']} points = {r['page'] / r['minimal']:.2f} "
              "(one x/y trace, no colours or hover data: less than the page shows)")
        print(f"RATIO epoch switch/plain page at {r['n']} points = {r['page'] / r['plain']:.2f} "
              "(the bare-trace work as a one-slider Streamlit page through AppTest)")
        print(f"ABS epoch switch at {r['n']} points = {r['page'] * 1e3:.0f} ms (issue: under 300 ms server side)")
    return ratios


if __name__ == "__main__":
    main()
