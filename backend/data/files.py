"""Loaders of local data set files: MNIST and Fashion-MNIST (IDX), CIFAR-10/100 (binary or python), image folders.

Every reader parses its files itself, so no code from a data file ever runs: the CIFAR python
version is a pickle and is read by :class:`SafeUnpickler`, which can only rebuild numpy arrays.
With ``download=True`` missing files are fetched through torchvision's download helper, with the
URLs and checksums of torchvision's own dataset classes, and then read by the same readers.
Where each data set is looked for is described in docs/datasets.md.
"""

from __future__ import annotations

import gzip
import pickle
import tarfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, NamedTuple

import numpy as np

from backend.data.base import Dataset, Split, image_dataset
from backend.data.imagefolder import load_imagefolder, read_superclass_map
from backend.errors import DataError

try:  # numpy >= 2 moved the helper to numpy._core; files may name either module (see SafeUnpickler)
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FASHION_MNIST_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                       "Ankle boot")
# variant -> (title, torchvision class and raw folder, plain folder, home page)
_MNIST = {
    "mnist": ("MNIST", "MNIST", "mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/ (torchvision's mirror)"),
    "fashion-mnist": ("Fashion-MNIST", "FashionMNIST", "fashion-mnist", "https://github.com/zalandoresearch/fashion-mnist"),
}
CIFAR_HOME = "https://www.cs.toronto.edu/~kriz/cifar.html"
# Download failures: network (URLError is an OSError), checksum (RuntimeError), broken archive.
_DOWNLOAD_ERRORS = (OSError, RuntimeError, ValueError, EOFError, tarfile.TarError)
# A corrupt pickle fails in many ways, all meaning "bad file" (stack, memo and numpy state errors).
_BAD_PICKLE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, OSError)


def _not_found(title: str, searched: Sequence[Path], expected: str, how: str) -> DataError:
    where = ", ".join(str(p) for p in searched)
    return DataError(f"{title} files not found: searched {where} for {expected}. To get them, {how}, "
                     "or set data.download=true on a machine with internet.")


def _numbered_splits(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray) -> tuple[Split, Split]:
    """Train ids 0..n_train-1, test ids n_train.. (the MNIST/CIFAR file order)."""
    ids_tr, ids_te = np.arange(len(y_tr), dtype=np.int64), len(y_tr) + np.arange(len(y_te), dtype=np.int64)
    return Split(x_tr, y_tr.astype(np.int64), ids_tr), Split(x_te, y_te.astype(np.int64), ids_te)


def _check_labels(labels: np.ndarray, n_labels: int, where: Path | str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= n_labels):
        raise DataError(f"{where} must hold labels in [0, {n_labels}); got values from {labels.min()} to "
                        f"{labels.max()}. The file is corrupt or from another data set; re-download it.")


# --------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST (IDX files)


def read_idx(path: Path, *, ndim: int) -> np.ndarray:
    """Read an IDX file of uint8 data (raw or ``.gz``): labels (N,) for ndim=1, images (N, H, W) for 3."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"IDX file {path} could not be read ({exc}); re-download it.") from None
    magic = 0x800 | ndim  # 0x08 = unsigned byte data, then the number of dimensions
    header = 4 + 4 * ndim
    got = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if got != magic or len(raw) < header:
        raise DataError(f"IDX file {path} must start with magic number {magic} (uint8 data of {ndim} dimensions); "
                        f"got {got}. The file is corrupt or not an MNIST file; re-download it.")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    size = header + int(np.prod(dims))
    if len(raw) != size:
        raise DataError(f"IDX file {path} must be {size} bytes long (header and shape {dims}); got {len(raw)} bytes. "
                        "The file is truncated or corrupt; re-download it.")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims).copy()


def _find_mnist(dirs: Sequence[Path]) -> list[Path] | None:
    """The four IDX paths from the first folder that holds all of them (raw preferred over .gz)."""
    for folder in dirs:
        found = [next((p for p in (folder / n, folder / f"{n}.gz") if p.is_file()), None) for n in MNIST_FILES]
        if all(p is not None for p in found):
            return [p for p in found if p is not None]
    return None


def load_mnist(root: Path, *, variant: str, download: bool) -> Dataset:
    """MNIST or Fashion-MNIST from the four IDX files: x uint8 (N, 1, 28, 28), 60,000 train / 10,000 test.

    Looked for in ``root``, ``root/MNIST/raw`` (``root/FashionMNIST/raw``: torchvision's layout) and
    ``root/mnist`` (``root/fashion-mnist``). ``sample_id`` is the train index, n_train + the test index.
    """
    if variant not in _MNIST:
        raise DataError(f"MNIST variant must be 'mnist' or 'fashion-mnist'; got {variant!r}.")
    title, tv_name, folder, home = _MNIST[variant]
    # Only this variant's folders: the two share file names, so a wrong folder would load silently.
    dirs = [root, root / tv_name / "raw", root / folder]
    paths = _find_mnist(dirs)
    if paths is None and download:
        cls = _torchvision_class(tv_name)
        for filename, md5 in cls.resources:  # torchvision's own layout: root/MNIST/raw
            _download([f"{mirror}{filename}" for mirror in cls.mirrors], root / tv_name / "raw", filename, md5)
        paths = _find_mnist(dirs)
    if paths is None:
        expected = ", ".join(MNIST_FILES) + " (each optionally .gz)"
        raise _not_found(title, dirs, expected, f"download the four .gz files from {home} into {root}")
    x_tr, y_tr, x_te, y_te = (read_idx(p, ndim=1 if "labels" in p.name else 3) for p in paths)
    for images, labels, img_path, lab_path in ((x_tr, y_tr, paths[0], paths[1]), (x_te, y_te, paths[2], paths[3])):
        if images.shape[1:] != (28, 28):
            raise DataError(f"{img_path} must hold 28x28 images; got shape {images.shape[1:]}. Re-download it.")
        if len(images) != len(labels):
            raise DataError(f"{lab_path} must hold one label per image of {img_path} ({len(images)}); "
                            f"got {len(labels)} labels. Re-download both files.")
        _check_labels(labels, 10, lab_path)
    names = FASHION_MNIST_NAMES if variant == "fashion-mnist" else tuple(str(d) for d in range(10))
    return image_dataset(variant, *_numbered_splits(x_tr[:, None], y_tr, x_te[:, None], y_te), names)


def _torchvision_class(name: str) -> Any:
    """A torchvision dataset class, only for its download URLs and checksums (never to read files)."""
    import torchvision.datasets as tvd

    return getattr(tvd, name)


def _download(urls: Sequence[str], folder: Path, filename: str, md5: str | None) -> None:
    """Fetch ``filename`` from the first URL that works and extract it into ``folder``, via torchvision."""
    from torchvision.datasets import utils as tv_utils

    failures = []
    for url in urls:  # mirrors, in torchvision's order
        try:
            tv_utils.download_and_extract_archive(url, download_root=folder, filename=filename, md5=md5)
            return
        except _DOWNLOAD_ERRORS as exc:
            failures.append(f"{url}: {exc}")
    raise DataError(f"downloading {filename} into {folder} failed ({'; '.join(failures)}); check the internet "
                    "connection, or download the files by hand (see docs/datasets.md).")


# --------------------------------------------------------------------------------------------
# CIFAR-10 and CIFAR-100


class SafeUnpickler(pickle.Unpickler):
    """An unpickler for the CIFAR python files that can rebuild numpy arrays and nothing else.

    ``pickle.load`` runs whatever callable a file names, so a doctored file could run any code.
    The CIFAR files hold only dicts, lists, bytes, ints and numpy arrays; the plain containers
    need no lookup at all, and arrays need the three names below (``numpy.core`` in files from
    numpy 1, ``numpy._core`` from numpy 2). Any other name is refused before it is imported.
    """

    ALLOWED: ClassVar[dict[tuple[str, str], Any]] = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def __init__(self, file: BinaryIO, path: Path) -> None:
        super().__init__(file, encoding="bytes")  # the files were written by Python 2: keys are bytes
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            msg = (f"refusing to unpickle {module}.{name} from {self.path}: CIFAR files only contain lists, dicts, "
                   "bytes and numpy arrays. It is not an original CIFAR file; re-download it.")
            raise DataError(msg) from None


def unpickle_cifar(path: Path) -> dict[bytes, Any]:
    """Load one CIFAR python-version file (a pickled dict with bytes keys) with :class:`SafeUnpickler`."""
    try:
        with path.open("rb") as fh:
            obj = SafeUnpickler(fh, path).load()
    except DataError:
        raise
    except _BAD_PICKLE as exc:
        raise DataError(f"CIFAR file {path} is not a readable pickle ({exc!r}); re-download it.") from None
    if not isinstance(obj, dict):
        raise DataError(f"CIFAR file {path} must hold a dict; got {type(obj).__name__}. Re-download it.")
    return obj


class _Layout(NamedTuple):
    folder: str
    train: tuple[str, ...]
    test: str
    names: tuple[str, ...]  # python version: the meta pickle; binary: one text file per label column

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train, self.test, *self.names)


class _Cifar(NamedTuple):
    title: str
    tv_name: str  # the torchvision class holding the download URL and checksum
    archive: str
    python: _Layout
    binary: _Layout
    label_keys: tuple[bytes, ...]  # python version: one key per label column
    name_keys: tuple[bytes, ...]
    n_names: tuple[int, ...]  # labels per label column


_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10 = _Cifar("CIFAR-10", "CIFAR10", "cifar-10-python.tar.gz",
                 _Layout("cifar-10-batches-py", _BATCHES, "test_batch", ("batches.meta",)),
                 _Layout("cifar-10-batches-bin", tuple(f"{b}.bin" for b in _BATCHES), "test_batch.bin",
                         ("batches.meta.txt",)),
                 (b"labels",), (b"label_names",), (10,))
# Label columns are (coarse, fine): the byte order of the binary records.
CIFAR100 = _Cifar("CIFAR-100", "CIFAR100", "cifar-100-python.tar.gz",
                  _Layout("cifar-100-python", ("train",), "test", ("meta",)),
                  _Layout("cifar-100-binary", ("train.bin",), "test.bin",
                          ("coarse_label_names.txt", "fine_label_names.txt")),
                  (b"coarse_labels", b"fine_labels"), (b"coarse_label_names", b"fine_label_names"), (20, 100))


def _field(d: dict[bytes, Any], key: bytes, path: Path) -> Any:
    if key not in d:
        raise DataError(f"CIFAR file {path} must have the entry {key!r}; got keys {sorted(d)}. Re-download it.")
    return d[key]


def _file_names(d: dict[bytes, Any], n: int) -> np.ndarray | None:
    """The python version's optional ``filenames`` entry (N names), decoded; None where absent or misfit."""
    names = d.get(b"filenames")
    if not isinstance(names, list | tuple) or len(names) != n:
        return None
    return np.array([s.decode(errors="replace") if isinstance(s, bytes) else str(s) for s in names], dtype=object)


def _read_py_part(spec: _Cifar, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One python-version file: pixels uint8 (N, 3072), labels int64 (N, label columns), file names or None."""
    d = unpickle_cifar(path)
    x = np.asarray(_field(d, b"data", path))
    labels = np.stack([np.asarray(_field(d, k, path), dtype=np.int64) for k in spec.label_keys], axis=1)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(labels):
        raise DataError(f"CIFAR file {path} must hold uint8 data of shape (N, 3072) and N labels; got {x.dtype} "
                        f"{x.shape} and {len(labels)} labels. Re-download it.")
    return x, labels, _file_names(d, len(labels))


def _read_bin_part(spec: _Cifar, path: Path) -> tuple[np.ndarray, np.ndarray, None]:
    """One binary-version file: records of label byte(s) then 3,072 pixel bytes (R, G, B planes)."""
    raw = np.fromfile(path, dtype=np.uint8)
    record = len(spec.n_names) + 3072
    if raw.size == 0 or raw.size % record:
        raise DataError(f"CIFAR file {path} must be a whole number of {record}-byte records; got {raw.size} bytes. "
                        f"The file is truncated or not a {spec.title} binary file; re-download it.")
    rows = raw.reshape(-1, record)
    return rows[:, len(spec.n_names):], rows[:, : len(spec.n_names)].astype(np.int64), None  # no file names


def _read_names(spec: _Cifar, folder: Path, fmt: str) -> list[tuple[str, ...]]:
    if fmt == "python":
        path = folder / spec.python.names[0]
        meta = unpickle_cifar(path)
        names = [tuple(n.decode() if isinstance(n, bytes) else str(n) for n in _field(meta, k, path))
                 for k in spec.name_keys]
    else:
        names = [tuple(line.strip() for line in (folder / f).read_text(errors="replace").splitlines() if line.strip())
                 for f in spec.binary.names]
    for got, n in zip(names, spec.n_names, strict=True):
        if len(got) != n:
            raise DataError(f"{spec.title} label names in {folder} must number {n}; got {len(got)}. Re-download them.")
    return names


def _find_cifar(spec: _Cifar, dirs: Sequence[Path]) -> tuple[Path, str] | None:
    for folder in dirs:
        for fmt, layout in (("python", spec.python), ("binary", spec.binary)):
            if all((folder / f).is_file() for f in layout.files):
                return folder, fmt
    return None


def _load_cifar(spec: _Cifar, root: Path, download: bool) -> tuple[Split, Split, list[tuple[str, ...]], Path]:
    """Both splits with label columns as in :class:`_Cifar`, plus the names and the folder read."""
    dirs = [root / spec.python.folder, root / spec.binary.folder, root]
    found = _find_cifar(spec, dirs)
    if found is None and download:
        cls = _torchvision_class(spec.tv_name)  # the python version, extracted into root
        _download([cls.url], root, cls.filename, cls.tgz_md5)
        found = _find_cifar(spec, dirs)
    if found is None:
        expected = (f"the python version ({', '.join(spec.python.files)}) or the binary version "
                    f"({', '.join(spec.binary.files)})")
        how = f"download {spec.archive} from {CIFAR_HOME} and extract it into {root}"
        raise _not_found(spec.title, dirs, expected, how)
    folder, fmt = found
    layout, read = (spec.python, _read_py_part) if fmt == "python" else (spec.binary, _read_bin_part)
    parts = [read(spec, folder / f) for f in layout.train]
    x_te, lab_te, names_te = read(spec, folder / layout.test)
    x_tr, lab_tr = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    for col, n in enumerate(spec.n_names):
        _check_labels(np.concatenate([lab_tr[:, col], lab_te[:, col]]), n, folder)
    train, test = _numbered_splits(x_tr.reshape(-1, 3, 32, 32), lab_tr, x_te.reshape(-1, 3, 32, 32), lab_te)
    names_tr = [p[2] for p in parts if p[2] is not None]
    if names_te is not None and len(names_tr) == len(parts):  # every file names its images
        train, test = replace(train, file_name=np.concatenate(names_tr)), replace(test, file_name=names_te)
    return train, test, _read_names(spec, folder, fmt), folder


def _column(split: Split, col: int) -> Split:
    return replace(split, label=split.label[:, col])


def load_cifar10(root: Path, *, download: bool) -> Dataset:
    """CIFAR-10, python or binary version: x uint8 (N, 3, 32, 32), 50,000 train / 10,000 test, 10 labels."""
    train, test, (names,), _ = _load_cifar(CIFAR10, root, download)
    return image_dataset("cifar10", _column(train, 0), _column(test, 0), names)


def load_cifar100(root: Path, *, download: bool) -> Dataset:
    """CIFAR-100, python or binary version: 100 fine labels, each mapped to one of 20 coarse superclasses."""
    train, test, (coarse_names, fine_names), folder = _load_cifar(CIFAR100, root, download)
    labels = np.concatenate([train.label, test.label])  # (N, 2): coarse, fine
    pairs = np.unique(labels[:, ::-1], axis=0)  # distinct (fine, coarse)
    _check_cifar100_labels(folder, pairs, fine_names, coarse_names)
    mapping = np.empty(100, dtype=np.int64)
    mapping[pairs[:, 0]] = pairs[:, 1]
    return image_dataset("cifar100", _column(train, 1), _column(test, 1), fine_names, (coarse_names, mapping))


__all__ = ["load_cifar10", "load_cifar100", "load_imagefolder", "load_mnist", "read_idx", "read_superclass_map",
           "unpickle_cifar"]


def _check_cifar100_labels(folder: Path, pairs: np.ndarray, fine_names: Sequence[str], coarse_names: Sequence[str]) -> None:
    """Every fine label occurs, under exactly one coarse label. pairs : distinct (fine, coarse) rows."""
    per_fine = np.bincount(pairs[:, 0], minlength=100)
    redo = f"Delete {folder} and download it again (data.download=true), or copy the complete files there."
    missing = np.flatnonzero(per_fine == 0)
    if missing.size:
        named = ", ".join(f"{i} ({fine_names[i]})" for i in missing[:10])
        more = f" and {missing.size - 10} more" if missing.size > 10 else ""
        raise DataError(f"CIFAR-100 in {folder}: fine label(s) {named}{more} occur in neither the training nor the "
                        f"test file, so the files are incomplete. {redo}")
    for i in np.flatnonzero(per_fine > 1).tolist():
        coarse = ", ".join(f"{c} ({coarse_names[int(c)]})" for c in pairs[pairs[:, 0] == i, 1])
        raise DataError(f"CIFAR-100 in {folder}: fine label {i} ({fine_names[i]}) occurs under several coarse labels, "
                        f"{coarse}; each fine label belongs to exactly one. The files are damaged or mixed up. {redo}")
