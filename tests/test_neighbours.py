"""Search and k nearest neighbours (backend/analysis/neighbours.py) against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend import api

LABELS = pd.DataFrame({
    "sample_id": [5, 3, 12, 40, 7],
    "class_name": ["round", "round", "stroke", "hook", "Stroke"],
    "subclass_name": ["0", "6", "1", "7", "1"],
    "superclass_name": ["round", "round", "stroke", "hook", "stroke"],
})


@pytest.mark.parametrize(("query", "field", "expected"), [
    ("12", "any", [12]),  # a number is a sample id, not the fine label "1" or a substring of it
    ("40, 3 99", "any", [3, 40]),  # several ids; 99 is no sample
    ("STRoke", "any", [7, 12]),  # case-insensitive
    ("rok", "label", [7, 12]),  # a substring
    ("7", "label", [40]),  # the fine label "7", not sample 7
    ("7", "id", [7]),
    ("ou", "any", [3, 5]),
    ("zebra", "any", []),
    ("   ", "any", []),
])
def test_search_by_id_and_label(query: str, field: str, expected: list[int]) -> None:
    assert api.search_samples(LABELS, query, field=field).tolist() == expected


def test_search_by_file_name_only_where_the_table_has_one() -> None:
    with_files = LABELS.assign(file_name=["a/cat_01.png", "a/dog.png", "b/CAT_2.jpg", "c.png", "d.png"])
    assert api.search_samples(with_files, "cat_", field="file").tolist() == [5, 12]
    assert api.search_samples(with_files, "cat", field="any").tolist() == [5, 12]
    assert api.search_samples(LABELS, "cat", field="file").tolist() == []  # no file names: nothing matches


def test_search_errors_name_the_input() -> None:
    with pytest.raises(api.ClusterScopeError, match="sample id search must be integers.*got 'round'"):
        api.search_samples(LABELS, "round", field="id")
    with pytest.raises(api.ClusterScopeError, match="search field must be one of any, id, label, file; got 'x'"):
        api.search_samples(LABELS, "1", field="x")


# four points: the query (id 10) at the origin; by Euclidean distance 11 (1.0) < 12 (2.0) < 13 (3.0)
IDS = np.array([13, 10, 12, 11])
VALUES = np.array([[0.0, 3.0], [0.0, 0.0], [2.0, 0.0], [0.6, 0.8]], dtype=np.float32)


def test_euclidean_neighbours_hand_computed() -> None:
    nn = api.nearest_neighbours(IDS, VALUES, 10, k=2)
    assert nn["sample_id"].tolist() == [11, 12] and nn["rank"].tolist() == [1, 2]
    assert nn["distance"].tolist() == pytest.approx([1.0, 2.0])
    assert len(api.nearest_neighbours(IDS, VALUES, 10, k=10)) == 3  # all the others, never the sample itself


def test_cosine_neighbours_hand_computed() -> None:
    # from (1, 0): (2, 0) same direction (0), (1, 1) at 45 degrees (1 - 0.7071), (0, 3) at 90 (1), (0, 0) undefined (1)
    ids = np.array([1, 2, 3, 4, 5])
    values = np.array([[1.0, 0.0], [0.0, 3.0], [2.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    nn = api.nearest_neighbours(ids, values, 1, k=4, metric="cosine")
    assert nn["sample_id"].tolist() == [3, 4, 2, 5]  # 2 and 5 tie at 1: the smaller id first
    assert nn["distance"].tolist() == pytest.approx([0.0, 1 - 0.5 ** 0.5, 1.0, 1.0])


def test_post_relu_measures_on_the_rectified_values() -> None:
    # from (1, 0): (1, -5) is 5 away as stored but 0 away after the ReLU; (1.5, 0) is 0.5 away either way
    ids, values = np.array([1, 2, 3]), np.array([[1.0, 0.0], [1.0, -5.0], [1.5, 0.0]])
    assert api.nearest_neighbours(ids, values, 1, k=2)["distance"].tolist() == pytest.approx([0.5, 5.0])
    post = api.nearest_neighbours(ids, values, 1, k=2, post_relu=True)
    assert post["sample_id"].tolist() == [2, 3] and post["distance"].tolist() == pytest.approx([0.0, 0.5])


def test_ties_do_not_depend_on_row_order() -> None:
    values = np.array([[0.0], [1.0], [-1.0], [1.0]])
    for order in ([0, 1, 2, 3], [3, 2, 1, 0]):
        ids = np.array([0, 5, 9, 2])[order]
        assert api.nearest_neighbours(ids, values[order], 0, k=2)["sample_id"].tolist() == [2, 5]


def test_neighbour_errors_name_the_input() -> None:
    with pytest.raises(api.ClusterScopeError, match="sample id 99 is not among this snapshot's 4 probe samples"):
        api.nearest_neighbours(IDS, VALUES, 99, k=2)
    with pytest.raises(api.ClusterScopeError, match="k .neighbours. must be an integer >= 1; got 0"):
        api.nearest_neighbours(IDS, VALUES, 10, k=0)
    with pytest.raises(api.ClusterScopeError, match="metric must be one of euclidean, cosine; got 'manhattan'"):
        api.nearest_neighbours(IDS, VALUES, 10, k=2, metric="manhattan")


def test_picture_overlap_counts_the_neighbours_the_picture_keeps() -> None:
    # full space: nearest to 10 are 11, 12; the picture puts 13 next to 10 and 12 far: it keeps 1 of 2
    xy = np.array([[0.5, 0.0], [0.0, 0.0], [9.0, 0.0], [1.0, 0.0]])
    assert api.picture_overlap(IDS, VALUES, xy, 10, k=2) == (1, 2)
    assert api.picture_overlap(IDS, VALUES, VALUES, 10, k=2) == (2, 2)  # the picture is the space itself
