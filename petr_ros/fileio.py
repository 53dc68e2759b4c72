"""The package's one atomic file writer: a crash or kill mid-write never leaves a half-written file.

Write into a temporary file beside the target (same file system, so the rename is atomic), flush and fsync it,
`os.replace` it over the target, then fsync the folder so the rename itself survives a power loss. On any error
(KeyboardInterrupt and SystemExit included) the temporary file is removed and the previous target stays intact.
Temporary files are named `.<name>.<random>.tmp`; `remove_stale_temporaries` cleans those a killed writer left.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TMP_SUFFIX = ".tmp"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not support fsync on directories
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path` for a writer that wants a file name (PIL, np.savez, torch.save);
    on a clean exit the file is fsynced and renamed over `path`. `suffix`: the temporary's extension (libraries
    that choose the format by extension); default `.tmp`. File mode follows the umask (not mkstemp's 0600)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or TMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """`open(path, mode)` that only replaces `path` when the block finishes without an error.
    mode: 'w' / 'wb' (or with '+'); kwargs go to `open` (encoding, newline)."""
    if "w" not in mode:
        raise ValueError(f"atomic_open writes whole files: mode must contain 'w', got {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically; return the path."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically; return the path."""
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def remove_stale_temporaries(folder: str | os.PathLike, name: str) -> list[Path]:
    """Delete the temporaries of the file `name` that a killed writer left in `folder` (`.<name>.<random>...`);
    return them. Only call this when no other writer of that file is active."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.glob(f".{name}.*"):
        if p.is_file():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed
