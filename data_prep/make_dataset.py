"""Generate a Pascal3D+-format dataset (MCMR's preprocessed layout) from cleaned CAD meshes.

Usage::

    python -m data_prep.make_dataset --out data/synthetic --classes aeroplane car bottle \\
        --per-class 60 --img-size 128 --seed 0

Layout written (see the README's "Data" section for the conventions)::

    <out>/dataset.json                         generator settings, CAD cleanup reports, keypoint names
    <out>/CAD/<class>/<NN>.off                 canonical CAD models, NN = cad_idx (1-based, 2 digits)
    <out>/<class>/annotations/<id>.yaml        one annotation per image
    <out>/<class>/images/<id>.jpg              RGB image (or .png)
    <out>/<class>/masks/<id>.png               object mask (0 / 255, amodal)
    <out>/<class>/textures/<id>.npy            the image's per-vertex albedo on its CAD model, (V, 3) uint8
    <out>/<class>/keypoints.json               keypoint names and left/right flip permutation
    <out>/<class>/<class>[_small]_{train,eval,test}.txt   index files (one id per line)
    <out>/<class>/<class>_{novelcad,occluded}_test.txt   ``heldout_cads`` / ``occluded_test`` indexes

Generation is deterministic for a seed and atomic: everything goes to a temporary sibling folder
renamed to ``<out>`` only when complete. ``<out>/.symnb-dataset.json`` marks the folder as ours:
only such a folder (or an empty one) is ever replaced, concurrent generations into one ``<out>``
take turns and never replace each other's result (:mod:`data_prep.dataset_dir`). If ``<out>``
already holds a dataset made with the same settings by the same generator code it is reused as is
(so ``make demo`` builds it once); made with the same settings by other generator code, it is
regenerated.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from tqdm.auto import tqdm

from symnb.cli_errors import add_debug_flag, run_main
from symnb.config import Config
from symnb.io import save_mesh
from symnb.utils import load_json, save_json

from . import cad, dataset_dir, shapes, views

FORMAT_VERSION = 1
SPLITS = ("train", "eval", "test")


#: allowed ranges of the numeric settings of :class:`DatasetConfig`
LIMITS = {"per_class": (1, 10**6), "img_size": (16, 4096), "cad_per_class": (1, 1000),
          "face_budget": (4, 10**7), "remesh_resolution": (8, 512), "small_every": (1, 10**6),
          "occlusion_prob": (0, 1), "symmetric_texture_prob": (0, 1), "heldout_cads": (0, 1000),
          "occluded_test": (0, 10**6), "seed": (0, 2**32 - 1)}


@dataclass
class DatasetConfig(Config):
    """Everything that determines a generated dataset (stored in ``dataset.json``); checked at
    construction (ValueError naming the setting)."""

    classes: tuple[str, ...] = ("aeroplane", "car", "bottle")
    """Object classes (see ``data_prep.shapes.SUPPORTED_CLASSES``)."""
    per_class: int = 60
    """Images per class."""
    img_size: int = 128
    """Square image size in pixels."""
    seed: int = 0
    """Master seed; the dataset is a deterministic function of this config."""
    cad_per_class: int = 5
    """CAD models per class (aeroplane 01 is PyVista's real mesh)."""
    face_budget: int = 1500
    """Faces per cleaned CAD model."""
    remesh_resolution: int = 64
    """Voxels along the longest side in the watertight remesh."""
    symmetric_texture_prob: float = 0.5
    """Probability of a mirror-symmetric texture per image."""
    occlusion_prob: float = 0.0
    """Probability of a random occluding rectangle (annotation ``occluded: 1``)."""
    backgrounds_dir: str | None = None
    """Optional folder of photos (.jpg/.png) used as backgrounds."""
    image_format: str = "jpg"
    """"jpg" or "png"."""
    split_fractions: tuple[float, float] = (0.7, 0.15)
    """Train / eval fractions (test gets the rest)."""
    small_every: int = 10
    """The ``small`` index keeps every n-th id of each split."""
    heldout_cads: int = 0
    """The last ``heldout_cads`` CAD models of each class are kept out of the train / eval / test indexes;
    their images are listed in ``<class>_novelcad_test.txt`` (``Pascal3DDataset(..., split="test",
    index_name="novelcad")``): a test on unseen instances."""
    occluded_test: int = 0
    """The first N ids of each class's test split also get an occluded copy ``<id>_occ`` (same view, texture,
    background, amodal mask, plus an occluder; ``occluded: 1``) listed in ``<class>_occluded_test.txt``
    (``index_name="occluded"``): paired clean / occluded tests."""
    views: views.ViewSettings = field(default_factory=views.ViewSettings)
    """Viewpoint distribution."""

    def validate(self) -> None:
        for name, (lo, hi) in LIMITS.items():
            self._range(name, lo, hi)
        unknown = [c for c in self.classes if c not in shapes.SUPPORTED_CLASSES]
        if unknown or not self.classes:
            raise ValueError(f"unknown classes {unknown or '(none given)'}; supported: "
                             f"{', '.join(shapes.SUPPORTED_CLASSES)}")
        self._choice("image_format", ("jpg", "png"))
        fr = self.split_fractions
        if len(fr) != 2 or min(fr) < 0 or sum(fr) > 1:
            raise ValueError("DatasetConfig.split_fractions must be (train, eval) fractions >= 0 with a sum "
                             f"<= 1 (test gets the rest), got {self.split_fractions}")
        if self.heldout_cads and self.heldout_cads >= self.cad_per_class:
            raise ValueError(f"DatasetConfig.heldout_cads={self.heldout_cads} leaves no CAD model for "
                             f"training (cad_per_class={self.cad_per_class})")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["classes"] = list(self.classes)
        d["split_fractions"] = list(self.split_fractions)
        d["views"] = {k: list(v) if isinstance(v, tuple) else v for k, v in d["views"].items()}
        if not self.occluded_test:  # so that datasets made before the field keep matching their settings
            del d["occluded_test"]
        return d


def split_ids(ids: list[str], fractions: tuple[float, float],
              rng: np.random.Generator) -> dict[str, list[str]]:
    """Shuffle ids into train / eval / test (each non-empty when there are >= 3 ids)."""
    order = [ids[i] for i in rng.permutation(len(ids))]
    n = len(order)
    n_eval = max(1, round(fractions[1] * n)) if n >= 3 else 0
    n_train = max(1, min(n - 2 * n_eval, round(fractions[0] * n))) if n >= 3 else n
    a, b = n_train, n_train + n_eval
    parts = {"train": order[:a], "eval": order[a:b], "test": order[b:]}
    return {k: sorted(v) for k, v in parts.items()}


def _load_photos(folder: str | None) -> list[np.ndarray]:
    if not folder:
        return []
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise FileNotFoundError(f"no .jpg/.png photos in backgrounds folder {folder}")
    return [np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255 for p in files]


def _occlude(rgb: np.ndarray, bbox: list[float], rng: np.random.Generator) -> np.ndarray:
    """Paste a random grey rectangle (30-60% of the box's width and height, inside it) over the object."""
    x1, y1, x2, y2 = bbox
    w, h = (x2 - x1) * rng.uniform(0.3, 0.6), (y2 - y1) * rng.uniform(0.3, 0.6)
    cx, cy = rng.uniform(x1 + w / 2, x2 - w / 2), rng.uniform(y1 + h / 2, y2 - h / 2)
    S = rgb.shape[0]
    xa, xb = int(np.clip(cx - w / 2, 0, S)), int(np.clip(cx + w / 2, 0, S))
    ya, yb = int(np.clip(cy - h / 2, 0, S)), int(np.clip(cy + h / 2, 0, S))
    rgb = rgb.copy()
    rgb[ya:yb, xa:xb] = rng.uniform(0.1, 0.9)
    return rgb


def _fmt(a: np.ndarray) -> list:
    return np.round(np.asarray(a, dtype=np.float64), 6).tolist()


def prepare_cads(root: Path, class_name: str, cfg: DatasetConfig) -> list[dict]:
    """Clean the class's CAD sources, write ``CAD/<class>/<NN>.off``; return per-model records."""
    settings = cad.CleanupSettings(resolution=cfg.remesh_resolution, face_budget=cfg.face_budget,
                                   seed=cfg.seed)
    records = []
    for i, src in enumerate(shapes.sources(class_name, cfg.cad_per_class, cfg.seed), start=1):
        v, f = src.build()
        (v, f), rep = cad.clean_cad(v, f, settings, up_hint=src.up_hint, forward_hint=src.forward_hint,
                                    canonical=src.canonical, source=src.name)
        path = root / "CAD" / class_name / f"{i:02d}.off"
        save_mesh(path, v, f, precision=7)
        kp3d, names = views.cad_keypoints(class_name, v)
        records.append({"cad_idx": i, "path": str(path.relative_to(root)), "verts": v, "faces": f,
                        "kp3d": kp3d, "kp_names": names, "report": rep.as_dict()})
    return records


def render_class(root: Path, class_name: str, cfg: DatasetConfig, records: list[dict],
                 photos: list[np.ndarray], bar=None) -> list[str]:
    """Render ``cfg.per_class`` annotated images of one class; return their ids."""
    S = cfg.img_size
    cls_rng = np.random.default_rng([cfg.seed, 1000 + shapes.SUPPORTED_CLASSES.index(class_name)])
    for sub in ("annotations", "images", "masks", "textures"):
        (root / class_name / sub).mkdir(parents=True, exist_ok=True)
    # image i uses CAD model (i mod n) + 1; views are rendered in batches per CAD model
    assignment = [i % len(records) for i in range(cfg.per_class)]
    per_image = [dict(view=views.sample_view(cls_rng, S, cfg.views), seed=int(cls_rng.integers(2**31)))
                 for _ in range(cfg.per_class)]
    ids = [f"{class_name}_{i:05d}" for i in range(cfg.per_class)]
    copies = set(index_parts(class_name, ids, cfg, [a + 1 for a in assignment]).get("occluded_test", []))
    batch = 16
    for r_idx, rec in enumerate(records):
        members = [i for i, a in enumerate(assignment) if a == r_idx]
        for b0 in range(0, len(members), batch):
            chunk = members[b0:b0 + batch]
            rngs = [np.random.default_rng(per_image[i]["seed"]) for i in chunk]
            sym = [bool(r.random() < cfg.symmetric_texture_prob) for r in rngs]
            colors = np.stack([views.vertex_colors(rec["verts"], r, s)
                               for r, s in zip(rngs, sym, strict=True)])
            vw = [per_image[i]["view"] for i in chunk]
            K, R, t = (np.stack([x[k] for x in vw]) for k in ("K", "R", "t"))
            with torch.no_grad():
                out = views.render_views(rec["verts"], rec["faces"], colors, K, R, t, S)
            for j, i in enumerate(chunk):
                _write_sample(root, class_name, ids[i], rec, vw[j], sym[j], out, j, rngs[j], photos, cfg,
                              colors[j], occluded_copy=f"{ids[i]}_occ" in copies)
                if bar is not None:
                    bar.update(1)
    return ids


def _write_sample(root, class_name, img_id, rec, view, symmetric, out, j, rng, photos, cfg, albedo,
                  occluded_copy: bool = False) -> None:
    S = cfg.img_size
    mask = out["mask"][j].numpy()
    if not mask.any():
        raise RuntimeError(f"{class_name}/{img_id}: object not visible (empty mask); check the view settings")
    bg, bg_kind = views.background(rng, S, photos)
    rgb = np.where(mask[..., None], out["rgb"][j].numpy(), bg)
    ys, xs = np.nonzero(mask)
    bbox = [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]
    occluded = bool(rng.random() < cfg.occlusion_prob)
    if occluded:
        rgb = _occlude(rgb, bbox, rng)
    kp = views.keypoints_2d(rec["kp3d"], view["K"], view["R"], view["t"], out["zbuf"][j].numpy())
    truncated = bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
    ext = np.eye(4)
    ext[:3, :3], ext[:3, 3] = view["R"], view["t"]
    name = f"{img_id}.{cfg.image_format}"
    ann = {
        "image_name": name,
        "image_size": [S, S],  # [height, width]
        "pascal_class": class_name,
        "cad_idx": rec["cad_idx"],
        "occluded": int(occluded),
        "truncated": int(truncated),
        "difficult": 0,
        "bbox": bbox,
        "kpoints_2d": _fmt(kp),
        "intrinsic": _fmt(view["K"]),
        "extrinsic": _fmt(ext),
        "viewpoint": {k: round(view[k], 4) for k in ("azimuth", "elevation", "distance", "theta")},
        "background": bg_kind,
        "symmetric_texture": int(symmetric),
    }
    _save_sample(root, class_name, img_id, rgb, mask, ann, albedo, cfg)
    if occluded_copy:  # its own generator: the clean sample's draws are unchanged
        occ_rng = np.random.default_rng([cfg.seed, 3000, zlib.crc32(img_id.encode())])
        name = f"{img_id}_occ.{cfg.image_format}"
        _save_sample(root, class_name, f"{img_id}_occ", _occlude(rgb, bbox, occ_rng), mask,
                     {**ann, "image_name": name, "occluded": 1}, albedo, cfg)


def _save_sample(root, class_name, img_id, rgb, mask, ann, albedo, cfg) -> None:
    """Write one sample's image, mask, annotation and texture (albedo (V, 3) in [0, 1], as uint8)."""
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
    kwargs = {"quality": 95} if cfg.image_format == "jpg" else {}
    img.save(root / class_name / "images" / ann["image_name"], **kwargs)
    Image.fromarray(mask.astype(np.uint8) * 255).save(root / class_name / "masks" / f"{img_id}.png")
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    (root / class_name / "annotations" / f"{img_id}.yaml").write_text(
        yaml.dump(ann, Dumper=dumper, sort_keys=False))
    np.save(root / class_name / "textures" / f"{img_id}.npy",
            (np.clip(albedo, 0, 1) * 255 + 0.5).astype(np.uint8))


def index_parts(class_name: str, ids: list[str], cfg: DatasetConfig,
                cad_of: list[int] | None = None) -> dict[str, list[str]]:
    """The ids of each index file: "train", "eval", "test", and "novelcad_test" (``cfg.heldout_cads``:
    images of the last CAD models, ``cad_of`` being each id's 1-based CAD index) and "occluded_test"
    (``cfg.occluded_test``: the ``<id>_occ`` copies of the first test ids), in file order."""
    rng = np.random.default_rng([cfg.seed, 2000 + shapes.SUPPORTED_CLASSES.index(class_name)])
    parts = {}
    if cfg.heldout_cads:  # DatasetConfig keeps at least one CAD model for training
        first_held = cfg.cad_per_class - cfg.heldout_cads + 1
        parts["novelcad_test"] = [i for i, c in zip(ids, cad_of, strict=True) if c >= first_held]
        ids = [i for i, c in zip(ids, cad_of, strict=True) if c < first_held]
    parts.update(split_ids(ids, cfg.split_fractions, rng))
    if cfg.occluded_test:
        parts["occluded_test"] = [f"{i}_occ" for i in parts["test"][:cfg.occluded_test]]
    return parts


def write_index(root: Path, class_name: str, ids: list[str], cfg: DatasetConfig,
                cad_of: list[int] | None = None) -> dict[str, int]:
    """Write the index files of :func:`index_parts` (and the ``small`` subsets of the three splits);
    return the number of ids in each."""
    counts = {}
    for split, members in index_parts(class_name, ids, cfg, cad_of).items():
        (root / class_name / f"{class_name}_{split}.txt").write_text("".join(f"{i}\n" for i in members))
        if split in SPLITS:
            small = members[:: cfg.small_every] if members else []
            small_file = root / class_name / f"{class_name}_small_{split}.txt"
            small_file.write_text("".join(f"{i}\n" for i in small))
        counts[split] = len(members)
    return counts


def generator_hash() -> str:
    """Hash of the generator's source files: a dataset made by other code is regenerated, not reused."""
    h = hashlib.sha1()
    for name in ("cad.py", "cad_mesh.py", "remesh.py", "shapes.py", "views.py", "make_dataset.py"):
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()[:12]


def make_dataset(out: str | os.PathLike = "data/synthetic", classes=("aeroplane", "car", "bottle"),
                 per_class: int = 60, img_size: int = 128, seed: int = 0, overwrite: bool = False,
                 progress: bool = True, **kwargs) -> Path:
    """Generate the dataset into ``out`` atomically and return ``out``.

    Args:
        out: dataset root. If it already holds a dataset with identical settings it is returned
            unchanged; with other settings a ValueError is raised unless ``overwrite``. A regular
            file or a non-empty folder without our marker is never replaced (FileExistsError; see
            :mod:`data_prep.dataset_dir`).
        classes, per_class, img_size, seed: see :class:`DatasetConfig`; further fields by keyword.
        overwrite: replace an existing generated dataset with different settings.
        progress: show a tqdm progress bar.
    """
    if isinstance(classes, str):
        classes = (classes,)
    try:
        cfg = DatasetConfig(classes=tuple(classes), per_class=per_class, img_size=img_size, seed=seed,
                            **kwargs)
    except TypeError as err:  # an unknown setting, e.g. from a config's data.generate
        raise ValueError(f"dataset generator settings: {err}") from err
    settings = {"format_version": FORMAT_VERSION, "generator_hash": generator_hash(), "config": cfg.as_dict()}
    with dataset_dir.claim(out, settings, overwrite, log=print if progress else None) as tmp:
        if tmp is None:  # out holds this very dataset
            return Path(out)
        photos = _load_photos(cfg.backgrounds_dir)
        meta = {**settings, "classes": {}}
        total = len(cfg.classes) * cfg.per_class
        with tqdm(total=total, desc="rendering", unit="img", disable=not progress) as bar:
            for c in cfg.classes:
                records = prepare_cads(tmp, c, cfg)
                ids = render_class(tmp, c, cfg, records, photos, bar)
                counts = write_index(tmp, c, ids, cfg, [i % len(records) + 1 for i in range(len(ids))])
                names = records[0]["kp_names"]
                save_json({"names": names, "flip": views.flip_permutation(names)}, tmp / c / "keypoints.json")
                meta["classes"][c] = {
                    "n_images": len(ids), "splits": counts, "keypoints": names,
                    "cad": [{"cad_idx": r["cad_idx"], "path": r["path"], **r["report"]} for r in records],
                }
        save_json(meta, tmp / "dataset.json")
    return Path(out)


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description="Generate a Pascal3D+-format synthetic dataset.")
    ap.add_argument("--out", default="data/synthetic", help="dataset root (written atomically)")
    ap.add_argument("--classes", nargs="+", default=["aeroplane", "car", "bottle"],
                    help=f"classes, from {', '.join(shapes.SUPPORTED_CLASSES)}")
    ap.add_argument("--per-class", type=int, default=60, help="images per class")
    ap.add_argument("--img-size", type=int, default=128, help="square image size in pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cad-per-class", type=int, default=5)
    ap.add_argument("--face-budget", type=int, default=1500)
    ap.add_argument("--occlusion-prob", type=float, default=0.0)
    ap.add_argument("--symmetric-texture-prob", type=float, default=0.5)
    ap.add_argument("--backgrounds", default=None, help="folder of background photos (optional)")
    ap.add_argument("--image-format", choices=("jpg", "png"), default="jpg")
    ap.add_argument("--distance-scale", type=float, default=views.ViewSettings.distance_scale,
                    help="camera distance and focal x k (1: true perspective; large: weak perspective)")
    ap.add_argument("--heldout-cads", type=int, default=0,
                    help="last N CAD models per class only in <class>_novelcad_test.txt")
    ap.add_argument("--occluded-test", type=int, default=0,
                    help="occluded copies of the first N test images per class in <class>_occluded_test.txt")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace an existing generated dataset of other settings (never other folders)")
    add_debug_flag(ap)
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    path = make_dataset(a.out, a.classes, a.per_class, a.img_size, a.seed, overwrite=a.overwrite,
                        progress=not a.no_progress, cad_per_class=a.cad_per_class, face_budget=a.face_budget,
                        occlusion_prob=a.occlusion_prob, symmetric_texture_prob=a.symmetric_texture_prob,
                        backgrounds_dir=a.backgrounds, image_format=a.image_format,
                        heldout_cads=a.heldout_cads, occluded_test=a.occluded_test,
                        views=views.ViewSettings(distance_scale=a.distance_scale))
    meta = load_json(path / "dataset.json")
    for c, m in meta["classes"].items():
        print(f"{c}: {m['n_images']} images, splits {m['splits']}, {len(m['cad'])} CAD models")
    print(f"dataset written to {path}")
    return path


if __name__ == "__main__":
    sys.exit(run_main(main))  # a user error: one "error: ..." line, exit code 2 (--debug: traceback)
