"""Atomic file writes: a file appears complete under its final name, or not at all."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_target(path: str | os.PathLike[str], *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched. The file
    gets the permissions a plain ``open`` would give (mkstemp's are private to the owner).
    """
    target = Path(path)
    handle, temporary = tempfile.mkstemp(suffix=suffix, dir=target.parent, prefix=".tmp-")
    os.close(handle)
    try:
        yield Path(temporary)
        give_plain_permissions(temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
"""Read once at import: setting the umask to read it is not thread-safe."""


def give_plain_permissions(path: str | os.PathLike[str]) -> None:
    """Give a file the permissions a plain ``open`` would (read for all under the usual umask).

    Writers that stage through private temporary files (``mkstemp``, safetensors) leave them
    readable by their owner only: an installed model would be unreadable to other users.
    """
    os.chmod(path, 0o666 & ~_UMASK)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text atomically; returns the path."""
    with atomic_target(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


@contextmanager
def atomic_folder(
    path: str | os.PathLike[str], *, replace_existing: bool = False
) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; on success it is renamed to ``path``.

    On any exception the staging folder is removed and ``path`` is left untouched. With
    ``replace_existing`` an existing ``path`` is removed just before the rename.
    """
    target = Path(path)
    staging = target.with_name(f".tmp-{target.name}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        if replace_existing and target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
