"""symnb: single-view 3D mesh reconstruction that learns and exploits shape symmetries.

Importing :mod:`symnb` checks that PyTorch3D's compiled extension loads, because every
renderer, loss and metric here depends on it.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: The binary stack PyTorch3D's PyPI build (easypytorch3d) was compiled against.
REQUIRED_STACK = {"torch": "2.11.0", "torchvision": "0.26.0", "easypytorch3d": "0.7.9.post1"}
INSTALL_HINT = (
    "pip install torch=={torch} torchvision=={torchvision} easypytorch3d=={easypytorch3d}".format(
        **REQUIRED_STACK
    )
)


def check_pytorch3d(import_module=importlib.import_module) -> None:
    """Raise an ImportError with install instructions if PyTorch3D's extension does not load.

    Args:
        import_module: the import function (a parameter so tests can simulate failure).
    """
    try:
        import_module("pytorch3d._C")
    except (ImportError, OSError) as err:
        try:
            import torch

            have = f"torch {torch.__version__}"
        except Exception:  # noqa: BLE001 - torch itself may be what is broken
            have = "no importable torch"
        raise ImportError(
            f"symnb needs PyTorch3D's compiled extension (pytorch3d._C), which failed to load "
            f"({err}). It is built for torch=={REQUIRED_STACK['torch']} and "
            f"torchvision=={REQUIRED_STACK['torchvision']}; this environment has {have}. "
            f"Install the matching stack with: {INSTALL_HINT}"
        ) from err


check_pytorch3d()

from .utils import (  # noqa: E402
    atomic_write,
    get_device,
    load_json,
    project_root,
    save_json,
    set_seed,
    use_project_root,
)

__all__ = [
    "REQUIRED_STACK",
    "atomic_write",
    "check_pytorch3d",
    "get_device",
    "load_json",
    "project_root",
    "save_json",
    "set_seed",
    "use_project_root",
]
