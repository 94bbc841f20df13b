"""Training entry point of the critic (`cogarch train critic --config ...`).

The critic learns the discounted future cost of a latent state on planning episodes, by
Monte-Carlo or TD(lambda) returns (see CostModel.forward). Like the world model it reads FROZEN
perception features from feature shards written by cogarch core (`cogarch/features.py`):

    tensors   latents  float [N, T', P, D] or [N, T', D]   per-step latents of each episode
              goal     float [N, P, D] or [N, D]           the goal latent (encoded goal image)
              costs    float [N, T']  optional              per-step cost; default: goal distance
              mask     uint8 [N, T']  optional              1 on real steps (episodes padded to T')
              positions     float [N, T', 2]  optional  true agent position per step (costs' units)
              goal_position float [N, 2]      optional  the goal's position (for model.relabel)
    metadata  clip_ids / splits JSON lists of N str; suite "planning"

Only training-split episodes are used (evaluation splits are refused by config validation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from cogarch.errors import ConfigError, UserError
from cogarch.modules.cost.config import CostConfig
from cogarch.modules.cost.model import CostModel
from cogarch.train import OptimConfig, TrainerConfig, TrainJob

EVAL_SPLITS = frozenset({"val", "test", "test_ood"})


@dataclass
class DataConfig:
    features_dir: str = ""
    train_splits: list[str] = field(default_factory=lambda: ["train"])


@dataclass
class Config:
    model: CostConfig = field(default_factory=CostConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, weight_decay=0.0))
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(out_dir="runs/critic"))

    def validate(self) -> None:
        self.model.validate()
        bad = sorted(set(self.data.train_splits) & EVAL_SPLITS)
        if bad:
            raise ConfigError(f"data.train_splits names evaluation split(s) {bad}: the critic trains on train episodes only")
        if not self.data.train_splits:
            raise ConfigError("data.train_splits is empty")


class EpisodeFeatures(torch.utils.data.Dataset):
    """Map-style dataset of whole episodes (latents, goal, optional costs/mask) of allowed splits."""

    def __init__(self, folder: str, train_splits: list[str]) -> None:
        root = Path(folder)
        if not folder or not root.is_dir():
            raise UserError(f"features folder not found: {folder!r} (write it with cogarch core's feature encoder)")
        files = sorted(root.glob("*.safetensors"))
        if not files:
            raise UserError(f"features folder {folder!r} holds no *.safetensors shard")
        self.items: list[dict[str, torch.Tensor]] = []
        for f in files:
            try:
                with safe_open(str(f), framework="pt", device="cpu") as fh:
                    meta = fh.metadata() or {}
                    t = {k: fh.get_tensor(k) for k in fh.keys()}
                splits = json.loads(meta["splits"])
            except (SafetensorError, OSError) as e:
                raise UserError(f"{f}: unreadable feature shard ({str(e).splitlines()[0]})") from None
            except (KeyError, json.JSONDecodeError):
                raise UserError(f"{f}: shard metadata lacks a valid 'splits' list") from None
            if "latents" not in t or "goal" not in t:
                raise UserError(f"{f}: critic shards need 'latents' and 'goal' tensors")
            if len(splits) != t["latents"].shape[0]:
                raise UserError(f"{f}: 'splits' lists {len(splits)} episodes, latents hold {t['latents'].shape[0]}")
            for i, sp in enumerate(splits):
                if sp in EVAL_SPLITS or sp not in train_splits:
                    continue
                item = {"latents": t["latents"][i].float(), "goal": t["goal"][i].float()}
                if "costs" in t:
                    item["costs"] = t["costs"][i].float()
                if "mask" in t:
                    item["mask"] = t["mask"][i].bool()
                for key in ("positions", "goal_position"):  # for hindsight relabelling (model.relabel)
                    if key in t:
                        item[key] = t[key][i].float()
                self.items.append(item)
        if not self.items:
            raise UserError(f"no training episodes in {folder!r} for splits {train_splits}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        return self.items[idx]


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def make_job(cfg: Config) -> TrainJob:
    cfg.validate()
    ds = EpisodeFeatures(cfg.data.features_dir, list(cfg.data.train_splits))
    D = ds.items[0]["latents"].shape[-1]
    if D != cfg.model.latent_dim:
        raise ConfigError(f"model.latent_dim={cfg.model.latent_dim} but the feature shards have width {D}")
    return TrainJob(model=CostModel(cfg.model), dataset=ds, collate_fn=collate)
