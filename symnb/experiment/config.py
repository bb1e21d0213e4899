"""The experiment config: one section per layer, variants and seeds, read from YAML.

YAML layout (``configs/demo.yaml``)::

    name: demo
    model: {...}      # symnb.model.ModelConfig
    loss: {...}       # symnb.losses.LossWeights
    data: {...}       # symnb.data.DataConfig
    render: {...}     # symnb.render.RenderSettings (image_size follows model.img_size)
    train: {...}      # symnb.experiment.config.TrainConfig (with render_camera, the objective's camera)
    eval: {...}       # symnb.experiment.evaluate.EvalConfig
    variants: [baseline, reflection, refinement]   # configs/variants/<name>.yaml, or inline mappings
    reference: baseline             # the variant paired.csv pairs the others with
    texture_reference: reflection_ft  # the variant the texture claims pair the others with
    seeds: [0]
    smoke: {...}      # overrides applied by --smoke (a CI-sized run of the same code path)

A variant is a dict of section overrides; :func:`variant_config` applies one (and a seed) to the
base. :func:`symnb.config.merge` is the one merger; ``--set section.key=value`` overrides go through it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config, from_dict, merge
from ..data import DataConfig
from ..losses import LossWeights
from ..model import ModelConfig
from ..render import RenderSettings
from ..utils import load_yaml
from .evaluate import EvalConfig

SECTIONS = ("model", "loss", "data", "render", "train", "eval")


#: model selection: metric -> True if higher is better
SELECT = {"last": True, "val_iou_3d_drc": True, "val_mask_iou": True, "val_rot_err": False}

#: the cameras the training objective can render with (``TrainConfig.render_camera``)
RENDER_CAMERAS = ("gt", "pred", "pred_detached")


@dataclass
class TrainConfig(Config):
    """Optimisation settings, and the camera the training objective renders through."""

    steps: int = 600
    """Optimisation steps of the full objective, after the ``camera_steps`` (>= 1; 0 with ``init_from``: the
    transferred network as is, e.g. a texture or symmetrization applied to a trained network)."""
    batch_size: int = 8
    """Images per step."""
    lr: float = 1e-4
    """Adam learning rate."""
    camera_steps: int = 0
    """Steps before ``steps`` that train the encoder, the camera head and the silhouette decoder on the
    terms that need no rendering (:func:`~symnb.experiment.objective.camera_losses`), with a schedule of
    their own: a pretraining of the encoder on the annotated viewpoints, in place of the ImageNet weights
    MCMR starts from. From scratch only: a run with ``init_from`` starts from a trained encoder and
    skips them."""
    render_camera: str = "gt"
    """Which camera renders the training masks and textures: "gt" (the annotated one, as MCMR's ``main.py``
    trains and CMR's ``use_gtpose``; the annotation alone supervises the camera head), "pred" (the
    predicted one: the mask and texture losses also train the camera head) or "pred_detached" (the
    predicted one, its gradient stopped)."""
    lr_schedule: str = "constant"
    """"constant" or "cosine" (from ``lr`` down to ``lr * min_lr``, after the ``warmup`` steps)."""
    min_lr: float = 0.05
    """The cosine's final fraction of ``lr``."""
    warmup: int = 0
    """Steps of linear warm-up from 0 to ``lr`` before either schedule."""
    seed: int = 0
    """Seeds weights, batch order and augmentation."""
    device: str = "auto"
    """"auto" | "cpu" | "cuda[:i]"."""
    log_every: int = 10
    """Steps between metric rows."""
    ckpt_every: int = 100
    """Steps between checkpoints."""
    val_every: int = 0
    """Steps between validations (0: none): the model is evaluated on ``val_items`` images of the eval split
    and of the (unaugmented) training split -> ``val_metrics.csv``."""
    val_items: int = 48
    """Images of each split used per validation."""
    select: str = "last"
    """Which weights ``model.pt`` holds: "last", or the validation step with the best "val_iou_3d_drc" /
    "val_mask_iou" (highest) or "val_rot_err" (lowest median)."""
    subdivide_at: tuple[int, ...] = ()
    """Steps at which the template is midpoint-subdivided (network unchanged); like every step number here
    (logs, checkpoints, validations), counted from the first camera step."""
    progress: bool = True
    """Show a tqdm bar."""
    init_from: str | None = None
    """Start from a trained model file (fine-tuning into this config's representation,
    :func:`symnb.model.transfer`); "@variant" names another variant's model of the same run and seed
    (resolved by ``variant_config``). A checkpoint, if there is one, wins."""
    tensorboard: bool = True
    """Write TensorBoard events to ``<out_dir>/tb`` (scalars; images at validations)."""
    bf16: bool = False
    """Run the encoder under bfloat16 autocast on CUDA (ignored on CPU)."""
    mean_shape_lr_scale: float = 30.0
    """The mean shapes' learning rate as a multiple of ``lr`` (their smooth coordinates move whole
    neighbourhoods, so a larger step is stable)."""

    @property
    def camera_phase(self) -> int:
        """The camera steps this run takes (``camera_steps``, or 0 with ``init_from``)."""
        return 0 if self.init_from else self.camera_steps

    @property
    def total_steps(self) -> int:
        """Camera steps and full steps together: the step counter's end."""
        return self.camera_phase + self.steps

    def validate(self) -> None:
        for name in ("batch_size", "log_every", "ckpt_every"):
            self._range(name, 1)
        self._range("camera_steps", 0)
        if self.steps == 0 and not self.init_from:
            raise ValueError("TrainConfig.steps must be >= 1 (0 only with init_from: the transferred network "
                             "evaluated as is)")
        self._range("steps", 0)
        self._range("lr", 0, lo_open=True)
        self._choice("render_camera", RENDER_CAMERAS)
        self._range("mean_shape_lr_scale", 0, lo_open=True)
        self._range("min_lr", 0, 1)
        self._range("warmup", 0)
        self._range("val_every", 0)
        self._range("val_items", 1)
        self._choice("lr_schedule", ("constant", "cosine"))
        self._choice("select", SELECT)
        if self.select != "last" and not self.val_every:
            raise ValueError(f"TrainConfig.select={self.select!r} needs val_every > 0")
        self._range("seed", 0)
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"TrainConfig.device must be 'auto', 'cpu' or 'cuda[:i]', got {self.device!r}")
        if any(s < 1 for s in self.subdivide_at):
            raise ValueError(f"TrainConfig.subdivide_at must hold steps >= 1, got {self.subdivide_at}")


@dataclass
class ExperimentConfig(Config):
    """One experiment: a name, an output folder, one config per layer, variants and seeds."""

    name: str = "baseline"
    """Run / variant name."""
    out_dir: str = "results/run/baseline"
    """Where training writes (checkpoint, metrics, model.pt)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The network (:class:`~symnb.model.ModelConfig`)."""
    loss: LossWeights = field(default_factory=LossWeights)
    """The weights of the training objective's terms."""
    data: DataConfig = field(default_factory=DataConfig)
    """The dataset and its splits."""
    render: RenderSettings = field(default_factory=RenderSettings)
    """The renderer's settings; ``render.image_size`` is set to ``model.img_size`` (training masks are crops
    of the model's input size; a different explicit value in a YAML file raises)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The optimisation, and the camera the objective renders through."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """The evaluation protocol (test split, metrics, claims' sizes)."""
    variants: dict = field(default_factory=dict)
    """Name -> section overrides (resolved mappings; see :func:`load_experiment`)."""
    seeds: tuple[int, ...] = (0,)
    """Training seeds of the variants x seeds runner."""
    reference: str | None = None
    """The variant the runner pairs every other with on the test images (``paired.csv``) and whose final
    validation 3-D IoU ``steps_to_reference`` counts the steps to; None, or a variant the run leaves out:
    no paired table."""
    texture_reference: str | None = None
    """The variant the texture claims pair the others with, per view (``fidelity_paired.csv``,
    ``input_gain_paired.csv``); None, or left out: no such tables."""

    def validate(self) -> None:
        if self.render.image_size != self.model.img_size:
            object.__setattr__(self, "render", _replace(self.render, image_size=self.model.img_size))
        if not self.seeds:
            raise ValueError("ExperimentConfig.seeds must hold at least one seed")
        if self.train.camera_phase and not (self.loss.camera or self.loss.silhouette):
            raise ValueError("TrainConfig.camera_steps needs a camera or silhouette loss weight: the camera "
                             "steps train on those terms alone")
        for name, v in self.variants.items():
            if not isinstance(v, dict) or set(v) - set(SECTIONS):
                raise ValueError(f"variant {name!r} must be a mapping of sections {SECTIONS}, got {v!r}")

    @classmethod
    def from_dict(cls, d: dict, where: str = "experiment config") -> ExperimentConfig:
        """Nested dict (e.g. parsed YAML) -> config; unknown keys and bad values raise ValueError."""
        d = dict(d or {})
        model, render = d.get("model") or {}, d.get("render") or {}
        if "image_size" in render and "img_size" in model and render["image_size"] != model["img_size"]:
            raise ValueError(f"{where}: render.image_size {render['image_size']} differs from model.img_size "
                             f"{model['img_size']} (set model.img_size only)")
        return from_dict(cls, d, where)


def _replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def resolve_variants(variants, config_dir: Path) -> dict[str, dict]:
    """``[name | {name: overrides}, ...]`` or ``{name: overrides | None}`` -> ``{name: overrides}``; a
    bare name is read from ``<config_dir>/variants/<name>.yaml``."""
    if variants is None:
        return {}
    if isinstance(variants, str):
        variants = [variants]
    if isinstance(variants, dict):
        items = list(variants.items())
    else:  # a list of names and / or {name: overrides} mappings
        items = [kv for v in variants for kv in (v.items() if isinstance(v, dict) else [(v, None)])]
    out = {}
    for name, over in items:
        if over is None:
            path = config_dir / "variants" / f"{name}.yaml"
            if not path.is_file():
                raise ValueError(f"variant {name!r}: no inline settings and no file {path}")
            over = load_yaml(path)
        out[str(name)] = over or {}
    return out


def experiment_dict(path: str | Path, smoke: bool = False, overrides: dict | None = None) -> dict:
    """The merged dict of a YAML experiment (smoke section and overrides applied, variants resolved)."""
    path = Path(path)
    raw = load_yaml(path)
    smoke_over = raw.pop("smoke", {}) or {}
    d = merge(raw, smoke_over) if smoke else raw
    d = merge(d, overrides)
    variants = resolve_variants(d.get("variants"), path.parent)
    if smoke:  # the smoke sections win over the variants' own values too (e.g. a fine-tune's steps),
        # except that a variant evaluated as transferred (train.steps 0) stays untrained
        sections = {k: v for k, v in smoke_over.items() if k in SECTIONS}
        variants = {name: merge(merge(over, sections), {"train": {"steps": 0}}
                                if (over.get("train") or {}).get("steps") == 0 else None)
                    for name, over in variants.items()}
    d["variants"] = variants
    return d


def load_experiment(path: str | Path, smoke: bool = False, overrides: dict | None = None) -> ExperimentConfig:
    """Read a YAML experiment config (see the module docstring) into an :class:`ExperimentConfig`."""
    return ExperimentConfig.from_dict(experiment_dict(path, smoke, overrides), where=str(path))


def variant_config(cfg: ExperimentConfig, name: str, seed: int | None = None,
                   run_dir: str | Path | None = None) -> ExperimentConfig:
    """The config of one variant (its overrides on the base sections), with a seed and output folder.

    ``name`` must be in ``cfg.variants`` (or "base" for the sections as they are). The output folder
    is ``run_dir/<name>`` for a config of one seed and ``run_dir/<name>/seed<k>`` for several (or a
    seed not in ``cfg.seeds``);
    ``train.init_from: "@other"`` becomes the other variant's ``model.pt`` of the same run and seed.
    """
    if name != "base" and name not in cfg.variants:
        raise ValueError(f"unknown variant {name!r}; the config has {list(cfg.variants)}")
    d = cfg.to_dict()
    d = merge(d, cfg.variants.get(name, {}))
    d["name"] = name
    if seed is not None:
        d["train"]["seed"] = int(seed)
    def folder(variant: str) -> Path:
        out = Path(run_dir) / variant
        several = len(cfg.seeds) > 1 or seed not in cfg.seeds  # a seed of its own gets its own folder
        return out / f"seed{seed}" if seed is not None and several else out

    if run_dir is not None:
        d["out_dir"] = str(folder(name))
        init = d["train"].get("init_from")
        if init and init.startswith("@"):  # another variant's model of this run and seed
            if init[1:] not in cfg.variants:
                raise ValueError(f"variant {name!r}: init_from {init!r} names no variant of the config")
            d["train"]["init_from"] = str(folder(init[1:]) / "model.pt")
    return ExperimentConfig.from_dict(d, where=f"variant {name!r}")
