"""When a measure can be trusted as labelled: caveats shown next to the numbers (SCIENCE.md 2, 3.1, 3.2).

Pure: run.json dicts and network-table rows in, sentences out. Shared by the dashboard pages and the CLI.
"""

from __future__ import annotations

import math
from typing import Any

# Above this share of a network's units, a top-k mean no longer picks out a few selective units.
K_SHARE_LIMIT = 0.10

# Scores that need hidden subclasses: left out (NaN) for other runs; see :func:`intraclass_reason`.
INTRACLASS_MEASURES = ("c1", "c2", "subclass_purity", "ari_subclass", "nmi_subclass", "wtm_fraction", "nc1_subclass",
                       "nc2_norm_subclass", "nc2_angle_subclass", "nc4_subclass", "knn_subclass", "probe_subclass")


def intraclass_reason(info: dict[str, Any]) -> str | None:
    """None when the run's fine labels are hidden subclasses (trained on superclasses), else why the
    intraclass measures (c1, c2, subclass purity, ARI/NMI vs subclass, WTM) are not computed.

    The same rule as ``pipeline.probe_labels`` (SCIENCE.md 2, "Hierarchical labels"): c1 and c2 are the
    thesis's measures only when the network was trained on superclasses and the fine labels were
    never shown to it. Trained on the fine labels, the same formulas measure class separation.
    """
    dataset = info.get("dataset") or {}
    if not dataset.get("superclass_names"):
        return (f"Data set {dataset.get('name', '?')!r} has no superclasses, so there are no hidden subclasses: "
                "c1, c2, subclass purity and the WTM index need them (SCIENCE.md 3.1) and are not computed. "
                "Train on a data set with superclasses (digits, CIFAR-100, SynthClust, or an image folder with "
                'data.superclass_map) with data.target = "superclass".')
    if dataset.get("target") != "superclass":
        return (f'This run was trained on the fine labels (data.target = "{dataset.get("target", "label")}"): its '
                '"subclasses" would be the very classes the network was told about, so c1, c2, subclass purity '
                "and the WTM index would measure class separation, not intraclass clustering. They are not "
                'computed; train on the superclasses (data.target = "superclass") to get them (SCIENCE.md 2, 3.1).')
    return None


def k_share(k: float, n_units: float) -> float:
    """k / n_units (NaN when either is missing), the share of the network's units a top-k mean averages."""
    try:
        k, n = float(k), float(n_units)
    except (TypeError, ValueError):
        return math.nan
    return min(k, n) / n if n > 0 and math.isfinite(k) and math.isfinite(n) else math.nan


def k_warning(k_c1: float, k_c3: float, n_units: float) -> str | None:
    """A sentence when c1's or c3's k covers more than :data:`K_SHARE_LIMIT` of the units, else None.

    c1 and c3 are top-k means over all units (SCIENCE.md 3.1); the thesis picks k = 30 out of
    960-2880 units (1-3 %), and its predictiveness falls for large k (3.2, "Sensitivity to k").
    """
    parts = [f"k = {int(float(k))} for {name} is {share:.0%}" for name, k in (("c1", k_c1), ("c3", k_c3))
             if (share := k_share(k, n_units)) > K_SHARE_LIMIT]
    if not parts:
        return None
    return (f"{' and '.join(parts)} of the network's {int(float(n_units))} units (more than "
            f"{K_SHARE_LIMIT:.0%}): the top-k mean averages much of the network rather than a few selective "
            "units (the thesis uses 30 of 960-2880, SCIENCE.md 3.2). Lower analysis.k_c1 / analysis.k_c3.")


def layer_k_warning(k: int, units: dict[str, int]) -> str | None:
    """A sentence naming the layers whose layer-wise c1/c3 top-k (``analysis.layer_top_k``) covers more
    than :data:`K_SHARE_LIMIT` of their units, else None. units : layer -> its number of units."""
    wide = {name: n for name, n in units.items() if n > 0 and min(k, n) / n > K_SHARE_LIMIT}
    if not wide:
        return None
    listed = ", ".join(f"{name} ({min(k, n) / n:.0%} of {n})" for name, n in wide.items())
    return (f"The layer-wise top-{k} covers more than {K_SHARE_LIMIT:.0%} of the units of {listed}: there it "
            "averages much of the layer rather than its few most selective units. Lower analysis.layer_top_k.")
