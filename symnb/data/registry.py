"""The dataset registry: name -> :class:`~symnb.data.base.ReconstructionDataset` subclass.

A dataset module decorates its class with ``@register_dataset("name")``; importing :mod:`symnb.data`
imports every such module, so the registry is full whenever a config is validated.
"""

from __future__ import annotations

#: dataset name -> class (a :class:`~symnb.data.base.ReconstructionDataset` subclass with ``from_config``)
DATASETS: dict[str, type] = {}


def register_dataset(name: str):
    """Class decorator adding a dataset to :data:`DATASETS` under ``name``."""

    def add(cls):
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is already registered ({DATASETS[name].__name__})")
        DATASETS[name] = cls
        return cls

    return add


def build_dataset(cfg, split: str, img_size: int):
    """The dataset of a :class:`~symnb.data.base.DataConfig` ``cfg`` (registry name ``cfg.name``) for
    ``split`` at crop size ``img_size``."""
    if cfg.name not in DATASETS:
        raise ValueError(f"unknown dataset {cfg.name!r}; registered: {sorted(DATASETS)}")
    return DATASETS[cfg.name].from_config(cfg, split, img_size)
