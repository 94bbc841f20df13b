"""Training entry point of the world model (`cogarch train world_model --config ...`).

The world model trains on FROZEN perception features, never on pixels: modules do not import each
other, so the perception encoder is run once by cogarch core (`cogarch/features.py`, the lead's)
which writes *feature shards* into a folder; this file only reads them.

Feature shard format (one or more `*.safetensors` files in `features_dir`):
    tensors   latents  float [N, T', P, D] (token grid per step) or [N, T', D] (pooled)
              actions  float [N, T', A]  optional; actions[n, t] moves step t to t+1 (summed over
                                         the frames of a tubelet when perception merges frames)
              states   float [N, T', S]  optional proprioceptive state per step
              positions float [N, T', k] optional; a training-only target (model.position_weight)
    metadata  clip_ids JSON list of N str
              splits   JSON list of N str ("train" | "val" | "test" | "test_ood")
              extras   JSON list of N dicts (the clip's `extra`, e.g. {"possible": true} for voe)
              suite    str (e.g. "voe", "planning", "physqa")

Leakage rule (binding): only clips of the training split(s) that are physically possible reach
training. A VoE clip must carry extra.possible == true (missing counts as impossible); any clip
with extra.possible == false is excluded in every suite; eval splits cannot be configured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from cogarch.errors import ConfigError, UserError
from cogarch.modules.world_model.config import WorldModelConfig
from cogarch.modules.world_model.model import WorldModel
from cogarch.train import OptimConfig, TrainerConfig, TrainJob

EVAL_SPLITS = frozenset({"val", "test", "test_ood"})


@dataclass
class DataConfig:
    features_dir: str = ""  # folder of feature shards (see the file docstring)
    train_splits: list[str] = field(default_factory=lambda: ["train"])
    window: int = 0  # latent steps per training item; 0 = whole clip (clipped to model.max_steps)
    window_stride: int = 4  # stride between windows of one clip


@dataclass
class Config:
    model: WorldModelConfig = field(default_factory=WorldModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    forecast_horizon: int = 4  # steps published as `forecast` by step(bus)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-4, weight_decay=0.05, warmup_steps=50))
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(out_dir="runs/world_model"))

    def validate(self) -> None:
        self.model.validate()
        bad = sorted(set(self.data.train_splits) & EVAL_SPLITS)
        if bad:
            raise ConfigError(f"data.train_splits names evaluation split(s) {bad}: the world model trains on train clips only")
        if not self.data.train_splits:
            raise ConfigError("data.train_splits is empty")
        if self.data.window < 0 or self.data.window_stride < 1:
            raise ConfigError("data.window must be >= 0 and data.window_stride >= 1")
        if self.data.window == 1:
            raise ConfigError("data.window must be 0 (whole clip) or >= 2 latent steps")
        if self.forecast_horizon < 1:
            raise ConfigError(f"forecast_horizon must be >= 1, got {self.forecast_horizon}")


@dataclass
class Shard:
    """One feature shard in memory (all clips; filtering happens in `select_training_clips`)."""

    path: Path
    tensors: dict[str, torch.Tensor]
    clip_ids: list[str]
    splits: list[str]
    extras: list[dict]
    suite: str


def read_shards(folder: str | Path) -> list[Shard]:
    """Read every `*.safetensors` shard of a features folder (format in the file docstring)."""
    root = Path(folder)
    if not str(folder) or not root.is_dir():
        raise UserError(f"features folder not found: {str(folder)!r} (write it with cogarch core's feature encoder)")
    files = sorted(root.glob("*.safetensors"))
    if not files:
        raise UserError(f"features folder {str(folder)!r} holds no *.safetensors shard")
    shards = []
    for f in files:
        try:
            with safe_open(str(f), framework="pt", device="cpu") as fh:
                meta = fh.metadata() or {}
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        except (SafetensorError, OSError) as e:
            raise UserError(f"{f}: unreadable feature shard ({str(e).splitlines()[0]})") from None
        if "latents" not in tensors:
            raise UserError(f"{f}: feature shard has no 'latents' tensor")
        n = tensors["latents"].shape[0]
        try:
            clip_ids = json.loads(meta.get("clip_ids", "null")) or [f"{f.stem}:{i}" for i in range(n)]
            splits = json.loads(meta["splits"]) if "splits" in meta else None
            extras = json.loads(meta.get("extras", "null")) or [{} for _ in range(n)]
        except json.JSONDecodeError as e:
            raise UserError(f"{f}: bad JSON in shard metadata ({e.msg})") from None
        if splits is None:
            raise UserError(f"{f}: feature shard metadata lacks 'splits' (needed to keep eval clips out of training)")
        if not (len(clip_ids) == len(splits) == len(extras) == n):
            raise UserError(f"{f}: metadata lists do not match {n} clips")
        shards.append(Shard(f, tensors, clip_ids, splits, extras, str(meta.get("suite", ""))))
    return shards


def clip_allowed(split: str, extra: dict, suite: str, train_splits: list[str]) -> bool:
    """True iff a clip may be used for world-model training (the leakage rule)."""
    if split in EVAL_SPLITS or split not in train_splits:
        return False
    possible = extra.get("possible") if isinstance(extra, dict) else None
    if possible is False:
        return False
    if suite == "voe" and possible is not True:  # VoE clips must be positively marked possible
        return False
    return True


def select_training_clips(shards: list[Shard], train_splits: list[str]) -> list[tuple[int, int]]:
    """(shard index, row) of every clip allowed by `clip_allowed`."""
    return [
        (si, i)
        for si, sh in enumerate(shards)
        for i in range(len(sh.clip_ids))
        if clip_allowed(sh.splits[i], sh.extras[i], sh.suite, train_splits)
    ]


class FeatureWindows(torch.utils.data.Dataset):
    """Map-style dataset of latent windows [T, (P,) D] (+ actions/states) from allowed clips only."""

    def __init__(self, shards: list[Shard], train_splits: list[str], window: int, stride: int, max_steps: int) -> None:
        self.shards = shards
        self.clips = select_training_clips(shards, train_splits)
        if not self.clips:
            raise UserError(f"no training clips left after keeping splits {train_splits} and possible clips only")
        self.items: list[tuple[int, int, int, int]] = []  # (shard, row, start, length)
        for si, i in self.clips:
            T = shards[si].tensors["latents"].shape[1]
            w = min(window or T, T, max_steps)
            if w < 2:
                continue
            for start in range(0, T - w + 1, stride):
                self.items.append((si, i, start, w))
        if not self.items:
            raise UserError("feature clips are shorter than 2 latent steps: nothing to train on")

    @property
    def clip_ids(self) -> list[str]:
        return [self.shards[si].clip_ids[i] for si, i in self.clips]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        si, i, s, w = self.items[idx]
        t = self.shards[si].tensors
        out: dict[str, Any] = {"latents": t["latents"][i, s : s + w].float()}
        for key in ("actions", "states", "positions"):
            if key in t:
                out[key] = t[key][i, s : s + w].float()
        return out


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack equal-length windows; windows of different lengths are cut to the shortest."""
    w = min(it["latents"].shape[0] for it in items)
    return {k: torch.stack([it[k][:w] for it in items]) for k in items[0]}


def make_job(cfg: Config) -> TrainJob:
    cfg.validate()
    shards = read_shards(cfg.data.features_dir)
    D = shards[0].tensors["latents"].shape[-1]
    if D != cfg.model.latent_dim:
        raise ConfigError(f"model.latent_dim={cfg.model.latent_dim} but the feature shards have width {D}")
    if cfg.model.action_dim and not all("actions" in s.tensors for s in shards):
        raise ConfigError("model.action_dim > 0 but some feature shards have no 'actions' tensor")
    ds = FeatureWindows(shards, list(cfg.data.train_splits), cfg.data.window, cfg.data.window_stride, cfg.model.max_steps)
    model = WorldModel(cfg.model, forecast_horizon=cfg.forecast_horizon)
    return TrainJob(model=model, dataset=ds, collate_fn=collate)
