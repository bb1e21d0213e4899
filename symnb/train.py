"""Training loop: dataclass configs, seeded deterministic batches, metrics per step, resumable checkpoints.

Resuming from ``<out_dir>/checkpoint.pt`` reaches the same weights as an uninterrupted run: the
checkpoint holds the model (and its template, which subdivision changes), the optimizer, the step,
and the Python / NumPy / torch RNG states; the data order is a pure function of (seed, epoch).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from pytorch3d.renderer import TexturesUV
from pytorch3d.renderer.mesh.rasterizer import Fragments
from pytorch3d.structures import Meshes
from tqdm.auto import tqdm

from . import losses as L
from .camera import to_pytorch3d
from .model import ModelConfig, ReconstructionNet, save_model
from .render import RenderSettings, silhouette_renderer, uv_to_atlas
from .utils import atomic_write, get_device, save_json, set_seed


@dataclass
class DataConfig:
    """Dataset settings (MCMR Pascal3D+ layout read by :class:`symnb.data.Pascal3DDataset`).

    Attributes:
        root: dataset root; classes: class names; index_name: optional index subset (e.g. "small");
        img_size: crop size in pixels; flip: random horizontal flips for training.
        per_class, data_seed: used by the main job to generate the embedded dataset when missing.
    """

    root: str = "data/synthetic"
    classes: tuple[str, ...] = ("aeroplane", "car")
    index_name: str | None = None
    img_size: int = 64
    flip: bool = False
    per_class: int = 60
    data_seed: int = 0


@dataclass
class RenderConfig:
    """Differentiable silhouette rendering for the mask loss (the texture uses the nearest face).

    Attributes:
        sigma, gamma: soft-rasterizer softness; faces_per_pixel: faces blended per pixel.
        camera: "pred" renders with the predicted camera (MCMR), "gt" with the annotated one.
        rasterizer: "fast" (:class:`symnb.rasterizer.FastMeshRasterizer`) or "stock" (PyTorch3D's).
    """

    sigma: float = 1e-4
    gamma: float = 1e-4
    faces_per_pixel: int = 8
    camera: str = "pred"
    rasterizer: str = "fast"


@dataclass
class TrainConfig:
    """Optimisation settings.

    Attributes:
        steps: total optimisation steps; batch_size: images per step; lr: Adam learning rate.
        seed: seeds weights, data order and augmentation; device: "auto" | "cpu" | "cuda".
        log_every: steps between metric rows; ckpt_every: steps between checkpoints.
        subdivide_at: steps at which the template is midpoint-subdivided (network unchanged).
        progress: show a tqdm bar.
    """

    steps: int = 600
    batch_size: int = 8
    lr: float = 1e-4
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    ckpt_every: int = 100
    subdivide_at: tuple[int, ...] = ()
    progress: bool = True


@dataclass
class ExperimentConfig:
    """One experiment: a name, an output folder and one config per component."""

    name: str = "baseline"
    out_dir: str = "results/run/baseline"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: L.LossWeights = field(default_factory=L.LossWeights)
    data: DataConfig = field(default_factory=DataConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def config_from_dict(d: dict, base: ExperimentConfig | None = None) -> ExperimentConfig:
    """Nested dict (e.g. parsed YAML) -> :class:`ExperimentConfig`, on top of ``base``; unknown keys raise."""
    cfg = copy.deepcopy(base) if base is not None else ExperimentConfig()
    for key, val in d.items():
        if not hasattr(cfg, key):
            raise KeyError(f"unknown experiment config key {key!r}")
        cur = getattr(cfg, key)
        if dataclasses.is_dataclass(cur):
            names = {f.name for f in dataclasses.fields(cur)}
            bad = set(val) - names
            if bad:
                raise KeyError(f"unknown keys {sorted(bad)} in config section {key!r}")
            kw = {k: tuple(v) if isinstance(getattr(cur, k), tuple) else v for k, v in val.items()}
            setattr(cfg, key, dataclasses.replace(cur, **kw))
        else:
            setattr(cfg, key, val)
    return cfg


def load_config(path: str | Path, base: ExperimentConfig | None = None, **overrides) -> ExperimentConfig:
    """Read a YAML experiment config (sections: model, loss, data, render, train) plus overrides."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    d = yaml.safe_load(path.read_text()) or {}
    for k, v in overrides.items():
        d.setdefault(k, {}).update(v) if isinstance(v, dict) else d.__setitem__(k, v)
    return config_from_dict(d, base)


# ------------------------------------------------------------------------------------------- data


def collate(items: list[dict]) -> dict:
    """Stack dataset items (dicts of tensors / scalars / strings) into a batch dict."""
    out = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        if torch.is_tensor(vals[0]) and all(v.shape == vals[0].shape for v in vals):
            out[k] = torch.stack(vals)
        elif isinstance(vals[0], (int, float)):
            out[k] = torch.tensor(vals)
        else:
            out[k] = vals
    return out


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Indices of the batch at ``step``: epoch e is a permutation seeded by (seed, e); no partial batches."""
    per_epoch = max(1, n // batch_size)
    epoch, i = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(seed * 100003 + epoch)
    perm = torch.randperm(n, generator=g)
    if n < batch_size:
        perm = perm.repeat(batch_size // n + 1)
    return perm[i * batch_size:(i + 1) * batch_size].tolist()


def make_dataset(cfg: DataConfig, split: str = "train"):
    """The :class:`symnb.data.Pascal3DDataset` of a data config."""
    from .data import Pascal3DDataset

    return Pascal3DDataset(cfg.root, classes=tuple(cfg.classes), split=split, index_name=cfg.index_name,
                           img_size=cfg.img_size, flip=cfg.flip and split == "train")


# ------------------------------------------------------------------------------------------- rendering


def render_prediction(out: dict, settings: RenderConfig, img_size: int, texture_mode: str = "uv",
                      atlas_size: int = 2, camera: tuple | None = None) -> dict:
    """Render the predicted meshes: soft silhouette and (if predicted) the texture of the nearest face.

    Args:
        out: :meth:`ReconstructionNet.forward` dict.
        camera: optional (scale, trans, quat) to render with instead of the predicted camera.

    Returns:
        "silhouette" (B, H, W) soft in [0, 1]; "rgb" (B, 3, H, W) texture render or None; "coverage"
        (B, 1, H, W) 1 where a face is hit.
    """
    verts, faces = out["verts"], out["faces"]
    B = verts.shape[0]
    scale, trans, quat = camera if camera is not None else (out["scale"], out["trans"], out["quat"])
    cams = to_pytorch3d(scale, trans, quat)
    rs = RenderSettings(image_size=img_size, sigma=settings.sigma, gamma=settings.gamma,
                        faces_per_pixel=settings.faces_per_pixel, rasterizer=settings.rasterizer)
    renderer = silhouette_renderer(cams, rs)
    meshes = Meshes(verts=list(verts), faces=[faces] * B)
    frags = renderer.rasterizer(meshes)
    sil = renderer.shader(frags, meshes)[..., 3]
    coverage = (frags.pix_to_face[..., :1] >= 0).float().permute(0, 3, 1, 2)
    result = {"silhouette": sil, "rgb": None, "coverage": coverage}
    tex = out.get("texture")
    if tex is not None:
        near = Fragments(pix_to_face=frags.pix_to_face[..., :1], zbuf=frags.zbuf[..., :1],
                         bary_coords=frags.bary_coords[..., :1, :].clamp(0, 1), dists=frags.dists[..., :1])
        meshes.textures = make_textures(tex, out["verts_uvs"], out["faces_uvs"], texture_mode, atlas_size)
        rgb = meshes.sample_textures(near)[..., 0, :]  # (B, H, W, 3), 0 where no face
        result["rgb"] = rgb.permute(0, 3, 1, 2)
    return result


def make_textures(texture: torch.Tensor, verts_uvs: torch.Tensor, faces_uvs: torch.Tensor, mode: str = "uv",
                  atlas_size: int = 2):
    """PyTorch3D textures of UV images (B, 3, T, W): ``TexturesUV`` or per-face ``TexturesAtlas``."""
    B = texture.shape[0]
    maps = texture.permute(0, 2, 3, 1)
    if mode == "uv":
        return TexturesUV(maps=maps, faces_uvs=[faces_uvs] * B, verts_uvs=[verts_uvs] * B)
    if mode == "atlas":  # fixed R x R crop per face, sampled like the renderer's atlas mode
        uv = TexturesUV(maps=maps, faces_uvs=[faces_uvs] * B, verts_uvs=[verts_uvs] * B)
        return uv_to_atlas(uv, atlas_size)
    raise ValueError(f"texture mode must be 'uv' or 'atlas', got {mode!r}")


# ------------------------------------------------------------------------------------------- losses


def compute_losses(out: dict, batch: dict, cfg: ExperimentConfig) -> tuple[torch.Tensor, dict]:
    """All loss terms of one batch and their weighted sum.

    Returns:
        total loss (scalar), dict of float terms plus "mask_iou" and "cam_deg" diagnostics.
    """
    w = cfg.loss
    cam = None
    if cfg.render.camera == "gt":
        cam = (batch["scale"], batch["trans"], batch["quat"])
    r = render_prediction(out, cfg.render, cfg.data.img_size, cfg.model.texture_mode, cfg.model.atlas_size,
                          cam)
    mask = batch["mask"]
    terms = {"mask": L.mask_loss(r["silhouette"], mask[:, 0])}
    if w.camera:
        terms["camera"] = L.camera_loss(out["scale"], out["trans"], out["quat"],
                                        batch["scale"], batch["trans"], batch["quat"])
    if w.quat:
        terms["quat"] = L.quat_norm_loss(out["quat_raw"])
    if w.deformation:
        terms["deformation"] = L.deformation_loss(out["offsets"])
    if w.laplacian:
        terms["laplacian"] = L.laplacian_loss(out["verts"], out["faces"])
    if w.laplacian_offsets:
        terms["laplacian_offsets"] = L.laplacian_loss(out["offsets"], out["faces"])
    if r["rgb"] is not None:
        fg = mask * r["coverage"]
        if w.pixel:
            terms["pixel"] = L.pixel_loss(r["rgb"], batch["image"], fg)
        if w.colour:
            terms["colour"] = L.colour_loss(r["rgb"], batch["image"], fg)
        if w.ssim:
            terms["ssim"] = L.ssim_loss(r["rgb"], batch["image"], fg)
    total = L.weighted_sum(terms, w)
    logs = {k: float(v.detach()) for k, v in terms.items()}
    with torch.no_grad():
        hard = (r["silhouette"] > 0.5).float()
        inter = (hard * mask[:, 0]).flatten(1).sum(1)
        union = ((hard + mask[:, 0]) > 0).float().flatten(1).sum(1)
        logs["mask_iou"] = float((inter / union.clamp(min=1)).mean())
        logs["cam_deg"] = float(L.quat_geodesic(out["quat"], batch["quat"]).mean() * 180 / np.pi)
    logs["loss"] = float(total.detach())
    return total, logs


# ------------------------------------------------------------------------------------------- loop


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    model: ReconstructionNet
    history: list[dict]
    out_dir: Path
    model_path: Path
    train_seconds: float
    steps: int


def _rng_state() -> dict:
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _save_checkpoint(path: Path, model, opt, step: int, history: list, cfg: ExperimentConfig, seconds: float,
                     n_sub: int) -> None:
    buf = io.BytesIO()
    torch.save({"config": asdict(model.config), "symmetry": model.symmetry, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "step": step, "rng": _rng_state(), "history": history,
                "experiment": asdict(cfg), "train_seconds": seconds, "n_subdivisions": n_sub}, buf)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())


def _write_metrics(out_dir: Path, history: list[dict]) -> None:
    if not history:
        return
    keys = list(dict.fromkeys(k for row in history for k in row))
    s = io.StringIO()
    wr = csv.DictWriter(s, fieldnames=keys)
    wr.writeheader()
    wr.writerows(history)
    with atomic_write(out_dir / "metrics.csv") as f:
        f.write(s.getvalue())
    save_json(history, out_dir / "metrics.json")


def category_cad_models(dataset, max_models: int = 3, max_items: int = 64) -> list:
    """Up to ``max_models`` distinct CAD models (verts, faces) referenced by the first items of a dataset."""
    seen, meshes = set(), []
    for i in range(min(len(dataset), max_items)):
        item = dataset[i]
        key = (item["class_name"], int(item["cad_idx"]))
        if key not in seen:
            seen.add(key)
            meshes.append(dataset.cad_mesh(*key))
        if len(meshes) >= max_models:
            break
    return meshes


def train(cfg: ExperimentConfig, dataset=None, resume: bool = True, callback=None,
          cad_meshes=None) -> TrainResult:
    """Train (or resume) one experiment; writes checkpoint.pt, metrics.csv/json and model.pt into cfg.out_dir.

    Args:
        cfg: the experiment.
        dataset: a dataset of item dicts (default: :func:`make_dataset` of cfg.data, train split).
        resume: continue from ``out_dir/checkpoint.pt`` when it exists.
        callback: optional ``callback(step, logs)`` after each step (e.g. live plots); it may raise
            to stop training (the last checkpoint stays valid).
        cad_meshes: CAD models for ``symmetry="auto"`` (default: :func:`category_cad_models` of the dataset).
    """
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = get_device(cfg.train.device)
    set_seed(cfg.train.seed)
    if dataset is None:
        dataset = make_dataset(cfg.data)
    if len(dataset) == 0:
        raise ValueError("training dataset is empty")
    mcfg = dataclasses.replace(cfg.model, img_size=cfg.data.img_size)
    if mcfg.symmetry == "auto" and cad_meshes is None and hasattr(dataset, "cad_mesh"):
        cad_meshes = category_cad_models(dataset)
    model = ReconstructionNet(mcfg, cad_meshes=cad_meshes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    step, history, seconds, n_sub = 0, [], 0.0, 0
    ckpt = out_dir / "checkpoint.pt"
    if resume and ckpt.is_file():
        st = torch.load(ckpt, map_location="cpu", weights_only=False)
        for _ in range(st.get("n_subdivisions", 0)):
            model.subdivide()
        n_sub = st.get("n_subdivisions", 0)
        model.load_state_dict(st["model"])
        opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
        opt.load_state_dict(st["optimizer"])
        step, history, seconds = st["step"], st["history"], st["train_seconds"]
        _set_rng_state(st["rng"])
    model.train()
    bar = tqdm(total=cfg.train.steps, initial=step, desc=cfg.name, disable=not cfg.train.progress)
    t0 = time.perf_counter()
    while step < cfg.train.steps:
        if step in cfg.train.subdivide_at and n_sub < sum(s <= step for s in cfg.train.subdivide_at):
            model.subdivide()
            n_sub += 1
            opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)  # mean shapes changed size
        idx = batch_indices(len(dataset), cfg.train.batch_size, step, cfg.train.seed)
        batch = collate([dataset[i] for i in idx])
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        out = model(batch["image"])
        loss, logs = compute_losses(out, batch, cfg)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {step}: {logs}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        if step % cfg.train.log_every == 0 or step == cfg.train.steps:
            history.append({"step": step, "seconds": seconds + time.perf_counter() - t0, **logs})
            bar.set_postfix(loss=f"{logs['loss']:.3f}", iou=f"{logs['mask_iou']:.2f}")
        if step % cfg.train.ckpt_every == 0 or step == cfg.train.steps:
            _save_checkpoint(ckpt, model, opt, step, history, cfg, seconds + time.perf_counter() - t0, n_sub)
            _write_metrics(out_dir, history)
        if callback is not None:
            callback(step, logs)
    bar.close()
    seconds += time.perf_counter() - t0
    _write_metrics(out_dir, history)
    model_path = save_model(model, out_dir / "model.pt", steps=step, train_seconds=seconds,
                            experiment=asdict(cfg))
    model.eval()
    return TrainResult(model, history, out_dir, model_path, seconds, step)


class ToyDataset(torch.utils.data.Dataset):
    """Tiny in-memory dataset in :class:`symnb.data.Pascal3DDataset`'s item format, for tests and smoke runs.

    Each item is a random ellipsoid (symmetric about x = 0, unit-ish bbox diagonal) with a two-colour
    texture, seen by a random weak-perspective camera (azimuth 0-360, elevation -10..40 degrees) and
    rendered with :func:`symnb.camera.to_pytorch3d`. Items are generated once, deterministically.

    Args:
        n: number of items; img_size: pixels; seed: generator seed.
    """

    def __init__(self, n: int = 16, img_size: int = 32, seed: int = 0):
        from pytorch3d.renderer import TexturesVertex
        from pytorch3d.transforms import euler_angles_to_matrix, matrix_to_quaternion

        from .templates import sphere_template

        g = torch.Generator().manual_seed(seed)
        verts, faces = sphere_template(162)
        self.items, self.meshes = [], []
        for i in range(n):
            axes = torch.tensor([0.25, 0.15, 0.4]) * (0.8 + 0.4 * torch.rand(3, generator=g))
            v = verts * axes
            v = v / (v.amax(0) - v.amin(0)).norm()
            az = torch.rand(1, generator=g) * 2 * np.pi
            el = (-10 + 50 * torch.rand(1, generator=g)) * np.pi / 180
            # OpenCV camera looking at the object: rotate the object about y (azimuth), then tilt (elevation)
            R = euler_angles_to_matrix(torch.stack([np.pi + el, az, torch.zeros(1)], -1), "XYZ")[0]
            quat = matrix_to_quaternion(R)[None]
            scale = torch.tensor([1.6 + 0.2 * torch.rand(1, generator=g).item()])
            trans = 0.1 * (torch.rand(1, 2, generator=g) - 0.5)
            red, blue = torch.tensor([0.8, 0.2, 0.2]), torch.tensor([0.2, 0.3, 0.8])
            colour = torch.where(v[:, :1] * v[:, 2:] > 0, red, blue)
            mesh = Meshes([v], [faces], textures=TexturesVertex([colour]))
            cams = to_pytorch3d(scale, trans, quat)
            rs = RenderSettings(image_size=img_size, sigma=0.0, faces_per_pixel=1)
            renderer = silhouette_renderer(cams, rs)
            frags = renderer.rasterizer(mesh)
            hit = (frags.pix_to_face[0, ..., 0] >= 0).float()
            rgb = mesh.sample_textures(frags)[0, ..., 0, :]
            image = (rgb * hit[..., None] + (1 - hit[..., None])).permute(2, 0, 1).clamp(0, 1)
            self.items.append({"image": image, "mask": hit[None], "class_idx": torch.tensor(0),
                               "cad_idx": torch.tensor(i + 1), "scale": scale[0], "trans": trans[0],
                               "quat": quat[0], "id": f"toy_{i:03d}", "class_name": "toy"})
            self.meshes.append((v, faces))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]

    def cad_mesh(self, class_name: str, cad_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(verts, faces) of item ``cad_idx - 1`` (each toy item is its own CAD model)."""
        return self.meshes[int(cad_idx) - 1]
