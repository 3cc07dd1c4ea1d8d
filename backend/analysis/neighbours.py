"""Finding samples on the Embeddings page: search by id, label or file name, and k nearest neighbours.

Pure functions (tables and arrays in, arrays and tables out). The neighbours are computed in the layer's
full activation space (SCIENCE.md section 2: pre-activations, one row per probe sample), not in the 2-D
picture; :func:`picture_overlap` says how many of them the picture keeps, a per-sample cousin of the
trustworthiness score (SCIENCE.md 3.5 reports it for the whole layer).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from backend.errors import ClusterScopeError

SEARCH_FIELDS = ("any", "id", "label", "file")  # [P] "any": a list of integers is ids, any other text labels or file names
LABEL_COLUMNS = ("class_name", "subclass_name", "superclass_name")
FILE_COLUMN = "file_name"  # read only where a samples table has one (docs/store.md, samples.parquet)
METRICS = ("euclidean", "cosine")
_IDS = re.compile(r"^\s*\d+(\s*[,;\s]\s*\d+)*\s*$")


def parse_ids(text: str) -> list[int] | None:
    """The sample ids in ``text`` ("12", "3, 17 40"), or None when it is not a list of integers."""
    if not _IDS.match(text):
        return None
    return [int(t) for t in re.split(r"[,;\s]+", text.strip()) if t]


def search_samples(labels: pd.DataFrame, query: str, *, field: str = "any") -> np.ndarray:
    """The sample ids matching ``query``, ascending (shape (n_matches,), int64).

    labels : one row per probe sample: sample_id, class_name, subclass_name, superclass_name and, where the
        data set records one, file_name.
    field : "id" (a list of integers, exact ids), "label" (a case-insensitive substring of the class, subclass
        or superclass name), "file" (a case-insensitive substring of the file name) or "any" (ids when the
        query is a list of integers, else labels and file names). An empty query matches nothing.
    """
    if field not in SEARCH_FIELDS:
        raise ClusterScopeError(f"search field must be one of {', '.join(SEARCH_FIELDS)}; got {field!r}.")
    text = query.strip()
    ids = labels["sample_id"].to_numpy(dtype=np.int64)
    if not text:
        return np.empty(0, dtype=np.int64)
    if field in ("id", "any"):
        wanted = parse_ids(text)
        if wanted is None and field == "id":
            raise ClusterScopeError(f"a sample id search must be integers separated by commas or spaces, e.g. 12, 40; "
                                    f"got {text!r}. Choose 'Label' to search the class names.")
        if wanted is not None:
            return np.unique(ids[np.isin(ids, wanted)])
    columns = [c for c in LABEL_COLUMNS if field in ("label", "any") and c in labels]
    columns += [FILE_COLUMN] if field in ("file", "any") and FILE_COLUMN in labels else []
    hit = np.zeros(len(labels), dtype=bool)
    for col in columns:
        hit |= labels[col].astype(str).str.contains(text, case=False, regex=False).to_numpy(dtype=bool)
    return np.unique(ids[hit])


def distances(values: np.ndarray, row: int, *, metric: str) -> np.ndarray:
    """Distances (shape (n_samples,)) from ``values[row]`` to every row of ``values`` (n_samples, n_units).

    "euclidean": the L2 distance; "cosine": 1 - cos(angle), with a zero vector at distance 1 from every
    other vector (its angle is undefined; a unit that never fires gives one, SCIENCE.md 2), as scikit-learn's
    ``pairwise_distances`` (also behind c2 and c4, measures.py) gives it.
    """
    if metric not in METRICS:
        raise ClusterScopeError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}.")
    from sklearn.metrics import pairwise_distances  # here: the dashboard imports this module at start-up

    x = np.asarray(values, dtype=np.float64)
    out = pairwise_distances(x, x[row : row + 1], metric=metric).ravel()
    out[row] = 0.0
    return out


def nearest_neighbours(ids: np.ndarray, values: np.ndarray, sample_id: int, *, k: int, metric: str = "euclidean",
                       post_relu: bool = False) -> pd.DataFrame:
    """The ``k`` nearest neighbours of sample ``sample_id`` among the rows of ``values``, the sample excluded.

    ids : shape (n_samples,), the sample id of each row of ``values`` (n_samples, n_units).
    post_relu : [P] measure on max(values, 0), the post-ReLU values the embeddings start from (docs/store.md),
        instead of the stored pre-activations (SCIENCE.md section 2).
    Returns rank (1 = nearest), sample_id, distance; ties are broken by the smaller sample id, so the
    answer does not depend on the rows' order. Fewer than ``k`` rows when there are fewer other samples.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ClusterScopeError(f"k (neighbours) must be an integer >= 1; got {k!r}.")
    where = np.flatnonzero(ids == int(sample_id))
    if not len(where):
        raise ClusterScopeError(f"sample id {int(sample_id)} is not among this snapshot's {len(ids):,} probe samples "
                                f"(ids {ids.min() if len(ids) else '-'}-{ids.max() if len(ids) else '-'}); "
                                "search for it by label, or pick a point in the plot.")
    row = int(where[0])
    d = distances(np.maximum(values, 0) if post_relu else values, row, metric=metric)
    others = np.flatnonzero(np.arange(len(ids)) != row)
    order = others[np.lexsort((ids[others], d[others]))][:k]
    return pd.DataFrame({"rank": np.arange(1, len(order) + 1), "sample_id": ids[order], "distance": d[order]})


def picture_overlap(ids: np.ndarray, values: np.ndarray, xy: np.ndarray, sample_id: int, *, k: int,
                    metric: str = "euclidean", post_relu: bool = False) -> tuple[int, int]:
    """(how many of the sample's ``k`` nearest neighbours in ``values`` (:func:`nearest_neighbours`) are among its
    ``k`` nearest in the 2-D picture ``xy`` (n_samples, 2; Euclidean), the k used). Both among the same rows:
    the embedded samples."""
    full = nearest_neighbours(ids, values, sample_id, k=k, metric=metric, post_relu=post_relu)["sample_id"]
    flat = nearest_neighbours(ids, xy, sample_id, k=k, metric="euclidean")["sample_id"]
    return int(np.isin(full, flat).sum()), len(full)
