"""Issue 14 ("fit for a meeting", smaller points) through AppTest on the analysed tiny run: the view a link
names, the Neurons page's best-subclass note, the Embeddings colourings and captions."""

from __future__ import annotations

import pytest

from app import charts_neurons as cn
from backend import api
from tests.test_app_neurons_layers import open_page


def _units_by_top_images(store: api.RunStore, run_id: str, layer: str, epoch: int) -> tuple[list[int], list[int]]:
    """(units whose 16 top images miss their best subclass, units whose top images include it)."""
    info = api.read_run(store, run_id)
    labels = cn.sample_labels(api.read_samples(store, run_id), info["dataset"])
    units = api.read_analysis(store, run_id, "units", layer, epoch)
    ids, acts = api.read_activations(store, run_id, layer, epoch)
    missing, present = [], []
    for row in units.itertuples():
        if row.c1_subclass < 0:
            continue
        top = cn.top_samples(ids, acts[:, int(row.unit)], labels, k=16)
        (present if int(row.c1_subclass) in set(top["sub"]) else missing).append(int(row.unit))
    return missing, present


def test_neurons_page_explains_best_subclass_when_top_images_are_of_other_subclasses(
        analysed_store: tuple[api.RunStore, str], monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = analysed_store
    missing, present = _units_by_top_images(store, run_id, "fc2.relu", 2)
    assert missing and present, (missing, present)  # the tiny run has both kinds of unit
    at = open_page("neurons", store.root, monkeypatch, run=run_id, layer="fc2.relu", epoch="2", unit=str(missing[0]))
    assert not at.exception
    notes = [i.value for i in at.info if "best subclass" in i.value]
    assert len(notes) == 1 and "highest c1" in notes[0] and "top images" in notes[0], notes
    at = open_page("neurons", store.root, monkeypatch, run=run_id, layer="fc2.relu", epoch="2", unit=str(present[0]))
    assert not [i.value for i in at.info if "best subclass" in i.value]
