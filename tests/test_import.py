"""Importing checkpoints: round trips in every format, torchvision, hostile files and zips, every error."""

from __future__ import annotations

import io
import json
import pickle
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from backend import api
from backend.cli import cli
from backend.errors import ClusterScopeError
from backend.importing.architecture import ArchitectureError
from backend.importing.checkpoints import ImportFileError, assign_epochs, epoch_label
from backend.importing.zipsafe import UnsafeArchiveError, ZipLimits, check_zip, extract_zip

DIGITS = ('data.name="digits"', 'train.device="cpu"')  # the trained run recorded on the CPU too: equal to the bit
EPOCHS = (0, 1, 2)


def nothing_left(store: api.RunStore) -> None:
    """No run, no staging folder: a failed import leaves nothing behind."""
    assert store.run_ids() == []
    assert not (store.root / ".staging").exists()


def export(trained: tuple[api.RunStore, str], folder: Path, fmt: str) -> list[Path]:
    """The trained run's checkpoints written in ``fmt``, one file per epoch named like epoch=N."""
    store, run_id = trained
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for e in EPOCHS:
        sd = store.load_checkpoint(run_id, e)
        if fmt == "state_dict":
            path = folder / f"epoch={e}.pt"
            torch.save(sd, path)
        elif fmt == "wrapped":
            path = folder / f"model_epoch_{e:03d}.pth"
            torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": e, "lr": 0.1}, path)
        elif fmt == "safetensors":
            from safetensors.torch import save_file

            path = folder / f"step-{e}.safetensors"
            save_file(sd, str(path))
        else:
            path = folder / f"epoch={e}.ts"
            torch.jit.save(torch.jit.trace(_model(store, run_id, sd), torch.zeros(2, 64)), str(path))
        out.append(path)
    return out


def _model(store: api.RunStore, run_id: str, sd: dict, cls: type | None = None) -> torch.nn.Module:
    from backend.training.models import MLP

    cfg = store.read_run(run_id)["config"]["model"]
    model = (cls or MLP)(64, 5, depth=cfg["depth"], width=cfg["width"], batch_norm=cfg["batch_norm"], dropout=0.0)
    model.load_state_dict(sd)
    return model.eval()


@pytest.mark.parametrize("fmt", ["state_dict", "wrapped", "safetensors", "torchscript"])
def test_round_trip_gives_the_trained_runs_activations(fmt: str, trained_store: tuple[api.RunStore, str], store: api.RunStore,
                                                       tmp_path: Path) -> None:
    original, run_id = trained_store
    files = export(trained_store, tmp_path / "ckpts", fmt)
    new = api.import_checkpoints(store, [tmp_path / "ckpts"], overrides=DIGITS, trust_torchscript=fmt == "torchscript")
    info = api.read_run(store, new)
    assert info["status"] == "complete" and info["recorded_epochs"] == list(EPOCHS)
    assert info["dataset"]["target"] == "superclass"  # 5 outputs: digits' 5 superclasses, not its 10 labels
    o = info["origin"]
    assert o["kind"] == "imported" and o["architecture"] == "mlp" and o["format"] == ("state_dict" if fmt == "wrapped" else fmt)
    assert o["epoch_unit"] == ("step" if fmt == "safetensors" else "epoch")
    assert [s["file"] for s in o["sources"]] == [f.name for f in files]
    assert o["sources"][0]["sha256"] == __import__("hashlib").sha256(files[0].read_bytes()).hexdigest()
    assert set(api.snapshots(store, new)["layer"]) == {"fc1.relu", "fc2.relu"}
    for e in EPOCHS:
        for layer in ("fc1.relu", "fc2.relu"):
            ids_a, a = api.read_activations(original, run_id, layer, e)
            ids_b, b = api.read_activations(store, new, layer, e)
            np.testing.assert_array_equal(ids_a, ids_b)
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
        pa, pb = api.read_predictions(original, run_id, e), api.read_predictions(store, new, e)
        assert (pa["prediction"] == pb["prediction"]).all()
    test = api.read_metrics(store, new).query("split == 'test'")["accuracy"].to_numpy()
    np.testing.assert_allclose(test, api.read_metrics(original, run_id).query("split == 'test'")["accuracy"].to_numpy())
    assert store.checkpoint_epochs(new) == list(EPOCHS)  # layer rotation can be computed from them
    assert not (store.root / ".staging").exists()


def _image_zip(path: Path, classes: int = 3, per_class: int = 6, size: int = 32) -> Path:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for c in range(classes):
            for i in range(per_class):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
                zf.writestr(f"shapes/class{c}/img{i}.png", buf.getvalue())
        zf.writestr("shapes/superclasses.csv", "class,superclass\nclass0,a\nclass1,a\nclass2,b\n")
        zf.writestr("__MACOSX/shapes/._img0.png", b"resource fork")
    return path


def test_torchvision_resnet18_imports_with_an_uploaded_image_folder(store: api.RunStore, tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "resnet18.pth")
    zip_path = _image_zip(tmp_path / "shapes.zip")
    run_id = api.import_checkpoints(store, [tmp_path / "resnet18.pth"], data_zip=zip_path, overrides=('train.device="cpu"',))
    info = api.read_run(store, run_id)
    assert info["origin"]["architecture"] == "tv:resnet18"  # recognised from the keys: --arch auto
    assert info["dataset"]["name"] == "imagefolder" and info["dataset"]["label_names"] == ["class0", "class1", "class2"]
    assert info["dataset"]["superclass_names"] == ["a", "b"] and info["dataset"]["target"] == "label"
    assert info["origin"]["data_zip"]["file"] == "shapes.zip"
    layers = [layer["name"] for layer in info["layers"]]
    assert layers[0] == "relu" and "layer4.1.relu_1" in layers and len(layers) == 17
    ids, values = api.read_activations(store, run_id, "layer4.1.relu_1", 0)
    assert values.shape == (18, 512) and np.isfinite(values).all()
    samples = api.read_samples(store, run_id)  # the zip's file names, for the search box (schema version 3)
    assert set(samples["file_name"]) == {f"class{c}/img{i}.png" for c in range(3) for i in range(6)}
    extracted = list((store.root / ".datasets").iterdir())
    assert len(extracted) == 1 and not list(extracted[0].rglob("._img0.png"))


def _evil_payload(marker: Path) -> bytes:
    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    return pickle.dumps({"weight": torch.zeros(2), "evil": Evil()}, protocol=2)


def test_crafted_pickle_is_refused_and_never_runs(store: api.RunStore, tmp_path: Path) -> None:
    proof = tmp_path / "proof"
    pickle.loads(_evil_payload(proof))  # the payload works: unpickling it does create its marker
    assert proof.exists()
    marker = tmp_path / "marker"
    legacy = tmp_path / "evil_legacy.pt"
    legacy.write_bytes(_evil_payload(marker))
    archive = tmp_path / "evil.pt"
    with zipfile.ZipFile(archive, "w") as zf:  # the torch.save zip layout around the same pickle
        zf.writestr("evil/data.pkl", _evil_payload(marker))
        zf.writestr("evil/version", "3\n")
    for path in (legacy, archive):
        with pytest.raises(ImportFileError, match="full unpickling.*torch.save\\(model.state_dict\\(\\)"):
            api.import_checkpoints(store, [path], overrides=DIGITS)
    assert not marker.exists()
    nothing_left(store)


def _zip(path: Path, entries: dict[str, bytes], link: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize(("entries", "link", "limits", "match"), [
    ({"a/x.png": b"1", "../evil.txt": b"x"}, None, ZipLimits(), "leaves the folder"),
    ({"a/../../evil.txt": b"x"}, None, ZipLimits(), "leaves the folder"),
    ({"/tmp/evil.txt": b"x"}, None, ZipLimits(), "absolute"),
    ({"a\\..\\evil.txt": b"x"}, None, ZipLimits(), "absolute or Windows"),
    ({"a/x.png": b"1"}, "a/link.png", ZipLimits(), "symbolic link"),
    ({f"a/{i}.png": b"1" for i in range(6)}, None, ZipLimits(max_files=5), "6 entries; at most 5"),
    ({"a/x.png": b"1" * 5000}, None, ZipLimits(max_bytes=4000), "expands to"),
])
def test_unsafe_zips_are_refused_before_extraction(entries: dict, link: str | None, limits: ZipLimits, match: str,
                                                   tmp_path: Path) -> None:
    path = _zip(tmp_path / "up.zip", entries, link)
    dest = tmp_path / "out" / "data"
    with pytest.raises(UnsafeArchiveError, match=match):
        extract_zip(path, dest, limits=limits)
    assert not dest.exists() and not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_entry_count_is_checked_before_the_directory_is_read(tmp_path: Path) -> None:
    from backend.importing.zipsafe import _declared_entries

    path = _zip(tmp_path / "many.zip", {f"a/{i}.png": b"1" for i in range(30)})
    assert _declared_entries(path) == 30
    with pytest.raises(UnsafeArchiveError, match="declares 30 entries; at most 10"):
        check_zip(path, limits=ZipLimits(max_files=10))


def test_zip_bomb_is_refused(trained_store: tuple[api.RunStore, str], store: api.RunStore, tmp_path: Path) -> None:
    bomb = _zip(tmp_path / "bomb.zip", {"a/zeros.png": bytes(16 * 1024**2), "b/x.png": b"1"})
    assert bomb.stat().st_size < 100_000  # 16 MiB of zeros deflate to about 16 KiB
    with pytest.raises(UnsafeArchiveError, match="decompression bomb"):
        check_zip(bomb)
    ckpt = _save(tmp_path / "epoch=0.pt", _tiny_sd(trained_store))
    with pytest.raises(ClusterScopeError, match="decompression bomb"):
        api.import_checkpoints(store, [ckpt], data_zip=bomb)
    assert not (store.root / ".datasets").exists() or not any((store.root / ".datasets").iterdir())


def _tiny_sd(trained: tuple[api.RunStore, str]) -> dict:
    store, run_id = trained
    return store.load_checkpoint(run_id, 2)


def _save(path: Path, sd: dict) -> Path:
    torch.save(sd, path)
    return path


def test_architecture_mismatch_names_keys_and_suggests(trained_store: tuple[api.RunStore, str], store: api.RunStore,
                                                       tmp_path: Path) -> None:
    path = _save(tmp_path / "w.pt", _tiny_sd(trained_store))
    with pytest.raises(ArchitectureError, match=r"missing keys: conv1_1\.conv\.weight.*unexpected keys: fc1\.linear\.weight"
                                                r".*It looks like mlp"):
        api.import_checkpoints(store, [path], arch="vgg", overrides=DIGITS)
    with pytest.raises(ArchitectureError, match="missing keys: conv1.weight.*It looks like mlp"):
        api.import_checkpoints(store, [path], arch="tv:resnet18", overrides=DIGITS)
    with pytest.raises(ArchitectureError, match="Did you mean tv:resnet18"):
        api.import_checkpoints(store, [path], arch="tv:resnet19", overrides=DIGITS)
    sd = _tiny_sd(trained_store)
    sd["fc2.linear.weight"] = torch.zeros(16, 12)
    with pytest.raises(ArchitectureError, match=r"shape mismatches: fc2\.linear\.weight expects \[16, 16\], checkpoint has \[16, 12\]"):
        api.import_checkpoints(store, [_save(tmp_path / "bad.pt", sd)], overrides=DIGITS)
    with pytest.raises(ArchitectureError, match="cannot tell the architecture"):
        api.import_checkpoints(store, [_save(tmp_path / "odd.pt", {"encoder.w": torch.zeros(3, 3)})], overrides=DIGITS)
    nothing_left(store)


def test_wrong_classes_and_input_size(trained_store: tuple[api.RunStore, str], store: api.RunStore, tmp_path: Path) -> None:
    path = _save(tmp_path / "w.pt", _tiny_sd(trained_store))
    with pytest.raises(ArchitectureError, match="wrong number of classes: the checkpoint's classifier has 5 outputs.*10 classes "
                                                "and 5 superclasses and data.target is 'label'"):
        api.import_checkpoints(store, [path], overrides=(*DIGITS, 'data.target="label"'))
    sd = _tiny_sd(trained_store)
    sd["classifier.weight"], sd["classifier.bias"] = torch.zeros(7, 16), torch.zeros(7)
    with pytest.raises(ArchitectureError, match="wrong number of classes: the checkpoint's classifier has 7 outputs"):
        api.import_checkpoints(store, [_save(tmp_path / "seven.pt", sd)], overrides=DIGITS)
    synth = ('data.name="synthclust"', "data.synthclust.dim=40", "data.synthclust.clusters_per_class=2",
             "data.synthclust.train_per_cluster=5", "data.synthclust.test_per_cluster=2")
    with pytest.raises(ArchitectureError, match="input size mismatch: the checkpoint's first layer takes 64 inputs per sample, "
                                                "data set 'synthclust' gives 40"):
        api.import_checkpoints(store, [path], overrides=synth)
    nothing_left(store)


def test_bad_files(trained_store: tuple[api.RunStore, str], store: api.RunStore, tmp_path: Path) -> None:
    good = _save(tmp_path / "good.pt", _tiny_sd(trained_store))
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "text.pt").write_bytes(b"these are not the weights you are looking for")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(100)}, str(tmp_path / "full.safetensors"))
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "full.safetensors").read_bytes()[:60])
    torch.save({"optimizer": {"lr": 0.1}}, tmp_path / "noweights.pt")
    cases = {"empty.pt": "is empty", "cut.pt": "truncated or corrupt", "text.pt": "unknown format",
             "cut.safetensors": "truncated", "noweights.pt": "not a state_dict", "missing.pt": "does not exist"}
    for name, match in cases.items():
        with pytest.raises(ImportFileError, match=match):
            api.import_checkpoints(store, [tmp_path / name], overrides=DIGITS)
    nothing_left(store)


def test_torchscript_needs_trust_and_is_checked(trained_store: tuple[api.RunStore, str], store: api.RunStore,
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = export(trained_store, tmp_path / "ts", "torchscript")[0]
    with pytest.raises(ImportFileError, match="TorchScript archive.*trust"):
        api.import_checkpoints(store, [path], overrides=DIGITS)
    monkeypatch.setenv("CLUSTERSCOPE_ALLOW_TORCHSCRIPT", "0")
    with pytest.raises(ClusterScopeError, match="switched off"):
        api.import_checkpoints(store, [path], overrides=DIGITS, trust_torchscript=True)
    monkeypatch.delenv("CLUSTERSCOPE_ALLOW_TORCHSCRIPT")
    from backend.training.models import MLP

    class Doubled(MLP):  # same weights, another forward: the eager copy would record something else
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * super().forward(x)

    s, run_id = trained_store
    traced = torch.jit.trace(_model(s, run_id, _tiny_sd(trained_store), Doubled), torch.zeros(2, 64))
    torch.jit.save(traced, str(tmp_path / "doubled.ts"))
    with pytest.raises(ArchitectureError, match="TorchScript module's outputs differ"):
        api.import_checkpoints(store, [tmp_path / "doubled.ts"], overrides=DIGITS, trust_torchscript=True)
    nothing_left(store)  # this one failed while recording, inside the staging folder


def test_epoch_labels() -> None:
    assert epoch_label("epoch=3.pt") == (3, "epoch")
    assert epoch_label("run1_epoch_003.pt") == (3, "epoch")
    assert epoch_label("step-1000.safetensors") == (1000, "step")
    assert epoch_label("model-ep7.pth") == (7, "epoch")
    assert epoch_label("final.pt") is None
    assert assign_epochs(["final.pt"]) == ([0], "epoch")
    assert assign_epochs(["ckpt_10.pt", "ckpt_2.pt"]) == ([10, 2], "epoch")
    assert assign_epochs(["a.pt", "b.pt"], [5, 0]) == ([5, 0], "epoch")
    with pytest.raises(ImportFileError, match="mix epoch and step"):
        assign_epochs(["epoch=1.pt", "step-2.pt"])
    with pytest.raises(ImportFileError, match="cannot tell the epoch"):
        assign_epochs(["a.pt", "b.pt"])
    with pytest.raises(ImportFileError, match="same epoch"):
        assign_epochs(["epoch=1.pt", "x/epoch_001.pt"])
    with pytest.raises(ImportFileError, match="one epoch per checkpoint"):
        assign_epochs(["a.pt"], [1, 2])


def test_upload_names_never_become_paths(store: api.RunStore) -> None:
    assert api.safe_upload_name("../../etc/passwd") == "passwd"
    assert api.safe_upload_name("C:\\Users\\me\\epoch=3.pt") == "epoch=3.pt"
    assert api.safe_upload_name("my model (v2).pt") == "my_model__v2_.pt"
    with pytest.raises(ClusterScopeError, match="no usable characters"):
        api.safe_upload_name("../..")
    with pytest.raises(api.StoreError, match="not a safe file name"):
        store.save_upload("job-1", "../x", b"")
    with pytest.raises(api.StoreError, match="run id"):
        store.job_dir("../job")


def test_cli_imports_a_folder_and_reports_errors(trained_store: tuple[api.RunStore, str], store: api.RunStore,
                                                 tmp_path: Path) -> None:
    export(trained_store, tmp_path / "ckpts", "state_dict")
    runner = CliRunner()
    args = ["import", str(tmp_path / "ckpts"), "--store", str(store.root), "--set", 'data.name="digits"', "--no-analyze",
            "--no-progress", "--set", 'run_id="mine"', "--epochs", "0,10,20"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "imported run mine" in result.output
    assert api.read_run(store, "mine")["recorded_epochs"] == [0, 10, 20]
    again = runner.invoke(cli, args)
    assert again.exit_code == 2 and "run 'mine' already exists" in again.output
    bad = runner.invoke(cli, ["import", str(tmp_path / "ckpts"), "--store", str(store.root), "--set", "train.lr=0.1"])
    assert bad.exit_code == 2 and "cannot be set for an import" in bad.output


def test_import_job_writes_its_status(trained_store: tuple[api.RunStore, str], store: api.RunStore, tmp_path: Path) -> None:
    from backend.jobs.import_job import run_import_job
    from backend.jobs.uploads import user_overrides

    files = export(trained_store, tmp_path / "ckpts", "state_dict")
    job = api.new_import_job(store)
    uploaded = [api.save_upload(store, job, f.name, f.read_bytes()) for f in files]
    run_id = run_import_job(store, uploaded, arch="auto", settings=user_overrides(DIGITS), epochs=None, data_zip=None,
                            trust_torchscript=False, analyze=False, progress=False, job_id=job)
    status = api.import_job_status(store, job)
    assert status["state"] == "done" and status["run_id"] == run_id
    assert not (store.job_dir(job) / "files").exists()  # the uploads are gone; the run holds its own checkpoints
    assert api.read_run(store, run_id)["origin"]["via"] == "upload"
    failed = api.new_import_job(store)
    (store.job_dir(failed) / "files").mkdir(parents=True)
    with pytest.raises(ClusterScopeError):
        run_import_job(store, [tmp_path / "nope.pt"], arch="auto", settings=user_overrides(DIGITS), epochs=None, data_zip=None,
                       trust_torchscript=False, analyze=False, progress=False, job_id=failed)
    assert api.import_job_status(store, failed)["state"] == "failed"
    assert "does not exist" in json.loads((store.job_dir(failed) / "status.json").read_text())["error"]


def test_wrappers_prefixes_and_input_size_from_weights() -> None:
    from backend.importing.architecture import infer_torchvision
    from backend.importing.checkpoints import unwrap

    w = torch.zeros(2, 3)
    lightning = {"epoch": 3, "optimizer_states": [], "state_dict": {"model.fc1.linear.weight": w, "model.classifier.weight": w}}
    assert list(unwrap(lightning, "x.ckpt")) == ["fc1.linear.weight", "classifier.weight"]
    assert list(unwrap({"model": {"module._orig_mod.conv.weight": w}}, "x.pt")) == ["conv.weight"]
    assert list(unwrap({"layer.weight": w, "step": 7}, "x.pt")) == ["layer.weight"]  # extra entries beside the tensors
    vit = {"conv_proj.weight": torch.zeros(768, 3, 16, 16), "encoder.pos_embedding": torch.zeros(1, 197, 768),
           "heads.head.weight": torch.zeros(4, 768), "heads.head.bias": torch.zeros(4)}
    arch = infer_torchvision("vit_b_16", vit)
    assert (arch.num_classes, arch.in_channels, arch.image_size) == (4, 3, 224)


def test_a_job_that_dies_before_reporting_is_failed(store: api.RunStore) -> None:
    import subprocess
    import sys

    from backend.liveness import process_start_time

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    start = process_start_time(proc.pid)
    proc.wait()
    job = api.new_import_job(store)
    store.write_job_status(job, {"state": "starting", "pid": proc.pid, "pid_start": start,
                                 "host": __import__("socket").gethostname()})
    status = api.import_job_status(store, job)
    assert status["state"] == "failed" and "stopped unexpectedly" in status["error"]


def test_shared_deployments_can_refuse_server_folders(store: api.RunStore, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTERSCOPE_ALLOW_SERVER_PATHS", "0")
    job = api.new_import_job(store)
    with pytest.raises(ClusterScopeError, match="data.root names a folder of the server"):
        api.launch_import(store, job, [tmp_path / "epoch=0.pt"], overrides=['data.name="imagefolder"', 'data.root="/home"'])
    assert api.import_job_status(store, job) == {}  # nothing started
