"""The Upload page through AppTest: real uploads (file_uploader.set_value), a real import job, errors on the page."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from backend import api

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")


def open_upload(root: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("CLUSTERSCOPE_STORE", str(root))
    at = AppTest.from_file(MAIN, default_timeout=90)
    at.switch_page("views/upload.py")
    return at.run()


def checkpoint_bytes(trained: tuple[api.RunStore, str], epoch: int) -> bytes:
    store, run_id = trained
    buf = io.BytesIO()
    torch.save(store.load_checkpoint(run_id, epoch), buf)
    return buf.getvalue()


def wait_for_job(at: AppTest, timeout: float = 300) -> AppTest:
    """Rerun the page (as its fragment does every second) until the job is no longer running."""
    deadline = time.monotonic() + timeout
    while at.session_state["up-polling"]:
        assert time.monotonic() < deadline, "the import job did not finish in time"
        time.sleep(1)
        at.run()
    return at.run()


def test_upload_page_widgets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_upload(tmp_path / "store", monkeypatch)
    assert not at.exception
    assert at.title[0].value == "Upload"
    assert "200 MB per file" in at.caption[0].value and "clusterscope import" in at.caption[0].value
    uploader = at.get("file_uploader")
    assert uploader[0].accept_multiple_files and ".safetensors" in uploader[0].allowed_type
    assert at.button(key="up-go").disabled  # nothing to import yet
    assert not at.warning  # the TorchScript warning waits for a TorchScript file (test_app_meeting)
    at.selectbox(key="up-arch").select("torchvision").run()
    assert at.text_input(key="up-tv").value == "resnet18"
    at.selectbox(key="up-data").select("cifar10").run()
    assert at.text_input(key="up-root").label == "Data folder on the server"
    at.radio(key="up-source").set_value("Upload an image-folder zip").run()
    assert len(at.get("file_uploader")) == 2 and at.number_input(key="up-size").value == 0
    monkeypatch.setenv("CLUSTERSCOPE_ALLOW_TORCHSCRIPT", "0")
    monkeypatch.setenv("CLUSTERSCOPE_ALLOW_SERVER_PATHS", "0")
    at.radio(key="up-source").set_value("Known data set").run()
    assert not at.checkbox  # the switched-off TorchScript note: test_app_meeting
    assert at.selectbox(key="up-data").options == ["digits", "synthclust"]  # no folders of the server


def test_upload_imports_and_analyses_a_run(trained_store: tuple[api.RunStore, str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "store"
    at = open_upload(root, monkeypatch)
    files = [(f"epoch={e}.pt", checkpoint_bytes(trained_store, e), "application/octet-stream") for e in (0, 2)]
    at.get("file_uploader")[0].set_value(files)
    at.number_input(key="up-ptrain").set_value(300)
    at.number_input(key="up-ptest").set_value(100)
    at.run()
    at.button(key="up-go").click().run()
    assert not at.error, [e.value for e in at.error]
    at = wait_for_job(at)
    assert not at.exception
    assert "Imported run" in at.success[0].value, [e.value for e in at.error]
    store = api.open_store(root)
    (run_id,) = store.run_ids()
    info = api.read_run(store, run_id)
    assert info["recorded_epochs"] == [0, 2] and info["origin"]["via"] == "upload"
    assert info["dataset"]["n_probe_train"] == 300 and info["dataset"]["n_probe_test"] == 100
    assert [s["file"] for s in info["origin"]["sources"]] == ["epoch=0.pt", "epoch=2.pt"]
    assert api.analysis_status(store, run_id)["errors"] == {}  # analysed like a trained run
    assert not list((root / ".imports").glob("*/files/*"))  # the uploaded copies are gone
    at.switch_page("views/runs.py").run()
    assert any("imported from 2 state_dict checkpoint(s)" in c.value for c in at.caption)


def test_upload_errors_are_shown_on_the_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "store"
    at = open_upload(root, monkeypatch)
    at.get("file_uploader")[0].set_value(("epoch=0.pt", b"not a checkpoint at all", "application/octet-stream"))
    at.run()
    at.button(key="up-go").click().run()
    at = wait_for_job(at, timeout=120)
    assert "unknown format" in at.error[0].value and not at.exception
    assert api.open_store(root).run_ids() == []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../escape.png", b"x")
    at.radio(key="up-source").set_value("Upload an image-folder zip").run()
    at.get("file_uploader")[1].set_value(("data.zip", buf.getvalue(), "application/zip"))
    at.run()
    at.button(key="up-go").click().run()
    assert any("Nothing was imported" in e.value and "leaves the folder" in e.value for e in at.error)
    assert not (tmp_path / "escape.png").exists()
