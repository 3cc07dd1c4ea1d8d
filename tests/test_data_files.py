"""Loaders of local data set files, on tiny files written in the real on-disk formats."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import sys
import types
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.config import DataConfig
from backend.data import files, load_dataset
from backend.errors import DataError

RNG = np.random.default_rng(0)


# --------------------------------------------------------------------------------------------
# Writers of the real formats


def write_idx(path: Path, arr: np.ndarray) -> None:
    """IDX: magic 0x00000800 | ndim, big-endian uint32 dims, then the uint8 data."""
    header = (0x800 | arr.ndim).to_bytes(4, "big") + np.asarray(arr.shape, ">u4").tobytes()
    raw = header + arr.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def make_mnist(folder: Path, *, gz: bool = False, n_train: int = 6, n_test: int = 4) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": RNG.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": RNG.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (9 - np.arange(n_test, dtype=np.uint8)) % 10,
    }
    for name, arr in arrays.items():
        write_idx(folder / (name + (".gz" if gz else "")), arr)
    return arrays


def cifar_samples(n: int, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    return RNG.integers(0, 256, (n, 3072), dtype=np.uint8), np.arange(n, dtype=np.int64) % n_labels


def make_cifar10(root: Path, fmt: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Five train batches of 2 images and a test batch of 3; returns x_train, y_train, x_test, y_test."""
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    batches = [cifar_samples(2, 10) for _ in range(5)] + [cifar_samples(3, 10)]
    folder = root / ("cifar-10-batches-py" if fmt == "python" else "cifar-10-batches-bin")
    folder.mkdir(parents=True)
    files_ = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for (x, y), name in zip(batches, files_, strict=True):
        if fmt == "python":
            d = {b"batch_label": name.encode(), b"labels": y.tolist(), b"data": x,
                 b"filenames": [f"img{i}.png".encode() for i in range(len(y))]}
            with (folder / name).open("wb") as fh:
                pickle.dump(d, fh)
        else:
            (folder / f"{name}.bin").write_bytes(np.concatenate([y[:, None].astype(np.uint8), x], axis=1).tobytes())
    if fmt == "python":
        meta = {b"label_names": [n.encode() for n in names], b"num_cases_per_batch": 2, b"num_vis": 3072}
        with (folder / "batches.meta").open("wb") as fh:
            pickle.dump(meta, fh)
    else:
        (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    x_tr = np.concatenate([b[0] for b in batches[:5]])
    y_tr = np.concatenate([b[1] for b in batches[:5]])
    return x_tr, y_tr, batches[5][0], batches[5][1]


def coarse_of(fine: np.ndarray) -> np.ndarray:
    return (fine * 7) % 20  # each of the 20 coarse labels gets 5 fine labels, not in blocks


def make_cifar100(root: Path, fmt: str, *, fine_tr: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """100 train images (one per fine label) and 4 test images."""
    fine_tr = np.arange(100) if fine_tr is None else fine_tr
    x_tr, x_te = cifar_samples(len(fine_tr), 1)[0], cifar_samples(4, 1)[0]
    fine_te = np.array([3, 50, 99, 3])
    folder = root / ("cifar-100-python" if fmt == "python" else "cifar-100-binary")
    folder.mkdir(parents=True)
    fine_names = [f"fine{i:02d}" for i in range(100)]
    coarse_names = [f"coarse{i:02d}" for i in range(20)]
    for name, x, fine in (("train", x_tr, fine_tr), ("test", x_te, fine_te)):
        if fmt == "python":
            d = {b"filenames": [b"a.png"] * len(fine), b"batch_label": name.encode(), b"fine_labels": fine.tolist(),
                 b"coarse_labels": coarse_of(fine).tolist(), b"data": x}
            (folder / name).write_bytes(pickle.dumps(d))
        else:
            labels = np.stack([coarse_of(fine), fine], axis=1).astype(np.uint8)
            (folder / f"{name}.bin").write_bytes(np.concatenate([labels, x], axis=1).tobytes())
    if fmt == "python":
        meta = {b"fine_label_names": [n.encode() for n in fine_names],
                b"coarse_label_names": [n.encode() for n in coarse_names]}
        (folder / "meta").write_bytes(pickle.dumps(meta))
    else:
        (folder / "fine_label_names.txt").write_text("\n".join(fine_names) + "\n")
        (folder / "coarse_label_names.txt").write_text("\n".join(coarse_names) + "\n")
    return x_tr, fine_tr, x_te, fine_te


COLOURS = {"cat": (200, 10, 10), "dog": (10, 200, 10), "eel": (10, 10, 200)}


def make_folder(root: Path, *, per_class: int = 4, presplit: bool = False) -> None:
    """Solid-colour 8x8 PNGs, one class per colour; image k of a class has k added to its red channel."""
    for split in ("train", "test") if presplit else ("",):
        for cls, (r, g, b) in COLOURS.items():
            (root / split / cls).mkdir(parents=True)
            for k in range(per_class if split != "test" else 2):
                Image.new("RGB", (8, 8), (r + k, g, b)).save(root / split / cls / f"img{k}.png")


# --------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST


@pytest.mark.parametrize(("variant", "subdir", "gz"), [
    ("mnist", "", False), ("mnist", "MNIST/raw", True), ("mnist", "mnist", False),
    ("fashion-mnist", "FashionMNIST/raw", False), ("fashion-mnist", "fashion-mnist", True),
])
def test_mnist_reads_idx_files(tmp_path: Path, variant: str, subdir: str, gz: bool) -> None:
    arrays = make_mnist(tmp_path / subdir, gz=gz)
    ds = files.load_mnist(tmp_path, variant=variant, download=False)
    assert ds.name == variant and ds.kind == "image" and ds.input_shape == (1, 28, 28)
    assert ds.train.x.dtype == np.uint8 and ds.train.x.shape == (6, 1, 28, 28) and ds.test.x.shape == (4, 1, 28, 28)
    np.testing.assert_array_equal(ds.train.x[:, 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.test.x[:, 0], arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.train.label, [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(ds.test.label, [9, 8, 7, 6])
    assert ds.train.label.dtype == np.int64
    np.testing.assert_array_equal(ds.train.sample_id, np.arange(6))
    np.testing.assert_array_equal(ds.test.sample_id, 6 + np.arange(4))
    assert ds.label_to_superclass is None and not ds.has_superclasses
    if variant == "mnist":
        assert ds.label_names == tuple("0123456789")
    else:
        assert ds.label_names[0] == "T-shirt/top" and ds.label_names[9] == "Ankle boot" and len(ds.label_names) == 10
    assert ds.mean[0] == pytest.approx(arrays["train-images-idx3-ubyte"].mean() / 255)


def test_mnist_does_not_read_the_other_variant(tmp_path: Path) -> None:
    make_mnist(tmp_path / "FashionMNIST" / "raw")
    with pytest.raises(DataError, match="MNIST files not found"):
        files.load_mnist(tmp_path, variant="mnist", download=False)


def test_mnist_missing_names_every_searched_path(tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    with pytest.raises(DataError, match="Fashion-MNIST files not found") as err:
        files.load_mnist(root, variant="fashion-mnist", download=False)
    msg = str(err.value)
    for path in (root, root / "FashionMNIST" / "raw", root / "fashion-mnist"):
        assert str(path) in msg
    assert "t10k-labels-idx1-ubyte" in msg and "data.download=true" in msg


def test_mnist_truncated_file(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte must be 4720 bytes long.*got 4620 bytes.*truncated"):
        files.load_mnist(tmp_path, variant="mnist", download=False)


def test_mnist_wrong_magic(tmp_path: Path) -> None:
    make_mnist(tmp_path, gz=True)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress((0x803).to_bytes(4, "big") + raw[4:]))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz must start with magic number 2049.*got 2051"):
        files.load_mnist(tmp_path, variant="mnist", download=False)


def test_mnist_label_count_mismatch(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5, np.uint8))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte must hold one label per image.*\(6\); got 5"):
        files.load_mnist(tmp_path, variant="mnist", download=False)


# --------------------------------------------------------------------------------------------
# CIFAR


@pytest.mark.parametrize("fmt", ["python", "binary"])
def test_cifar10_both_formats(tmp_path: Path, fmt: str) -> None:
    x_tr, y_tr, x_te, y_te = make_cifar10(tmp_path, fmt)
    ds = files.load_cifar10(tmp_path, download=False)
    assert ds.name == "cifar10" and ds.train.x.dtype == np.uint8
    assert ds.train.x.shape == (10, 3, 32, 32) and ds.test.x.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(ds.train.x.reshape(10, -1), x_tr)
    np.testing.assert_array_equal(ds.test.x.reshape(3, -1), x_te)
    # the first 1024 bytes of a record are the red plane, row by row
    assert ds.train.x[1, 0, 0, 5] == x_tr[1, 5] and ds.train.x[1, 2, 31, 31] == x_tr[1, 3071]
    np.testing.assert_array_equal(ds.train.label, y_tr)
    np.testing.assert_array_equal(ds.test.label, y_te)
    np.testing.assert_array_equal(np.concatenate([ds.train.sample_id, ds.test.sample_id]), np.arange(13))
    assert ds.label_names[0] == "airplane" and ds.label_names[9] == "truck" and ds.label_to_superclass is None


@pytest.mark.parametrize("fmt", ["python", "binary"])
def test_cifar100_fine_and_coarse_labels(tmp_path: Path, fmt: str) -> None:
    x_tr, fine_tr, x_te, fine_te = make_cifar100(tmp_path, fmt)
    ds = files.load_cifar100(tmp_path, download=False)
    assert ds.name == "cifar100" and ds.num_labels == 100 and ds.num_targets("superclass") == 20
    assert ds.train.x.shape == (100, 3, 32, 32) and ds.test.x.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(ds.train.x.reshape(100, -1), x_tr)
    np.testing.assert_array_equal(ds.test.label, fine_te)
    np.testing.assert_array_equal(ds.label_to_superclass, coarse_of(np.arange(100)))
    np.testing.assert_array_equal(ds.targets(ds.test, "superclass"), coarse_of(fine_te))
    assert ds.label_names[42] == "fine42" and ds.superclass_names is not None and ds.superclass_names[19] == "coarse19"
    np.testing.assert_array_equal(ds.test.sample_id, 100 + np.arange(4))


def test_cifar_files_directly_in_root(tmp_path: Path) -> None:
    make_cifar10(tmp_path, "binary")
    ds = files.load_cifar10(tmp_path / "cifar-10-batches-bin", download=False)
    assert len(ds.train) == 10


def test_cifar100_fine_label_in_two_superclasses(tmp_path: Path) -> None:
    make_cifar100(tmp_path, "binary")
    path = tmp_path / "cifar-100-binary" / "test.bin"
    raw = bytearray(path.read_bytes())
    raw[0] = (coarse_of(np.array(3))[()] + 1) % 20  # first test record: fine 3 now in another coarse label
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"fine label 3 \(fine03\) occurs under several coarse labels, 1 \(coarse01\), "
                                        r"2 \(coarse02\); each fine label belongs to exactly one.*download it again"):
        files.load_cifar100(tmp_path, download=False)


def test_cifar100_missing_fine_labels_are_named(tmp_path: Path) -> None:
    """Fine labels 7 and 42 are in neither file: the message names them, not a list of counts."""
    fine_tr = np.array([i for i in range(100) if i not in (7, 42)])
    make_cifar100(tmp_path, "python", fine_tr=fine_tr)
    with pytest.raises(DataError) as err:
        files.load_cifar100(tmp_path, download=False)
    msg = str(err.value)
    assert "fine label(s) 7 (fine07), 42 (fine42) occur in neither the training nor the test file" in msg
    assert "data.download=true" in msg and "[0, 0" not in msg


def test_cifar_missing_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="CIFAR-100 files not found") as err:
        files.load_cifar100(tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path / "cifar-100-python") in msg and str(tmp_path / "cifar-100-binary") in msg
    assert "fine_label_names.txt" in msg and "cifar-100-python.tar.gz" in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in msg and "data.download=true" in msg


def test_cifar_truncated_binary(tmp_path: Path) -> None:
    make_cifar10(tmp_path, "binary")
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match=r"data_batch_3.bin must be a whole number of 3073-byte records; got 6145"):
        files.load_cifar10(tmp_path, download=False)


class Evil:
    """Unpickling this runs a shell command: what a doctored data file could do to plain pickle.load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch '{self.marker}'",)


def test_cifar_pickle_with_code_is_refused(tmp_path: Path) -> None:
    make_cifar10(tmp_path, "python")
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": Evil(marker), b"labels": [0]})
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(payload)
    with pytest.raises(DataError, match=r"refusing to unpickle (posix|nt)\.system from .*data_batch_2: CIFAR files"):
        files.load_cifar10(tmp_path, download=False)
    assert not marker.exists()
    pickle.loads(payload)  # the payload is live: plain pickle would have run it
    assert marker.exists()


def test_cifar_corrupt_pickle(tmp_path: Path) -> None:
    make_cifar100(tmp_path, "python")
    path = tmp_path / "cifar-100-python" / "meta"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DataError, match=r"CIFAR file .*meta is not a readable pickle"):
        files.load_cifar100(tmp_path, download=False)


def test_safe_unpickler_reads_arrays_only(tmp_path: Path) -> None:
    path = tmp_path / "f"
    obj = {b"a": np.arange(6, dtype=np.int32).reshape(2, 3), b"b": [b"x", 1, 2.5, (3, None)], b"c": {b"d": True}}
    path.write_bytes(pickle.dumps(obj))
    got = files.unpickle_cifar(path)
    np.testing.assert_array_equal(got[b"a"], obj[b"a"])
    assert got[b"b"] == [b"x", 1, 2.5, (3, None)] and got[b"c"] == {b"d": True}
    path.write_bytes(pickle.dumps({b"a": Path("x")}))
    with pytest.raises(DataError, match=r"refusing to unpickle pathlib\.\w*Path"):
        files.unpickle_cifar(path)


def python2_pickle(data: bytes, shape: tuple[int, int], labels: list[int]) -> bytes:
    """{"data": uint8 array, "labels": [...]} as Python 2's cPickle wrote the original CIFAR files.

    Strings are 8-bit (SHORT_BINSTRING), so Python 3 must load them with encoding="bytes", and the
    array is rebuilt through numpy.core.multiarray._reconstruct, ndarray and dtype.
    """
    def short(b: bytes) -> bytes:
        return b"U" + bytes([len(b)]) + b

    def int1(n: int) -> bytes:
        return b"K" + bytes([n])

    def int2(n: int) -> bytes:
        return b"M" + n.to_bytes(2, "little")

    return (b"\x80\x02}(" + short(b"data")
            + b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + int1(0) + b"\x85" + short(b"b") + b"\x87R"
            + b"(" + int1(1) + int2(shape[0]) + int2(shape[1]) + b"\x86"
            + b"cnumpy\ndtype\n" + short(b"u1") + int1(0) + int1(1) + b"\x87R"
            + b"(" + int1(3) + short(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff" + int1(0) + b"tb"
            + b"\x89" + b"T" + len(data).to_bytes(4, "little") + data + b"tb"
            + short(b"labels") + b"](" + b"".join(int1(v) for v in labels) + b"eu.")


def test_cifar_python2_pickle(tmp_path: Path) -> None:
    x_tr, y_tr, _, _ = make_cifar10(tmp_path, "python")
    x_new = RNG.integers(0, 256, (2, 3072), dtype=np.uint8)
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(python2_pickle(x_new.tobytes(), (2, 3072), [7, 8]))
    ds = files.load_cifar10(tmp_path, download=False)
    np.testing.assert_array_equal(ds.train.x[:2].reshape(2, -1), x_new)
    np.testing.assert_array_equal(ds.train.label, [7, 8, *y_tr[2:]])


# --------------------------------------------------------------------------------------------
# Downloading, through a stand-in for torchvision (no network in tests)


def fake_torchvision(monkeypatch: pytest.MonkeyPatch, download: object) -> None:
    tv, datasets, utils = (types.ModuleType(n) for n in ("torchvision", "torchvision.datasets",
                                                           "torchvision.datasets.utils"))
    tv.datasets, datasets.utils, utils.download_and_extract_archive = datasets, utils, download  # type: ignore[attr-defined]
    datasets.CIFAR10 = types.SimpleNamespace(url="https://x/c10.tar.gz", filename="c10.tar.gz", tgz_md5="abc")  # type: ignore[attr-defined]
    datasets.MNIST = types.SimpleNamespace(mirrors=["https://m1/", "https://m2/"],  # type: ignore[attr-defined]
                                           resources=[(n + ".gz", "md5") for n in files.MNIST_FILES])
    for name, mod in (("torchvision", tv), ("torchvision.datasets", datasets), ("torchvision.datasets.utils", utils)):
        monkeypatch.setitem(sys.modules, name, mod)


def test_download_failure_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, **kwargs: object) -> None:
        raise urllib.error.URLError("no route to host")

    fake_torchvision(monkeypatch, offline)
    with pytest.raises(DataError, match=r"downloading c10.tar.gz into .* failed \(https://x/c10.tar.gz: .*no route"):
        files.load_cifar10(tmp_path, download=True)
    with pytest.raises(DataError, match=r"downloading train-images-idx3-ubyte.gz .*https://m1/.*https://m2/"):
        files.load_mnist(tmp_path, variant="mnist", download=True)


def test_download_then_read_with_own_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fetch(url: str, download_root: Path, filename: str, md5: str) -> None:
        calls.append((url, Path(download_root), filename, md5))
        if url.startswith("https://m2/"):  # the first mirror fails, the second serves the files
            if not (Path(download_root) / filename).exists():
                make_mnist(Path(download_root), gz=True)
        elif url.startswith("https://m1/"):
            raise urllib.error.URLError("mirror down")
        else:
            make_cifar10(Path(download_root), "python")

    fake_torchvision(monkeypatch, fetch)
    assert len(files.load_cifar10(tmp_path, download=True).train) == 10
    assert calls[0] == ("https://x/c10.tar.gz", tmp_path, "c10.tar.gz", "abc")
    assert len(files.load_mnist(tmp_path, variant="mnist", download=True).test) == 4
    assert calls[1][0] == "https://m1/train-images-idx3-ubyte.gz" and calls[2][1] == tmp_path / "MNIST" / "raw"
    n = len(calls)
    files.load_cifar10(tmp_path, download=True)  # files present now: no second download
    assert len(calls) == n


# --------------------------------------------------------------------------------------------
# Image folders


def test_imagefolder_split_by_fraction(tmp_path: Path) -> None:
    make_folder(tmp_path)
    ds = files.load_imagefolder(tmp_path, image_size=8, channels=3, superclass_map=None, test_fraction=0.25)
    assert ds.name == "imagefolder" and ds.label_names == ("cat", "dog", "eel")
    assert ds.train.x.shape == (9, 3, 8, 8) and ds.test.x.shape == (3, 3, 8, 8) and ds.train.x.dtype == np.uint8
    assert sorted(ds.test.label.tolist()) == [0, 1, 2]  # stratified
    ids = np.concatenate([ds.train.sample_id, ds.test.sample_id])
    np.testing.assert_array_equal(np.sort(ids), np.arange(12))
    for split in (ds.train, ds.test):  # id = position in the sorted file list: class c, image k -> 4c + k
        k = split.sample_id % 4
        np.testing.assert_array_equal(split.label, split.sample_id // 4)
        red = np.array([COLOURS[ds.label_names[c]][0] for c in split.label]) + k
        np.testing.assert_array_equal(split.x[:, 0, 3, 3], red)
        assert (split.x[:, :, 0, 0] == split.x[:, :, 7, 7]).all()
    again = files.load_imagefolder(tmp_path, image_size=8, channels=3, superclass_map=None, test_fraction=0.25)
    np.testing.assert_array_equal(again.test.sample_id, ds.test.sample_id)  # seeded split


def test_imagefolder_presplit_grey_and_resized(tmp_path: Path) -> None:
    make_folder(tmp_path, presplit=True)
    ds = files.load_imagefolder(tmp_path, image_size=4, channels=1, superclass_map=None, test_fraction=0.5)
    assert ds.train.x.shape == (12, 1, 4, 4) and ds.test.x.shape == (6, 1, 4, 4) and ds.input_shape == (1, 4, 4)
    # sorted relative paths: test/... come before train/...
    np.testing.assert_array_equal(ds.test.sample_id, np.arange(6))
    np.testing.assert_array_equal(ds.train.sample_id, 6 + np.arange(12))
    np.testing.assert_array_equal(ds.test.label, [0, 0, 1, 1, 2, 2])
    grey = round(0.299 * 200 + 0.587 * 10 + 0.114 * 10)  # PIL's "L" conversion of the first cat image
    assert abs(int(ds.test.x[0, 0, 2, 2]) - grey) <= 1


def test_imagefolder_superclass_map_csv_and_json(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs")
    csv_map = tmp_path / "map.csv"
    csv_map.write_text("class,superclass\ncat,mammal\ndog,mammal\neel,fish\n")
    json_map = tmp_path / "map.json"
    json_map.write_text(json.dumps({"cat": "mammal", "dog": "mammal", "eel": "fish"}))
    for path in (csv_map, json_map):
        ds = files.load_imagefolder(tmp_path / "imgs", image_size=8, channels=3, superclass_map=path,
                                    test_fraction=0.25)
        assert ds.superclass_names == ("fish", "mammal")
        np.testing.assert_array_equal(ds.label_to_superclass, [1, 1, 0])


def test_imagefolder_unmapped_and_unknown_classes(tmp_path: Path) -> None:
    make_folder(tmp_path / "imgs")
    path = tmp_path / "map.csv"
    path.write_text("class,superclass\ncat,mammal\nemu,bird\n")
    with pytest.raises(DataError, match=r"map.csv must map .*unmapped classes: \['dog', 'eel'\].*\['emu'\]"):
        files.load_imagefolder(tmp_path / "imgs", image_size=8, channels=3, superclass_map=path, test_fraction=0.25)
    path.write_text("klass,super\ncat,mammal\n")
    with pytest.raises(DataError, match=r'must be a CSV file with the header "class,superclass"'):
        files.load_imagefolder(tmp_path / "imgs", image_size=8, channels=3, superclass_map=path, test_fraction=0.25)


def test_imagefolder_corrupt_image(tmp_path: Path) -> None:
    make_folder(tmp_path)
    (tmp_path / "dog" / "broken.PNG").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"image file .*dog/broken.PNG is unreadable or corrupt"):
        files.load_imagefolder(tmp_path, image_size=8, channels=3, superclass_map=None, test_fraction=0.25)


def test_imagefolder_ignores_links_out_of_root(tmp_path: Path) -> None:
    make_folder(tmp_path / "root")
    make_folder(tmp_path / "outside")
    (tmp_path / "root" / "zebra").symlink_to(tmp_path / "outside" / "cat")
    (tmp_path / "root" / "cat" / "stolen.png").symlink_to(tmp_path / "outside" / "dog" / "img0.png")
    (tmp_path / "root" / "cat" / "notes.txt").write_text("not an image")
    ds = files.load_imagefolder(tmp_path / "root", image_size=8, channels=3, superclass_map=None, test_fraction=0.25)
    assert ds.label_names == ("cat", "dog", "eel") and len(ds.train) + len(ds.test) == 12


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"image folder {tmp_path / 'missing'} does not exist"):
        files.load_imagefolder(tmp_path / "missing", image_size=8, channels=3, superclass_map=None, test_fraction=0.2)
    (tmp_path / "one" / "cat").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "one" / "cat" / "a.png")
    with pytest.raises(DataError, match=r"at least 2 class subfolders with images; got \['cat'\]"):
        files.load_imagefolder(tmp_path / "one", image_size=8, channels=3, superclass_map=None, test_fraction=0.2)
    (tmp_path / "one" / "dog").mkdir()
    with pytest.raises(DataError, match=r"class folder .*dog must contain image files"):
        files.load_imagefolder(tmp_path / "one", image_size=8, channels=3, superclass_map=None, test_fraction=0.2)


# --------------------------------------------------------------------------------------------
# Through the public entry point


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10", "cifar100", "imagefolder"])
def test_load_dataset_for_each_file_data_set(tmp_path: Path, name: str) -> None:
    if name in ("mnist", "fashion-mnist"):
        make_mnist(tmp_path / name)
    elif name == "cifar10":
        make_cifar10(tmp_path, "python")
    elif name == "cifar100":
        make_cifar100(tmp_path, "binary")
    else:
        make_folder(tmp_path, presplit=True)
    ds = load_dataset(DataConfig(name=name, root=str(tmp_path), image_size=16))
    assert ds.name == name and len(ds.train) > 0 and len(ds.test) > 0
    assert ds.train.x.dtype == np.uint8 and ds.train.x.ndim == 4 and len(ds.mean) == ds.input_shape[0]


@pytest.mark.slow
def test_torchvision_has_the_download_attributes_we_use() -> None:
    import torchvision.datasets as tvd
    from torchvision.datasets import utils as tv_utils

    assert callable(tv_utils.download_and_extract_archive)
    for cls in (tvd.CIFAR10, tvd.CIFAR100):
        assert cls.url.endswith(cls.filename) and len(cls.tgz_md5) == 32
    assert tvd.CIFAR100.filename == "cifar-100-python.tar.gz"
    for cls in (tvd.MNIST, tvd.FashionMNIST):
        assert cls.mirrors and sorted(f for f, _ in cls.resources) == sorted(f"{n}.gz" for n in files.MNIST_FILES)


def test_file_names_where_the_data_set_names_its_files(tmp_path: Path) -> None:
    """samples.parquet's file_name (schema version 3): image folders give the path under the root, CIFAR's
    python version its ``filenames`` entry; the binary version names none."""
    make_folder(tmp_path / "imgs", presplit=True)
    ds = files.load_imagefolder(tmp_path / "imgs", image_size=4, channels=1, superclass_map=None, test_fraction=0.5)
    assert ds.test.file_name is not None and ds.train.file_name is not None
    assert ds.test.file_name[0] == "test/cat/img0.png" and ds.train.file_name[-1].startswith("train/eel/")
    sub = ds.train.subset(np.array([2, 0]))
    assert sub.file_name is not None and list(sub.file_name) == [ds.train.file_name[2], ds.train.file_name[0]]
    make_cifar10(tmp_path / "py", "python")
    c10 = files.load_cifar10(tmp_path / "py", download=False)
    assert c10.train.file_name is not None and list(c10.train.file_name[:3]) == ["img0.png", "img1.png", "img0.png"]
    assert c10.test.file_name is not None and list(c10.test.file_name) == ["img0.png", "img1.png", "img2.png"]
    make_cifar10(tmp_path / "bin", "binary")
    assert files.load_cifar10(tmp_path / "bin", download=False).train.file_name is None
