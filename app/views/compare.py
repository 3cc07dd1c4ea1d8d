"""Compare: do the measures predict generalization across runs? (SCIENCE.md 3.2, 6.1, 6.2 and 6.4)

Runs are grouped by sweep (or chosen freely among all runs). One point per run (measure at its last
analysed epoch against test accuracy), the Kendall and granulated-Kendall table of every measure per
hyperparameter axis and in total, the coefficients of c1 and c3 against k, and the measures over
training for a few chosen runs.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd
import streamlit as st

from app import loaders, state, widgets
from app.charts import compare as charts_compare
from app.views import compare_multiples
from backend import api
from backend.api import ClusterScopeError, CorruptFileError

# ---------------------------------------------------------------- widgets


def network_or_none(run_id: str, corrupt: dict[str, str] | None = None) -> pd.DataFrame | None:
    """The run's network-level c1..c4 per epoch, or None while it is not analysed (or, noted in
    ``corrupt``, when its network.parquet is unreadable)."""
    try:
        net = loaders.analysis(run_id, "network")
    except CorruptFileError as exc:
        if corrupt is not None:
            corrupt[run_id] = str(exc)
        return None
    except ClusterScopeError:
        return None
    return net if not net.empty else None


# The controls sit in the sidebar, as on the other pages, so presentation mode (no sidebar) shows only results.


ALL_RUNS = "All runs"
ALL_DATA = "all"  # the data-set choice that mixes every data set
EPOCH_RUNS_DEFAULT = 3  # the thesis's Fig. 2.7 follows 2-3 models over training


def group_ui(sweeps: pd.DataFrame) -> str | None:
    """Which sweep to compare (``sweep=NAME`` in the URL), or None for a free choice among all runs."""
    options = [ALL_RUNS, *sweeps["sweep"].tolist()]
    counts = dict(zip(sweeps["sweep"], sweeps["runs"], strict=True))
    current = state.choice("sweep", options, default=options[1] if len(options) > 1 else ALL_RUNS)
    group = st.sidebar.selectbox(
        "Group", options, index=options.index(current), key="w-cmp-sweep",
        format_func=lambda g: g if g == ALL_RUNS else f"sweep {g} ({counts[g]} runs)",
        help="A sweep's runs (`clusterscope sweep`) are compared along the sweep's own axes; "
             "'All runs' compares any runs along the config keys that differ between them.")
    state.remember(sweep=None if group == ALL_RUNS else group)
    return None if group == ALL_RUNS else group


def data_ui(ids: list[str], analysed: list[str]) -> tuple[list[str], str]:
    """Which data set's runs to compare (``data=name/target`` in the URL, ``data=all`` for every one): by
    default the data set and training target with the most analysed runs. Returns (the runs, the choice;
    "" when the runs share one data set and there is nothing to choose)."""
    sets = loaders.data_sets()
    keys = {r: sets.get(r, "None/None") for r in ids}
    counts = Counter(keys.values())
    if len(counts) < 2:
        return ids, ""
    options = [*counts, ALL_DATA]
    default = api.main_data_set([keys[r] for r in analysed] or list(keys.values()))
    current = state.choice("data", options, default=default)
    chosen = st.sidebar.selectbox(
        "Data set", options, index=options.index(current), key="w-cmp-data",
        format_func=lambda k: "All data sets (mixed)" if k == ALL_DATA else f"{api.data_set_label(k)} ({counts[k]} runs)",
        help="Test accuracies, hence Kendall coefficients, compare runs of one data set and training target "
             "(run config data.name and data.target; SCIENCE.md 6.1). 'All data sets' mixes them.")
    if st.query_params.get("data", chosen) != chosen:  # another data set: its runs by default, not the last list
        state.remember(runs=None)
    state.remember(data=chosen)
    return (ids if chosen == ALL_DATA else [r for r in ids if keys[r] == chosen]), chosen


def runs_ui(ids: list[str], analysed: list[str], sweep: str | None = None, data: str = "",
            corrupt: frozenset[str] = frozenset()) -> list[str]:
    """Multiselect of runs, kept in the URL as ``runs=a,b,c``; by default every analysed run (of the sweep
    and data set).

    A ``runs=`` list that names none of these runs (it was made for another group) is ignored.
    """
    remembered = state.choices("runs", ids)
    default = remembered if remembered or st.query_params.get("runs") == "" else analysed
    chosen = st.sidebar.multiselect(
        "Runs", ids, default=default, key="w-cmp-runs" + (f"-{sweep}" if sweep else "") + (f"-{data}" if data else ""),
        format_func=lambda r: r if r in analysed else f"{r} ({'analysis corrupt' if r in corrupt else 'not analysed yet'})",
        help="Each run is one model. Runs are compared on their measures at the last analysed epoch.",
    )
    state.remember(runs=chosen)
    return chosen


def scatter_ui(measures: list[str], axes: list[str]) -> tuple[list[str], str]:
    """Which measures to plot (``measures=``) and which column colours the points (``colour=``)."""
    wanted = state.choices("measures", measures) if "measures" in st.query_params else \
        [m for m in charts_compare.NETWORK_MEASURES if m in measures]
    chosen = st.sidebar.multiselect("Measures", measures, default=wanted, key="w-cmp-measures",
                              format_func=charts_compare.label,
                              help="c0-c4 are the thesis's intraclass-clustering measures (SCIENCE.md 3.1); "
                                   "1/σ′, 1/σ″, 1/α′, 1/α″ its sharpness baselines (3.2); the others are "
                                   "layer-averaged HDBSCAN cluster scores (3.5, proposed).")
    state.remember(measures=chosen)
    options = ["run_id", *axes]
    current = state.choice("colour", options, default="train.lr" if "train.lr" in axes else options[min(1, len(axes))])
    colour = st.sidebar.selectbox("Colour by", options, index=options.index(current), key="w-cmp-colour",
                             format_func=lambda c: "run" if c == "run_id" else c,
                             help="A hyperparameter whose value differs between the chosen runs, or the run itself.")
    state.remember(colour=colour)
    return chosen, colour


# ---------------------------------------------------------------- sections


def scatter_section(table: pd.DataFrame, kendall: pd.DataFrame, present: bool) -> None:
    st.subheader("Measure vs test accuracy")
    measures, colour = scatter_ui(kendall["measure"].tolist(), charts_compare.hyperparameter_columns(table))
    if not measures:
        st.info("Choose at least one measure.")
        return
    # Accuracies of different data sets or models are not comparable: tell them apart by marker shape.
    mixed = next((c for c in ("data.name", "model.name") if c in table.columns and c != colour), None)
    fig = charts_compare.measure_scatter(table, measures, colour_by=colour, symbol_by=mixed, present=present)
    widgets.plot(fig, key="compare-scatter")
    widgets.figure_downloads(fig, "measure-vs-accuracy", key="compare-scatter", legend=colour)
    if mixed:
        shapes = ", ".join(f"{v} {s}" for v, s in charts_compare.symbol_legend(table[mixed]).items())
        st.caption(f"The runs differ in **{mixed}** (marker shape: {shapes}); their accuracies, and the Kendall "
                   "coefficients over all runs, mix settings that the thesis compares separately (SCIENCE.md 6.1).")
    missing = [m for m in measures if table[m].isna().any()]
    if missing:
        st.caption(f"Runs without a value are left out of the panels of {', '.join(missing)} "
                   "(c0, c1 and c2 need subclasses: a data set with superclasses, trained on them; the sharpness "
                   "baselines need checkpoints and a model at the 90 % training-accuracy target).")


def noise_floor_section(table: pd.DataFrame) -> None:
    """Each run's c1 and c2 beside their noise floor, and the k of c1 and c3 with its share of the units."""
    if table[["c1", "c2"]].isna().all().all() and table["k_c1"].isna().all():
        return
    st.subheader("c1 and c2 against chance; k")
    shown = table[["run_id", "c1", "c1_shuffled", "c2", "c2_shuffled", "k_c1", "k_c3", "n_units"]].copy()
    k = shown[["k_c1", "k_c3"]].max(axis=1)  # NaN skipped
    shown["k share"] = k.where(k < shown["n_units"], shown["n_units"]) / shown["n_units"]
    number = st.column_config.NumberColumn
    st.dataframe(shown, hide_index=True, width="stretch", column_config={
        "run_id": "run", "c1": number(format="%.3f"), "c2": number(format="%.3f"),
        "c1_shuffled": number("c1 noise floor", format="%.3f", help="c1 with subclasses shuffled within superclasses."),
        "c2_shuffled": number("c2 noise floor", format="%.3f", help="c2 with subclasses shuffled within superclasses."),
        "k_c1": number("k (c1)", format="%d"), "k_c3": number("k (c3)", format="%d"),
        "n_units": number("units", format="%d", help="ReLU units of the network, over all layers."),
        "k share": number("k / units", format="percent", help=f"Flagged above {api.K_SHARE_LIMIT:.0%}.")})
    warnings = [f"**{r['run_id']}**: {w}" for _, r in shown.iterrows() if (w := api.k_warning(r))]
    st.caption("Noise floor: the same measure, run and epoch with the subclass labels shuffled within each "
               "superclass (fixed seed): the value when subclasses mean nothing (SCIENCE.md 3.1, \"Invariances\"; "
               "c2's is about 0). c1 and c3 are top-k means over all units (k / units: the share averaged).")
    for w in warnings:
        st.warning(w, icon=":material/warning:")


def intraclass_ui(reasons: dict[str, str | None]) -> None:
    """Which runs have no c1, c2, subclass purity or WTM, and why (api.intraclass_reason)."""
    without = {r: why for r, why in reasons.items() if why}
    if not without:
        return
    kinds = sorted(set(without.values()))
    st.caption(f"c1, c2, subclass purity, ARI/NMI vs subclass and the WTM fraction are left out for "
               f"{len(without)} of {len(reasons)} run(s) ({', '.join(without)}), so their Kendall rows count only "
               "the other runs. " + " ".join(kinds))


def kendall_section(kendall: pd.DataFrame) -> None:
    st.subheader("Kendall coefficients")
    cols = charts_compare.kendall_columns(kendall)
    notes = api.kendall_notes(kendall)
    # An axis along which no two chosen runs share the other settings has no ψ at all: the note names it instead.
    ranked = kendall[kendall["runs"] >= 2]  # the measures with values to rank
    lacking = ranked["not_measurable"].fillna("").str.split(", ") if "not_measurable" in ranked else pd.Series()
    hidden = [c for c in cols if c.startswith("psi[") and not lacking.empty and lacking.map(lambda a, c=c: c[4:-1] in a).all()]
    cols = [c for c in cols if c not in hidden]
    number = {c: st.column_config.NumberColumn(c.replace("psi[", "ψ["), format="%.2f") for c in cols if c.startswith("psi[")}
    number |= {"tau": st.column_config.NumberColumn("τ", format="%.2f"),
               "tau_b": st.column_config.NumberColumn("τ-b", format="%.2f"),
               "granulated_total": st.column_config.NumberColumn("granulated total", format="%.2f"),
               "total_axes": st.column_config.NumberColumn("axes in total", format="%d",
                                                           help="How many ψ columns the granulated total averages."),
               "runs": st.column_config.NumberColumn("runs", format="%d")}
    st.dataframe(kendall[cols], hide_index=True, width="stretch", column_config=number)
    if notes["ties_warning"]:
        st.warning(notes["ties_warning"], icon=":material/warning:")
    if notes["not_measurable"]:
        st.info(notes["not_measurable"], icon=":material/block:")
    if notes["ties"]:
        st.caption(notes["ties"])
    st.caption(
        "+1: the measure orders the runs exactly as test accuracy does; 0: no relation; −1: the reverse order. "
        "**τ** is the reference code's Kendall coefficient over all ordered pairs of runs (SCIENCE.md 3.2). No "
        "tie counts as agreement: a pair tied in the measure or in test accuracy scores 0 but stays in the "
        "count, so ties pull τ towards 0; a pair tied in both is left out. **τ-b** (scipy) corrects its "
        "denominator for ties, and is None when the measure or the accuracy is the same for every run. "
        "**ψ[key]** (granulated Kendall, Jiang et al. 2020) averages τ over the groups of runs that differ only "
        "in that hyperparameter; **granulated total** is the mean of the measurable ψ, over *axes in total* axes. "
        "Geometry rows (nc1_class ... twonn_id, SCIENCE.md 7) are means over layers at the last analysed epoch "
        "(nc3_class: the layer that feeds the classifier): NC1, NC2, NC3 and TwoNN are lower when more collapsed, "
        "so τ < 0 says collapse goes with higher accuracy; "
        "k-NN, probe and NC4 are higher when more separable."
    )


def k_section(table: pd.DataFrame, present: bool) -> None:
    st.subheader("Predictiveness against k")
    run_ids = table["run_id"].tolist()
    try:
        values = loaders.k_sensitivity(run_ids)
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Cannot compute c1 and c3 for every k")
        return
    if values.empty or values["run_id"].nunique() < 2:
        st.info("c1 and c3 against k need the activations of at least two analysed runs.")
        return
    axes = charts_compare.hyperparameter_columns(table)
    runs = table[["run_id", "test_accuracy"]]
    kept = runs[runs["run_id"].isin(values["run_id"])].reset_index(drop=True)
    hparams = table.set_index("run_id").loc[kept["run_id"], axes].reset_index(drop=True)
    taus = api.tau_over_k(values, kept, hparams)
    options = [c for c in charts_compare.K_COEFFICIENTS if c in taus.columns and taus[c].notna().any()]
    coefficient = state.choice("kcoef", options, default=options[0] if options else None)
    if coefficient is None:
        st.info("No Kendall coefficient is defined for these runs (every pair ties).")
        return
    coefficient = st.radio("Coefficient", options, index=options.index(coefficient), horizontal=True, key="w-cmp-kcoef",
                           format_func=charts_compare.K_COEFFICIENTS.get)
    state.remember(kcoef=coefficient)
    ratio = values["subclass_ratio"].dropna()
    scale = float(ratio.iloc[0]) if not ratio.empty and ratio.nunique() == 1 else 1.0
    units = int(values["units"].max())
    fig = charts_compare.tau_vs_k(taus, coefficient=coefficient, c1_scale=scale, max_k=units, present=present)
    widgets.plot(fig, key="compare-k")
    widgets.figure_downloads(fig, "tau-vs-k", key="compare-k", legend="measure")
    st.caption(
        f"c1 and c3 recomputed from each run's activations at its last analysed epoch with the top-k mean over k "
        f"neurons, then scored against test accuracy as in the table above (SCIENCE.md 3.2, thesis Fig. 2.5). "
        f"The largest network here has {units} ReLU units; larger k would average all of them. "
        + (f"c1 is computed per subclass and c3 per class, so c1's k is drawn at k × {scale:g} (subclasses per "
           "class; the thesis's ×5 on CIFAR-100 superclasses)." if scale != 1 else ""))


def epochs_ui(table: pd.DataFrame) -> list[str]:
    """Runs to follow over training (``epochruns=``): by default the best, median and worst by test accuracy."""
    ranked = table.sort_values("test_accuracy", ascending=False)["run_id"].tolist()
    picks = [ranked[0], ranked[len(ranked) // 2], ranked[-1]] if len(ranked) > EPOCH_RUNS_DEFAULT else ranked
    default = state.choices("epochruns", ranked) if "epochruns" in st.query_params else list(dict.fromkeys(picks))
    chosen = st.multiselect("Runs to follow over training", ranked, default=default, key="w-cmp-epochruns",
                            help="Listed by test accuracy, best first. By default the best, the median and the worst run.")
    state.remember(epochruns=chosen)
    return chosen


def epochs_section(table: pd.DataFrame, networks: dict[str, pd.DataFrame], present: bool) -> None:
    st.subheader("Measures over training")
    run_ids = epochs_ui(table)
    if not run_ids:
        st.info("Choose at least one run to follow over training.")
        return
    net_parts, met_parts = [], []
    for run in run_ids:
        net_parts.append(networks[run].assign(run_id=run))
        try:
            met_parts.append(loaders.read_metrics(run).assign(run_id=run))
        except ClusterScopeError as exc:
            widgets.error_panel(exc, what=f"Cannot read the metrics of {run}")
    metrics = pd.concat(met_parts, ignore_index=True) if met_parts else \
        pd.DataFrame(columns=["run_id", "epoch", "split", "accuracy", "lr"])
    fig = charts_compare.measures_over_epochs(pd.concat(net_parts, ignore_index=True), metrics, run_ids,
                                              present=present)
    widgets.plot(fig, key="compare-epochs")
    widgets.figure_downloads(fig, "measures-over-epochs", key="compare-epochs", legend="run")
    st.caption("c1-c4 at each analysed snapshot epoch (network level, training probe samples); accuracies at "
               "every epoch. Dotted vertical lines mark learning-rate drops, in the run's colour.")


def sweep_summary(name: str, members: pd.DataFrame) -> None:
    counts = members["status"].value_counts()
    text = ", ".join(f"{n} {status}" for status, n in counts.items())
    axes = [c for c in members.columns if c not in ("run_id", "status")]
    st.caption(f"Sweep **{name}**: {len(members)} runs ({text}); axes: {', '.join(axes) or 'none'}. "
               f"The same table on the command line: `clusterscope compare --sweep {name}`.")
    if counts.drop("complete", errors="ignore").sum():
        st.caption("Runs that are not complete are left out; `clusterscope sweep SWEEP.toml` finishes them (it resumes).")


# ---------------------------------------------------------------- page


def page() -> None:
    st.title("Compare runs")
    st.caption("Do the measures predict generalization? Each run is one model; a good measure orders the runs "
               "as their test accuracy does (SCIENCE.md 3.2).")
    runs = loaders.list_runs()
    ids = runs.loc[~runs["status"].isin(["corrupt", "diverged"]), "run_id"].tolist()
    diverged = runs.loc[runs["status"] == "diverged", "run_id"].tolist()
    if diverged:
        st.caption(f"Left out, their training diverged (loss NaN or infinite): {', '.join(diverged)}.")
    if not ids:
        st.info("No runs to compare yet: create the demo with `make demo` (or `clusterscope demo`), "
                "or run a sweep with `clusterscope sweep configs/sweeps/thesis_digits.toml`.")
        return
    sweep = group_ui(loaders.list_sweeps())
    members = loaders.sweep_runs(sweep) if sweep else None
    if members is not None:
        sweep_summary(sweep, members)
        ids = members.loc[members["status"] == "complete", "run_id"].tolist()
    corrupt: dict[str, str] = {}
    networks = {r: network_or_none(r, corrupt) for r in ids}
    ids, data = data_ui(ids, [r for r in ids if networks[r] is not None])
    analysed = [r for r in ids if networks[r] is not None]
    chosen = runs_ui(ids, analysed, sweep, data, frozenset(corrupt))
    for r in (r for r in chosen if r in corrupt):
        st.error(f"Left out, corrupt: {widgets.visitor(corrupt[r])} Re-analyse it with `clusterscope analyze {r}`.",
                 icon=":material/broken_image:")
    pending = [r for r in chosen if networks[r] is None and r not in corrupt]
    if pending:
        st.warning(f"Not analysed yet: {', '.join(pending)}. They join the comparison once analysed "
                   "(training analyses a run when it ends; or run `clusterscope analyze RUN`).",
                   icon=":material/hourglass_empty:")
    ready = [r for r in chosen if networks[r] is not None]
    if len(ready) < 2:
        st.info(f"Choose at least two analysed runs to compare ({len(ready)} chosen). "
                f"Analysed runs: {', '.join(analysed) or 'none yet'}.")
        return
    try:
        table, kendall = loaders.compare_sweep(sweep, ready) if sweep else loaders.compare(ready)
    except ClusterScopeError as exc:
        widgets.error_panel(exc, what="Cannot compare these runs")
        return
    mixed = api.mixed_data(table)
    if mixed:
        st.warning(mixed[0].upper() + mixed[1:], icon=":material/warning:")
    present = state.presenting()
    scatter_section(table, kendall, present)
    kendall_section(kendall)
    intraclass_ui({r: api.intraclass_reason(loaders.read_run(r)) for r in ready})
    noise_floor_section(table)
    k_section(table, present)
    epochs_section(table, networks, present)
    compare_multiples.section(table, ready, present)


if __name__ == "__main__":  # st.navigation (app/main.py) runs this file as the page's script
    page()
