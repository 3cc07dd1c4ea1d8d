"""Layer rotation (SCIENCE.md 3.3): cosine distance of each layer's kernel to its initialisation.

A state is a mapping from parameter name to array, in a ``state_dict``'s order (convert tensors
with ``.numpy()`` first; nothing here imports torch).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from backend.errors import expected

SUFFIX = ".weight"


def kernel_names(state: Mapping[str, ArrayLike]) -> list[str]:
    """Names of the conv and linear kernels of ``state``, in its order (SCIENCE.md 3.3).

    Kernels are ``*.weight`` parameters with ndim >= 2. This leaves out biases, batch-norm gamma
    (1-D ``*.weight``, which the PyTorch helper wrongly includes [C->P]), running statistics and
    ``num_batches_tracked``.
    """
    return [name for name, w in state.items() if (name == "weight" or name.endswith(SUFFIX)) and np.ndim(w) >= 2]


def _cosine_distance(a: ArrayLike, b: ArrayLike) -> float:
    u, v = np.ravel(np.asarray(a, dtype=np.float64)), np.ravel(np.asarray(b, dtype=np.float64))
    if u.shape != v.shape:
        raise ValueError(expected("wt", expected=f"an array with as many entries as w0 ({u.size})", got=v.size))
    norms = float(u @ u) * float(v @ v)
    if norms == 0:
        return float("nan")
    return float(np.clip(1.0 - float(u @ v) / np.sqrt(norms), 0.0, 2.0))


def layer_rotation(w0: ArrayLike, wt: ArrayLike) -> float:
    """rot = 1 - <w0, wt> / (|w0| |wt|) of the flattened kernels (SCIENCE.md 3.3).

    w0, wt : arrays of the same size (any shape). Range 0..2: 0 = same direction, 1 = orthogonal,
    2 = opposite. NaN when either is the zero vector.
    """
    return _cosine_distance(w0, wt)


def rotation_rate(w_prev: ArrayLike, w_next: ArrayLike) -> float:
    """Per-step rotation rate tan(theta) = sqrt(1 / (1 - d)^2 - 1), d = cosine distance (SCIENCE.md 3.3 [C]).

    w_prev, w_next : consecutive iterates of one kernel. inf for orthogonal iterates (d = 1); like the
    reference formula it gives |tan(theta)| for d > 1; NaN for a zero vector.
    """
    d = _cosine_distance(w_prev, w_next)
    if np.isnan(d) or d == 1.0:
        return float("nan") if np.isnan(d) else float("inf")
    return float(np.sqrt(max(1.0 / (1.0 - d) ** 2 - 1.0, 0.0)))


def rotation_table(initial: Mapping[str, ArrayLike], states: Mapping[int, Mapping[str, ArrayLike]]) -> pd.DataFrame:
    """Layer-rotation curves (SCIENCE.md 3.3): one row per (epoch, kernel).

    initial : the state at initialisation (w^0); states : epoch -> state. Kernels are
    :func:`kernel_names` of ``initial``; each state must hold them all. Returns columns epoch (int),
    layer (name without ".weight"), depth (0-based index in kernel order), rotation (float), sorted
    by epoch then depth.
    """
    names = kernel_names(initial)
    rows = []
    for epoch in sorted(states):
        state = states[epoch]
        missing = [n for n in names if n not in state]
        if missing:
            raise ValueError(expected(f"states[{epoch}]", expected="a state with every kernel of initial", got=f"missing {missing}"))
        for depth, name in enumerate(names):
            layer = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
            rows.append((int(epoch), layer, depth, layer_rotation(initial[name], state[name])))
    df = pd.DataFrame(rows, columns=["epoch", "layer", "depth", "rotation"])
    return df.astype({"epoch": np.int64, "layer": "str", "depth": np.int64, "rotation": np.float64})
