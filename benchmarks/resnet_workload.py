"""A real-size workload: a torchvision ResNet-18 at CIFAR size, 50,000 probe samples, 8 recorded layers,
imported from checkpoints with ``clusterscope import``, analysed, and opened on the Embeddings page.

Stages (each timed; a stage whose output is already in ``--workdir`` is skipped, so a rerun resumes):

1. ``data``: a synthetic CIFAR-100 in the CIFAR-100 *python* file format (``cifar-100-python/train``,
   ``test``, ``meta``: pickled dicts with bytes keys, uint8 ``data`` of shape (N, 3072), ``fine_labels``,
   ``coarse_labels``), which ``backend.data.files`` reads with its restricted unpickler (nothing but numpy
   arrays and plain containers). 100 fine labels in 20 superclasses (fine // 5), 500 training and 100 test
   images per fine label; each image is its superclass's and its fine label's low-frequency colour pattern
   plus noise, so a brief training separates the superclasses and leaves subclass structure to find.
   Pickle protocol 4: the original files are Python 2 pickles whose byte strings read back as bytes;
   protocol 2 written by Python 3 would wrap each bytes object in ``_codecs.encode``, which the loader
   (rightly) refuses, and protocol 5 rebuilds arrays through another function it does not allow.
2. ``train``: ``torchvision.models.resnet18(num_classes=20)`` (built as ``model.name = "tv:resnet18"``
   builds it), saved before training (``epoch=0.pt``) and after ``--steps`` SGD steps on the superclasses
   (``epoch=1.pt``): plain state_dicts, as a user would bring them.
3. ``import``: ``clusterscope import CKPTS --arch tv:resnet18 --no-analyze`` with ``data.name = "cifar100"``,
   a probe of 40,000 training + 10,000 test samples (50,000) and the 8 block outputs below.
4. ``analyse``: ``clusterscope analyze RUN`` with ``analysis.max_samples = 100000`` (all 50,000 samples),
   ``analysis.baselines = false`` (c0 and sharpness are per run, not per snapshot: not what is measured);
   the per-snapshot seconds are read from the layers table.
5. ``page``: ``clusterscope app`` on 127.0.0.1 and a free port, headless Chromium (/usr/bin/chromium via
   Playwright) on the Embeddings page of the run; the time to the first plot drawn, and a screenshot.

Run nice: ``nice -n 19 python benchmarks/resnet_workload.py --workdir /tmp/resnet-workload``.
Timings print as ``TIME stage seconds`` lines and go to ``WORKDIR/timings.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAYERS = ("relu", "layer1.0.relu_1", "layer1.1.relu_1", "layer2.0.relu_1", "layer2.1.relu_1",
          "layer3.0.relu_1", "layer3.1.relu_1", "layer4.1.relu_1")  # the stem and block outputs: 64 to 512 units
RUN_ID = "resnet18-cifar100-synth"
N_FINE, N_COARSE, TRAIN_PER, TEST_PER = 100, 20, 500, 100


def _pattern(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """n low-frequency colour patterns (n, 3, 32, 32): 4x4 random values upsampled 8x."""
    return np.kron(rng.normal(0, scale, (n, 3, 4, 4)), np.ones((1, 1, 8, 8)))


def make_cifar100(root: Path, seed: int = 0) -> Path:
    """Write a synthetic CIFAR-100 (python version) under ``root/cifar-100-python``; returns ``root``."""
    folder = root / "cifar-100-python"
    if (folder / "meta").is_file():
        return root
    rng = np.random.default_rng(seed)
    coarse_of = np.arange(N_FINE) // (N_FINE // N_COARSE)
    sup, fine = _pattern(rng, N_COARSE, 45.0), _pattern(rng, N_FINE, 30.0)
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for name, per in (("train", TRAIN_PER), ("test", TEST_PER)):
        labels = np.repeat(np.arange(N_FINE), per)
        rng.shuffle(labels)
        x = np.empty((len(labels), 3, 32, 32), dtype=np.uint8)
        for start in range(0, len(labels), 5000):
            lab = labels[start : start + 5000]
            img = 128 + sup[coarse_of[lab]] + fine[lab] + rng.normal(0, 40, (len(lab), 3, 32, 32))
            x[start : start + 5000] = np.clip(img, 0, 255).astype(np.uint8)
        entry = {b"filenames": [f"{name}_{i:05d}.png".encode() for i in range(len(labels))],
                 b"batch_label": f"synthetic {name}".encode(), b"fine_labels": labels.tolist(),
                 b"coarse_labels": coarse_of[labels].tolist(), b"data": x.reshape(len(labels), 3072)}
        with (tmp / name).open("wb") as fh:
            pickle.dump(entry, fh, protocol=4)
    meta = {b"fine_label_names": [f"class{i:02d}".encode() for i in range(N_FINE)],
            b"coarse_label_names": [f"super{i:02d}".encode() for i in range(N_COARSE)]}
    with (tmp / "meta").open("wb") as fh:
        pickle.dump(meta, fh, protocol=4)
    tmp.rename(folder)
    return root


def train_checkpoints(data_root: Path, out: Path, *, steps: int, seed: int = 0) -> dict[str, float]:
    """epoch=0.pt (initial weights) and epoch=1.pt (after ``steps`` SGD steps on the superclasses)."""
    import torch
    from tqdm import tqdm

    from backend.config import ModelConfig
    from backend.data.files import load_cifar100
    from backend.training.models import build_model
    from backend.training.trainer import to_tensor_data

    out.mkdir(parents=True, exist_ok=True)
    ds = load_cifar100(data_root, download=False)
    assert ds.label_to_superclass is not None
    y = ds.label_to_superclass[ds.train.label]
    data = to_tensor_data(ds.train.x, y, ds.mean, ds.std)
    model = build_model(ModelConfig(name="tv:resnet18"), ds.input_shape, N_COARSE, seed=seed)
    torch.save(model.state_dict(), out / "epoch=0.pt")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    loss = acc = float("nan")
    for _ in tqdm(range(steps), desc="train", unit="step", file=sys.stderr):
        idx = torch.randint(len(y), (128,), generator=gen)
        logits = model(data.x[idx])
        batch_loss = torch.nn.functional.cross_entropy(logits, data.y[idx])
        opt.zero_grad()
        batch_loss.backward()
        opt.step()
        loss, acc = batch_loss.item(), (logits.argmax(1) == data.y[idx]).float().mean().item()
    torch.save(model.state_dict(), out / "epoch=1.pt")
    return {"last_batch_loss": loss, "last_batch_accuracy": acc}


def _cli(*args: str, check: bool = True) -> float:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    rc = subprocess.run([sys.executable, "-m", "backend.cli", *args], check=check, cwd=ROOT, env=env).returncode
    if rc:
        print(f"clusterscope {args[0]} exited with {rc} (the messages above name what failed)", file=sys.stderr)
    return time.perf_counter() - t0


def import_run(store: Path, ckpts: Path, data_root: Path, *, probe_train: int, probe_test: int) -> float:
    layers = "[" + ", ".join(f'"{name}"' for name in LAYERS) + "]"
    return _cli("import", str(ckpts), "--arch", "tv:resnet18", "--no-analyze", "--store", str(store),
                "--set", 'data.name="cifar100"', "--set", f'data.root="{data_root}"', "--set", f'run_id="{RUN_ID}"',
                "--set", f"snapshots.probe_train={probe_train}", "--set", f"snapshots.probe_test={probe_test}",
                "--set", f"snapshots.layers={layers}")


def analyse_run(store: Path) -> float:
    return _cli("analyze", RUN_ID, "--store", str(store), "--set", "analysis.max_samples=100000",
                "--set", "analysis.baselines=false", check=False)


def snapshot_seconds(store: Path) -> dict[str, float]:
    from backend.store import RunStore

    layers = RunStore(store).analysis.read_all(RUN_ID, "layers")
    return {f"{r.layer}@{int(r.epoch)}": round(float(r.seconds), 1) for r in layers.itertuples()}


def open_page(store: Path, shot: Path) -> float:
    """Seconds from opening the Embeddings page of the run (server warm) to its first plot drawn."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from browser import PLOT, serve, stop

    proc, url = serve(ROOT / "app" / "main.py", store, shot.with_suffix(".log"))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, timeout=300_000)  # warm the server: imports, first script run
            page.wait_for_timeout(3000)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            t0 = time.perf_counter()
            page.goto(f"{url}/embeddings?run={RUN_ID}&layer={LAYERS[-1]}&epoch=1", timeout=300_000)
            page.wait_for_selector(PLOT, timeout=300_000)
            page.wait_for_function(f"() => document.querySelector('{PLOT}')?._fullLayout", timeout=300_000)
            took = time.perf_counter() - t0
            page.wait_for_function("() => document.querySelector('.stApp')?.getAttribute('data-test-script-state')"
                                   " === 'notRunning'", timeout=300_000)
            page.screenshot(path=str(shot), full_page=False)
            browser.close()
    finally:
        stop(proc)
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, required=True, help="data, checkpoints, store and timings (resumable)")
    ap.add_argument("--steps", type=int, default=30, help="SGD steps between the two checkpoints (batch 128)")
    ap.add_argument("--probe-train", type=int, default=40_000)
    ap.add_argument("--probe-test", type=int, default=10_000)
    ap.add_argument("--stages", default="data,train,import,analyse,page")
    ap.add_argument("--screenshot", type=Path, default=None, help="default: WORKDIR/embeddings.png")
    args = ap.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    tfile = work / "timings.json"
    timings = json.loads(tfile.read_text()) if tfile.is_file() else {}
    data_root, ckpts, store = work / "data", work / "checkpoints", work / "store"
    stages = args.stages.split(",")

    def timed(name: str, fn, *fargs, **kw):
        t0 = time.perf_counter()
        extra = fn(*fargs, **kw)
        timings[name] = {"seconds": round(time.perf_counter() - t0, 1),
                         "load_after": os.getloadavg()[0]} | (extra if isinstance(extra, dict) else {})
        tfile.write_text(json.dumps(timings, indent=1))
        print(f"TIME {name} {timings[name]['seconds']} s", flush=True)

    if "data" in stages:
        timed("data", make_cifar100, data_root)
    if "train" in stages and not (ckpts / "epoch=1.pt").is_file():
        timed("train", train_checkpoints, data_root, ckpts, steps=args.steps)
    if "import" in stages and not (store / RUN_ID).exists():
        timed("import", import_run, store, ckpts, data_root, probe_train=args.probe_train, probe_test=args.probe_test)
    if "analyse" in stages:
        timed("analyse", lambda: {"cli_s": round(analyse_run(store), 1), "per_snapshot_s": snapshot_seconds(store)})
    if "page" in stages:
        timed("page", lambda: {"first_plot_s": round(open_page(store, args.screenshot or work / "embeddings.png"), 2)})
    print(json.dumps(timings, indent=1))


if __name__ == "__main__":
    main()
