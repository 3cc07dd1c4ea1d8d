"""Do the geometry measures (SCIENCE.md 7) behave on the demo's digits run? Prints, per layer: the epoch from
which its CKA with the last epoch stays >= 0.9 (lower layers should settle first), class NC1 at the first and
last epochs (should fall with training, and with depth), and k-NN accuracy at the last epoch (should rise
with depth). Trains the demo-digits-base config (backend/jobs/demo.py) into a temporary store (or --store),
analyses it, and reads the tables back: ``python benchmarks/geometry_demo.py`` (~3-6 min on 2 busy cores).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from backend import api
from backend.config import load_config
from backend.jobs.demo import DIGITS_BASE


def settled_epoch(rows: pd.DataFrame, level: float) -> int | None:
    """The first epoch from which every later CKA with the last epoch is >= ``level``."""
    rows = rows.sort_values("epoch")
    ok = (rows["cka"] >= level).to_numpy()
    for i in range(len(ok)):
        if ok[i:].all():
            return int(rows["epoch"].iloc[i])
    return None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", type=Path, default=None, help="store folder (default: a temporary one)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (the demo's 30)")
    args = p.parse_args(argv)
    store = api.open_store(args.store or tempfile.mkdtemp(prefix="clusterscope-geometry-"))
    run_id = "demo-digits-base"
    if not store.exists(run_id):
        cfg = load_config(None, (*DIGITS_BASE, f'run_id="{run_id}"', f"train.epochs={args.epochs}", "analysis.auto=false"))
        api.train(cfg, store, progress=False)
    report = api.analyze(store, run_id)
    print(report.summary())
    geo = api.layer_geometry(store, run_id)
    to_last = api.cka_to_last(api.read_cka(store, run_id))
    layers = geo.sort_values("depth").drop_duplicates("layer")["layer"].tolist()
    first, last = int(geo["epoch"].min()), int(geo["epoch"].max())
    rows = []
    for layer in layers:
        g = geo[geo["layer"] == layer].set_index("epoch")
        t = to_last[to_last["layer"] == layer]
        rows.append({"layer": layer, "settled (CKA>=0.9)": settled_epoch(t, 0.9), "settled (CKA>=0.99)": settled_epoch(t, 0.99),
                     f"NC1 class @{first}": g.at[first, "nc1_class"], f"NC1 class @{last}": g.at[last, "nc1_class"],
                     f"NC1 subclass @{last}": g.at[last, "nc1_subclass"], f"kNN class @{last}": g.at[last, "knn_class"],
                     f"kNN subclass @{last}": g.at[last, "knn_subclass"], f"probe class @{last}": g.at[last, "probe_class"],
                     f"TwoNN @{last}": g.at[last, "twonn_id"]})
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.precision", 3):
        print(pd.DataFrame(rows).to_string(index=False))
        print("\nCKA with the last epoch, per layer (rows) and epoch (columns):")
        print(to_last.pivot_table(index="layer", columns="epoch", values="cka").reindex(layers).to_string())
    print(f"test accuracy {(api.read_run(store, run_id).get('final') or {}).get('test_accuracy')}")


if __name__ == "__main__":
    main()
