"""Typed configs of the toy module: the model (a linear map) and its synthetic data."""

from __future__ import annotations

from dataclasses import dataclass

from cogarch.errors import ConfigError


@dataclass
class ToyConfig:
    in_dim: int = 8  # width of an input vector (and of the pooled "percept" tokens in step())
    out_dim: int = 1  # regression targets per sample
    # Std of Gaussian noise added to inputs while training (0 disables). Training with input noise
    # is equivalent to Tikhonov regularisation (Bishop 1995); here it also gives the trainer's
    # RNG checkpointing something real to restore.
    input_noise: float = 0.0

    def validate(self) -> None:
        if self.in_dim < 1 or self.out_dim < 1:
            raise ConfigError(f"toy: in_dim and out_dim must be >= 1, got {self.in_dim}, {self.out_dim}")
        if self.input_noise < 0:
            raise ConfigError(f"toy: input_noise must be >= 0, got {self.input_noise}")


@dataclass
class ToyDataConfig:
    n_samples: int = 512
    noise_std: float = 0.1  # target noise: the best achievable MSE is noise_std**2
    seed: int = 1234  # draws w*, b*, X and the noise (independent of trainer.seed)

    def validate(self) -> None:
        if self.n_samples < 1:
            raise ConfigError(f"toy: data.n_samples must be >= 1, got {self.n_samples}")
        if self.noise_std < 0:
            raise ConfigError(f"toy: data.noise_std must be >= 0, got {self.noise_std}")
