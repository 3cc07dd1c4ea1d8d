"""The Embeddings page's sidebar choices as one frozen value: ``controls_ui`` (app/views/embeddings.py) returns it,
the page and its helpers (embeddings_search, embeddings_trajectories) read it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotation only: loaders is the other modules' business
    from app.loaders import LayerScores


@dataclass(frozen=True)
class View:
    """What the sidebar chose for view A (and the second view, if any)."""

    layer: str
    epoch: int
    proj: str  # "umap" or "pca"
    colour: str  # a colouring of the page's COLOURINGS
    unit: int | None  # the neuron whose activation colours the points, when colour is "neuron"
    max_points: int  # above this many samples a stratified sample is drawn
    other: tuple[str, object] | None  # the second view: ("epoch", an epoch) or ("layer", a layer), or None
    scores: LayerScores  # the run's analysed (layer, epoch) scores (loaders.layer_scores)
    reason: str | None  # why the intraclass measures are left out (api.intraclass_reason), or None
