"""Deprecated: training lives in :mod:`symnb.experiment` (kept for one release).

``from symnb.train import train, ExperimentConfig, TrainConfig, DataConfig, RenderConfig, load_config,
ToyDataset, collate, render_prediction`` keeps working; ``RenderConfig`` is
:class:`symnb.render.RenderSettings`.
"""

import warnings

from .data import DataConfig, ToyDataset, batch_indices, build_dataset, collate  # noqa: F401
from .experiment.config import ExperimentConfig, config_from_dict, load_config  # noqa: F401
from .experiment.objective import compute_losses  # noqa: F401
from .experiment.train import TrainConfig, TrainResult, category_cad_models, train  # noqa: F401
from .losses import LossWeights  # noqa: F401
from .render import RenderSettings, make_textures, render_prediction  # noqa: F401

RenderConfig = RenderSettings

warnings.warn("symnb.train is deprecated; import from symnb.experiment (train, configs), symnb.data "
              "(datasets) and symnb.render (render_prediction)", DeprecationWarning, stacklevel=2)
