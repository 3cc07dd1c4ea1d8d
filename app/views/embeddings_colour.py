"""Changing the colouring in the browser: choosing another *Colour by* redraws the Embeddings plots at once.

A rerun cannot recolour fast: it rebuilds and re-sends every figure and Plotly.js draws each anew (about 0.65 s
at 10,000 points on a quiet 2-core machine, against 0.69 s for a minimal Streamlit page; issue 14 asks for
0.5 s; benchmarks/README.md). Yet the browser already holds what a categorical colouring needs: every drawn
point's position, sample id and HDBSCAN cluster (the point traces' x, y and customdata) and every sample's class,
fine label and superclass (the hover table, app/hover.py). So a small script (``st.html`` with JavaScript
allowed, as app/views/embeddings_scrub.py) watches the sidebar's *Colour by* box: when it shows a colouring of
``COLOURINGS``, the script regroups each embedding plot's points into one trace per category, in the order,
colours and marker shapes the server uses (charts_embeddings.colour_map, marker_symbols), with the legend's
title the server's figure has, and draws them with one ``Plotly.react``, before the server
hears of the change. Streamlit's own rerun follows as before and brings the same figure (and its epoch frames,
which the script drops meanwhile: they were built for the other colouring's traces), the scores and the URL.

Not for the density view (its picture is the server's image) nor for the colourings the browser cannot know
(correct, a neuron's activation, neighbourhood change, forgetting, cartography region): those recolour by the
rerun alone.
"""

from __future__ import annotations

import json

from app.charts import base as charts
from app.charts import embeddings as charts_embeddings

COLOURINGS = ("class", "fine", "superclass", "cluster")  # the colourings the browser can draw by itself
HOVER_FIELDS = {"class": "class", "fine": "subclass", "superclass": "superclass"}  # their column in the hover table

_SCRIPT = """(function (P) {
  window.__csColourP = P;
  if (window.__csColourInstalled) { window.__csColourSync(); return; }  // drawn again: take the box as it is now
  window.__csColourInstalled = true;
  window.__csColour = {count: 0, last: null, at: 0, drawn: null};
  function box() {  // the sidebar's *Colour by* box (a combobox named by its label)
    return Array.from(document.querySelectorAll('[data-testid="stSidebar"] input[role="combobox"]'))
      .find((el) => el.getAttribute("aria-label") === window.__csColourP.label) || null;
  }
  function scheme(key, names) {  // [names in the server's order, colour per name, shape per name]
    const P = window.__csColourP;
    if (key !== "cluster") { const c = P.categorical[key]; return [c.names, c.colours, c.symbols]; }
    const ids = [...new Set(names)].map((n) => n === "noise" ? -1 : Number(n.slice(8))).sort((a, b) => a - b);
    const order = ids.map((c) => c < 0 ? "noise" : "cluster " + c), colours = {}, symbols = {}, seen = {};
    let k = 0;
    order.forEach((n) => {
      colours[n] = n === "noise" ? P.noise : P.palette[k++ % P.palette.length];
      symbols[n] = P.shapes[(seen[colours[n]] || 0) % P.shapes.length];
      seen[colours[n]] = (seen[colours[n]] || 0) + 1;
    });
    return [order, colours, symbols];
  }
  function categories(key, ids, clusters) {  // per point, its category under the colouring ``key``
    if (key === "cluster") { return clusters.map((c) => c < 0 ? "noise" : "cluster " + c); }
    const data = window.__csHoverData, P = window.__csColourP;
    if (!data) { return null; }
    let f = data.fields.indexOf(P.fields[key]);
    if (f < 0) { f = data.fields.indexOf("class"); }  // left out of the table where it repeats the class
    return ids.map((id) => { const s = data.samples[id]; return s ? s[f] : null; });
  }
  function recolour(gd, key, option) {
    const P = window.__csColourP;
    if (!window.Plotly || !gd.layout || gd.layout.meta !== P.meta || !gd._fullData || !gd.data) { return false; }
    if (gd.data.some((t) => t.type !== "scattergl" && t.type !== "scatter")) { return false; }  // a density view
    if (((gd.layout.legend || {}).title || {}).text === P.legends[key]) { return false; }  // drawn so already
    const kept = [], x = [], y = [], ids = [], clusters = [];
    let template = null;
    gd.data.forEach((t, i) => {
      const full = gd._fullData[i];
      if (t.meta !== P.points) { kept.push(t); return; }
      if (!full || !full.x || !full.customdata) { return; }
      template = template || t;
      for (let k = 0; k < full.x.length; k++) {
        const c = full.customdata[k];
        x.push(full.x[k]); y.push(full.y[k]);
        ids.push(typeof c === "number" ? c : c[0]); clusters.push(typeof c === "number" ? -1 : c[1]);
      }
    });
    const cats = template && categories(key, ids, clusters);
    if (!cats) { return false; }
    const [order, colours, symbols] = scheme(key, cats), at = {};
    order.forEach((n, k) => { at[n] = k; });
    const groups = order.map(() => []);
    cats.forEach((n, k) => { if (n !== null && at[n] !== undefined) { groups[at[n]].push(k); } });
    const size = (template.marker && template.marker.size) || 6, data = [];
    order.forEach((n, g) => {
      const idx = groups[g];
      if (!idx.length) { return; }
      const xs = new Float32Array(idx.length), ys = new Float32Array(idx.length), cd = new Array(idx.length);
      idx.forEach((k, j) => { xs[j] = x[k]; ys[j] = y[k]; cd[j] = [ids[k], clusters[k]]; });
      data.push({type: "scattergl", x: xs, y: ys, mode: "markers", meta: P.points, name: n, hovertemplate: P.hover,
                 customdata: cd, marker: {size: size, color: colours[n], symbol: symbols[n], opacity: 0.8, line: {width: 0}}});
    });
    const legend = Object.assign({}, gd.layout.legend || {}, {title: {text: P.legends[key]}});
    const C = window.__csColour;
    window.__csColour = {count: C.count + 1, last: option, at: performance.now(), drawn: null};
    const layout = Object.assign({}, gd.layout, {legend: legend,  // uirevision kept: the server's is the same
                                                 datarevision: "cs-colour-" + key + "-" + window.__csColour.count});
    // frames: [] drops the epoch frames (app/views/embeddings_scrub.py): they hold the other colouring's traces
    window.Plotly.react(gd, {data: data.concat(kept), layout: layout, frames: []}).then(() => {
      window.__csColour.drawn = data.map((t) => [t.name, t.marker.color, t.marker.symbol, t.x.length]);
      if (window.__csHLapply) { window.__csHLapply(gd); }  // the selection's highlight, on the new traces
    });
    return true;
  }
  let last = null, seen = null;
  function sync() {
    const el = box(), P = window.__csColourP;
    if (el === null) { return; }
    const option = el.value;
    if (!option) { return; }  // cleared while Streamlit redraws the box: not a choice
    if (el !== seen) { seen = el; last = option; return; }  // a box drawn anew (another page, a new session): not a change
    if (option === last) { return; }
    last = option;
    const key = P.keys[option];
    if (!key) { return; }  // a colouring the rerun draws
    // by cluster, a second view's colours follow the first's clusters (app/charts/clusters.py): the rerun draws it
    const plots = Array.from(document.querySelectorAll(".js-plotly-plot")).filter((gd) => gd.layout && gd.layout.meta === P.meta);
    (key === "cluster" ? plots.slice(0, 1) : plots).forEach((gd) => recolour(gd, key, option));
  }
  window.__csColourSync = sync;
  new MutationObserver(sync).observe(document.body, {subtree: true, attributes: true,
                                                     attributeFilter: ["aria-label", "value"]});
  sync();
})"""


def script(*, label: str, options: dict[str, str], dataset: dict) -> str:
    """The ``<script>`` that recolours the plots when *Colour by* (the select box labelled ``label``) shows one of
    ``COLOURINGS``; ``options``: colouring key -> the box's option label; ``dataset``: the run's ``dataset``
    record, from which charts_embeddings.colour_map gives each class-like colouring's names, colours and shapes."""
    categorical = {}
    for key in ("class", "fine", "superclass"):
        if key in options:
            colours = charts_embeddings.colour_map(None, dataset, key)  # type: ignore[arg-type]  # df: cluster only
            symbols = charts_embeddings.marker_symbols(colours)
            categorical[key] = {"names": list(colours), "colours": colours, "symbols": symbols}
    data = {"label": label, "keys": {options[k]: k for k in COLOURINGS if k in options},
            "categorical": categorical, "fields": HOVER_FIELDS, "palette": charts_embeddings.CLUSTER_PALETTE,
            "noise": charts.NOISE_COLOUR, "shapes": charts_embeddings.SYMBOLS, "hover": charts_embeddings.HOVER,
            "legends": {k: charts_embeddings.LEGEND_TITLES[k] for k in COLOURINGS},
            "meta": charts_embeddings.META, "points": charts_embeddings.POINTS}
    text = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    return "<script>\n" + _SCRIPT + "(" + text + ");\n</script>"
