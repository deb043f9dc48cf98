"""Files: atomic writes, digests and the cache folder, used by every layer of alsnet.

One place for each: a file alsnet writes is never seen half-written (a temporary file in
the same folder, then a rename), a digest is always SHA-256 of the bytes, and everything
alsnet caches lives under :func:`cache_dir`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: A file name as a user gives it.
PathLike = str | os.PathLike


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    For writers that want a file name (``savefig``, a compiler); on any error the temporary
    file is removed and ``path`` is untouched. ``mode`` is applied before the rename
    (``mkstemp`` makes files owner-only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically (fsynced before the rename)."""
    with atomic_path(path, mode) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str, mode: int = 0o644) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def cache_dir(*parts: str) -> Path:
    """alsnet's cache: ``$ALSNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/alsnet`` or ``~/.cache/alsnet``."""
    env = os.environ.get("ALSNET_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "alsnet"
    return base.joinpath(*parts)


__all__ = ["PathLike", "sha256_file", "atomic_path", "atomic_write_bytes", "atomic_write_text", "cache_dir"]
