"""The experiment layer: config (all sections, variants, seeds), training loop, evaluation, the
variants x seeds runner and reporting. Evaluation and reporting never import the training module.
"""

from .config import ExperimentConfig, load_experiment, resolve_variants, variant_config
from .evaluate import EvalConfig, evaluate, per_class
from .runner import RunResult, ensure_dataset, run
from .train import TrainConfig, TrainResult, train

__all__ = [
    "EvalConfig", "ExperimentConfig", "RunResult", "TrainConfig", "TrainResult", "ensure_dataset", "evaluate",
    "load_experiment", "per_class", "resolve_variants", "run", "train", "variant_config",
]
