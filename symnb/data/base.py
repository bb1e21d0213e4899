"""The data contract every dataset follows, its settings, and seeded batching.

A dataset is a :class:`ReconstructionDataset`: ``len``, items as :class:`Item` dicts (indexed by an
int, or by an ``(index, seed)`` key whose seed draws the item's augmentation), ``cad_mesh`` for
evaluation, and ``from_config`` to build it from a :class:`DataConfig`. Training batches come from
:class:`SeededBatchSampler` through ``torch.utils.data.DataLoader``: the batch at step k and each
item's augmentation are a pure function of (seed, k), with any number of loader workers.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, replace
from typing import TypedDict

import torch

from ..config import Config
from .registry import DATASETS


class Item(TypedDict, total=False):
    """One sample (S = crop size, N = keypoint rows). Required: image, mask, class_idx, cad_idx,
    scale, trans, quat, id, class_name; datasets with perspective annotations add K, R, t, kp, bbox."""

    image: torch.Tensor      # (3, S, S) float in [0, 1]
    mask: torch.Tensor       # (1, S, S) float in {0, 1}
    class_idx: torch.Tensor  # () long
    cad_idx: torch.Tensor    # () long, 1-based CAD model number
    scale: torch.Tensor      # () weak-perspective scale (symnb.camera)
    trans: torch.Tensor      # (2,) weak-perspective translation
    quat: torch.Tensor       # (4,) rotation, (w, x, y, z)
    K: torch.Tensor          # (3, 3) crop intrinsics
    R: torch.Tensor          # (3, 3) world-to-camera rotation (OpenCV)
    t: torch.Tensor          # (3,) world-to-camera translation
    kp: torch.Tensor         # (N, 3) keypoints (x, y, visible) in crop pixels
    bbox: torch.Tensor       # (4,) bbox in crop pixels
    flipped: bool
    id: str
    class_name: str


@dataclass
class DataConfig(Config):
    """Which dataset to read and how to augment it."""

    name: str = "pascal3d"
    """Dataset registry name (:data:`symnb.data.DATASETS`): "pascal3d" or "toy"."""
    root: str = "data/synthetic"
    """Dataset root (Pascal3D+ layout, real or generated)."""
    classes: tuple[str, ...] = ("aeroplane", "car")
    """Class names (a single name is accepted)."""
    index_name: str | None = None
    """Index variant, e.g. "small" reads ``<class>_small_<split>.txt``; "novelcad" the held-out CAD instances'
    test split; "occluded" the occluded copies of test images (``data_prep.make_dataset``'s
    ``occluded_test``)."""
    flip: bool = False
    """Random horizontal flips (image, mask, keypoints, camera) on the training split."""
    flip_prob: float = 0.5
    """Probability of a flip when ``flip``."""
    skip_bad: bool = False
    """Check every sample up front and drop bad ones instead of raising."""
    padding: float = 0.15
    """Crop padding on each side, relative to the bbox's longer side."""
    colour_jitter: float = 0.0
    """Strength of brightness / contrast / saturation / gain jitter (training split)."""
    crop_jitter: float = 0.0
    """Strength of crop zoom / shift jitter (training split; cameras follow exactly)."""
    generate: dict | None = None
    """Settings of :func:`data_prep.make_dataset.make_dataset` with which the main job generates ``root`` when
    it is missing (None: never generate)."""
    num_workers: int = 0
    """DataLoader worker processes for training batches."""
    cache_mb: float = 1024.0
    """Decoded samples kept in memory per process, in MiB (Pascal3D+ layout; 0: decode every item from disk
    every time). The embedded benchmark takes about 20 MiB."""
    options: dict = field(default_factory=dict)
    """Extra keyword arguments of the dataset class (e.g. ``{"n": 8}`` for "toy")."""

    def unaugmented(self) -> DataConfig:
        """The same data without flips, colour or crop jitter (evaluation, validation, the fits)."""
        return replace(self, flip=False, colour_jitter=0.0, crop_jitter=0.0)

    def validate(self) -> None:
        self._choice("name", DATASETS)
        self._range("flip_prob", 0.0, 1.0)
        self._range("padding", 0.0)
        self._range("colour_jitter", 0.0, 1.0)
        self._range("crop_jitter", 0.0, 0.5)
        self._range("num_workers", 0)
        self._range("cache_mb", 0.0)
        if not self.classes:
            raise ValueError("DataConfig.classes must name at least one class")


def split_key(key) -> tuple[int, torch.Generator | None]:
    """``i`` -> (i, None); ``(i, seed)`` -> (i, a generator seeded with ``seed``) for the augmentation."""
    if isinstance(key, (tuple, list)):
        idx, seed = key
        return int(idx), torch.Generator().manual_seed(int(seed))
    return int(key), None


class ReconstructionDataset(torch.utils.data.Dataset, abc.ABC):
    """The abstract data contract: items are :class:`Item` dicts, keys are ``i`` or ``(i, seed)``."""

    @classmethod
    @abc.abstractmethod
    def from_config(cls, cfg: DataConfig, split: str, img_size: int) -> ReconstructionDataset:
        """The dataset of ``cfg`` for ``split`` ("train", "eval" or "test") at crop size ``img_size``."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def __getitem__(self, key) -> Item:
        """Item ``key``: an index, or ``(index, seed)`` (the seed draws the augmentation)."""

    @abc.abstractmethod
    def cad_mesh(self, class_name: str, cad_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Ground-truth mesh of a sample: verts (V, 3) float32, faces (F, 3) int64."""


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Indices of the batch at ``step``: epoch e is a permutation seeded by (seed, e); no partial batches."""
    per_epoch = max(1, n // batch_size)
    epoch, i = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(seed * 100003 + epoch)
    perm = torch.randperm(n, generator=g)
    if n < batch_size:
        perm = perm.repeat(batch_size // n + 1)
    return perm[i * batch_size:(i + 1) * batch_size].tolist()


class SeededBatchSampler(torch.utils.data.Sampler):
    """Batches of ``(index, augmentation seed)`` keys for steps ``start .. steps - 1``.

    Step k's global batch is :func:`batch_indices` (n, batch_size, k, seed); item j of it gets the
    augmentation seed (seed, k, j). With ``world_size`` processes, rank r takes the r-th contiguous
    share of each global batch (``batch_size`` must be divisible by ``world_size``).

    Args:
        n: dataset size; batch_size: global batch size; seed: run seed; steps: last step (exclusive);
        start: first step (resume); rank, world_size: this process's share of each batch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, steps: int, start: int = 0, rank: int = 0,
                 world_size: int = 1):
        if n <= 0:
            raise ValueError("SeededBatchSampler: the dataset is empty")
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by the {world_size} processes")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0 .. {world_size - 1}")
        self.n, self.batch_size, self.seed, self.steps = n, batch_size, seed, steps
        self.rank, self.world_size, self.step = rank, world_size, start

    def __len__(self) -> int:
        return max(0, self.steps - self.step)

    def __iter__(self):
        share = self.batch_size // self.world_size
        while self.step < self.steps:
            k = self.step
            idx = batch_indices(self.n, self.batch_size, k, self.seed)
            keys = [(i, (self.seed * 1_000_003 + k) * 4099 + j) for j, i in enumerate(idx)]
            self.step += 1
            yield keys[self.rank * share:(self.rank + 1) * share]

    def state_dict(self) -> dict:
        """The next step to draw (saved in checkpoints; ``start=`` resumes from it)."""
        return {"step": self.step}


class SeededItems(torch.utils.data.Dataset):
    """A dataset indexed by ``(index, seed)`` keys: datasets of the contract get the key itself; any
    other map-style dataset is read with torch's RNG seeded by ``seed`` (same result in any worker)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        if isinstance(self.dataset, ReconstructionDataset):
            return self.dataset[key]
        idx, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return self.dataset[int(idx)]


def collate(items: list[dict]) -> dict:
    """Stack items (dicts of tensors / numbers / strings) into a batch dict; numbers (and bools)
    become a tensor, strings and tensors of different shapes stay lists."""
    if not items:
        raise ValueError("collate: no items")
    out = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        if torch.is_tensor(vals[0]) and all(torch.is_tensor(v) and v.shape == vals[0].shape for v in vals):
            out[k] = torch.stack(vals)
        elif isinstance(vals[0], (int, float)):
            out[k] = torch.tensor(vals)
        else:
            out[k] = vals
    return out


def evenly_spaced(size: int, n: int | None = None) -> list[int]:
    """``min(n, size)`` indices (all for None) evenly spaced over ``range(size)``, first and last included,
    rounded: a subset that covers every class of a class-sorted split (evaluation, figures, the
    fine-tunes' transfer fitting)."""
    n = size if n is None else min(n, size)
    return torch.linspace(0, size - 1, n).round().long().tolist() if n > 0 else []


def evenly_spaced_subset(dataset, n: int | None = None):
    """``dataset`` itself, or a ``Subset`` of ``min(n, len(dataset))`` items (:func:`evenly_spaced`).

    Raises:
        ValueError: the dataset is empty.
    """
    if not len(dataset):
        raise ValueError("the dataset is empty")
    picked = evenly_spaced(len(dataset), n)
    return dataset if len(picked) == len(dataset) else torch.utils.data.Subset(dataset, picked)


def loader(dataset, batch_size: int, num_workers: int = 0) -> torch.utils.data.DataLoader:
    """Batches of ``dataset`` in order (evaluation), collated by :func:`collate`."""
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate,
                                       num_workers=num_workers)
