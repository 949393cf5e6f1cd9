"""Training: `TrainConfig` and `train(cfg)`; the CLI is `edgevit train`."""

from edgevit.train.config import TrainConfig
from edgevit.train.engine import evaluate, train

__all__ = ["TrainConfig", "train", "evaluate"]
