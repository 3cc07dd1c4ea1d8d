"""Extract an uploaded image-folder zip without trusting anything in it.

Every entry is checked before a single byte is written: no absolute paths, no ``..``, no drive letters or
backslashes, no symbolic links, no encrypted entries, at most ``max_files`` files, at most ``max_bytes``
uncompressed in total and no entry compressed more than ``max_ratio`` times (decompression bombs). While
extracting, the bytes actually produced are counted too (a header can lie about the size). The result is
written into a temporary folder beside ``dest`` and renamed into place, so a failure leaves nothing.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from backend.errors import ClusterScopeError
from backend.store import leftovers

MAX_FILES = 100_000
MAX_BYTES = 4 * 1024**3  # 4 GiB uncompressed
MAX_RATIO = 200  # zip bombs reach 1000:1 and more; images and CSVs compress far less
RATIO_FLOOR = 1024**2  # entries below 1 MiB are not ratio-checked (tiny text files compress well)
SKIPPED = ("__MACOSX/",)  # macOS resource forks, never data
MAX_DEPTH = 16
MAX_NAME = 255


class UnsafeArchiveError(ClusterScopeError):
    """A zip upload was refused before anything was extracted."""


@dataclass(frozen=True)
class ZipLimits:
    max_files: int = MAX_FILES
    max_bytes: int = MAX_BYTES
    max_ratio: float = MAX_RATIO


def _safe_parts(name: str, label: str) -> tuple[str, ...] | None:
    """The validated path components of one entry (None for entries that are skipped)."""
    if name.startswith(SKIPPED) or name.endswith("/"):
        return None
    if "\\" in name or "\x00" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"zip {label!r} has an entry with an absolute or Windows path ({name!r}); refused, "
                                 "nothing was extracted. Zip the folder with relative paths.")
    parts = PurePosixPath(name).parts
    if any(p in ("..", ".") for p in parts) or name.startswith("../"):
        raise UnsafeArchiveError(f"zip {label!r} has an entry that leaves the folder ({name!r}); refused, nothing was "
                                 "extracted.")
    if len(parts) > MAX_DEPTH or any(len(p) > MAX_NAME or not p for p in parts):
        raise UnsafeArchiveError(f"zip {label!r} has an entry with a path too deep or a name too long ({name[:80]!r}).")
    if parts[-1].startswith("."):
        return None  # .DS_Store and other hidden files are not images
    return parts


def check_zip(path: Path, *, label: str | None = None, limits: ZipLimits = ZipLimits()) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """Every entry to extract with its validated path parts; raise :class:`UnsafeArchiveError` on any problem."""
    label = label or path.name
    declared = _declared_entries(path)
    if declared is not None and declared > limits.max_files:  # before the central directory is parsed into memory
        raise UnsafeArchiveError(f"zip {label!r} declares {declared} entries; at most {limits.max_files} files are accepted. "
                                 "Import a larger data set from a local folder (clusterscope import --set data.root=...).")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeArchiveError(f"zip {label!r} cannot be read ({exc}); upload a .zip of the image folder.") from None
    entries, total = [], 0
    for info in infos:
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(f"zip {label!r} contains a symbolic link ({info.filename!r}); refused, nothing was "
                                     "extracted. Zip the images themselves.")
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError(f"zip {label!r} has an encrypted entry ({info.filename!r}); upload it unencrypted.")
        parts = _safe_parts(info.filename, label)
        if parts is None or info.is_dir():
            continue
        total += info.file_size
        if info.file_size > RATIO_FLOOR and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise UnsafeArchiveError(
                f"zip {label!r} looks like a decompression bomb: entry {info.filename!r} expands {info.compress_size} bytes "
                f"into {info.file_size} (more than {limits.max_ratio:g} times); refused, nothing was extracted.")
        entries.append((info, parts))
    if len(entries) > limits.max_files:
        raise UnsafeArchiveError(f"zip {label!r} has {len(entries)} files; at most {limits.max_files} are accepted. "
                                 "Import a larger data set from a local folder (clusterscope import --set data.root=...).")
    if total > limits.max_bytes:
        raise UnsafeArchiveError(f"zip {label!r} expands to {total / 1024**2:.0f} MiB; at most "
                                 f"{limits.max_bytes / 1024**2:.0f} MiB are accepted (decompression bomb guard). "
                                 "Import a larger data set from a local folder.")
    return entries


def _declared_entries(path: Path) -> int | None:
    """The entry count in the zip's end-of-central-directory record (zip64 too), or None if not found."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            fh.seek(max(0, size - 65_557))  # the record (22 bytes) plus the longest comment
            tail = fh.read()
    except OSError:
        return None
    i = tail.rfind(b"PK\x05\x06")
    if i < 0 or len(tail) < i + 12:
        return None
    count = int.from_bytes(tail[i + 10:i + 12], "little")
    j = tail.rfind(b"PK\x06\x06", 0, i)
    if count == 0xFFFF and j >= 0 and len(tail) >= j + 40:
        count = int.from_bytes(tail[j + 32:j + 40], "little")
    return count


def extract_zip(path: Path, dest: Path, *, label: str | None = None, limits: ZipLimits = ZipLimits()) -> Path:
    """Check ``path`` (see :func:`check_zip`), then extract it to ``dest`` (which must not exist); return ``dest``."""
    label = label or path.name
    entries = check_zip(path, label=label, limits=limits)
    if dest.exists():
        raise UnsafeArchiveError(f"extraction folder {dest} already exists.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    leftovers.claim(tmp)  # a killed extraction's folder is removed at the next start
    try:
        root = tmp.resolve()
        written = 0
        with zipfile.ZipFile(path) as zf:
            for info, parts in entries:
                target = tmp.joinpath(*parts)
                if not target.resolve().is_relative_to(root):  # belt and braces after _safe_parts
                    raise UnsafeArchiveError(f"zip {label!r} entry {info.filename!r} leaves the folder; refused.")
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    left = info.file_size
                    while chunk := src.read(min(1 << 20, left + 1)):
                        left -= len(chunk)
                        written += len(chunk)
                        if left < 0 or written > limits.max_bytes:
                            raise UnsafeArchiveError(f"zip {label!r} entry {info.filename!r} expands beyond its declared "
                                                     "size; refused as a decompression bomb.")
                        out.write(chunk)
        leftovers.release(tmp)
        os.replace(tmp, dest)
    except zipfile.BadZipFile as exc:
        raise UnsafeArchiveError(f"zip {label!r} is corrupt ({exc}); nothing was kept.") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def data_root(folder: Path) -> Path:
    """The image folder inside an extracted zip: the zip's single top folder when it has one."""
    visible = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(visible) == 1 and visible[0].is_dir():
        return visible[0]
    return folder


def superclass_file(folder: Path) -> Path | None:
    """A ``superclasses.csv`` or ``superclasses.json`` at the top of the image folder, if any."""
    for name in ("superclasses.csv", "superclasses.json"):
        if (folder / name).is_file():
            return folder / name
    return None
