"""Datasets of the :class:`Item` contract, their settings and seeded batching.

``DATASETS`` maps a name to a :class:`ReconstructionDataset` subclass; ``build_dataset(cfg, split,
img_size)`` builds the one ``cfg.name`` names. A new dataset is a module here with a subclass and one
:func:`register_dataset` line.
"""

from __future__ import annotations

from .base import (
    DataConfig,
    Item,
    ReconstructionDataset,
    SeededBatchSampler,
    SeededItems,
    batch_indices,
    collate,
    loader,
    split_key,
)

#: dataset name -> class (a :class:`ReconstructionDataset` subclass with ``from_config``)
DATASETS: dict[str, type[ReconstructionDataset]] = {}


def register_dataset(name: str):
    """Class decorator adding a dataset to :data:`DATASETS` under ``name``."""

    def add(cls):
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is already registered ({DATASETS[name].__name__})")
        DATASETS[name] = cls
        return cls

    return add


def build_dataset(cfg: DataConfig, split: str, img_size: int) -> ReconstructionDataset:
    """The dataset of ``cfg`` (registry name ``cfg.name``) for ``split`` at crop size ``img_size``."""
    if cfg.name not in DATASETS:
        raise ValueError(f"unknown dataset {cfg.name!r}; registered: {sorted(DATASETS)}")
    return DATASETS[cfg.name].from_config(cfg, split, img_size)


from .pascal3d import (  # noqa: E402  (the registry above is filled here)
    CLASSES,
    REQUIRED_FIELDS,
    SPLITS,
    BadSampleError,
    Pascal3DDataset,
    crop_box,
    jitter_colour,
    jitter_crop,
    load_annotation,
)
from .toy import ToyDataset  # noqa: E402

register_dataset("pascal3d")(Pascal3DDataset)
register_dataset("toy")(ToyDataset)

__all__ = [
    "CLASSES", "DATASETS", "REQUIRED_FIELDS", "SPLITS", "BadSampleError", "DataConfig", "Item",
    "Pascal3DDataset", "ReconstructionDataset", "SeededBatchSampler", "SeededItems", "ToyDataset",
    "batch_indices", "build_dataset", "collate", "crop_box", "jitter_colour", "jitter_crop",
    "load_annotation", "loader", "register_dataset", "split_key",
]
