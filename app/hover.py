"""Hover cards for the embedding scatters: the sample's thumbnail and labels beside the pointer.

Plotly's own hover label holds text only, and ``st.plotly_chart`` reports clicks and selections but
not hovers, so the card is drawn in the browser: a small script (``st.html`` with JavaScript allowed)
listens to ``plotly_hover`` on every figure marked ``charts_embeddings.META`` and looks the hovered
point's sample id (``customdata[0]``) up in a table sent with the page. The figures stay ordinary
``st.plotly_chart`` WebGL figures, so selections, downloads and linked highlighting are unchanged.

The table holds the labels of every drawn point and, up to a byte budget, its PNG thumbnail as a
data URL; the script is installed once per browser tab and only the table changes between reruns.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from app.charts.embeddings import META

THUMBNAIL_BUDGET = 6_000_000  # characters of base64 thumbnails per page (~4.5 MB of PNG)

_SCRIPT = """(function (DATA) {
  window.__csHoverData = DATA;
  if (window.__csHoverInstalled) { return; }
  window.__csHoverInstalled = true;
  const card = document.createElement("div");
  card.id = "cs-hover-card";
  card.style.cssText = "position:fixed;z-index:1000000;pointer-events:none;display:none;background:#fff;" +
    "border:1px solid #888;border-radius:6px;padding:8px;box-shadow:0 2px 10px rgba(0,0,0,.25);" +
    "font:15px/1.35 sans-serif;color:#222;max-width:260px";
  document.body.appendChild(card);
  let pointer = {x: 0, y: 0};
  document.addEventListener("mousemove", (e) => {
    pointer = {x: e.clientX, y: e.clientY};
    if (card.style.display === "block") { place(); }
  }, {passive: true});
  function place() {  // above-left of the pointer, where Plotly's own label is not
    const w = card.offsetWidth, h = card.offsetHeight;
    let x = pointer.x - w - 18, y = pointer.y - h - 18;
    if (x < 4) { x = pointer.x + 18; }
    if (y < 4) { y = pointer.y + 18; }
    card.style.left = x + "px";
    card.style.top = y + "px";
  }
  function esc(s) {
    return String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
  }
  function show(gd, ev) {
    const data = window.__csHoverData;
    const p = ev && ev.points && ev.points[0];
    if (!data || !p || !gd.layout || gd.layout.meta !== data.meta || p.customdata == null) { return; }
    const id = typeof p.customdata === "number" ? p.customdata : p.customdata[0];
    const s = data.samples[id];
    if (!s) { return; }
    const cluster = typeof p.customdata === "number" ? null : p.customdata[1];
    if (ev.event) { pointer = {x: ev.event.clientX, y: ev.event.clientY}; }
    const lines = [];
    data.fields.forEach((f, i) => { if (s[i] !== null && s[i] !== "") { lines.push(esc(f) + " <b>" + esc(s[i]) + "</b>"); } });
    if (cluster !== null && cluster !== undefined) { lines.push("cluster <b>" + (cluster < 0 ? "noise" : cluster) + "</b>"); }
    lines.push("sample " + id);
    const img = s[data.fields.length];
    card.innerHTML = (img ? '<img src="' + img + '" alt="sample ' + id + '" style="width:' + data.size + "px;height:" +
      data.size + 'px;image-rendering:pixelated;display:block;margin:0 auto 6px;border:1px solid #ddd">' : "") +
      lines.join("<br>");
    card.style.display = "block";
    place();
  }
  function hide() { card.style.display = "none"; }
  function attach() {
    document.querySelectorAll(".js-plotly-plot").forEach((gd) => {
      if (gd.__csHover || typeof gd.on !== "function") { return; }
      gd.__csHover = true;
      gd.on("plotly_hover", (ev) => show(gd, ev));
      gd.on("plotly_unhover", hide);
      gd.addEventListener("mouseleave", hide);
    });
  }
  attach();
  setInterval(attach, 400);
})"""


# tags inside the JavaScript's strings, escaped (see ``script``)
_JS = re.sub(r"<(?=[/\w!])", r"\\x3c", _SCRIPT)


def table(labels: pd.DataFrame, thumbnails: pd.Series | None, ids: np.ndarray, *,
          budget: int = THUMBNAIL_BUDGET) -> tuple[dict, int]:
    """The hover table for the points ``ids`` and how many of them got a thumbnail.

    labels : one row per sample (sample_id, split, class_name, subclass_name, superclass_name).
    thumbnails : PNG bytes by sample id (None or missing values: no image). Thumbnails are added in
        ``ids`` order until their base64 text would pass ``budget`` characters.
    Returns ({"fields": [...], "samples": {id: [values..., data URL or None]}, "meta", "size"}, n).
    """
    rows = labels.set_index("sample_id").reindex(np.asarray(ids))
    fields = {"class": "class_name", "subclass": "subclass_name", "superclass": "superclass_name", "split": "split"}
    columns = []
    for col in fields.values():
        values = rows[col].astype(object).where(rows[col].notna(), None)
        columns.append([None if v in (None, "None", "nan", "<NA>") else str(v) for v in values])
    # a line that repeats the class on every point (a run trained on fine labels, or on superclasses) is left out
    keep = [i for i in range(len(columns)) if i == 0 or i == 3 or columns[i] != columns[0]]
    used, images = 0, []
    for sid in rows.index:
        png = thumbnails.get(sid) if thumbnails is not None else None
        url = None
        if isinstance(png, (bytes, bytearray)) and png:
            text = base64.b64encode(png).decode("ascii")
            if used + len(text) <= budget:
                url, used = "data:image/png;base64," + text, used + len(text)
        images.append(url)
    names = [list(fields)[i] for i in keep]
    kept = [columns[i] for i in keep]
    samples = {int(sid): [*vals, img] for sid, *vals, img in zip(rows.index, *kept, images, strict=True)}
    return {"fields": names, "samples": samples, "meta": META, "size": 96}, sum(u is not None for u in images)


@dataclass(frozen=True)
class Html:
    """HTML that ``st.html`` takes as it is, through ``_repr_html_``: a plain string is dedented first,
    which costs ~20 ms for the table of 10,000 points on every rerun (benchmarks/dashboard.py)."""

    text: str

    def _repr_html_(self) -> str:
        return self.text


def script(data: dict) -> str:
    """The ``<script>`` element that installs the hover card and hands it ``data`` (from :func:`table`).

    No ``<`` may be followed by a letter, ``/`` or ``!`` inside it: Streamlit's HTML sanitiser (DOMPurify)
    drops a script whose text looks like markup, and ``</script`` would end it early. The card's tags are
    written ``\\x3c`` in JavaScript strings and ``\\u003c`` in the JSON.
    """
    text = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    return "<script>\n" + _JS + "(" + text + ");\n</script>"
