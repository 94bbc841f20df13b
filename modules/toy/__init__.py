"""Toy module: a linear regressor that exercises the whole module contract and the trainer.

It exists to test and demonstrate `cogarch train` end to end in seconds (checkpoints, resume,
DDP, logging) with a problem whose optimum is known: y = X w* + b* + noise.
"""

from cogarch.modules.toy.config import ToyConfig, ToyDataConfig
from cogarch.modules.toy.model import SyntheticRegression, ToyRegressor

__all__ = ["SyntheticRegression", "ToyConfig", "ToyDataConfig", "ToyRegressor"]
