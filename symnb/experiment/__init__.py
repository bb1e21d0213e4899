"""The experiment layer: config (all sections, variants, seeds), training loop, evaluation, the
variants x seeds runner and reporting. Evaluation and reporting never import the training module.
"""

from .config import ExperimentConfig, TrainConfig, load_experiment, resolve_variants, variant_config
from .evaluate import EvalConfig, evaluate, per_class
from .jobs import Job, ensure_dataset, plan
from .results import RunResult
from .runner import run
from .train import TrainResult, train

__all__ = [
    "EvalConfig", "ExperimentConfig", "Job", "RunResult", "TrainConfig", "TrainResult", "ensure_dataset",
    "evaluate", "load_experiment", "per_class", "plan", "resolve_variants", "run", "train", "variant_config",
]
