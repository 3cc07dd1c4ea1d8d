"""The Geometry page's cluster genealogy section (issue 17, SCIENCE.md 7): HDBSCAN clusters followed across a
layer's epochs or across the layers at one epoch, as a Sankey flow; picking a cluster (a click on its node, or
the list under the figure) makes its samples the Embeddings page's selection.

The page calls :func:`genealogy_section`; this module draws only its section.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import loaders_changes, widgets
from app.charts.genealogy import META, genealogy_sankey, node_label
from backend import api
from backend.api import ClusterScopeError

# A click on a Sankey node: Streamlit reports no selection for a Sankey (its plotly_chart selection covers points
# of x/y traces, and clicks only of treemaps and sunbursts), so this small component (trusted code of ours, no
# user content) listens to Plotly's own plotly_click on the genealogy figure (``charts.genealogy.META``) and sends
# the node's index to the server as a trigger value: one rerun per click, the value gone on the next.
CLICK_JS = """
export default function (component) {
  window.__csGenealogyClick = component.setTriggerValue;  // the newest mount's
  function attach() {
    document.querySelectorAll(".js-plotly-plot").forEach((gd) => {
      if (gd.__csGenealogy || !gd.layout || gd.layout.meta !== "META" || typeof gd.on !== "function") { return; }
      gd.__csGenealogy = true;
      gd.on("plotly_click", (ev) => {
        const p = ev && ev.points && ev.points[0];
        if (!p || p.sourceLinks === undefined || typeof p.pointNumber !== "number") { return; }  // a link, not a node
        window.__csGenealogyClick("node", p.pointNumber);
      });
    });
  }
  attach();
  const timer = setInterval(attach, 300);
  return () => clearInterval(timer);
}
""".replace("META", META)
node_clicks = st.components.v2.component("clusterscope.genealogy_click", js=CLICK_JS)
THRESHOLD_HELP = ("A link is drawn from cluster A to cluster B of the next stage when at least this share of A's samples "
                  "are in B (SCIENCE.md 7 proposes 20 %). Lower shows weaker ties; a cluster with two or more links out "
                  "split, one with two or more links in merged.")


def genealogy_section(run: str, info: dict, layer: str, epoch: int) -> None:
    """Draw the section for ``run`` (``info``: its run.json) at the page's ``layer`` and ``epoch``."""
    st.subheader("Cluster genealogy")
    left, right = st.columns(2)
    across = left.radio("Follow the clusters across", ["epochs", "layers"], horizontal=True, key="w-gen-across",
                        format_func=lambda a: f"epochs of {layer}" if a == "epochs" else f"layers at epoch {epoch}")
    threshold = right.slider("Link threshold (shared / cluster size)", 0.05, 0.95, 0.2, 0.05, key="w-gen-threshold",
                             help=THRESHOLD_HELP)
    try:
        nodes, links, points = loaders_changes.genealogy(run, layer=layer, epoch=epoch, across=across, threshold=threshold)
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Cluster genealogy")
        return
    stage_name = "epoch" if across == "epochs" else "layer"
    fig = genealogy_sankey(nodes, links, class_names=class_names(info), stage_name=stage_name, threshold=threshold)
    widgets.show(fig, f"{run}-genealogy-{across}", key="gen-sankey",
                 context=f"{run}, {layer if across == 'epochs' else f'epoch {epoch}'}")
    clicked = clicked_node(node_clicks(key="gen-click", on_node_change=lambda: None))
    st.caption(f"{int(nodes['split'].sum())} split(s), {int(nodes['merged'].sum())} merge(s) among {len(nodes)} clusters "
               f"(HDBSCAN noise left out). Node colour: the cluster's main class; hover for its class and subclass make-up.")
    pick_ui(run, nodes, points, stage_name, clicked)


def class_names(info: dict) -> list[str]:
    ds = info.get("dataset") or {}
    sup = ds.get("superclass_names")
    return list(sup if ds.get("target") == "superclass" and sup else ds.get("label_names") or [])


def clicked_node(result: object) -> int | None:
    """The Sankey node clicked just now (its index in the figure's nodes), if this rerun is that click's."""
    node = getattr(result, "node", None)
    return node if isinstance(node, int) and not isinstance(node, bool) else None


def pick_ui(run: str, nodes: pd.DataFrame, points: pd.DataFrame, stage_name: str, clicked: int | None) -> None:
    """Choose a cluster and make its samples the selection: a click on its node does both at once, the list and
    its button one after the other."""
    options = nodes["node"].tolist()
    labels = {r["node"]: f"{node_label(r, stage_name)} ({r['size']} samples; {r['class_makeup']})" for _, r in nodes.iterrows()}
    if clicked is not None and clicked in options:
        st.session_state["w-gen-node"] = clicked
    left, right = st.columns([3, 1])
    node = left.selectbox("Cluster", options, format_func=labels.get, key="w-gen-node")
    if node is None:
        return
    row = nodes.loc[nodes["node"] == node].iloc[0]
    ids = api.cluster_members(points, row["stage"], int(row["cluster"]))
    if right.button(f"Select its {len(ids)} samples", key="w-gen-select", icon=":material/select:") or (
            clicked is not None and clicked == node):
        from app.views.embeddings import set_selection

        set_selection(run, ids)
        st.success(f"{len(ids)} samples of {node_label(row, stage_name)} selected: the Embeddings page highlights them "
                   "and shows their images.", icon=":material/check:")
