"""Upload: bring your own checkpoints (one file or one per epoch), choose the architecture and the data, import.

The uploaded bytes are saved under validated names in the store's job folder, and ``clusterscope import``
runs in its own process (backend.api.launch_import); this page polls the job's status file, so it never
freezes. Files larger than Streamlit's ``server.maxUploadSize`` are imported from the command line.
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from app import jobs, loaders, widgets
from backend import api
from backend.api import ClusterScopeError

HERE = Path(__file__).resolve().parent
JOB = "cs-import-job"  # session key: the import job started from this page
DATASETS = ("digits", "synthclust", "mnist", "fashion-mnist", "cifar10", "cifar100", "imagefolder")
FILE_DATASETS = DATASETS[2:]
ARCHS = ("auto", "mlp", "vgg", "resnet", "torchvision")
CHECKPOINT_TYPES = ["pt", "pth", "ckpt", "bin", "safetensors", "ts", "jit", "torchscript"]



def limits_note() -> None:
    limit = st.get_option("server.maxUploadSize")
    st.caption(
        f"Upload one checkpoint, or one per epoch of a training run (named like `epoch=3.pt`, `epoch_003.pt` or "
        f"`step-1000.safetensors`). Formats: PyTorch state_dict (.pt/.pth), safetensors, TorchScript. Files are read "
        f"without unpickling. Uploads are limited to **{limit} MB per file** (Streamlit's `server.maxUploadSize`); "
        "import larger files from the command line: `clusterscope import PATH... --set data.name=...`."
    )


def architecture_ui() -> str:
    """The architecture choice as the backend names it: auto, mlp, vgg, resnet or tv:<name>."""
    a, b = st.columns(2)
    arch = a.selectbox("Architecture", ARCHS, key="up-arch",
                       help="auto: recognised from the weights (our mlp, vgg and resnet, and torchvision models whose "
                            "keys fit). The number of classes and the input size are read from the weights.")
    if arch != "torchvision":
        return arch
    name = b.text_input("Torchvision model", value="resnet18", key="up-tv", help="A torchvision classification model name.")
    return f"tv:{name.strip()}"


def data_ui() -> tuple[list[str], object | None]:
    """(data overrides, uploaded zip or None)."""
    a, b, c = st.columns(3)
    source = a.radio("Probe data", ["Known data set", "Upload an image-folder zip"], key="up-source",
                     help="The samples whose activations are recorded: the data set the model was trained on.")
    target = c.selectbox("Classes", ["auto", "label", "superclass"], key="up-target",
                         help="auto: the labels whose count matches the classifier's outputs.")
    overrides = [] if target == "auto" else [f'data.target="{target}"']
    if source == "Known data set":
        paths = api.server_paths_allowed()
        name = b.selectbox("Data set", DATASETS if paths else DATASETS[:2], key="up-data",
                           help="digits and synthclust are built in; the others read a folder on the server "
                                "(docs/datasets.md).")
        if not paths:
            b.caption("Data sets in folders of the server are switched off: "
                      f"{api.switch_off_reason('CLUSTERSCOPE_ALLOW_SERVER_PATHS')}. Upload an image-folder zip instead.")
        overrides.append(f'data.name="{name}"')
        if name in FILE_DATASETS:
            root = b.text_input("Data folder on the server", key="up-root", help="data.root: see docs/datasets.md.")
            overrides.append(f"data.root={_quote(root)}")
        return overrides, None
    zipped = b.file_uploader("Image-folder zip", type=["zip"], key="up-zip",
                             help="One folder per class; optional superclasses.csv (class,superclass) at the top. "
                                  "Checked for unsafe paths, links and decompression bombs before extraction.")
    size = b.number_input("Image size", min_value=0, max_value=512, value=0, key="up-size",
                          help="Images are resized to this square size. 0: the size the weights fix (an MLP's inputs, "
                               "a ViT's position embeddings), else 32.")
    if size:
        overrides.append(f"data.image_size={int(size)}")
    return overrides, zipped


def _quote(text: str) -> str:
    return json.dumps(text)


def trust_ui(files: list) -> bool:
    """The TorchScript warning and trust checkbox, shown only when a chosen file is TorchScript (disabled where
    the deployment switched TorchScript off)."""
    if not any(api.is_torchscript(f) for f in files):
        return False
    if not api.torchscript_allowed():
        st.info("TorchScript files are switched off on this server: "
                f"{api.switch_off_reason('CLUSTERSCOPE_ALLOW_TORCHSCRIPT')}. Upload a state_dict or safetensors file.",
                icon=":material/block:")
        return False
    st.warning("TorchScript archives contain code that runs when they are loaded. Tick the box only for files you "
               "trust; state_dict and safetensors files never run code.", icon=":material/warning:")
    return st.checkbox("I trust these files: load TorchScript if there is any", key="up-trust")


def start_import(files: list[tuple[str, bytes]], *, arch: str, overrides: list[str], zipped: tuple[str, bytes] | None,
                 epochs: str = "", trust: bool = False) -> dict:
    """Save the uploads under safe names and launch the import job; raise ClusterScopeError on bad input."""
    if not files:
        raise ClusterScopeError("upload at least one checkpoint file.")
    store = api.open_store(loaders.store_root())
    job_id = api.new_import_job(store)
    try:
        names = [n for n, _ in files]
        paths = [api.save_upload(store, job_id, f"{i:03d}-{api.safe_upload_name(n)}", data)
                 for i, (n, data) in enumerate(files)]
        zip_path = None
        if zipped is not None:
            zip_path = api.save_upload(store, job_id, "data.zip", zipped[1])
            api.check_data_zip(zip_path, zipped[0])  # refuse a hostile zip here, before the job starts
        epoch_list = api.parse_epochs(epochs.strip())
        return api.launch_import(store, job_id, paths, names=names, arch=arch, overrides=overrides, data_zip=zip_path,
                                 data_zip_name=zipped[0] if zipped else "", trust_torchscript=trust, epochs=epoch_list)
    except BaseException:  # a refused upload leaves nothing behind (docs/security.md)
        api.discard_import_job(store, job_id)
        raise


def import_form() -> None:
    limits_note()
    files = st.file_uploader("Checkpoints", type=CHECKPOINT_TYPES, accept_multiple_files=True, key="up-files")
    arch = architecture_ui()
    overrides, zipped = data_ui()
    a, b, c = st.columns(3)
    epochs = a.text_input("Epochs (optional)", key="up-epochs", placeholder="read from the file names, e.g. 0,5,10",
                          help="The epoch or step of each file, in upload order, when the names do not say.")
    probe_train = b.number_input("Probe samples from the training split", min_value=0, value=5000, step=500, key="up-ptrain",
                                 help="snapshots.probe_train: stratified samples whose activations are recorded.")
    probe_test = c.number_input("Probe samples from the test split", min_value=0, value=2000, step=500, key="up-ptest",
                                help="snapshots.probe_test.")
    overrides += [f"snapshots.probe_train={int(probe_train)}", f"snapshots.probe_test={int(probe_test)}"]
    name = st.text_input("Run name (optional)", key="up-name", placeholder="generated from the data, model and time",
                         help="Lowercase letters, digits, '.', '_' or '-'; at most 64 characters.").strip()
    if name:
        overrides.append(f"run_id={json.dumps(name)}")
    trust = trust_ui(files or [])
    if st.button("Import", type="primary", icon=":material/upload:", key="up-go", disabled=not files):
        try:
            job = start_import([(f.name, f.getvalue()) for f in files or []], arch=arch, overrides=overrides,
                               zipped=(zipped.name, zipped.getvalue()) if zipped is not None else None,
                               epochs=epochs, trust=trust)
        except ClusterScopeError as exc:
            st.error(f"Nothing was imported: {widgets.visitor(exc)}", icon=":material/error:")
            return
        st.session_state[JOB] = job["job_id"]


def job_view() -> None:
    """Progress of the job started here, re-read every second while it runs."""
    job_id = st.session_state.get(JOB)
    if not job_id:
        return
    try:
        status = api.import_job_status(api.open_store(loaders.store_root()), job_id)
    except ClusterScopeError as exc:
        st.error(widgets.visitor(exc))
        return
    state = status.get("state", "starting")
    done, total = int(status.get("done") or 0), int(status.get("total") or 0)
    if state in ("starting", "running"):
        st.progress(done / total if total else 0.0, text=f"{status.get('stage', 'starting')}: {done} of {total or '?'}")
        st.button("Cancel the import", key="up-cancel", icon=":material/stop_circle:", on_click=jobs.cancel,
                  args=("import", job_id))
    elif state == "cancelled":
        st.info(jobs.import_cancelled_text(job_id, status), icon=":material/stop_circle:")
    elif state == "failed":
        st.error(f"The import failed: {widgets.visitor(status.get('error'))}", icon=":material/error:")
    elif state == "done":
        run_id = status.get("run_id")
        st.success(f"Imported run **{run_id}**.", icon=":material/check_circle:")
        st.page_link(HERE / "embeddings.py", label="Open it in Embeddings", icon=":material/scatter_plot:",
                     query_params={"run": run_id})
        if status.get("analysis_errors"):
            st.warning(f"Some snapshots could not be analysed: {widgets.visitor(status['analysis_errors'])}")
    if st.session_state.get("up-polling") and state not in ("starting", "running"):
        st.session_state["up-polling"] = False
        st.rerun(scope="app")


def job_running() -> bool:
    job_id = st.session_state.get(JOB)
    try:
        return bool(job_id) and api.import_job_status(api.open_store(loaders.store_root()), job_id).get("state") in (
            "starting", "running")
    except ClusterScopeError:
        return False


def page() -> None:
    st.title("Upload")
    import_form()
    jobs.jobs_panel("up")
    st.session_state["up-polling"] = job_running()
    st.fragment(job_view, run_every=1 if st.session_state["up-polling"] else None)()


if __name__ == "__main__":  # st.navigation (app/main.py) runs this file as the page's script
    page()
