"""`cogarch train objects`: fit perception's object slots (objects.py) on a frozen encoder.

    cogarch train objects --config configs/perception/objects_tiny.yaml encoder=runs/perception/tiny/final \
        data.data_dir=data/physqa trainer.out_dir=runs/objects

The encoder (a saved perception module) stays frozen: its target-encoder tokens for every clip of
the training split are computed once (a progress bar), then the generic trainer (cogarch/train.py)
fits only the object head against the simulator's annotations of those clips. The export
(`<out_dir>/final`) is a complete perception folder (inference-only: the EMA target encoder plus the
head) that publishes both "percept" and "objects"; use it wherever a perception folder goes
(`cogarch train pack`, feature encoding, `cogarch ask`). Only the train split is allowed: the
annotations of evaluation clips never reach training. `python -m cogarch.evals.bench.objects`
scores a trained head on held-out clips.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from cogarch.errors import ConfigError, UserError
from cogarch.train import OptimConfig, TrainerConfig, TrainJob

log = logging.getLogger(__name__)

EVAL_SPLITS = frozenset({"val", "test", "test_ood"})


@dataclass
class DataConfig:
    data_dir: str = "data/physqa"  # a generated suite with object annotations (physqa, voe clips)
    extra_dirs: list[str] = field(default_factory=list)  # more suites whose same split is added (e.g. voe clips)
    split: str = "train"
    max_clips: int = 0  # 0: all clips of the split (of each suite, with extra_dirs)
    encode_batch: int = 16
    progress: bool = True


@dataclass
class HeadConfig:
    slots: int = 6  # >= the most objects a clip shows
    hidden: int = 128
    layers: int = 3
    heads: int = 4
    blocks: int = 0
    step_layers: int = 0  # per-step track readout layers (objects.py); 0: tracks from the slot vector
    pixels: int = 0  # channels of the pixel branch (a CNN on the frames down to the patch grid); 0: tokens only
    statics: int = 0  # static-element slots (walls, floor, ramps, ledges, occluder); 0: objects only


@dataclass
class Config:
    encoder: str = ""  # saved perception module folder (cogarch format); its weights stay frozen
    head: HeadConfig = field(default_factory=HeadConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, weight_decay=0.05, warmup_steps=50))
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(out_dir="runs/objects", batch_size=32))

    def validate(self) -> None:
        if self.data.split in EVAL_SPLITS:
            raise ConfigError(f"objects: data.split={self.data.split!r} is an evaluation split; the head trains on train clips only")
        h = self.head
        if min(h.slots, h.hidden, h.layers, h.heads) < 1 or min(h.blocks, h.step_layers, h.pixels, h.statics) < 0:
            raise ConfigError("objects: head.slots, head.hidden, head.layers and head.heads must be >= 1, "
                              "head.blocks, head.step_layers, head.pixels and head.statics >= 0")
        if h.hidden % h.heads:
            raise ConfigError(f"objects: head.heads={h.heads} must divide head.hidden={h.hidden}")
        if self.data.max_clips < 0 or self.data.encode_batch < 1:
            raise ConfigError("objects: data.max_clips must be >= 0 and data.encode_batch >= 1")


def load_with_head(encoder: str, head: HeadConfig | None = None):
    """A saved perception module, re-built with a fresh object head (or as saved when head is None)."""
    from cogarch.modules.perception.model import PerceptionModule

    if not encoder:
        raise UserError("objects: set encoder=<saved perception folder> (the frozen encoder the slots read)")
    if not Path(encoder).is_dir():
        raise UserError(f"objects: encoder folder not found: {encoder!r}")
    loaded = PerceptionModule.from_pretrained(encoder)
    if head is None:
        return loaded
    cfg = dataclasses.replace(loaded.config, object_slots=head.slots, object_hidden=head.hidden,
                              object_layers=head.layers, object_heads=head.heads, object_blocks=head.blocks,
                              object_step_layers=head.step_layers, object_pixels=head.pixels, object_statics=head.statics)
    try:
        model = PerceptionModule(cfg)
    except ConfigError as e:
        raise ConfigError(f"objects: {e}") from None
    state = {k: v for k, v in loaded.state_dict().items() if not k.startswith("objects.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("objects.") for k in missing):
        raise UserError(f"objects: {encoder} does not match its own config (unexpected {unexpected[:3]})")
    model._step = loaded._step
    return model


def split_targets(model, data_dir: str, split: str, max_clips: int = 0, cache: bool = True) -> tuple[Any, list[dict]]:
    """(the split's ClipDataset, one set-target dict per clip), a one-line error on bad annotations."""
    from cogarch.modules.perception.data import ClipDataset
    from cogarch.modules.perception.objects import clip_targets

    c = model.config
    # The head reads a clip as feature encoding and `ask` do: num_frames spread over the whole video
    # (a 32-frame VoE clip at every second frame; a 16-frame physqa clip whole, as before). The
    # truth is taken at the frame each step's tubelet ends on (clip_targets' `spread`).
    ds = ClipDataset(data_dir, split, c.num_frames, c.img_size, max_clips=max_clips, cache=cache, with_index=True,
                     uniform=True)
    vocab = (list(c.object_colors), list(c.object_shapes), list(c.object_materials))
    kinds = tuple(c.object_static_kinds) if c.object_statics else ()
    targets = []
    for i in range(len(ds)):
        try:
            spread = (int(ds.row(i)["num_frames"]), c.num_frames)
            targets.append(clip_targets(ds.objects(i), ds.annotations(i), c.grid[0], vocab, static_kinds=kinds,
                                        spread=spread))
        except (KeyError, ValueError, TypeError) as e:
            raise UserError(f"objects: {data_dir} clip {i} of {split!r} has no usable object annotations ({e})") from None
    return ds, targets


@torch.no_grad()
def encode_split(model, data_dir: str, split: str, max_clips: int = 0, batch: int = 16, progress: bool = True,
                 max_objects: int = 0):
    """(tokens [N, L, D] fp16 from the frozen target encoder, one target dict per clip, and the
    normalised frames [N, T, 3, H, W] fp16 when the head has a pixel branch, else None). With
    max_objects > 0, a clip showing more objects (or static elements than the head's static
    slots) is an error raised before any encoding."""
    ds, targets = split_targets(model, data_dir, split, max_clips)
    if max_objects:
        check_capacity(model, data_dir, targets, max_objects)
    model.eval()
    pixels = model.objects is not None and model.objects.pixels > 0
    feats, frames = [], []
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=False)
    for b in tqdm(loader, desc=f"object features {split}", disable=not progress, unit="batch"):
        feats.append(model.encode(b["frames"], normalized=True).to(torch.float16))
        if pixels:  # fp16 halves the cache (5600 clips of 16 x 64 x 64: 2.2 GB)
            frames.append(b["frames"].to(torch.float16))
    return torch.cat(feats), targets, (torch.cat(frames) if pixels else None)


def check_capacity(model, data_dir: str, targets: list[dict], slots: int) -> None:
    """A ConfigError when a clip shows more objects than `slots` or more static elements than the head has."""
    most = max((t["color"].numel() for t in targets), default=0)
    if most > slots:
        raise ConfigError(f"objects: a clip of {data_dir} shows {most} objects but head.slots={slots}")
    statics = model.config.object_statics
    most = max((t["static_kind"].numel() for t in targets if "static_kind" in t), default=0)
    if statics and most > statics:
        raise ConfigError(f"objects: a clip of {data_dir} has {most} static elements but head.statics={statics}")


class TokenTargets(torch.utils.data.Dataset):
    def __init__(self, tokens: torch.Tensor, targets: list[dict], frames: torch.Tensor | None = None) -> None:
        self.tokens, self.targets, self.frames = tokens, targets, frames

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict, torch.Tensor | None]:
        return self.tokens[i], self.targets[i], (None if self.frames is None else self.frames[i])


def collate(items: list[tuple[torch.Tensor, dict, torch.Tensor | None]]) -> dict[str, Any]:
    batch = {"tokens": torch.stack([t for t, _, _ in items]), "targets": [y for _, y, _ in items]}
    if items[0][2] is not None:
        batch["frames"] = torch.stack([f for _, _, f in items])
    return batch


class ObjectTraining(nn.Module):
    """The trainer's model: a perception module whose only trainable part is its object head."""

    def __init__(self, perception) -> None:
        super().__init__()
        self.perception = perception
        perception.requires_grad_(False)
        perception.objects.requires_grad_(True)

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        from cogarch.modules.perception.objects import set_loss

        frames = batch.get("frames")
        frames = None if frames is None else frames.float()  # [B, T, 3, H, W] for the pixel branch
        out = self.perception.objects(batch["tokens"].float(), frames)  # [B, L, D] frozen tokens -> slots
        return set_loss(out, batch["targets"])

    def save_pretrained(self, path) -> None:
        self.perception.save_pretrained(path, inference_only=True)


def make_job(cfg: Config) -> TrainJob:
    model = load_with_head(cfg.encoder, cfg.head)
    dirs = [cfg.data.data_dir, *cfg.data.extra_dirs]
    for d in dirs[1:]:  # every suite's annotations are checked before the long encoding starts
        check_capacity(model, d, split_targets(model, d, cfg.data.split, cfg.data.max_clips, cache=False)[1], cfg.head.slots)
    parts = [encode_split(model, d, cfg.data.split, cfg.data.max_clips, cfg.data.encode_batch, cfg.data.progress,
                          max_objects=cfg.head.slots) for d in dirs]
    tokens = torch.cat([p[0] for p in parts])
    targets = [t for p in parts for t in p[1]]
    frames = None if parts[0][2] is None else torch.cat([p[2] for p in parts])
    most = max((t["color"].numel() for t in targets), default=0)
    log.info("objects: %d clips, %d tokens each, up to %d objects, %d slots", len(targets), tokens.shape[1], most, cfg.head.slots)
    return TrainJob(model=ObjectTraining(model), dataset=TokenTargets(tokens, targets, frames), collate_fn=collate)
