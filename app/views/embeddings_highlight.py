"""The selection's highlight on the Embeddings plots, drawn in the browser, and the selection event made small.

Highlighting a selection used to make a new figure per view (the points' opacities baked in): every selection
then re-sent each figure (at 100,000 points about 8 MB, every epoch's frames included) and Plotly.js drew it
anew, most of the 4-5x that a selection cost over a minimal page (benchmarks/README.md, browser.py). Now the
figures never depend on the selection: the page sends the selected sample ids (a small ``st.html`` element)
and the script below sets the opacities of the plots' point traces (their ``meta`` is ``POINTS``) with
``Plotly.restyle``: selected 0.95, the rest 0.12. The script puts the highlight back on every figure Streamlit
draws anew (an epoch, a layer or a colouring changed).

What a selection costs the browser besides Plotly's own drawing of it (benchmarks/README.md, "Selection: where
the time went"), and what the script does about it:

* Streamlit's handler converted every selected point (x, y, customdata, keys renamed) and sent them all (1.4 MB
  at 10,000 points): the script wraps each embedding figure's ``emit`` so that a box or lasso reaches Streamlit
  as its region only (``selections``; no points), and a click as its point only (no stale region); the server
  selects the points in the region (app/views/embeddings_select.py), with Plotly's rule, in data coordinates.
* A restyle redraws every WebGL point: the view the selection was made in is not restyled while Plotly's own
  selection there (it dims the points left out) holds exactly the server's ids; the other views are restyled
  once the rerun is over and the browser idle, so that the selection's images come first. Plotly tests the
  points in pixels, on pixel positions it computed when it drew them, and once put a point 0.013 px outside a
  lasso's edge (0.0004 in data) inside it: where the two disagree, the server's selection is the selection (its
  images, CSV and the other views), and the view it was made in is restyled to show it too.
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
  const positions = (gd) => gd.data.map((t) => t.x);  // replaced when the points move (a new figure, an epoch)
  function own(gd, found) {  // the ids Plotly's own selection keeps in gd, if the user made it on these positions
    const at = gd.__csOwn;
    if (!at || at.length !== gd.data.length || gd.data.some((t, i) => t.x !== at[i])) { return null; }
    const ids = new Set();
    for (const [i, all] of found) {
      const chosen = gd.data[i].selectedpoints;
      if (!chosen || typeof chosen.length !== "number") { return null; }
      for (let k = 0; k < chosen.length; k++) { ids.add(all[chosen[k]]); }
    }
    return ids;
  }
  function apply(gd) {
    const H = window.__csHL;
    if (!window.Plotly || (gd.__csHLsig === H.sig && gd.__csHLdata === gd.data &&
                           (!gd.__csHLshown || gd.__csHLat === gd.data[0]?.x))) {
      return;  // done, unless Plotly's own selection showed it and the points moved since
    }
    const found = traces(gd), idx = [], ops = [], mine = H.ids === null ? null : own(gd, found);
    const shown = mine !== null && mine.size === H.ids.size && [...H.ids].every((i) => mine.has(i));
    found.forEach(([i, ids]) => {
      const t = gd.data[i], op = t.marker && t.marker.opacity;
      if (t.__csPlain === undefined) { t.__csPlain = typeof op === "number" ? op : PLAIN; }  // as the figure drew it
      if (H.ids === null || shown) {  // nothing highlighted, or Plotly's own selection shows it
        if (typeof op !== "number") { idx.push(i); ops.push(t.__csPlain); }
        return;
      }
      const each = new Array(ids.length);
      for (let k = 0; k < ids.length; k++) { each[k] = H.ids.has(ids[k]) ? SELECTED : OTHER; }
      idx.push(i); ops.push(each);
    });
    gd.__csHLsig = H.sig; gd.__csHLdata = gd.data; gd.__csHLat = gd.data[0]?.x; gd.__csHLshown = shown;
    if (idx.length) { window.Plotly.restyle(gd, {"marker.opacity": ops}, idx); }
  }
  function applyAll() { document.querySelectorAll(".js-plotly-plot").forEach(apply); }
  function whenIdle(fn) {  // after the rerun (the selection's images first), when the browser has time
    const app = document.querySelector(".stApp");
    if (app && app.getAttribute("data-test-script-state") === "running") { setTimeout(() => whenIdle(fn), 50); return; }
    if (window.requestIdleCallback) { window.requestIdleCallback(fn, {timeout: 300}); } else { setTimeout(fn, 0); }
  }
  window.__csHLapply = apply;  // app/views/embeddings_scrub.py: after it moved a plot's points
  function unselect(gd) {  // Plotly's own selection off: its boxes and lassos, and the points it dims
    if (!window.Plotly || !gd.layout || gd.layout.meta !== "META" || !gd.data) { return; }
    if (!(gd.layout.selections || []).length && !gd.data.some((t) => t.selectedpoints)) { return; }
    gd.__csOwn = null;
    window.Plotly.update(gd, {selectedpoints: gd.data.map(() => null)}, {selections: []});
  }
  window.__csHighlight = (ids, cleared) => {  // null or an empty list: nothing highlighted
    if (cleared) { document.querySelectorAll(".js-plotly-plot").forEach(unselect); }  // *Clear selection*
    const next = ids && ids.length ? new Set(ids) : null, H = window.__csHL;
    const same = (next === null && H.ids === null) ||
      (next !== null && H.ids !== null && next.size === H.ids.size && ids.every((i) => H.ids.has(i)));
    if (same) { applyAll(); return; }
    window.__csHL = {ids: next, sig: H.sig + 1};
    whenIdle(applyAll);
  };
  function small(gd, name, data) {  // what Streamlit's handler gets of a selection event
    if (name !== "plotly_selected" || !data || !gd.layout || gd.layout.meta !== "META") { return data; }
    gd.__csOwn = positions(gd);  // Plotly's own selection, made on these positions
    // a box or lasso: drawn (range, lassoPoints), or set or edited (then Plotly reselects: its region and points)
    const regions = (data.selections || []).length, points = (data.points || []).length;
    if (data.range || data.lassoPoints || (regions && points !== 1)) { return Object.assign({}, data, {points: []}); }
    return Object.assign({}, data, {selections: []});  // a click: its point only
  }
  function attach() {
    document.querySelectorAll(".js-plotly-plot").forEach((gd) => {
      if (typeof gd.emit === "function" && !gd.emit.__cs) {  // Plotly makes a new emit for a plot drawn afresh
        const emit = gd.emit, wrapped = function (name, data) { return emit.call(this, name, small(gd, name, data)); };
        wrapped.__cs = true;
        gd.emit = wrapped;
      }
      if (gd.__csHLon || typeof gd.on !== "function") { return; }
      gd.__csHLon = true;
      gd.on("plotly_afterplot", () => setTimeout(() => apply(gd), 0));  // a new figure: at once
      apply(gd);
    });
  }
  attach();
  setInterval(attach, 400);
})();"""

SCRIPT = "<script>\n" + _SCRIPT.replace('"META"', json.dumps(META)).replace('"POINTS"', json.dumps(POINTS)) + "\n</script>"


def highlight_ui(ids: Iterable[int], *, cleared: bool = False) -> None:
    """Highlight the samples ``ids`` in every embedding plot of the page (none: every point as drawn);
    ``cleared``: the user cleared the selection, so Plotly's own selection goes too (the box or lasso it draws
    and the points it dims would stay otherwise: the plot's figure is the same).

    One ``st.html`` element per rerun, always at the same place: the end of the page's plots fragment
    (app/views/embeddings.py; a fragment cannot write to the sidebar), below everything else, so its empty element
    leaves no gap above a plot: the same ids give the same element, which the browser keeps as it is."""
    text = json.dumps(sorted(int(i) for i in ids), separators=(",", ":"))
    call = f"window.__csHighlight({text}{', true' if cleared else ''});"
    st.html(Html(SCRIPT + f"\n<script>{call}</script>"), unsafe_allow_javascript=True)
