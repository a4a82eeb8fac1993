"""Where derived data (decoded image stores, rendered built-in datasets, downloads) is kept between runs.

Everything here is rebuilt from its source when missing, so deleting the cache folder only costs time. Writers build
into a temporary sibling and rename it into place once complete: an interrupted run never leaves a half-written
entry that a later run would trust. Builders hold a per-entry file lock, so that processes preparing the same data
at once (the ranks of a distributed run, two trainings on one machine) build it once and then share it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator, Optional

CACHE_ENV_VARIABLE = "HYPERNERFGAN_CACHE"
"""Environment variable that overrides the cache folder (tests point it at a temporary folder)."""

LOCKS_FOLDER = "locks"
"""Folder of the cache root that holds the builders' lock files."""


def default_cache_root() -> Path:
    """`$HYPERNERFGAN_CACHE`, else `$XDG_CACHE_HOME/hypernerfgan_ns`, else `~/.cache/hypernerfgan_ns`."""
    if os.environ.get(CACHE_ENV_VARIABLE):
        return Path(os.environ[CACHE_ENV_VARIABLE]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "hypernerfgan_ns"


def resolve_cache_root(cache_root: Optional[Path]) -> Path:
    """The given cache folder, or the default one."""
    return Path(cache_root).expanduser() if cache_root is not None else default_cache_root()


@contextlib.contextmanager
def atomic_output(final_path: Path) -> Iterator[Path]:
    """Yields a temporary path beside `final_path`; moves it to `final_path` only if the block completes.

    Works for files and folders. On an exception (including Ctrl-C) the temporary path is removed and
    `final_path` is left as it was.
    """
    final_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = final_path.with_name(f".{final_path.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        yield temporary
        if final_path.exists():
            if final_path.is_dir():
                shutil.rmtree(final_path)
            else:
                final_path.unlink()
        os.replace(temporary, final_path)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        elif temporary.exists():
            temporary.unlink()


@contextlib.contextmanager
def cache_lock(final_path: Path) -> Iterator[None]:
    """Holds an exclusive inter-process lock for building `final_path` (blocks while another process holds it).

    Check whether the entry exists *inside* the lock: the process that waited then finds it built. Lock files live
    in a `locks` folder beside the entries' folder and are never deleted (deleting a lock file races with waiters).
    """
    lock_path = final_path.parent.parent / LOCKS_FOLDER / f"{final_path.parent.name}-{final_path.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
