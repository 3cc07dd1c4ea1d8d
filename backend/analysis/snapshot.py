"""Everything the dashboard shows for one (layer, epoch) snapshot, computed from arrays.

Pure: the pipeline reads the snapshot and the labels from the store, calls
:func:`analyze_snapshot`, and writes the result back. Steps (SCIENCE.md 3.5 [P] unless noted):

1. the layer's post-ReLU values (``analysis.input``), preprocessed as for c4 (3.1);
2. PCA to 50 dimensions; its first two components are the PCA layout;
3. one cosine k-NN graph, shared by a 2-D UMAP (display; initialised from the previous epoch's
   layout and Procrustes-aligned to it in aligned mode) and a 10-D UMAP (clustering;
   ``analysis.cluster_epochs``), the two fits side by side in two threads; its rows (each sample's
   neighbours) are returned too, for the neighbourhood change between epochs (SCIENCE.md 7);
4. HDBSCAN on the 10-D embedding, scored against classes and subclasses on the training samples;
5. trustworthiness of both 2-D layouts;
6. per-unit scores (c1, c3, high-activation purity, WTM) and per-class statistics (3.1, 3.4);
7. the layer-wise c1..c4 (3.1, "layer-wise variants") and the WTM fraction (3.4 [P]);
8. representation geometry (SCIENCE.md 7; ``analysis.geometry``): neural collapse, k-NN accuracy and
   TwoNN from step 3's neighbour graph, a linear probe on step 2's PCA (:mod:`backend.analysis.geometry`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backend.analysis import cluster, embed, geometry, measures, neurons
from backend.analysis.changes import graph_neighbours
from backend.analysis.labels import Labels
from backend.config import AnalysisConfig


class AnalysisError(ValueError):
    """This snapshot cannot be analysed (the message says why and what to do)."""


@dataclass(frozen=True)
class SnapshotResult:
    points: pd.DataFrame  # sample_id, umap_x, umap_y, pca_x, pca_y, cluster, cluster_probability
    units: pd.DataFrame  # one row per unit (schema.ANALYSIS_SCHEMAS["units"])
    unit_stats: pd.DataFrame  # unit, level, label, mean, std, n
    layer: dict[str, float]  # one row of the layers table
    groups: pd.DataFrame  # kind, group, value
    layout: np.ndarray  # (n_points, 2) float32, the (aligned) UMAP layout, for the next epoch's init
    neighbours: pd.DataFrame  # sample_id, neighbours: step 3's graph without the samples themselves (the changes reuse it)
    nc3_reason: str = ""  # why NC3 is NaN although the classifier's weights were given (geometry.nc3_problem)


def check_snapshot(values: np.ndarray, *, n_neighbors: int) -> None:
    """Raise :class:`AnalysisError` for snapshots no embedding can be made of."""
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).any(axis=0).sum())
        raise AnalysisError(f"{bad} unit(s) hold NaN or infinite values: training diverged at or before this epoch "
                            "(lower train.lr, or analyse earlier epochs).")
    if values.shape[1] < 2:
        raise AnalysisError(f"the layer has {values.shape[1]} unit; embeddings and clusters need at least 2 units.")
    if values.shape[0] <= n_neighbors:
        raise AnalysisError(f"only {values.shape[0]} probe samples, not more than analysis.n_neighbors={n_neighbors}; "
                            "lower analysis.n_neighbors or record more probe samples.")


def representation(values: np.ndarray, a: AnalysisConfig) -> np.ndarray:
    """The matrix that is embedded and clustered: (preprocessed) post-ReLU or pre-activations."""
    x = np.maximum(values, 0.0) if a.input == "post_relu" else values
    if not a.preprocess:
        return x.astype(np.float32)
    z = measures.c4_preprocess(x)
    if z.shape[1] < 2:
        raise AnalysisError(f"only {z.shape[1]} unit(s) of the layer are alive (active on some sample); "
                            "nothing to embed. Set analysis.preprocess=false to embed the raw values.")
    return z.astype(np.float32)


def cluster_epochs(a: AnalysisConfig) -> int:
    """Layout epochs of the 10-D clustering fit: ``analysis.cluster_epochs``, or the display fit's."""
    return a.cluster_epochs or a.umap_epochs


GeometryOf = Callable[[np.ndarray, embed.KnnGraph], dict[str, float]]


def embed_and_cluster(x: np.ndarray, labels: Labels, a: AnalysisConfig, init: np.ndarray | None,
                      geometry_of: GeometryOf | None = None) -> tuple[pd.DataFrame, dict[str, float], np.ndarray, np.ndarray]:
    """Steps 2-5: layouts, clusters, their scores; returns (points without ids, layer row, layout, neighbours):
    neighbours (n, n_neighbors - 1) the rows of each sample's neighbours in step 3's graph, itself excluded
    (:func:`backend.analysis.changes.graph_neighbours`), for the neighbourhood change (SCIENCE.md 7).

    ``geometry_of(pca, graph)`` (step 8), when given, adds its values to the row: it reuses the PCA and
    the neighbour graph instead of computing its own.
    """
    p = embed.pca_reduce(x, n_components=a.pca_components, seed=a.seed)
    graph = embed.knn_graph(p, n_neighbors=a.n_neighbors, metric=a.metric, seed=a.seed)
    use_init = a.aligned and init is not None and init.shape == (x.shape[0], 2)
    fits = [{"n_components": 2, "min_dist": a.min_dist, "init": init if use_init else "spectral", "n_epochs": a.umap_epochs}]
    if a.cluster_space == "umap":  # the costlier 10-D fit first: it runs beside the 2-D one (embed.umap_embed_many)
        fits.insert(0, {"n_components": a.cluster_dims, "min_dist": 0.0, "n_epochs": cluster_epochs(a)})
    *spaces, layout = embed.umap_embed_many(p, graph, fits, metric=a.metric, seed=a.seed)
    space = spaces[0] if spaces else p[:, : a.cluster_dims]
    if use_init and init is not None:
        layout = embed.align_to(init, layout)
    groups_for_size = labels.fine[labels.train] if labels.train.any() else labels.fine
    mcs = a.min_cluster_size or cluster.auto_min_cluster_size(groups_for_size)
    ids, prob = cluster.hdbscan_labels(space, min_cluster_size=mcs, min_samples=a.min_samples)
    t = labels.train if labels.train.any() else np.ones_like(labels.train)
    scores = cluster.cluster_scores(ids[t], classes=labels.classes[t],
                                    subclass=labels.subclass[t] if labels.subclass is not None else None)
    pca2 = p[:, :2] if p.shape[1] >= 2 else np.column_stack([p[:, 0], np.zeros(len(p), np.float32)])
    trust = {
        "trust_umap": embed.trustworthiness(p, layout, k=a.trust_k, metric=a.metric, max_samples=a.trust_samples, seed=a.seed),
        "trust_pca": embed.trustworthiness(p, pca2, k=a.trust_k, metric=a.metric, max_samples=a.trust_samples, seed=a.seed),
    }
    points = pd.DataFrame({"umap_x": layout[:, 0], "umap_y": layout[:, 1], "pca_x": pca2[:, 0], "pca_y": pca2[:, 1],
                           "cluster": ids, "cluster_probability": prob})
    row = {"min_cluster_size": mcs, **scores.as_dict(), **trust}
    row |= geometry_of(p, graph) if geometry_of else dict.fromkeys(geometry.GEOMETRY_COLUMNS, np.nan)
    return points, row, layout, graph_neighbours(graph.indices)


def layer_measures(pre: np.ndarray, labels: Labels, a: AnalysisConfig) -> tuple[dict[str, float], pd.DataFrame]:
    """Step 7 on the training samples: layer-wise c1..c4 and the per-group values behind c2, c4."""
    t = labels.train if labels.train.any() else np.ones_like(labels.train)
    pre_t, classes = pre[t], labels.classes[t]
    row: dict[str, float] = {"c1": np.nan, "c2": np.nan}
    groups = []
    if labels.intraclass:
        sub, sup = labels.subclass[t], labels.superclass[t]  # type: ignore[index]
        row["c1"] = measures.layer_c1(pre_t, subclass=sub, superclass=sup, k=a.layer_top_k)
        sil = measures.subclass_silhouettes(np.maximum(pre_t, 0), subclass=sub, superclass=sup, metric="cosine",
                                            max_per_subclass=a.c4_max_per_class, seed=a.seed)
        row["c2"] = measures.layer_c2(sil)
        groups += [("silhouette", int(g), float(v)) for g, v in zip(np.unique(sub), sil, strict=True)]
        # c2's noise floor (SCIENCE.md 3.1, "Invariances"): the same silhouettes with shuffled subclasses
        shuffled = measures.shuffle_within(sub, sup, seed=a.seed)
        floor = measures.subclass_silhouettes(np.maximum(pre_t, 0), subclass=shuffled, superclass=sup, metric="cosine",
                                              max_per_subclass=a.c4_max_per_class, seed=a.seed)
        groups += [("silhouette_shuffled", int(g), float(v)) for g, v in zip(np.unique(sub), floor, strict=True)]
    row["c3"] = measures.layer_c3(pre_t, classes=classes, k=a.layer_top_k)
    ratios = measures.c4_layer_ratios(pre_t, classes=classes, max_per_class=a.c4_max_per_class,
                                      upper_triangle=a.c4_upper_triangle, seed=a.seed)
    row["c4"] = measures.layer_c4(ratios)
    groups += [("c4_ratio", int(g), float(v)) for g, v in zip(np.unique(classes), ratios, strict=True)]
    return row, pd.DataFrame(groups, columns=["kind", "group", "value"])


def unit_tables(pre: np.ndarray, labels: Labels, a: AnalysisConfig) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Step 6 on the training samples: per-unit scores, per-class statistics, WTM fraction.

    The subclass scores (c1, subclass concentration, WTM) only when ``labels.intraclass``; the
    per-subclass statistics (descriptive, for the drill-down) whenever the data have superclasses.
    """
    t = labels.train if labels.train.any() else np.ones_like(labels.train)
    pre_t = pre[t]
    sub = labels.subclass[t] if labels.intraclass else None  # type: ignore[index]
    sup = labels.superclass[t] if labels.intraclass else None  # type: ignore[index]
    units = neurons.unit_scores(pre_t, classes=labels.classes[t], subclass=sub, superclass=sup, quantile=a.hap_quantile)
    wtm_fraction = np.nan
    units["wtm"] = np.nan
    if labels.intraclass:
        assert sub is not None and sup is not None
        wtm = neurons.wtm_index(pre_t, cluster=sub, cluster_class=sup)
        units["wtm"] = wtm
        wtm_fraction = neurons.wtm_fraction(wtm)
    stats = [neurons.class_stats(pre_t, labels=labels.classes[t]).assign(level="class")]
    if labels.hierarchical:
        stats.append(neurons.class_stats(pre_t, labels=labels.fine[t]).assign(level="subclass"))
    return units, pd.concat(stats, ignore_index=True), wtm_fraction


def snapshot_geometry_of(values: np.ndarray, labels: Labels, a: AnalysisConfig, predictions: np.ndarray | None,
                         classifier: np.ndarray | None = None) -> GeometryOf | None:
    """Step 8 as :func:`embed_and_cluster` calls it (None when ``analysis.geometry`` is false): X as
    SCIENCE.md 7 defines it (the layer's post-ReLU values unless ``analysis.input = "pre"``); NC3 against
    ``classifier`` (the weights of the classifier this layer feeds) when given."""
    if not a.geometry:
        return None
    raw = np.maximum(values, 0.0) if a.input == "post_relu" else values
    return lambda p, graph: geometry.snapshot_geometry(
        raw, p, graph.indices, graph.distances, labels=labels, predictions=predictions, metric=a.metric,
        probe_space=a.probe_space, seed=a.seed, classifier=classifier)


def analyze_snapshot(values: np.ndarray, *, sample_ids: np.ndarray, labels: Labels, params: AnalysisConfig,
                     depth: int, init: np.ndarray | None = None, predictions: np.ndarray | None = None,
                     classifier: np.ndarray | None = None) -> SnapshotResult:
    """Analyse one snapshot. values : (n_samples, n_units) pre-activations, rows aligned with ``labels``;
    predictions : (n_samples,) the network's predicted classes at this epoch (for NC4; None: NaN);
    classifier : (n_classes, n_units) the weights of the linear classifier this layer feeds (for NC3; None: NaN)."""
    start = time.perf_counter()
    check_snapshot(values, n_neighbors=params.n_neighbors)
    x = representation(values, params)
    # The measures do not depend on the layouts: they run in a thread beside the UMAP fits, whose threads
    # release the GIL (embed.umap_embed_many) and leave a core idle once the shorter fit ends. Pure
    # functions of their inputs, so the results equal those of a serial run. umap's warnings are silenced before
    # the thread starts: a catch_warnings of the measures' (scikit-learn's check_array enters one) that began
    # before umap_embed_many's would, on leaving, restore the filters without it while a fit warns.
    with embed.quiet_umap(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="measures") as pool:
        measures_job = pool.submit(lambda: (layer_measures(values, labels, params), unit_tables(values, labels, params)))
        geometry_of = snapshot_geometry_of(values, labels, params, predictions, classifier)
        points, row, layout, near = embed_and_cluster(x, labels, params, init, geometry_of)
        (measures_row, groups), (units, stats, wtm_fraction) = measures_job.result()
    ids = np.asarray(sample_ids, dtype=np.int64)
    points.insert(0, "sample_id", ids)
    neighbours = pd.DataFrame({"sample_id": ids, "neighbours": list(np.where(near >= 0, ids[near], -1))})
    row |= measures_row | {"wtm_fraction": wtm_fraction, "depth": depth, "n_units": values.shape[1],
                           "n_alive": int((~measures.dead_units(values)).sum()), "n_points": len(points)}
    row["seconds"] = time.perf_counter() - start
    return SnapshotResult(points, units, stats, row, groups, layout, neighbours, _nc3_reason(values, labels, params, classifier))


def _nc3_reason(values: np.ndarray, labels: Labels, a: AnalysisConfig, classifier: np.ndarray | None) -> str:
    """Why step 8's NC3 is NaN with ``classifier`` given (on X of the training samples, as snapshot_geometry_of)."""
    if classifier is None or not a.geometry:
        return ""
    t = labels.train if labels.train.any() else np.ones_like(labels.train)
    raw = np.maximum(values[t], 0.0) if a.input == "post_relu" else values[t]
    return geometry.nc3_problem(classifier, raw, labels.classes[t])
