"""Loaders of local data set files: MNIST and Fashion-MNIST (IDX), CIFAR-10/100 (binary or python), image folders.

Every reader parses its files itself, so no code from a data file ever runs: the CIFAR python
version is a pickle and is read by :class:`SafeUnpickler`, which can only rebuild numpy arrays.
With ``download=True`` missing files are fetched through torchvision's download helper, with the
URLs and checksums of torchvision's own dataset classes, and then read by the same readers.
Where each data set is looked for is described in docs/datasets.md.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import pickle
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np
from sklearn.model_selection import train_test_split

from backend.data.base import Dataset, Split, channel_stats
from backend.errors import DataError

try:  # numpy >= 2 moved the helper to numpy._core; files may name either module (see SafeUnpickler)
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FASHION_MNIST_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# variant -> (title, torchvision class and raw folder, plain folder, home page)
_MNIST = {
    "mnist": ("MNIST", "MNIST", "mnist", "https://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": ("Fashion-MNIST", "FashionMNIST", "fashion-mnist", "https://github.com/zalandoresearch/fashion-mnist"),
}
CIFAR_HOME = "https://www.cs.toronto.edu/~kriz/cifar.html"
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
# Checked before decoding: a tiny compressed file can claim a huge canvas (decompression bomb).
MAX_IMAGE_PIXELS = 50_000_000
IMAGEFOLDER_SPLIT_SEED = 0
# Download failures: network (URLError is an OSError), checksum (RuntimeError), broken archive.
_DOWNLOAD_ERRORS = (OSError, RuntimeError, ValueError, EOFError, tarfile.TarError)
# A corrupt pickle fails in many ways, all meaning "bad file" (stack, memo and numpy state errors).
_BAD_PICKLE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, OSError)


def _not_found(title: str, searched: Sequence[Path], expected: str, how: str) -> DataError:
    where = ", ".join(str(p) for p in searched)
    return DataError(
        f"{title} files not found: searched {where} for {expected}. To get them, {how}, "
        "or set data.download=true on a machine with internet."
    )


def _image_dataset(name: str, train: Split, test: Split, label_names: Sequence[str],
                   superclasses: tuple[tuple[str, ...], np.ndarray] | None = None) -> Dataset:
    mean, std = channel_stats(train.x)
    return Dataset(
        name=name, kind="image", train=train, test=test, label_names=tuple(label_names),
        superclass_names=superclasses[0] if superclasses else None,
        label_to_superclass=superclasses[1] if superclasses else None, mean=mean, std=std,
    )


def _numbered_splits(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray) -> tuple[Split, Split]:
    """Train ids 0..n_train-1, test ids n_train.. (the MNIST/CIFAR file order)."""
    n_tr, n_te = len(y_tr), len(y_te)
    ids_te = n_tr + np.arange(n_te, dtype=np.int64)
    return Split(x_tr, y_tr.astype(np.int64), np.arange(n_tr, dtype=np.int64)), Split(x_te, y_te.astype(np.int64), ids_te)


def _check_labels(labels: np.ndarray, n_labels: int, where: Path | str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= n_labels):
        raise DataError(
            f"{where} must hold labels in [0, {n_labels}); got values from {labels.min()} to {labels.max()}. "
            "The file is corrupt or belongs to another data set; re-download it."
        )


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
        raise DataError(
            f"IDX file {path} must start with magic number {magic} (uint8 data of {ndim} dimensions); "
            f"got {got}. The file is corrupt or not an MNIST file; re-download it."
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    size = header + int(np.prod(dims))
    if len(raw) != size:
        raise DataError(
            f"IDX file {path} must be {size} bytes long (header and shape {dims}); got {len(raw)} bytes. "
            "The file is truncated or corrupt; re-download it."
        )
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
        _download_mnist(tv_name, root / tv_name / "raw")
        paths = _find_mnist(dirs)
    if paths is None:
        expected = ", ".join(MNIST_FILES) + " (each optionally .gz)"
        raise _not_found(title, dirs, expected, f"download the four .gz files from {home} into {root}")
    x_tr, y_tr, x_te, y_te = (read_idx(p, ndim=1 if "labels" in p.name else 3) for p in paths)
    for images, labels, img_path, lab_path in ((x_tr, y_tr, paths[0], paths[1]), (x_te, y_te, paths[2], paths[3])):
        if images.shape[1:] != (28, 28):
            raise DataError(f"{img_path} must hold 28x28 images; got shape {images.shape[1:]}. Re-download it.")
        if len(images) != len(labels):
            raise DataError(
                f"{lab_path} must hold one label per image of {img_path} ({len(images)}); got {len(labels)} labels. "
                "Re-download both files."
            )
        _check_labels(labels, 10, lab_path)
    names = FASHION_MNIST_NAMES if variant == "fashion-mnist" else tuple(str(d) for d in range(10))
    return _image_dataset(variant, *_numbered_splits(x_tr[:, None], y_tr, x_te[:, None], y_te), names)


def _download_mnist(tv_name: str, raw_dir: Path) -> None:
    import torchvision.datasets as tvd
    from torchvision.datasets import utils as tv_utils

    cls = getattr(tvd, tv_name)
    for filename, md5 in cls.resources:
        failures = []
        for mirror in cls.mirrors:  # torchvision tries its mirrors in order too
            try:
                tv_utils.download_and_extract_archive(f"{mirror}{filename}", download_root=raw_dir, filename=filename, md5=md5)
                break
            except _DOWNLOAD_ERRORS as exc:
                failures.append(f"{mirror}{filename}: {exc}")
        else:
            raise DataError(f"downloading {filename} into {raw_dir} failed ({'; '.join(failures)}); "
                            "check the internet connection or copy the files there by hand.")


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
            raise DataError(
                f"refusing to unpickle {module}.{name} from {self.path}: CIFAR files only contain lists, dicts, "
                "bytes and numpy arrays. The file is not an original CIFAR file; re-download it."
            ) from None


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


@dataclass(frozen=True)
class _Cifar:
    title: str
    tv_name: str  # torchvision class holding the download URL and checksum
    archive: str
    py_folder: str
    py_train: tuple[str, ...]
    py_test: str
    py_meta: str
    py_label_keys: tuple[bytes, ...]  # per label column of the records
    py_name_keys: tuple[bytes, ...]
    bin_folder: str
    bin_train: tuple[str, ...]
    bin_test: str
    bin_meta: tuple[str, ...]  # one names file per label column
    n_names: tuple[int, ...]


CIFAR10 = _Cifar(
    "CIFAR-10", "CIFAR10", "cifar-10-python.tar.gz", "cifar-10-batches-py",
    tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta", (b"labels",), (b"label_names",),
    "cifar-10-batches-bin", tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin",
    ("batches.meta.txt",), (10,),
)
# Label columns are (coarse, fine): the byte order of the binary records.
CIFAR100 = _Cifar(
    "CIFAR-100", "CIFAR100", "cifar-100-python.tar.gz", "cifar-100-python", ("train",), "test", "meta",
    (b"coarse_labels", b"fine_labels"), (b"coarse_label_names", b"fine_label_names"),
    "cifar-100-binary", ("train.bin",), "test.bin", ("coarse_label_names.txt", "fine_label_names.txt"), (20, 100),
)


def _field(d: dict[bytes, Any], key: bytes, path: Path) -> Any:
    if key not in d:
        raise DataError(f"CIFAR file {path} must have the entry {key!r}; got keys {sorted(d)}. Re-download it.")
    return d[key]


def _read_py_part(spec: _Cifar, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python-version file: pixels uint8 (N, 3072) and labels int64 (N, label columns)."""
    d = unpickle_cifar(path)
    x = np.asarray(_field(d, b"data", path))
    labels = np.stack([np.asarray(_field(d, k, path), dtype=np.int64) for k in spec.py_label_keys], axis=1)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(labels):
        raise DataError(
            f"CIFAR file {path} must hold uint8 data of shape (N, 3072) and N labels; got {x.dtype} {x.shape} "
            f"and {len(labels)} labels. Re-download it."
        )
    return x, labels


def _read_bin_part(spec: _Cifar, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One binary-version file: records of label byte(s) then 3,072 pixel bytes (R, G, B planes)."""
    raw = np.fromfile(path, dtype=np.uint8)
    record = len(spec.n_names) + 3072
    if raw.size == 0 or raw.size % record:
        raise DataError(
            f"CIFAR file {path} must be a whole number of {record}-byte records; got {raw.size} bytes. "
            f"The file is truncated or not a {spec.title} binary file; re-download it."
        )
    rows = raw.reshape(-1, record)
    return rows[:, len(spec.n_names):], rows[:, : len(spec.n_names)].astype(np.int64)


def _read_names(spec: _Cifar, folder: Path, fmt: str) -> list[tuple[str, ...]]:
    if fmt == "python":
        path = folder / spec.py_meta
        meta = unpickle_cifar(path)
        names = [tuple(n.decode() if isinstance(n, bytes) else str(n) for n in _field(meta, k, path))
                 for k in spec.py_name_keys]
    else:
        names = [tuple(line.strip() for line in (folder / f).read_text().splitlines() if line.strip())
                 for f in spec.bin_meta]
    for got, n in zip(names, spec.n_names, strict=True):
        if len(got) != n:
            raise DataError(f"{spec.title} label names in {folder} must number {n}; got {len(got)}. Re-download them.")
    return names


def _find_cifar(spec: _Cifar, dirs: Sequence[Path]) -> tuple[Path, str] | None:
    for folder in dirs:
        if all((folder / f).is_file() for f in (*spec.py_train, spec.py_test, spec.py_meta)):
            return folder, "python"
        if all((folder / f).is_file() for f in (*spec.bin_train, spec.bin_test, *spec.bin_meta)):
            return folder, "binary"
    return None


def _load_cifar(spec: _Cifar, root: Path, download: bool) -> tuple[Split, Split, list[tuple[str, ...]], Path]:
    """Both splits with label columns as in :class:`_Cifar`, plus the names and the folder read."""
    dirs = [root / spec.py_folder, root / spec.bin_folder, root]
    found = _find_cifar(spec, dirs)
    if found is None and download:
        import torchvision.datasets as tvd
        from torchvision.datasets import utils as tv_utils

        cls = getattr(tvd, spec.tv_name)
        try:
            tv_utils.download_and_extract_archive(cls.url, download_root=root, filename=cls.filename, md5=cls.tgz_md5)
        except _DOWNLOAD_ERRORS as exc:
            raise DataError(f"downloading {cls.url} into {root} failed ({exc}); check the internet connection "
                            f"or download it by hand from {CIFAR_HOME}.") from None
        found = _find_cifar(spec, dirs)
    if found is None:
        expected = (f"the python version ({', '.join((*spec.py_train, spec.py_test, spec.py_meta))}) or the binary "
                    f"version ({', '.join((*spec.bin_train, spec.bin_test, *spec.bin_meta))})")
        raise _not_found(spec.title, dirs, expected, f"download {spec.archive} from {CIFAR_HOME} and extract it into {root}")
    folder, fmt = found
    read, train_files, test_file = ((_read_py_part, spec.py_train, spec.py_test) if fmt == "python"
                                    else (_read_bin_part, spec.bin_train, spec.bin_test))
    parts = [read(spec, folder / f) for f in train_files]
    x_te, lab_te = read(spec, folder / test_file)
    x_tr, lab_tr = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    for col, n in enumerate(spec.n_names):
        _check_labels(np.concatenate([lab_tr[:, col], lab_te[:, col]]), n, folder)
    train, test = _numbered_splits(x_tr.reshape(-1, 3, 32, 32), lab_tr, x_te.reshape(-1, 3, 32, 32), lab_te)
    return train, test, _read_names(spec, folder, fmt), folder


def _column(split: Split, col: int) -> Split:
    return Split(split.x, split.label[:, col], split.sample_id)


def load_cifar10(root: Path, *, download: bool) -> Dataset:
    """CIFAR-10, python or binary version: x uint8 (N, 3, 32, 32), 50,000 train / 10,000 test, 10 labels."""
    train, test, (names,), _ = _load_cifar(CIFAR10, root, download)
    return _image_dataset("cifar10", _column(train, 0), _column(test, 0), names)


def load_cifar100(root: Path, *, download: bool) -> Dataset:
    """CIFAR-100, python or binary version: 100 fine labels, each mapped to one of 20 coarse superclasses."""
    train, test, (coarse_names, fine_names), folder = _load_cifar(CIFAR100, root, download)
    labels = np.concatenate([train.label, test.label])  # (N, 2): coarse, fine
    pairs = np.unique(labels[:, ::-1], axis=0)  # distinct (fine, coarse)
    per_fine = np.bincount(pairs[:, 0], minlength=100)
    if (per_fine != 1).any():
        bad = np.flatnonzero(per_fine != 1)[:10].tolist()
        raise DataError(
            f"CIFAR-100 in {folder}: every fine label must belong to exactly one coarse label; fine labels {bad} "
            f"belong to {per_fine[bad].tolist()}. The files are incomplete or corrupt; re-download them."
        )
    mapping = np.empty(100, dtype=np.int64)
    mapping[pairs[:, 0]] = pairs[:, 1]
    return _image_dataset("cifar100", _column(train, 1), _column(test, 1), fine_names, (coarse_names, mapping))


# --------------------------------------------------------------------------------------------
# Image folders


def _inside(path: Path, root_real: Path) -> bool:
    return path.resolve().is_relative_to(root_real)


def _subdirs(folder: Path, root_real: Path) -> list[Path]:
    """Visible subfolders, sorted by name; a link leading outside the data root is ignored."""
    dirs = (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and _inside(p, root_real))
    return sorted(dirs, key=lambda p: p.name)


def _class_files(folder: Path, root_real: Path) -> dict[str, list[Path]]:
    """Class name -> its image files (searched recursively; linked subfolders are not followed)."""
    classes: dict[str, list[Path]] = {}
    for class_dir in _subdirs(folder, root_real):
        files = []
        for dirpath, dirnames, filenames in os.walk(class_dir):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            paths = (Path(dirpath, name) for name in filenames if not name.startswith("."))
            files += [p for p in paths if p.suffix.lower() in IMAGE_EXTENSIONS and _inside(p, root_real)]
        if not files:
            raise DataError(
                f"class folder {class_dir} must contain image files ({', '.join(sorted(IMAGE_EXTENSIONS))}); "
                "got none. Add images or remove the folder."
            )
        classes[class_dir.name] = files
    return classes


def _fraction_split(labels: np.ndarray, test_fraction: float) -> np.ndarray:
    """Boolean test mask (N,): stratified and seeded, so the split never depends on the run's seed."""
    ids = np.arange(len(labels))
    try:
        _, test = train_test_split(ids, test_size=test_fraction, stratify=labels, random_state=IMAGEFOLDER_SPLIT_SEED)
    except ValueError:  # a class with one image, or fewer test places than classes: cannot stratify
        _, test = train_test_split(ids, test_size=test_fraction, random_state=IMAGEFOLDER_SPLIT_SEED)
    mask = np.zeros(len(labels), dtype=bool)
    mask[test] = True
    return mask


def _list_images(root: Path, test_fraction: float) -> tuple[list[Path], np.ndarray, np.ndarray, list[str]]:
    """All image paths sorted by relative path, their labels (N,), test mask (N,) and the sorted classes."""
    if not root.is_dir():
        raise DataError(
            f"image folder {root} does not exist or is not a folder; set data.root to a folder with one "
            "subfolder of images per class (see docs/datasets.md)."
        )
    root_real = root.resolve()
    top = {p.name: p for p in _subdirs(root, root_real)}
    presplit = "train" in top and "test" in top
    scans = {s: _class_files(top[s], root_real) for s in ("train", "test")} if presplit else {"": _class_files(root, root_real)}
    classes = sorted(set().union(*scans.values()))
    if len(classes) < 2:
        where = f"{top['train']} and {top['test']}" if presplit else str(root)
        raise DataError(f"image folder {where} must hold at least 2 class subfolders with images; got {classes}.")
    index = {c: i for i, c in enumerate(classes)}
    entries = sorted(((p.relative_to(root).parts, p, index[c], s) for s, scan in scans.items() for c, ps in scan.items()
                      for p in ps), key=lambda e: e[0])
    labels = np.array([e[2] for e in entries], dtype=np.int64)
    is_test = np.array([e[3] == "test" for e in entries]) if presplit else _fraction_split(labels, test_fraction)
    if presplit and not all(scans.values()):
        empty = [str(top[s]) for s, scan in scans.items() if not scan]
        raise DataError(f"image folder {empty[0]} must hold class subfolders with images; got none.")
    return [e[1] for e in entries], labels, is_test, classes


def load_image(path: Path, *, mode: str, size: int) -> np.ndarray:
    """One image file converted to ``mode`` ("L" or "RGB") and resized bilinearly: uint8 (C, size, size)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise DataError(
                    f"image file {path} must have at most {MAX_IMAGE_PIXELS} pixels; got {im.width}x{im.height}. "
                    "Shrink it or remove it from the folder."
                )
            arr = np.asarray(im.convert(mode).resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:  # PIL's "cannot decode"
        raise DataError(f"image file {path} is unreadable or corrupt ({exc}); replace it or remove it.") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def load_imagefolder(root: Path, *, image_size: int, channels: int, superclass_map: Path | None,
                     test_fraction: float) -> Dataset:
    """A folder with one subfolder of images per class: x uint8 (N, channels, image_size, image_size).

    With ``root/train`` and ``root/test`` those are the splits; otherwise a stratified split with
    ``test_fraction`` and ``random_state=0``. Classes are sorted by name, and ``sample_id`` is the
    index of the file in the list of all files sorted by relative path. ``superclass_map`` is an
    optional CSV (``class,superclass``) or JSON ({class: superclass}) file covering every class.
    """
    paths, labels, is_test, classes = _list_images(root, test_fraction)
    superclasses = read_superclass_map(superclass_map, classes) if superclass_map is not None else None
    x = np.empty((len(paths), channels, image_size, image_size), dtype=np.uint8)
    for i, path in enumerate(paths):
        x[i] = load_image(path, mode="L" if channels == 1 else "RGB", size=image_size)
    ids = np.arange(len(paths), dtype=np.int64)
    train, test = (Split(x[m], labels[m], ids[m]) for m in (~is_test, is_test))
    return _image_dataset("imagefolder", train, test, classes, superclasses)


def _parse_map(path: Path) -> dict[str, str]:
    """class -> superclass from a JSON object or a CSV file with the header ``class,superclass``."""
    hint = 'a CSV file with the header "class,superclass" or a JSON object {"class": "superclass"}'
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheet programs often add a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"data.superclass_map {path} could not be read ({exc}); it must be {hint}.") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"data.superclass_map {path} is not valid JSON ({exc}); it must be {hint}.") from None
        if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
            raise DataError(f"data.superclass_map {path} must be {hint}; got JSON {type(obj).__name__} of other values.")
        return {str(k).strip(): v.strip() for k, v in obj.items()}
    rows = [[c.strip() for c in row] for row in csv.reader(text.splitlines()) if any(c.strip() for c in row)]
    if not rows or [c.lower() for c in rows[0]] != ["class", "superclass"]:
        raise DataError(f"data.superclass_map {path} must be {hint}; got the first line {rows[0] if rows else []}.")
    mapping: dict[str, str] = {}
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or not all(row) or mapping.get(row[0], row[1]) != row[1]:
            raise DataError(f"data.superclass_map {path}, row {n}: expected 'class,superclass' with a class "
                            f"mapped once; got {row}.")
        mapping[row[0]] = row[1]
    return mapping


def read_superclass_map(path: Path, classes: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """Sorted superclass names and the label -> superclass index array, int64 (n_classes,)."""
    if not path.is_file():
        raise DataError(f"data.superclass_map {path} does not exist; give a CSV or JSON file mapping class -> superclass.")
    mapping = _parse_map(path)
    unmapped = [c for c in classes if c not in mapping]
    unknown = sorted(set(mapping) - set(classes))
    if unmapped or unknown:
        raise DataError(
            f"data.superclass_map {path} must map exactly the classes of the image folder ({len(classes)}); "
            f"unmapped classes: {unmapped}; classes in the map but not in the folder: {unknown}. Fix the map."
        )
    names = tuple(sorted(set(mapping.values())))
    position = {name: i for i, name in enumerate(names)}
    return names, np.array([position[mapping[c]] for c in classes], dtype=np.int64)
