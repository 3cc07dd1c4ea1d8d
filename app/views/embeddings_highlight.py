"""The selection's highlight on the Embeddings plots, drawn in the browser.

Highlighting a selection used to make a new figure per view (the points' opacities baked in): every selection
then re-sent each figure (at 100,000 points about 8 MB, every epoch's frames included) and Plotly.js drew it
anew, most of the 4-5x that a selection cost over a minimal page (benchmarks/README.md, browser.py). Now the
figures never depend on the selection: the page sends the selected sample ids (a small ``st.html`` element)
and the script below sets the opacities of the plots' point traces (their ``meta`` is ``POINTS``) with
``Plotly.restyle``: selected 0.95, the rest 0.12, in every view. A box, lasso or click in one plot highlights
at once, in every plot, before the server hears of it; the rerun that follows sends the same ids. The script
puts the highlight back on every figure Streamlit draws anew (an epoch, a layer or a colouring changed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import streamlit as st

from app.charts.embeddings import META, POINTS
from app.hover import Html

_SCRIPT = """(function () {
  if (window.__csHighlightInstalled) { return; }
  window.__csHighlightInstalled = true;
  window.__csHL = {ids: null, sig: 0};
  const SELECTED = 0.95, OTHER = 0.12, PLAIN = 0.8;
  function traces(gd) {  // [index, sample ids] of the point traces of an embedding figure
    if (!gd.layout || gd.layout.meta !== "META" || !gd._fullData) { return []; }
    const out = [];
    gd.data.forEach((t, i) => {
      const full = gd._fullData[i];
      if (t.meta !== "POINTS" || !full || !full.customdata) { return; }
      const c = full.customdata, ids = new Array(c.length);
      for (let k = 0; k < c.length; k++) { ids[k] = typeof c[k] === "number" ? c[k] : c[k][0]; }
      out.push([i, ids]);
    });
    return out;
  }
  function apply(gd) {
    const H = window.__csHL;
    if (!window.Plotly || (gd.__csHLsig === H.sig && gd.__csHLdata === gd.data)) { return; }
    const found = traces(gd), idx = [], ops = [];
    found.forEach(([i, ids]) => {
      const t = gd.data[i], op = t.marker && t.marker.opacity;
      if (t.__csPlain === undefined) { t.__csPlain = typeof op === "number" ? op : PLAIN; }  // as the figure drew it
      if (H.ids === null) {
        if (typeof op !== "number") { idx.push(i); ops.push(t.__csPlain); }
        return;
      }
      const each = new Array(ids.length);
      for (let k = 0; k < ids.length; k++) { each[k] = H.ids.has(ids[k]) ? SELECTED : OTHER; }
      idx.push(i); ops.push(each);
    });
    gd.__csHLsig = H.sig; gd.__csHLdata = gd.data;
    if (idx.length) { window.Plotly.restyle(gd, {"marker.opacity": ops}, idx); }
  }
  function applyAll() { document.querySelectorAll(".js-plotly-plot").forEach(apply); }
  window.__csHighlight = (ids) => {  // null or an empty list: nothing highlighted
    const next = ids && ids.length ? new Set(ids) : null, H = window.__csHL;
    const same = (next === null && H.ids === null) ||
      (next !== null && H.ids !== null && next.size === H.ids.size && ids.every((i) => H.ids.has(i)));
    if (!same) { window.__csHL = {ids: next, sig: H.sig + 1}; }
    applyAll();
  };
  function attach() {
    document.querySelectorAll(".js-plotly-plot").forEach((gd) => {
      if (gd.__csHLon || typeof gd.on !== "function") { return; }
      gd.__csHLon = true;
      gd.on("plotly_afterplot", () => setTimeout(() => apply(gd), 0));
      gd.on("plotly_selected", (ev) => {  // at once, in every view; an empty selection is no choice (the page's rule)
        const ids = [];
        ((ev && ev.points) || []).forEach((p) => {
          if (p.customdata != null) { ids.push(typeof p.customdata === "number" ? p.customdata : p.customdata[0]); }
        });
        if (ids.length) { setTimeout(() => window.__csHighlight(ids), 0); }  // after Streamlit has sent the selection
      });
      apply(gd);
    });
  }
  attach();
  setInterval(attach, 400);
})();"""

SCRIPT = "<script>\n" + _SCRIPT.replace('"META"', json.dumps(META)).replace('"POINTS"', json.dumps(POINTS)) + "\n</script>"


def highlight_ui(ids: Iterable[int]) -> None:
    """Highlight the samples ``ids`` in every embedding plot of the page (none: every point as drawn).

    One ``st.html`` element per rerun, always at the same place, in the sidebar (no gap above the plot; it runs
    there in presentation mode too, hidden): the same ids give the same element, which the browser keeps as it is."""
    text = json.dumps(sorted(int(i) for i in ids), separators=(",", ":"))
    st.sidebar.html(Html(SCRIPT + f"\n<script>window.__csHighlight({text});</script>"), unsafe_allow_javascript=True)
