"""Embeddings page: "Animate epochs": the aligned layouts of one layer played over training, with an HTML
download and an animated GIF for slides (rendered only when asked for)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from app import loaders, widgets
from app.charts import embeddings as charts_embeddings
from app.views.embeddings_view import View


def animation_ui(run: str, info: dict, v: View, *, hover_cards: Callable[[str, np.ndarray], None]) -> None:
    """The aligned layouts of the view's layer over its epochs, played in the browser; HTML and GIF downloads.
    ``hover_cards``: the page's hover cards for the points drawn (app/views/embeddings.py)."""
    if v.colour == "neuron":  # the animation's traces are categories: a neuron's values are shown by class
        v = replace(v, colour="class", unit=None)
    epochs = v.scores.epochs[v.layer]
    frames = pd.concat([loaders.embedding_view(run, v.layer, e, v.colour, v.unit, v.max_points)[0].assign(epoch=e)
                        for e in epochs])
    fig = charts_embeddings.embedding_animation(frames, projection=v.proj, colour="colour_value",
                                                colours=charts_embeddings.colour_map(frames, info["dataset"], v.colour) or {},
                                                title=f"{run} · {v.layer} · epochs {epochs[0]}-{epochs[-1]}")
    hover_cards(run, frames["sample_id"].to_numpy())
    widgets.plot(fig, key="animation")
    left, right = st.columns(2)
    left.download_button("Download animation (HTML)", lambda: fig.to_html(include_plotlyjs=True), on_click="ignore",
                         file_name=f"{run}-{v.layer}-animation.html", mime="text/html", icon=":material/movie:")
    with right:
        gif_ui(run, info, v, frames, epochs)


def gif_ui(run: str, info: dict, v: View, frames: pd.DataFrame, epochs: list[int]) -> None:
    """An animated GIF of the epochs, rendered (kaleido, about a second per epoch) only when asked for."""
    if widgets.static_export_browser() is None:
        st.caption("GIF export needs Chrome or Chromium on the server (e.g. `apt install chromium`).")
        return
    key = f"gif:{run}:{v.layer}:{v.proj}:{v.colour}:{v.max_points}:{','.join(map(str, epochs))}"
    if st.button("Make an animated GIF", icon=":material/gif_box:", key="w-make-gif",
                 help="Draws every epoch's layout as an image and joins them into a GIF for slides."):
        colours = charts_embeddings.colour_map(frames, info["dataset"], v.colour) or {}
        ranges = charts_embeddings.animation_ranges(frames, projection=v.proj)
        figs = [charts_embeddings.embedding_scatter(frames[frames["epoch"] == e], projection=v.proj, colour="colour_value",
                                                    colours=colours, ranges=ranges, title=f"{run} · {v.layer} · epoch {e}")
                for e in epochs]
        bar = st.progress(0.0, text=f"Drawing {len(figs)} epochs")
        try:
            pngs = widgets.render_pngs(figs, width=1000, height=800,
                                       progress=lambda done: bar.progress(done / (len(figs) + 1),
                                                                          text=f"Drew {done} of {len(figs)} epochs"))
            bar.progress(len(figs) / (len(figs) + 1), text="Joining the frames")
            st.session_state[key] = charts_embeddings.gif_from_pngs(pngs)
        except Exception as exc:  # noqa: BLE001 - kaleido/Chromium failures are shown, never a traceback
            widgets.error_panel(exc, what="Cannot draw the GIF")
        finally:
            bar.empty()
    if key in st.session_state:
        st.download_button("Download animation (GIF)", st.session_state[key], file_name=f"{run}-{v.layer}-animation.gif",
                           mime="image/gif", on_click="ignore", icon=":material/download:", key="w-gif-download")
