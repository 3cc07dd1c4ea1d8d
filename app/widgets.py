"""Reusable widget groups: pickers bound to the URL, figure downloads, presentation mode."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TypeVar

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import loaders, state
from app.charts import base as charts
from backend import api
from backend.api import ClusterScopeError

T = TypeVar("T")


def run_picker(*, key: str = "run", label: str = "Run", runs: Sequence[str] | None = None, container=st,  # noqa: ANN001
               prefer: Callable[[str], bool] | None = None) -> str | None:
    """Select a run; the choice is kept in the URL. Returns None (with a hint) when the store is empty.

    ``prefer``: with no run chosen yet (none in the URL, none picked in this session on any page), start
    on the first run it accepts, e.g. an analysed one while the demo still analyses the others."""
    ids = list(runs) if runs is not None else loaders.list_runs()["run_id"].tolist()
    if not ids:
        container.info("No runs yet: create the demo with `make demo` (or `clusterscope demo`).")
        return None
    current = state.chosen(key, ids)  # the widget's own value is remembered too, by the remember() below
    if current is None:
        current = next((r for r in ids if prefer(r)), ids[0]) if prefer is not None else ids[0]
    link_names_unknown(key, ids, what="run", shown=current, where="the run store")
    diverged = set(diverged_runs())
    run = container.selectbox(label, ids, key=f"w-{key}", format_func=lambda r: f"{r} (diverged)" if r in diverged else r,
                              **_initial(f"w-{key}", ids.index(current), ids))
    state.remember(**{key: run})
    return run


def diverged_runs() -> list[str]:
    """Runs whose training diverged (loss NaN or infinite): flagged wherever a run is shown."""
    runs = loaders.list_runs()
    return runs.loc[runs["status"] == "diverged", "run_id"].tolist()


def diverged_warning(run: str, info: dict) -> None:
    """Say so when the run diverged: what the pages show of it describes a broken model."""
    if info.get("status") == "diverged":
        st.warning(f"Run **{run}** diverged: {visitor(info.get('error') or 'its loss became NaN or infinite')} "
                   "Snapshots after the divergence hold NaN or infinite values and are not analysed.",
                   icon=":material/warning:")


def layer_picker(layers: Sequence[str], *, key: str = "layer", label: str = "Layer", container=st,  # noqa: ANN001
                 default: str | None = None) -> str | None:
    """The layer chosen (link, memory, else ``default``, else the last layer)."""
    if not layers:
        return None
    current = state.choice(key, list(layers), default=default if default in layers else list(layers)[-1])
    link_names_unknown(key, layers, what="layer", shown=current, where="this run's analysis")
    layer = container.selectbox(label, list(layers), key=f"w-{key}", help="Every ReLU layer except the output, in forward order.",
                                **_initial(f"w-{key}", list(layers).index(current), list(layers)))
    state.remember(**{key: layer})
    return layer


def epoch_picker(epochs: Sequence[int], *, key: str = "epoch", label: str = "Epoch", container=st,  # noqa: ANN001
                 default: int | None = None) -> int | None:
    """The epoch chosen (link, memory, else ``default``, else the last epoch)."""
    epochs = sorted(int(e) for e in epochs)
    if not epochs:
        return None
    current = state.choice(key, epochs, default=default if default in epochs else epochs[-1])
    link_names_unknown(key, epochs, what="epoch", shown=current, where="this layer's recorded epochs")
    if len(epochs) == 1:
        container.caption(f"{label}: {epochs[0]} (the only recorded epoch)")
        epoch = epochs[0]
    else:
        epoch = container.select_slider(label, options=epochs, value=current, key=f"w-{key}",
                                        help="Recorded snapshot epochs; 0 is the initialisation.")
    state.remember(**{key: epoch})
    return int(epoch)


def link_names_unknown(key: str, options: Sequence[object], *, what: str, shown: object, where: str) -> None:
    """One line when the page's link names a ``what`` that is not among ``options`` (:func:`state.unknown`)."""
    raw = state.unknown(key, options)
    if raw is not None:
        st.warning(f"The link asks for {what} **{raw}**, which is not in {where}; showing {what} **{shown}** instead.",
                   icon=":material/link_off:")


@st.cache_resource(show_spinner=False)
def static_export_browser() -> str | None:
    """The Chrome/Chromium kaleido will drive for PNG/SVG export, or None when there is none."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        if path := shutil.which(name):
            return path
    return None


def _initial(widget_key: str, index: int, options: Sequence[object]) -> dict[str, int]:
    """``index=`` only on a widget's first draw, so code may later set ``st.session_state[widget_key]``
    (e.g. a table click choosing a layer) without Streamlit's default-value conflict. A remembered
    value that is no longer an option (another run was chosen) is dropped first."""
    if widget_key in st.session_state:
        if st.session_state[widget_key] in options:
            return {}
        del st.session_state[widget_key]
    return {"index": index}


def export_figure(fig: go.Figure, *, context: str = "", legend: str = "") -> go.Figure:
    """The figure as downloaded: a slide or a paper shows it without the page around it, so its title names the
    view (``context``, e.g. run · layer · epoch, when the title does not already hold it) and a shown legend has a
    title (``legend``, e.g. "class"). A copy: the figure on the page is left as it is."""
    out = go.Figure(fig)
    title = out.layout.title.text or ""
    if context and context not in title:
        out.update_layout(title_text=f"{title} ({context})" if title else context)
    shows_legend = any(t.showlegend is not False and t.name for t in out.data)
    if legend and shows_legend and not out.layout.legend.title.text:
        out.update_layout(legend_title_text=legend)
    return out


def figure_downloads(fig: go.Figure, name: str, *, key: str, context: str = "", legend: str = "") -> None:
    """PNG, SVG and self-contained HTML downloads of :func:`export_figure`. PNG and SVG are rendered (kaleido,
    seconds) when their button is clicked, under a spinner; the button then downloads the image."""
    if state.presenting():
        return
    export = functools.partial(export_figure, fig, context=context, legend=legend)
    html = {"data": lambda: export().to_html(include_plotlyjs=True, full_html=True), "file_name": f"{name}.html",
            "mime": "text/html", "key": f"html-{key}", "on_click": "ignore", "icon": ":material/code:"}
    if static_export_browser() is None:
        st.download_button("HTML", **html)
        st.caption("PNG and SVG export needs Chrome or Chromium on the server (e.g. `apt install chromium`).")
        return
    cols = st.columns(3)
    with cols[0]:
        static_download("PNG", export, name, "png", key=key)
    with cols[1]:
        static_download("SVG", export, name, "svg", key=key)
    cols[2].download_button("HTML", **html)


def _render(export: Callable[[], go.Figure], fmt: str) -> bytes:
    return static_image(export(), fmt, width=1600, height=900, scale=2 if fmt == "png" else 1)


def _kaleido_once_more(draw: Callable[[], T]) -> T:
    """``draw()``, again once if kaleido's page was not ready: under load its headless browser may run the
    drawing before the page's script has defined it ("kaleido_scopes is not defined", seen once in a
    test run on a loaded 2-core machine; plotly/Kaleido issue 214 reports the same error)."""
    try:
        return draw()
    except RuntimeError as exc:
        if "kaleido_scopes is not defined" not in str(exc):
            raise
        return draw()


def static_image(fig: go.Figure, fmt: str, *, width: int, height: int, scale: float = 1) -> bytes:
    """The figure drawn as ``fmt`` (png or svg) by kaleido in the server's Chromium."""
    import plotly.io as pio

    return _kaleido_once_more(lambda: pio.to_image(fig, format=fmt, width=width, height=height, scale=scale))


def static_download(label: str, export: Callable[[], go.Figure], name: str, fmt: str, *, key: str) -> None:
    """A PNG or SVG export in two steps, so its ~10 s (kaleido starts a headless Chromium) show: the button draws
    the image under a spinner that counts the seconds, then a download button takes its place (and is gone once
    used). The image is kept per file name, which names the view, so it is not offered for another view."""
    stash = f"cs-export-{fmt}-{key}"
    slot = st.empty()
    ready = st.session_state.get(stash)
    if ready is None or ready[0] != name:
        if not slot.button(label, key=f"{fmt}-{key}", icon={"png": ":material/image:", "svg": ":material/draw:"}[fmt],
                           help=f"Draws the figure as {label} (about 10 s), then offers it for download."):
            return
        with slot, st.spinner(f"Drawing the {label}...", show_time=True):
            try:
                ready = st.session_state[stash] = (name, _render(export, fmt))
            except Exception as exc:  # noqa: BLE001 - kaleido/Chromium failures are shown, never a traceback
                slot.error(f"Cannot draw the {label}: {visitor(exc)}", icon=":material/error:")
                return
    slot.download_button(f"Save {label}", data=ready[1], file_name=f"{name}.{fmt}", key=f"{fmt}-get-{key}",
                         mime={"png": "image/png", "svg": "image/svg+xml"}[fmt], icon=":material/download:",
                         on_click=lambda: st.session_state.pop(stash, None), type="primary")


def render_pngs(figs: Sequence[go.Figure], *, width: int, height: int, chunk: int = 8,
                progress: Callable[[int], object] | None = None) -> list[bytes]:
    """PNG images of ``figs`` through kaleido, ``chunk`` figures per headless-browser session (starting
    the browser costs more than drawing a frame); ``progress(n)`` after every chunk, n figures done.

    kaleido returns a frame's failure (a timeout of its page under load, or the page not ready) in a tuple
    instead of raising it, and leaves that frame unwritten: the frames left unwritten are drawn once more, and
    if any is still missing this raises, naming kaleido's error (see :func:`_draw_frames`)."""
    import tempfile
    from pathlib import Path

    out: list[bytes] = []
    with tempfile.TemporaryDirectory(prefix="clusterscope-frames-") as tmp:
        for start in range(0, len(figs), chunk):
            paths = [Path(tmp) / f"{i:05d}.png" for i in range(start, min(start + chunk, len(figs)))]
            jobs = [{"fig": figs[i], "path": str(p), "opts": {"format": "png", "width": width, "height": height}}
                    for i, p in zip(range(start, start + len(paths)), paths, strict=True)]
            _draw_frames(jobs)
            out += [p.read_bytes() for p in paths]
            if progress is not None:
                progress(len(out))
    return out


def _draw_frames(jobs: list[dict]) -> None:
    """Write every job's frame to its ``path`` through kaleido, drawing the frames it left unwritten once more."""
    from pathlib import Path

    import kaleido

    errors: tuple = ()
    for _ in range(2):
        if not (jobs := [j for j in jobs if not Path(j["path"]).is_file()]):
            return
        errors = _kaleido_once_more(lambda jobs=jobs: kaleido.write_fig_from_object_sync(jobs)) or ()
    if missing := [j for j in jobs if not Path(j["path"]).is_file()]:
        reason = f"{type(errors[0]).__name__}: {errors[0]}" if errors else "kaleido gave no reason"
        raise RuntimeError(f"{len(missing)} of the animation's frames could not be drawn, twice ({reason}); "
                           "try again, or with fewer epochs")


# Presentation mode hides every control (sidebar, toolbar, the widgets in the page: the view stays the one
# the link or the controls chose) and leaves the page's room to the figures; the exit button stays in the top
# right corner, invisible until the pointer is over it.
WIDGETS = ", ".join(f'[data-testid="{t}"]' for t in (
    "stCheckbox", "stButton", "stDownloadButton", "stSelectbox", "stMultiSelect", "stRadio", "stNumberInput",
    "stTextInput", "stSlider", "stFileUploader", "stPageLink", "stButtonGroup", "stFormSubmitButton"))
PRESENT_CSS = f"""<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], header, [data-testid="stToolbar"],
[data-testid="stMain"] :is([data-testid="stExpander"], [data-testid="stForm"], [data-testid="stElementToolbar"],
  [data-testid="stTooltipIcon"]),
[data-testid="stMain"] [data-testid="stElementContainer"]:not(.st-key-cs-exit *):has(> :is({WIDGETS})),
.cs-controls {{display: none !important;}}
[data-testid="stMainBlockContainer"] {{padding-top: 1rem !important; padding-bottom: 1rem !important;}}
html, body, [data-testid="stMarkdownContainer"] p {{font-size: 1.35rem;}}
h1 {{font-size: 2.2rem !important; padding-top: 0 !important;}}
.st-key-cs-exit {{position: fixed; top: 0.4rem; right: 1rem; z-index: 999990; width: auto !important; opacity: 0;}}
.st-key-cs-exit:hover, .st-key-cs-exit:focus-within {{opacity: 1;}}
</style>"""


def presentation_toggle() -> bool:
    """Sidebar switch for presentation mode (``?present=1``): no controls, larger fonts (``plot`` and
    ``charts.style``), and an exit button that shows when the pointer reaches the top right corner."""
    on = st.sidebar.toggle("Presentation mode", value=state.presenting(), key="w-present",
                           help="Hides the controls and enlarges fonts for a projector. Add ?present=1 to a link.")
    state.remember(present="1" if on else None)
    if on:
        st.markdown(PRESENT_CSS, unsafe_allow_html=True)
        with st.container(key="cs-exit"):
            st.button("Exit presentation", icon=":material/close:", type="tertiary", on_click=exit_presentation)
    return on


def exit_presentation() -> None:
    st.session_state["w-present"] = False
    st.query_params.pop("present", None)


def plot(fig: go.Figure, *, key: str, container=st, **kwargs: object) -> object:  # noqa: ANN001
    """``st.plotly_chart`` with the figure's own fonts and colours: ``theme=None``, because Streamlit's default
    theme ("streamlit") replaces them with its own (fonts about 3/4 of ours, grey axis labels). In presentation
    mode without Plotly's mode bar (a control)."""
    config = {"displayModeBar": False} if state.presenting() else {}
    return container.plotly_chart(fig, width="stretch", key=key, theme=None, config=config, **kwargs)


def visitor(text: object) -> str:
    """A backend message as a visitor may read it: server paths shown relative to the store, or by name only."""
    return api.visitor_text(str(text), loaders.store_root())


def store_name() -> str:
    """' **/path/to/store**' where visitors may see server paths (a local server, or the operator allowed them), else ''."""
    return f" **{loaders.store_root()}**" if api.server_paths_allowed() else ""


def error_panel(exc: Exception, *, what: str) -> None:
    """A message in the panel concerned, never a traceback."""
    st.error(f"{what}: {visitor(exc)}", icon=":material/error:")


def show(fig: go.Figure, name: str, key: str, *, context: str = "", legend: str = "", **select: object) -> object:
    """Draw a figure in the house style with its downloads under it (``context``, ``legend``: see
    :func:`export_figure`); returns the selection event."""
    event = plot(charts.style(fig, present=state.presenting()), key=key, **select)
    figure_downloads(fig, name, key=key, context=context, legend=legend)
    return event


def analysis_state_ui(run: str, info: dict, snaps: pd.DataFrame, analysed: pd.DataFrame) -> bool:
    """Say what the run's analysis lacks (and, before any, what the run holds). False when nothing is analysed."""
    status = loaders.analysis_status(run)
    done = len(analysed[["layer", "epoch"]].drop_duplicates())
    if not done and info.get("status") == "running":
        st.info(f"Run **{run}** is still training; it is analysed when training ends.")
    elif not done:
        st.info(f"Run **{run}** has not been analysed yet. Analyse it with\n\n```\nclusterscope analyze {run}\n```")
    elif done < len(snaps):
        why = "has not finished (it may still be running)" if not status else "does not cover every snapshot"
        st.info(f"The analysis of **{run}** {why}: {done} of {len(snaps)} snapshots are analysed and shown here. "
                f"Analyse the rest with `clusterscope analyze {run}`.")
    for where, message in (status.get("errors") or {}).items():
        st.warning(f"Snapshot {where} could not be analysed: {visitor(message)}")
    if not done and not snaps.empty:
        st.caption("Recorded snapshots (activations) of this run:")
        st.dataframe(snaps.groupby("layer", sort=False)["epoch"].agg(lambda e: ", ".join(map(str, sorted(e))))
                     .rename("epochs").reset_index(), hide_index=True, width="content")
    return bool(done)


def empty_store_ui() -> bool:
    """True (after saying how to create runs) when the store has no runs."""
    if not loaders.list_runs().empty:
        return False
    st.info(f"The run store{store_name()} has no runs yet.\n\nCreate the built-in demo with\n\n"
            "```\nmake demo          # or: clusterscope demo\n```\n"
            "or train your own run with `clusterscope train configs/digits_vgg.toml`.")
    return True


def chosen_run(*, prefer: Callable[[str], bool] | None = None) -> tuple[str, dict] | None:
    """The sidebar's run (``prefer``: see :func:`run_picker`) and its run.json; None after saying why (an
    empty store, an unreadable run)."""
    if empty_store_ui():
        return None
    run = run_picker(container=st.sidebar, prefer=prefer)
    try:
        info = loaders.read_run(run)
    except ClusterScopeError as exc:
        error_panel(exc, what=f"Run {run}")
        return None
    diverged_warning(run, info)
    return run, info
