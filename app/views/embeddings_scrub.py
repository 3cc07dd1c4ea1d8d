"""Epoch scrubbing in the browser: moving the sidebar's epoch slider redraws the Embeddings plot at once.

A rerun cannot switch an epoch fast (benchmarks/README.md: a minimal Streamlit page already takes about a
second on a small machine, most of it the rerun, sending the figure and drawing it anew). The aligned layouts
are known in advance, so view A is drawn with every epoch of its layer as a Plotly frame
(charts_embeddings.with_epoch_frames) and a small script (``st.html`` with JavaScript allowed, as app/hover.py)
watches the slider: when its value changes it sets the plot's traces to that epoch's frame (x, y and customdata,
and the frame's title, with one ``Plotly.update``), before the server hears of it. Not ``Plotly.animate``: its
redraw rebuilds the whole plot, 1.9 s at 100,000 WebGL points against 1.1 s for a rerun on a quiet machine, where
the update kept the scene and took about half the animate's time in an A/B probe (benchmarks/README.md).
Streamlit's own rerun follows as before and brings the scores, the URL and the selection panel to the chosen
epoch; its figure shows the same layout, and if an older rerun's figure arrives after the slider moved on, the
script puts the slider's epoch back.

Only where the points' categories do not depend on the epoch (``COLOURINGS``) and every epoch fits
``POINT_BUDGET``: other views are switched by the rerun alone.
"""

from __future__ import annotations

import os

from app.charts.embeddings import SCRUB_FRAME

COLOURINGS = frozenset({"class", "fine", "superclass"})  # a point's trace is the same in every epoch
# [P] points x epochs sent as frames with every rerun (16 bytes each: x, y, sample id, cluster; base64 adds 1/3):
# 1,000,000 is about 21 MB of figure, e.g. 10,000 points over 100 epochs or 100,000 over 10. An operator sets
# another with CLUSTERSCOPE_SCRUB_POINTS (0: every epoch switch is a rerun, as before).
POINT_BUDGET = 1_000_000

_SCRIPT = """(function () {
  if (window.__csScrubInstalled) { return; }
  window.__csScrubInstalled = true;
  window.__csScrub = {count: 0, last: null, at: 0};
  const PREFIX = "FRAME";
  function slider() {
    return document.querySelector('[data-testid="stSidebar"] input[type="range"][aria-label="Epoch"]');
  }
  function plots(name) {
    return Array.from(document.querySelectorAll(".js-plotly-plot")).filter((gd) =>
      gd._transitionData && gd._transitionData._frameHash && gd._transitionData._frameHash[name]);
  }
  function show(value) {  // every scrubbable plot that has the epoch and does not show it yet
    const name = PREFIX + value;
    if (!window.Plotly) { return; }
    plots(name).forEach((gd) => {
      if (gd.layout && gd.layout.datarevision === name) { return; }
      window.__csScrub = {count: window.__csScrub.count + 1, last: value, at: performance.now()};
      const f = gd._transitionData._frameHash[name];
      const pick = (k) => f.data.map((d) => d[k]);
      window.Plotly.update(gd, {x: pick("x"), y: pick("y"), customdata: pick("customdata")}, f.layout || {},
                           f.traces || f.data.map((_, k) => k))
        .then(() => window.__csHLapply && window.__csHLapply(gd));  // the highlight, if Plotly's selection showed it
    });
  }
  function sync() { const s = slider(); if (s) { show(s.getAttribute("aria-valuetext")); } }
  new MutationObserver(sync).observe(document.body, {subtree: true, attributes: true,
                                                     attributeFilter: ["aria-valuetext"]});
  function attach() {  // a figure that arrives after the slider moved on (an older rerun's) is put right
    document.querySelectorAll(".js-plotly-plot").forEach((gd) => {
      if (gd.__csScrub || typeof gd.on !== "function") { return; }
      gd.__csScrub = true;
      gd.on("plotly_afterplot", () => setTimeout(sync, 0));
    });
  }
  attach();
  setInterval(attach, 400);
})();"""

SCRIPT = "<script>\n" + _SCRIPT.replace("FRAME", SCRUB_FRAME) + "\n</script>"


def scrubbable(colour: str, points: int, epochs: int) -> bool:
    """Whether view A is drawn with every epoch as a frame: a colouring of ``COLOURINGS``, more than one
    epoch, and ``points`` x ``epochs`` within ``POINT_BUDGET``."""
    return colour in COLOURINGS and epochs > 1 and points * epochs <= point_budget()


def point_budget() -> int:
    """``POINT_BUDGET``, or the operator's CLUSTERSCOPE_SCRUB_POINTS (an integer >= 0)."""
    raw = os.environ.get("CLUSTERSCOPE_SCRUB_POINTS", "").strip()
    return int(raw) if raw.isdigit() else POINT_BUDGET
