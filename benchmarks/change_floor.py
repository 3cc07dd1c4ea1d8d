"""The noise floor of the neighbourhood change (SCIENCE.md 7, ``analysis.change_space``) on a synthetic snapshot.

From 4,096 embedded samples on, the analysis's neighbour graph is NN-descent's (approximate). The change with
``change_space = "pca"`` compares two such graphs, so a sample whose neighbourhood did not change can still get a
non-zero change. This script measures, on one synthetic snapshot (clustered Gaussian pre-activations, preprocessed
and reduced to PCA components as the analysis does):

* recall: the share of the exact k nearest neighbours in the PCA space (``changes.knn_indices``) that the
  graph's rows hold (``changes.graph_neighbours``);
* floor: the change between the same snapshot analysed with two seeds (graph of seed 0 against graph of seed 1),
  where the true change is 0; and between the exact neighbours of the two (0: the PCA is deterministic here);
* the time of the graph and of each exact search in the PCA space.

    nice -n 10 python benchmarks/change_floor.py            # 10,000 x 512, about a minute on 2 cores
    nice -n 10 python benchmarks/change_floor.py --latent 16   # a representation of intrinsic dimension 16
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def synthetic(n: int, units: int, clusters: int, seed: int, latent: int = 0) -> np.ndarray:
    """Pre-activations (n, units), float32: ``clusters`` Gaussian blobs (centre scale 1, noise 1) in every unit, or
    with ``latent`` > 0 the same blobs in a ``latent``-dimensional space mapped linearly onto the units (plus noise
    0.05): a representation of low intrinsic dimension, as trained layers tend to have (TwoNN 10-30)."""
    rng = np.random.default_rng(seed)
    dims = latent or units
    centres = rng.normal(size=(clusters, dims))
    z = centres[rng.integers(0, clusters, n)] + rng.normal(size=(n, dims))
    if latent:
        z = z @ rng.normal(size=(latent, units)) / np.sqrt(latent) + 0.05 * rng.normal(size=(n, units))
    return z.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--latent", type=int, default=0, help="intrinsic dimension (0: the blobs fill every unit)")
    args = parser.parse_args()

    from sklearn.neighbors import NearestNeighbors

    from backend.analysis.changes import graph_neighbours, knn_indices, neighbourhood_change
    from backend.analysis.embed import knn_graph, pca_reduce
    from backend.analysis.snapshot import representation
    from backend.config import AnalysisConfig

    a = AnalysisConfig()
    k = a.n_neighbors - 1
    values = synthetic(args.samples, args.units, args.clusters, seed=0, latent=args.latent)
    print(f"{args.samples:,} x {args.units} synthetic snapshot, {args.clusters} blobs, latent {args.latent or args.units}")
    graphs, exact, pcas = [], [], []
    for seed in (0, 1):
        x = representation(values, a)
        p = pca_reduce(x, n_components=a.pca_components, seed=seed)
        pcas.append(p)
        start = time.perf_counter()
        graph = knn_graph(p, n_neighbors=a.n_neighbors, metric=a.metric, seed=seed)
        t_graph = time.perf_counter() - start
        graphs.append(graph_neighbours(graph.indices))
        start = time.perf_counter()
        exact.append(knn_indices(p, k=k, metric=a.metric))
        t_exact = time.perf_counter() - start
        print(f"seed {seed}: NN-descent graph {t_graph:.2f} s, exact search (changes.knn_indices) {t_exact:.2f} s")
    start = time.perf_counter()
    NearestNeighbors(n_neighbors=k + 1, metric=a.metric, algorithm="brute").fit(pcas[0]).kneighbors(pcas[0])
    print(f"exact search (sklearn NearestNeighbors, brute) {time.perf_counter() - start:.2f} s")
    print(f"PCA identical for both seeds: {np.array_equal(pcas[0], pcas[1])}")
    unfilled = int((graphs[0] < 0).sum())
    hits = [(np.sort(g, axis=1)[:, :, None] == e[:, None, :]).any(axis=2).sum(axis=1) for g, e in zip(graphs, exact, strict=True)]
    recall = [float(h.mean() / k) for h in hits]
    print(f"recall of the graph against exact k={k} in the PCA space: seed 0 {recall[0]:.4f}, seed 1 {recall[1]:.4f} "
          f"({unfilled} unfilled entries)")
    for name, (before, after) in {"graphs (change_space=pca, two seeds)": graphs, "exact (two seeds)": exact}.items():
        c = neighbourhood_change(before, after)
        print(f"floor, {name}: mean {np.nanmean(c):.4f}, median {np.nanmedian(c):.4f}, p90 {np.nanpercentile(c, 90):.4f}, "
              f"max {np.nanmax(c):.4f}, share > 0: {np.mean(c > 0):.3f}")
    c = neighbourhood_change(graphs[0], exact[0])
    print(f"graph (seed 0) against exact: mean change {np.nanmean(c):.4f}")


if __name__ == "__main__":
    main()
