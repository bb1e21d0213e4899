"""Datasets of the :class:`Item` contract, their settings and seeded batching.

``DATASETS`` (:mod:`symnb.data.registry`) maps a name to a :class:`ReconstructionDataset` subclass;
``build_dataset(cfg, split, img_size)`` builds the one ``cfg.name`` names. A new dataset is a module here
with a subclass decorated ``@register_dataset("name")``, imported below.
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
    evenly_spaced,
    evenly_spaced_subset,
    loader,
    split_key,
)
from .pascal3d import (
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
from .registry import DATASETS, build_dataset, register_dataset
from .toy import ToyDataset

__all__ = [
    "CLASSES", "DATASETS", "REQUIRED_FIELDS", "SPLITS", "BadSampleError", "DataConfig", "Item",
    "Pascal3DDataset", "ReconstructionDataset", "SeededBatchSampler", "SeededItems", "ToyDataset",
    "batch_indices", "build_dataset", "collate", "crop_box", "evenly_spaced", "evenly_spaced_subset",
    "jitter_colour", "jitter_crop",
    "load_annotation", "loader", "register_dataset", "split_key",
]
