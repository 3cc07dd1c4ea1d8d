"""The Geometry page's pure figures (app/charts/geometry.py): fixed CKA colour range, layers by depth, empty panels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.charts import geometry as cg
from backend.analysis.geometry import GEOMETRY_COLUMNS


def test_cka_heatmap_has_a_fixed_unit_range_and_the_given_order() -> None:
    m = pd.DataFrame([[1.0, 0.4], [0.4, 1.0]], index=["a", "b"], columns=["a", "b"])
    fig = cg.cka_heatmap(m, x_title="layer", y_title="layer", title="t")
    trace = fig.data[0]
    assert (trace.zmin, trace.zmax) == (0.0, 1.0) and list(trace.y) == ["a", "b"]
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.xaxis.title.text == "layer"


def test_geometry_curves_by_depth_with_dashed_subclasses_and_a_note_for_empty_panels() -> None:
    rows = [{"layer": lay, "epoch": e, "depth": d, **dict.fromkeys(GEOMETRY_COLUMNS, np.nan),
             "nc1_class": 1.0 / (e + 1), "nc1_subclass": 2.0 / (e + 1)} for d, lay in enumerate(["a", "b"]) for e in (0, 1)]
    fig = cg.geometry_curves(pd.DataFrame(rows), ["a", "b"], ["nc1", "probe"], title="t")
    assert [(t.name, t.line.dash) for t in fig.data] == [("a", "solid"), ("b", "solid"), ("a", "dash"), ("b", "dash")]
    assert fig.data[0].line.color != fig.data[1].line.color and fig.data[0].line.color == fig.data[2].line.color
    assert fig.layout.yaxis.type == "log"  # NC1 spans orders of magnitude
    assert any(a.text == "not computed for this run" for a in fig.layout.annotations)  # the probe panel: all NaN
    to_last = pd.DataFrame({"layer": ["a", "a", "b", "b"], "epoch": [0, 1, 0, 1], "cka": [0.5, 1.0, 0.2, 1.0]})
    fig = cg.cka_to_last_curves(to_last, ["a", "b"], title="t")
    assert [t.name for t in fig.data] == ["a", "b"] and fig.layout.yaxis.title.text.startswith("CKA with last epoch")
