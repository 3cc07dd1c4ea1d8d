"""Column names, pyarrow schemas and the schema version of the run store (docs/store.md).

The run store is a public format: users open it with pandas or DuckDB. Change it only with a
bump of :data:`SCHEMA_VERSION` and a converter for the previous version in ``backend/store/runs.py``.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 4
# Version 4: NC3 in analysis/layers (nc3_class, nc3_reason) and the neighbours table; version-3 files read as the
# Versions table of docs/store.md says.
# Version 3: see the Versions table of docs/store.md (each change names how a version-2 file reads).
# Version 2 adds c1_shuffled, c2_shuffled, n_units to network.parquet (version-1 files read as NaN) and
# analysis/baselines.parquet (absent in version 1: the values are NaN),
# and saves checkpoints/epoch=0000.pt (the initial weights) whenever checkpoints are saved.

# Key-value metadata keys carried by every Parquet file of the store.
META_PREFIX = "clusterscope."
META_SCHEMA_VERSION = META_PREFIX + "schema_version"
META_RUN_ID = META_PREFIX + "run_id"
META_KIND = META_PREFIX + "kind"  # metrics | samples | activations
META_LAYER = META_PREFIX + "layer"
META_EPOCH = META_PREFIX + "epoch"
META_REDUCTION = META_PREFIX + "reduction"  # max | mean (global pooling of conv channels)

RUN_STATUSES = ("running", "complete", "interrupted", "cancelled", "failed")
SPLITS = ("train", "test")

METRICS_SCHEMA = pa.schema(
    [
        pa.field("epoch", pa.int32(), nullable=False),
        pa.field("split", pa.string(), nullable=False),  # 'train' | 'test'
        pa.field("loss", pa.float64()),
        pa.field("accuracy", pa.float64()),  # fraction in [0, 1]
        pa.field("lr", pa.float64()),  # learning rate used during this epoch (epoch 0: the initial one)
    ]
)

SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),  # fine class, e.g. the digit
        pa.field("label_name", pa.string(), nullable=False),
        pa.field("superclass", pa.int32()),  # null when the data set has no superclasses
        pa.field("superclass_name", pa.string()),
        pa.field("thumbnail", pa.binary()),  # PNG bytes
        # version 3: the sample's file, where the data set names one (image folders: the path under the data
        # root; CIFAR's python version: its `filenames` entry); null otherwise. Version-2 files read as null.
        pa.field("file_name", pa.string()),
    ]
)

SAMPLE_ID = "sample_id"
FILE_NAME = "file_name"
SAMPLES_ADDED_IN_3 = pa.schema([SAMPLES_SCHEMA.field(FILE_NAME)])  # what a version-2 samples file lacks

PREDICTIONS_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("prediction", pa.int32(), nullable=False),  # argmax of the outputs, in the training target's ids
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("confidence", pa.float32()),  # softmax probability of the prediction
        pa.field("true_probability", pa.float32()),  # softmax probability of the true target (version 3; older: NaN)
    ]
)


def unit_column(index: int) -> str:
    """Column name of unit ``index`` in an activation file: u0000, u0001, ..."""
    return f"u{index:04d}"


def activation_schema(n_units: int) -> pa.Schema:
    """``sample_id`` then one float32 column per unit."""
    return pa.schema(
        [pa.field(SAMPLE_ID, pa.int64(), nullable=False)]
        + [pa.field(unit_column(i), pa.float32(), nullable=False) for i in range(n_units)]
    )


def file_metadata(kind: str, run_id: str, **extra: object) -> dict[bytes, bytes]:
    """The key-value metadata written into every Parquet file of the store."""
    meta = {META_SCHEMA_VERSION: str(SCHEMA_VERSION), META_RUN_ID: run_id, META_KIND: kind}
    meta.update({META_PREFIX + k: str(v) for k, v in extra.items()})
    return {k.encode(): v.encode() for k, v in meta.items()}


# --------------------------------------------------------------------------------------------
# analysis/ (written by `clusterscope analyze`; optional: a run without it is still a valid run)

META_PARAMS = META_PREFIX + "params"  # JSON of the analysis parameters
META_PARAMS_HASH = META_PREFIX + "params_hash"

_KEY = [pa.field("layer", pa.string(), nullable=False), pa.field("epoch", pa.int32(), nullable=False)]

ANALYSIS_SCHEMAS: dict[str, pa.Schema] = {
    # one row per embedded probe sample
    "points": pa.schema(_KEY + [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("umap_x", pa.float32()), pa.field("umap_y", pa.float32()),
        pa.field("pca_x", pa.float32()), pa.field("pca_y", pa.float32()),
        pa.field("cluster", pa.int32()),  # HDBSCAN label, -1 = noise
        pa.field("cluster_probability", pa.float32()),
    ]),
    # one row per embedded probe sample, for epochs with a previous recorded epoch (schema version 3)
    "changes": pa.schema(_KEY + [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("previous_epoch", pa.int32(), nullable=False),
        pa.field("neighbour_change", pa.float32()),  # Jaccard distance of the k nearest neighbours, SCIENCE.md 7
    ]),
    # one row per embedded probe sample (schema version 4): its neighbours in the analysis's own k-NN graph (the one
    # UMAP, k-NN accuracy and TwoNN use), which the neighbourhood change of the next epoch compares with
    "neighbours": pa.schema(_KEY + [
        pa.field("sample_id", pa.int64(), nullable=False),
        pa.field("neighbours", pa.list_(pa.int64())),  # sample ids of its n_neighbors - 1 nearest, nearest first, itself excluded
    ]),
    # one row per unit
    "units": pa.schema(_KEY + [
        pa.field("unit", pa.int32(), nullable=False),
        pa.field("dead", pa.bool_()),
        pa.field("c1", pa.float64()), pa.field("c1_subclass", pa.int32()),
        pa.field("c3", pa.float64()), pa.field("c3_class", pa.int32()),
        pa.field("hap", pa.float64()), pa.field("hap_class", pa.int32()), pa.field("hap_chance", pa.float64()),
        pa.field("hap_subclass_concentration", pa.float64()),
        pa.field("wtm", pa.float64()),
    ]),
    # one row per (unit, level, label): pre-activation mean and std per class and per subclass
    "unit_stats": pa.schema(_KEY + [
        pa.field("unit", pa.int32(), nullable=False),
        pa.field("level", pa.string(), nullable=False),  # 'class' | 'subclass'
        pa.field("label", pa.int32(), nullable=False),
        pa.field("mean", pa.float64()), pa.field("std", pa.float64()), pa.field("n", pa.int64()),
    ]),
    # one row per (layer, epoch): cluster scores, layout honesty and the layer-wise measures
    "layers": pa.schema(_KEY + [
        pa.field("depth", pa.int32()), pa.field("n_units", pa.int32()), pa.field("n_alive", pa.int32()),
        pa.field("n_points", pa.int32()), pa.field("min_cluster_size", pa.int32()),
        pa.field("n_clusters", pa.int32()), pa.field("noise_fraction", pa.float64()),
        pa.field("class_purity", pa.float64()), pa.field("subclass_purity", pa.float64()),
        pa.field("subclass_chance", pa.float64()), pa.field("fragmentation", pa.float64()),
        pa.field("ari_class", pa.float64()), pa.field("nmi_class", pa.float64()),
        pa.field("ari_subclass", pa.float64()), pa.field("nmi_subclass", pa.float64()),
        pa.field("trust_umap", pa.float64()), pa.field("trust_pca", pa.float64()),
        pa.field("c1", pa.float64()), pa.field("c2", pa.float64()), pa.field("c3", pa.float64()),
        pa.field("c4", pa.float64()), pa.field("wtm_fraction", pa.float64()),
        pa.field("seconds", pa.float64()),
        # version 3: representation geometry (SCIENCE.md 7; backend.analysis.geometry); version-2 files read NaN
        pa.field("nc1_class", pa.float64()), pa.field("nc1_subclass", pa.float64()),
        pa.field("nc2_norm_class", pa.float64()), pa.field("nc2_angle_class", pa.float64()),
        pa.field("nc2_norm_subclass", pa.float64()), pa.field("nc2_angle_subclass", pa.float64()),
        pa.field("nc4_class", pa.float64()), pa.field("nc4_subclass", pa.float64()),
        pa.field("knn_class", pa.float64()), pa.field("knn_subclass", pa.float64()),
        pa.field("probe_class", pa.float64()), pa.field("probe_subclass", pa.float64()),
        pa.field("twonn_id", pa.float64()),
        # version 4: NC3 of the layer that feeds the classifier (NaN elsewhere) and why it is NaN ("" when it is
        # not); version-3 files read both as NaN
        pa.field("nc3_class", pa.float64()), pa.field("nc3_reason", pa.string()),
    ]),
    # per-group values behind the network-level c2 and c4: silhouette per subclass, c4 ratio per class
    "groups": pa.schema(_KEY + [
        pa.field("kind", pa.string(), nullable=False),  # 'silhouette' | 'c4_ratio'
        pa.field("group", pa.int32(), nullable=False),
        pa.field("value", pa.float64()),
    ]),
}

# whole-run tables: analysis/<name>.parquet
NETWORK_SCHEMA = pa.schema([
    pa.field("epoch", pa.int32(), nullable=False),
    pa.field("c1", pa.float64()), pa.field("c2", pa.float64()), pa.field("c3", pa.float64()), pa.field("c4", pa.float64()),
    pa.field("k_c1", pa.int32()), pa.field("k_c2", pa.int32()), pa.field("k_c3", pa.int32()), pa.field("k_c4", pa.int32()),
    # version 2: noise floor of c1 and c2 (subclasses shuffled within superclasses) and the units behind c1, c3
    pa.field("c1_shuffled", pa.float64()), pa.field("c2_shuffled", pa.float64()), pa.field("n_units", pa.int32()),
])
# c0 and the sharpness baselines per checkpoint epoch (SCIENCE.md 3.1, 3.2); schema version 2.
BASELINES_SCHEMA = pa.schema([
    pa.field("epoch", pa.int32(), nullable=False),
    pa.field("c0", pa.float64()),  # median over subclasses of drop(other subclass) / drop(same subclass)
    pa.field("c0_subclasses", pa.int32()),  # subclasses with a ratio (the median's sample)
    pa.field("sigma_prime", pa.float64()),  # sigma': noise scale keeping the target accuracy, all weights, inference mode
    pa.field("sigma_prime_accuracy", pa.float64()),  # training accuracy measured at that scale
    pa.field("sigma_dprime", pa.float64()),  # sigma'': kernels only, batch norm on batch statistics
    pa.field("sigma_dprime_accuracy", pa.float64()),
    pa.field("alpha_prime", pa.float64()),  # alpha': worst-case box scale, all weights, inference mode
    pa.field("alpha_prime_accuracy", pa.float64()),
    pa.field("alpha_dprime", pa.float64()),  # alpha'': kernels only, batch statistics
    pa.field("alpha_dprime_accuracy", pa.float64()),
    pa.field("reason", pa.string()),  # why a value is NaN ("" when none is)
    pa.field("seconds", pa.float64()),
])
# Linear CKA between snapshots (SCIENCE.md 7; schema version 3): each row compares (layer_a, epoch_a) with
# (layer_b, epoch_b). kind 'layer': two layers at one epoch (epoch_a = epoch_b); kind 'epoch': one layer at
# two epochs (layer_a = layer_b). Every ordered pair, the diagonal included.
CKA_SCHEMA = pa.schema([
    pa.field("kind", pa.string(), nullable=False),  # 'layer' | 'epoch'
    pa.field("layer_a", pa.string(), nullable=False), pa.field("epoch_a", pa.int32(), nullable=False),
    pa.field("layer_b", pa.string(), nullable=False), pa.field("epoch_b", pa.int32(), nullable=False),
    pa.field("cka", pa.float64()),  # in [0, 1]; NaN when either side is constant
])
ROTATION_SCHEMA = pa.schema([
    pa.field("epoch", pa.int32(), nullable=False),
    pa.field("layer", pa.string(), nullable=False),  # kernel parameter name without ".weight"
    pa.field("depth", pa.int32()),
    pa.field("rotation", pa.float64()),  # 1 - cos(w_0, w_t), in [0, 2]
])


# --------------------------------------------------------------------------------------------
# dynamics/ (optional: written during training when [dynamics] enabled = true; SCIENCE.md 3.4)

DYNAMICS_PROBE_SCHEMA = pa.schema([
    pa.field("sample_id", pa.int64(), nullable=False),  # training samples of the dynamics probe batch
    pa.field("label", pa.int32(), nullable=False),  # fine label (SynthClust: the cluster)
    pa.field("target", pa.int32(), nullable=False),  # the training target (class or superclass)
    pa.field("difficulty", pa.float64()),  # SynthClust only: <x, opposite-class centroids> - <x, own-class ones>
])
DYNAMICS_LOSS_SCHEMA = pa.schema([
    pa.field("step", pa.int64(), nullable=False),  # optimizer steps taken before the recording
    pa.field("epoch", pa.int32(), nullable=False),  # the epoch the step belongs to (1-based)
    pa.field("sample_id", pa.int64(), nullable=False),
    pa.field("loss", pa.float32()),  # the sample's cross-entropy (nats), eval mode
])
DYNAMICS_UNITS_SCHEMA = pa.schema([
    pa.field("step", pa.int64(), nullable=False),
    pa.field("epoch", pa.int32(), nullable=False),
    pa.field("sample_id", pa.int64(), nullable=False),
    pa.field("unit", pa.int32(), nullable=False),
    pa.field("pre", pa.float32()),  # pre-activation (conv: max over H x W)
    pa.field("grad_sign", pa.int8()),  # sign of dLoss/d(activation): -1, 0 or +1
])
