"""Small shared helpers: seeding, device choice, atomic file writes, JSON results."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import random
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch


def set_seed(seed: int) -> None:
    """Seed Python's `random`, NumPy and torch (CPU and all CUDA devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def project_root(start: str | os.PathLike | None = None) -> Path | None:
    """The symnb checkout containing `start` (default: the working directory), or None.

    A checkout is a folder holding both ``pyproject.toml`` and the ``symnb/`` package.
    """
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "symnb").is_dir():
            return d
    return None


def use_project_root() -> Path:
    """Change to the checkout's root so that notebooks' relative paths (configs/, data/, build/) work
    wherever the notebook runs from: ``nbs/`` in JupyterLab, papermill, or nbval's copies in ``build/``.
    Outside a checkout the working directory is left as it is. Returns the working directory."""
    root = project_root()
    if root is not None:
        os.chdir(root)
    return Path.cwd()


def get_device(device: str | None = None) -> torch.device:
    """The requested device, or CUDA when available, else CPU."""
    if device is not None and device != "auto":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


#: Temporary files of :func:`atomic_write`: ``.<name>.<pid>-<random>.tmp`` beside the target.
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp$")
#: A temporary file of a dead process is removed once it is this old (seconds); any after a day.
_STALE_AFTER = 60.0


def _umask() -> int:
    """The process's umask, without changing it (Linux: /proc; elsewhere: set and restore)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's) or cannot tell: keep its file
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files that interrupted :func:`atomic_write` calls (SIGKILL, power loss) left
    beside ``path``: ours by name, of a process that is gone (or older than a day)."""
    now = time.time()
    with contextlib.suppress(OSError):
        for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            m = _TMP_NAME.match(p.name)
            if m is None or m["name"] != path.name:
                continue
            with contextlib.suppress(OSError):
                age = now - p.lstat().st_mtime
                if age > 86400 or (age > _STALE_AFTER and not _pid_alive(int(m["pid"]))):
                    p.unlink()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """Open a temporary file next to `path`; on success rename it over `path`.

    A crash or exception mid-write leaves any previous `path` untouched and no partial file: the
    temporary file (``.<name>.<pid>-<random>.tmp``) is removed on any exception, and those that a
    killed process left behind are removed by the next write of the same `path`. The file gets the
    permissions of the file it replaces, or of a new file under the user's umask (0666 & ~umask).

    Args:
        path: destination file.
        mode: "w" (text) or "wb" (binary).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    try:
        perms = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        perms = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            with contextlib.suppress(OSError):  # e.g. a file system without permissions
                os.fchmod(f.fileno(), perms)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # only still there when something failed


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def save_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write `obj` as indented JSON atomically (tensors and arrays become lists)."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, default=_to_jsonable)
    return Path(path)


def load_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, naming the file in the error if it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such JSON file: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


#: Largest YAML file (config or annotation) read by :func:`load_yaml`.
MAX_YAML_BYTES = 1_000_000


def _no_alias_loader():
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        """SafeLoader that refuses anchors and aliases (no alias bombs)."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed",
                                                  event.start_mark)
            return super().compose_node(parent, index)

    return NoAliasLoader


def parse_yaml(text: str, where: str = "YAML", max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Parse YAML text safely: size-bounded, plain data only, no anchors / aliases.

    Raises:
        ValueError: too large, not valid YAML, or using aliases (the message names ``where``).
    """
    import yaml

    if len(text) > max_bytes:
        raise ValueError(f"{where}: {len(text)} bytes, more than the {max_bytes} a YAML file may have")
    fast = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = _no_alias_loader() if ("*" in text or "&" in text) else fast  # an alias needs both
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as err:
        msg = " ".join(str(err).split())
        raise ValueError(f"{where}: not valid YAML ({msg})") from err


def load_yaml(path: str | os.PathLike, max_bytes: int = MAX_YAML_BYTES) -> dict:
    """Read a YAML mapping (a config file) with :func:`parse_yaml`; an empty file gives {}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such YAML file: {path}")
    if path.stat().st_size > max_bytes:
        raise ValueError(f"{path}: {path.stat().st_size} bytes, more than the {max_bytes} a YAML file may "
                         "have")
    data = parse_yaml(path.read_text(errors="replace"), str(path), max_bytes)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def time_render(
    renderer, meshes, channel: str = "rgb", reps: int = 3, warmup: int = 1
) -> tuple[float, float]:
    """Median forward and backward seconds of rendering ``meshes`` (PyTorch3D ``Meshes``; vertex gradients).

    The loss is the mean square of the alpha channel (``channel="alpha"``) or of the RGB
    channels; textures keep their own ``requires_grad``.
    """
    fwd, bwd = [], []
    for _ in range(warmup + reps):
        verts = meshes.verts_padded().detach().clone().requires_grad_(True)
        m = meshes.update_padded(verts)
        t0 = time.perf_counter()
        img = renderer(m)
        loss = (img[..., 3] if channel == "alpha" else img[..., :3]).square().mean()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
    return float(torch.tensor(fwd[warmup:]).median()), float(torch.tensor(bwd[warmup:]).median())
