"""The generated dataset's folder: our marker file, one generation at a time, an atomic swap
(and the generator's setting ranges).

A folder is ours only if it holds :data:`MARKER` (``.symnb-dataset.json``: the generator, format
version, generator code hash and settings; datasets of earlier releases: a ``dataset.json`` with
those fields). :func:`claim` is how :func:`data_prep.make_dataset.make_dataset` writes ``out``:

* a regular file at ``out``, or a non-empty folder without the marker, is refused
  (``FileExistsError``) and left untouched, with or without ``overwrite``;
* an empty folder, or none, is generated; a dataset of the same settings and generator code is
  reused; of the same settings and other code regenerated; of other settings replaced only with
  ``overwrite``;
* generations into the same ``out`` take turns (an exclusive ``flock`` on ``.<name>.lock`` beside
  it, removed afterwards). One that had to wait and then finds a dataset of *other* settings that
  appeared meanwhile refuses (``FileExistsError``) instead of replacing it, even with ``overwrite``:
  concurrent generations never silently replace each other;
* everything is written into a hidden sibling ``.<name>.tmp-<hex>`` (marked at once), swapped in
  when complete; the replaced dataset goes to ``.<name>.old-<hex>`` and is deleted. Such folders
  left by a killed run are deleted by the next generation into the same ``out``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

MARKER = ".symnb-dataset.json"
GENERATOR = "symnb data_prep.make_dataset"
_KEYS = ("format_version", "generator_hash", "config")


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The generation settings of a dataset folder we made (marker, or an earlier release's
    ``dataset.json``), else None."""
    folder = Path(folder)
    for name, need_generator in ((MARKER, True), ("dataset.json", False)):
        try:
            data = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue
        if (isinstance(data, dict) and all(k in data for k in _KEYS)
                and (data.get("generator") == GENERATOR or not need_generator)):
            return {k: data[k] for k in _KEYS}
    return None


def is_ours(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a dataset folder that the generator wrote (see :func:`read_marker`)."""
    return Path(folder).is_dir() and read_marker(folder) is not None


def write_marker(folder: Path, settings: dict) -> None:
    (folder / MARKER).write_text(json.dumps({"generator": GENERATOR, **settings}, indent=1))


@contextlib.contextmanager
def _locked(lock: Path, log: Callable[[str], None] | None) -> Iterator[None]:
    """Hold an exclusive flock on ``lock`` (created, and removed on release). Without ``fcntl``
    (Windows) generations are not serialised."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if log:
                    log(f"waiting for another generation into {lock.parent / lock.name[1:-5]}")
                fcntl.flock(fd, fcntl.LOCK_EX)
            mine = os.fstat(fd)
            try:
                now = os.stat(lock)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_ino, now.st_dev) == (mine.st_ino, mine.st_dev):
            break
        os.close(fd)  # the previous holder removed that lock file: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


def _remove_leftovers(out: Path) -> None:
    """Delete ``.<name>.tmp-<hex>`` / ``.<name>.old-<hex>`` folders of killed generations (called
    under the lock: no running generation owns them)."""
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(tmp|old)-[0-9a-f]{{8}}$")
    with contextlib.suppress(OSError):
        for p in out.parent.iterdir():
            if pattern.match(p.name) and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)


def _refuse_foreign(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a dataset folder: not replacing it (choose another "
                              "--out)")
    if out.is_dir() and any(out.iterdir()) and read_marker(out) is None:
        raise FileExistsError(f"{out} is a non-empty folder without the {MARKER} marker of a generated "
                              "dataset: not deleting or replacing it, even with --overwrite (choose another "
                              "--out, or empty the folder)")


@contextlib.contextmanager
def claim(out: str | os.PathLike, settings: dict, overwrite: bool = False,
          log: Callable[[str], None] | None = None) -> Iterator[Path | None]:
    """Take ``out`` for a generation with ``settings`` (``format_version``, ``generator_hash``,
    ``config``); see the module docstring for the rules.

    Yields:
        None when ``out`` already holds this dataset (nothing to do); else a new, marked temporary
        folder to fill, swapped into ``out`` when the block ends without an exception (and deleted
        when it raises).

    Raises:
        FileExistsError: ``out`` is not ours, or another generation wrote other settings meanwhile.
        ValueError: ``out`` holds a dataset of other settings and ``overwrite`` is false.
    """
    out = Path(out)
    if out.is_symlink():
        out = out.resolve()  # replace the folder the link points to, keep the link
    _refuse_foreign(out)
    before = read_marker(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _locked(out.parent / f".{out.name}.lock", log):
        _remove_leftovers(out)
        _refuse_foreign(out)  # again: it may have changed while we waited
        old = read_marker(out)
        if old is not None:
            if old == settings and (out / "dataset.json").is_file():
                yield None
                return
            same_config = all(old[k] == settings[k] for k in ("format_version", "config"))
            if old != before and not same_config:
                raise FileExistsError(f"{out}: another generation wrote a dataset with other settings "
                                      "there while this one waited; not replacing it (run again, with "
                                      "--overwrite to replace it)")
            if same_config:
                if log:
                    log(f"{out}: made by another version of data_prep; regenerating")
            elif not overwrite:
                raise ValueError(f"{out} exists with other contents or settings; "
                                 "pass overwrite=True (--overwrite)")
        tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            write_marker(tmp, settings)
            yield tmp
            _swap(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _swap(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` to ``out`` (an empty folder, one of ours, or nothing)."""
    if not out.is_dir() or not any(out.iterdir()):
        with contextlib.suppress(FileNotFoundError):
            out.rmdir()
        os.replace(tmp, out)
        return
    trash = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(out, trash)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(trash, out)  # put the previous dataset back
        raise
    shutil.rmtree(trash, ignore_errors=True)
    if trash.exists():
        warnings.warn(f"could not delete all of the replaced dataset {trash}; the next generation into "
                      f"{out} retries", stacklevel=3)
