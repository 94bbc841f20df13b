"""Training entry point of the toy module (`cogarch train toy --config configs/toy/tiny.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from cogarch.modules.toy.config import ToyConfig, ToyDataConfig
from cogarch.modules.toy.model import SyntheticRegression, ToyRegressor
from cogarch.train import OptimConfig, TrainerConfig, TrainJob


@dataclass
class Config:
    model: ToyConfig = field(default_factory=ToyConfig)
    data: ToyDataConfig = field(default_factory=ToyDataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(out_dir="runs/toy"))

    def validate(self) -> None:
        self.model.validate()
        self.data.validate()


def make_dataset(cfg: Config) -> SyntheticRegression:
    return SyntheticRegression(cfg.data, cfg.model.in_dim, cfg.model.out_dim)


def make_job(cfg: Config) -> TrainJob:
    return TrainJob(model=ToyRegressor(cfg.model), dataset=make_dataset(cfg))


@torch.no_grad()
def evaluate(model: ToyRegressor, dataset: SyntheticRegression) -> float:
    """Mean squared error of `model` on the whole dataset (eval mode: no input noise)."""
    was = model.training
    model.eval()
    mse = float(torch.nn.functional.mse_loss(model.predict(dataset.x), dataset.y))
    model.train(was)
    return mse
