"""The toy regressor (a real cogarch module, minimal on purpose) and its synthetic dataset.

Training: forward({"x": [B, in_dim], "y": [B, out_dim]}) -> (MSE loss, metrics).
Inference: step(bus) reads the latest "percept" message, mean-pools its tokens and publishes a
"cost" message with one predicted term per output, in the cost module's layout
(tokens [B, out_dim, 1], meta {"terms": [...]}).
"""

from __future__ import annotations

import os
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from cogarch.bus import LatentBus, Message
from cogarch.errors import UserError
from cogarch.module import load_module_config, load_weights, save_module
from cogarch.modules.toy.config import ToyConfig, ToyDataConfig


class ToyRegressor(nn.Module):
    name: ClassVar[str] = "toy"
    reads: tuple[str, ...] = ("percept",)
    writes: tuple[str, ...] = ("cost",)

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.linear = nn.Linear(config.in_dim, config.out_dim)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, in_dim] -> [B, out_dim]."""
        return self.linear(x)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = batch["x"], batch["y"]  # [B, in_dim], [B, out_dim]
        if self.training and self.config.input_noise > 0:
            x = x + self.config.input_noise * torch.randn_like(x)
        pred = self.predict(x)
        loss = F.mse_loss(pred.float(), y.float())
        with torch.no_grad():
            mae = (pred.float() - y.float()).abs().mean()
        return loss, {"mae": float(mae)}

    @torch.no_grad()
    def step(self, bus: LatentBus) -> None:
        msg = bus.latest("percept")
        if msg is None:
            raise UserError("toy: no 'percept' message on the bus to read")
        if msg.dim != self.config.in_dim:
            raise UserError(f"toy: percept tokens are {msg.dim} wide, this model expects in_dim={self.config.in_dim}")
        tokens = msg.tokens.to(self.linear.weight.dtype)  # [B, N, D]
        if msg.mask is not None:  # mean over real tokens only
            w = msg.mask.to(tokens.dtype).unsqueeze(-1)  # [B, N, 1]
            pooled = (tokens * w).sum(1) / w.sum(1).clamp_min(1.0)
        else:
            pooled = tokens.mean(1)  # [B, D]
        pred = self.predict(pooled)  # [B, out_dim]
        terms = [f"toy_{i}" for i in range(self.config.out_dim)]
        bus.publish(Message(kind="cost", source=self.name, tokens=pred.unsqueeze(-1), meta={"terms": terms}))

    def save_pretrained(self, path: str | os.PathLike) -> None:
        save_module(path, self, self.name, self.config)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "ToyRegressor":
        cfg, _ = load_module_config(path, cls.name, ToyConfig)
        model = cls(cfg)
        load_weights(model, path)
        return model


class SyntheticRegression(torch.utils.data.Dataset):
    """y = X w* + b* + noise, all drawn from `data.seed` (so the optimum is known).

    X ~ N(0, I) [n, in_dim], w* ~ N(0, 1) [in_dim, out_dim], b* ~ N(0, 1) [out_dim],
    noise ~ N(0, noise_std^2): the best achievable mean squared error is noise_std^2.
    """

    def __init__(self, data: ToyDataConfig, in_dim: int, out_dim: int) -> None:
        data.validate()
        g = torch.Generator().manual_seed(data.seed)
        self.w_true = torch.randn(in_dim, out_dim, generator=g)
        self.b_true = torch.randn(out_dim, generator=g)
        self.x = torch.randn(data.n_samples, in_dim, generator=g)
        noise = data.noise_std * torch.randn(data.n_samples, out_dim, generator=g)
        self.y = self.x @ self.w_true + self.b_true + noise  # [n, out_dim]

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}
