"""Crash-safe file writes: a reader, or the next start after a crash, sees the old file or the new one.

Everything the client writes that it must be able to read back (keystores, receipt bundles, exports,
chain state, relay snapshots, deploy manifests) goes through :func:`atomic_write`, so there is one
place that gets the order right: temporary file in the same directory, fsync, rename (or link), then
fsync the directory, because the rename is only durable once the directory entry is.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(
    path: str | Path,
    data: bytes | str | Iterable[bytes],
    *,
    mode: int | None = None,
    exclusive: bool = False,
) -> Path:
    """Write ``data`` to ``path`` atomically and durably; return the path.

    ``data`` is bytes, text (UTF-8) or an iterable of byte chunks (streamed, never held whole).
    ``mode`` sets the file's permission bits before any byte is written, so a secret is never
    readable by others even for an instant. With ``exclusive`` the target must not exist: the file is
    linked into place (which fails atomically if it does) instead of renamed over it, and
    :class:`FileExistsError` is raised.
    """
    target = Path(path)
    directory = target.parent
    directory.mkdir(parents=True, exist_ok=True, **({"mode": 0o700} if mode is not None else {}))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            for chunk in _chunks(data):
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, target)
        else:
            os.replace(tmp, target)
    finally:
        # After a replace the temporary name is gone; after a link, or any failure, it must go.
        if os.path.lexists(tmp):
            os.unlink(tmp)
    _fsync_directory(directory)
    return target


def _chunks(data: bytes | str | Iterable[bytes]) -> Iterable[bytes]:
    if isinstance(data, str):
        return (data.encode("utf-8"),)
    if isinstance(data, bytes | bytearray | memoryview):
        return (bytes(data),)
    return data


def _fsync_directory(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
