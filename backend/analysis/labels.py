"""The probe samples' labels, in one place: what the network was trained on (the class) and, for a run
trained on superclasses, the hidden subclasses (SCIENCE.md 2, "Hierarchical labels").

Pure: a samples table (as ``samples.parquet`` holds it) and the run's run.json record in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Labels:
    """Labels of the probe samples, in the order of the activation rows."""

    classes: np.ndarray  # int (n,), the training target
    subclass: np.ndarray | None  # int (n,), fine labels when the model was trained on superclasses
    superclass: np.ndarray | None  # int (n,), superclass of each sample when the data have them
    fine: np.ndarray  # int (n,), the fine label (always)
    train: np.ndarray  # bool (n,), training split

    @property
    def hierarchical(self) -> bool:
        """The data have superclasses (whatever the network was trained on)."""
        return self.superclass is not None

    @property
    def intraclass(self) -> bool:
        """The fine labels are hidden subclasses of the training classes (trained on superclasses).

        Only then are c1, c2, subclass purity, subclass concentration and the WTM index the thesis's
        intraclass measures (SCIENCE.md 2, "Hierarchical labels"). For a run trained on the fine
        labels, "subclasses" are the very classes the network was told about: the same formulas
        would measure class separation, so they are not computed (NaN).
        """
        return self.subclass is not None and self.superclass is not None


def probe_labels(samples: pd.DataFrame, info: dict[str, Any]) -> Labels:
    """Labels of the probe samples: class = training target; subclass = fine label under superclass training."""
    fine = samples["label"].to_numpy(np.int64)
    has_sup = samples["superclass"].notna().all()
    sup = samples["superclass"].to_numpy(np.int64) if has_sup else None
    target = (info.get("dataset") or {}).get("target", "label")
    classes = sup if (target == "superclass" and sup is not None) else fine
    subclass = fine if (target == "superclass" and sup is not None) else None
    return Labels(classes=classes, subclass=subclass, superclass=sup, fine=fine,
                  train=(samples["split"] == "train").to_numpy())
