"""Image-folder data sets: one subfolder per class, optional superclass map (docs/datasets.md)."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from backend.data.base import Dataset, Split, image_dataset
from backend.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
# Checked before decoding: a tiny compressed file can claim a huge canvas (decompression bomb).
MAX_IMAGE_PIXELS = 50_000_000
IMAGEFOLDER_SPLIT_SEED = 0


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
            kinds = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise DataError(f"class folder {class_dir} must contain image files ({kinds}); got none. "
                            "Add images or remove the folder.")
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
        raise DataError(f"image folder {root} does not exist or is not a folder; set data.root to a folder with one "
                        "subfolder of images per class (see docs/datasets.md).")
    root_real = root.resolve()
    top = {p.name: p for p in _subdirs(root, root_real)}
    presplit = "train" in top and "test" in top
    folders = {"train": top["train"], "test": top["test"]} if presplit else {"": root}
    scans = {s: _class_files(folder, root_real) for s, folder in folders.items()}
    if presplit and not all(scans.values()):
        empty = next(top[s] for s, scan in scans.items() if not scan)
        raise DataError(f"image folder {empty} must hold class subfolders with images; got none.")
    classes = sorted(set().union(*scans.values()))
    if len(classes) < 2:
        where = f"{top['train']} and {top['test']}" if presplit else str(root)
        raise DataError(f"image folder {where} must hold at least 2 class subfolders with images; got {classes}.")
    index = {c: i for i, c in enumerate(classes)}
    entries = sorted(((p.relative_to(root).parts, p, index[c], s) for s, scan in scans.items() for c, ps in scan.items()
                      for p in ps), key=lambda e: e[0])
    labels = np.array([e[2] for e in entries], dtype=np.int64)
    is_test = np.array([e[3] == "test" for e in entries]) if presplit else _fraction_split(labels, test_fraction)
    return [e[1] for e in entries], labels, is_test, classes


def load_image(path: Path, *, mode: str, size: int) -> np.ndarray:
    """One image file converted to ``mode`` ("L" or "RGB") and resized bilinearly: uint8 (C, size, size)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise DataError(f"image file {path} must have at most {MAX_IMAGE_PIXELS} pixels; got "
                                f"{im.width}x{im.height}. Shrink it or remove it from the folder.")
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
    index of the file in the list of all files sorted by relative path, and ``file_name`` that relative path. ``superclass_map`` is an
    optional CSV (``class,superclass``) or JSON ({class: superclass}) file covering every class.
    """
    paths, labels, is_test, classes = _list_images(root, test_fraction)
    superclasses = read_superclass_map(superclass_map, classes) if superclass_map is not None else None
    x = np.empty((len(paths), channels, image_size, image_size), dtype=np.uint8)
    for i, path in enumerate(paths):
        x[i] = load_image(path, mode="L" if channels == 1 else "RGB", size=image_size)
    ids = np.arange(len(paths), dtype=np.int64)
    names = np.array([p.relative_to(root).as_posix() for p in paths], dtype=object)  # samples.parquet file_name
    train, test = (Split(x[m], labels[m], ids[m], names[m]) for m in (~is_test, is_test))
    return image_dataset("imagefolder", train, test, classes, superclasses)


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
            raise DataError(f"data.superclass_map {path} must be {hint}; got JSON {type(obj).__name__} of other "
                            "values.")
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
        raise DataError(f"data.superclass_map {path} does not exist; give a CSV or JSON file mapping class -> "
                        "superclass.")
    mapping = _parse_map(path)
    unmapped = [c for c in classes if c not in mapping]
    unknown = sorted(set(mapping) - set(classes))
    if unmapped or unknown:
        raise DataError(f"data.superclass_map {path} must map exactly the {len(classes)} classes of the image "
                        f"folder; unmapped classes: {unmapped}; classes in the map but not in the folder: {unknown}. "
                        "Fix the map.")
    names = tuple(sorted(set(mapping.values())))
    position = {name: i for i, name in enumerate(names)}
    return names, np.array([position[mapping[c]] for c in classes], dtype=np.int64)
