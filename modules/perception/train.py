"""`cogarch train perception`: the V-JEPA pretraining job for the generic trainer (cogarch/train.py).

    cogarch train perception --config configs/perception/tiny.yaml [optim.lr=3e-4 ...] [--resume]

Provides `Config` (model + data + optim + trainer) and `make_job(cfg) -> TrainJob`: the model is a
`PerceptionModule` (its forward is the V-JEPA loss, its `update(step)` the EMA), the dataset a
`ClipDataset` over the generated clips, the collate function a `MaskCollator` (masks are drawn in
the loader workers). `init_from` starts from a saved cogarch perception module or from an HF-format
V-JEPA 2 folder (e.g. an official checkpoint converted by transformers).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

from cogarch.errors import ConfigError
from cogarch.train import OptimConfig, TrainerConfig, TrainJob
from cogarch.modules.perception.config import PerceptionConfig

log = logging.getLogger(__name__)


@dataclass
class DataConfig:
    data_dir: str = "data/physqa"
    split: str = "train"
    random_start: bool = False  # only matters when the mp4s hold more frames than model.num_frames
    max_clips: int = 0  # 0: all clips of the split
    cache: bool = True  # decode once into DATA_DIR/.cache (see data.py)
    # More generated suites to train on (their `split` too), e.g. a VoE suite: of it only the
    # possible clips are read, so no violation is ever learned as normal.
    extra_dirs: list[str] = field(default_factory=list)
    windows: bool = False  # clips longer than model.num_frames: one sample per half-overlapping window (no random_start)


@dataclass
class Config:
    model: PerceptionConfig = field(default_factory=PerceptionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    init_from: str = ""  # "" | saved perception module folder | HF V-JEPA 2 folder
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, weight_decay=0.04, warmup_steps=50))
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(out_dir="runs/perception"))

    def validate(self) -> None:
        self.model.validate()
        if self.data.max_clips < 0:
            raise ConfigError(f"data.max_clips must be >= 0, got {self.data.max_clips}")
        dirs = [str(Path(d)) for d in [self.data.data_dir, *self.data.extra_dirs]]
        if len(set(dirs)) != len(dirs):  # a repeated folder would silently count twice
            raise ConfigError(f"data.extra_dirs repeats a folder already listed: {dirs}")


def build_model(cfg: Config):
    """PerceptionModule from cfg.model, optionally initialised from `init_from`."""
    from cogarch.modules.perception.hf_interop import is_hf_folder, load_hf_pretrained
    from cogarch.modules.perception.model import PerceptionModule

    mcfg = dataclasses.replace(cfg.model)
    if mcfg.ema_steps == 0 and mcfg.ema_start != mcfg.ema_end:
        mcfg.ema_steps = cfg.trainer.max_steps  # linear schedule over the whole run (V-JEPA 1)
    if not cfg.init_from:
        return PerceptionModule(mcfg)
    src = Path(cfg.init_from)
    if is_hf_folder(src):
        return load_hf_pretrained(src, base=mcfg)
    loaded = PerceptionModule.from_pretrained(src)
    # Keep the pretrained architecture; take objective / schedule settings from this run's config.
    arch_keys = {"img_size", "patch_size", "tubelet_size", "in_chans", "hidden_size", "depth", "num_heads",
                 "mlp_ratio", "qkv_bias", "pred_hidden_size", "pred_depth", "pred_num_heads", "pred_mlp_ratio",
                 "pred_num_mask_tokens"}
    merged = dataclasses.replace(mcfg, **{k: getattr(loaded.config, k) for k in arch_keys})
    model = PerceptionModule(merged)
    model.load_state_dict(loaded.state_dict())
    return model


def make_job(cfg: Config) -> TrainJob:
    import torch

    from cogarch.modules.perception.data import ClipDataset
    from cogarch.modules.perception.masking import MaskCollator

    model = build_model(cfg)
    mc = model.config
    parts = [ClipDataset(
        d, cfg.data.split, num_frames=mc.num_frames, size=mc.img_size, random_start=cfg.data.random_start,
        max_clips=cfg.data.max_clips, cache=cfg.data.cache, cache_workers=max(cfg.trainer.num_workers, 1),
        windows=cfg.data.windows, possible_only=True,  # never an impossible VoE clip
    ) for d in [cfg.data.data_dir, *cfg.data.extra_dirs]]
    dataset = parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)
    if len(parts) > 1:
        log.info("perception: samples per folder %s", {str(p.root): len(p) for p in parts})
    log.info("perception: %d samples, %d tokens per clip, %d mask sets", len(dataset), mc.num_tokens, len(mc.masks))
    return TrainJob(model=model, dataset=dataset, collate_fn=MaskCollator(mc), save=lambda m, d: m.save_pretrained(d))
