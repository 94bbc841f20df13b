"""Encode generated clips with frozen modules and write feature shards for downstream training.

Perception (and later the world model) stay frozen while the modules after them train, so their
outputs are computed once here. Two formats, one per consumer (each documented in its reader):

- world-model shards (`modules/world_model/train.py`): `<out>/<suite>.safetensors` with
  `latents` [N, T', P, D] (P tokens per latent step) and metadata clip_ids / splits / extras / suite.
- language shards (`modules/language/data.py`): `<out>/<split>.safetensors` + `<split>.json`
  with one tensor per bus kind (`percept`, `forecast`, `surprise`, `cost`) and its time index / mask.

Frames are decoded exactly as `cogarch ask` decodes them (`Cogarch.read_frames` logic: the same
`read_clip` call), and every message comes from the modules' own `step(bus)`: what a downstream
module trains on is byte-for-byte what it will read at `ask` time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
from tqdm import tqdm

from cogarch.architecture import Architecture
from cogarch.bus import LatentBus
from cogarch.errors import UserError
from cogarch.fsutil import atomic_path, safe_join

SPLITS = ("train", "val", "test", "test_ood")


@dataclass
class ClipRef:
    clip_id: str
    split: str
    video: Path  # absolute path
    extra: dict


def clip_refs(data_dir: str | os.PathLike, splits: Iterable[str] = SPLITS) -> tuple[str, list[ClipRef]]:
    """(suite, clips) of a generated suite folder; VoE clips carry their `possible` flag in extra."""
    import datasets

    root = Path(data_dir)
    manifest = root / "manifest.json"
    if not manifest.is_file():
        raise UserError(f"{str(data_dir)!r} is not a generated suite (no manifest.json); run cogarch generate first")
    suite = json.loads(manifest.read_text())["suite"]
    extras: dict[str, dict] = {}
    if suite == "voe":  # per-clip rows: extra holds {"possible": bool, "violation_frame": int}
        qs = datasets.load_from_disk(str(root / "questions"))
        for sp in qs:
            for cid, ex in zip(qs[sp]["clip_id"], qs[sp]["extra"]):
                extras[cid] = json.loads(ex) if ex else {}
    table = "episodes" if suite == "planning" else "clips"
    dd = datasets.load_from_disk(str(root / table))
    refs = []
    for sp in splits:
        if sp not in dd:
            continue
        ids = dd[sp]["episode_id" if suite == "planning" else "clip_id"]
        for cid, video in zip(ids, dd[sp]["video"]):
            refs.append(ClipRef(cid, sp, safe_join(root, video), extras.get(cid, {})))  # stays inside root
    return suite, refs


def load_modules(paths: dict[str, str]) -> Architecture:
    """Build an architecture from saved module folders {name: folder} (no language module)."""
    from cogarch.registry import module_class

    mods = {name: module_class(name).from_pretrained(p) for name, p in paths.items()}
    for m in mods.values():
        m.eval()
    return Architecture(mods)


def read_frames(path: Path, num_frames: int, img_size: int, fps: float | None = None) -> torch.Tensor:
    """The one decode used for features AND for `ask` (see cogarch/api.py Cogarch.read_frames)."""
    from cogarch.video import read_clip

    return read_clip(path, num_frames=num_frames, fps=fps, size=img_size)


def _frame_shape(arch: Architecture) -> tuple[int, int]:
    p = arch.get("perception")
    if p is None:
        raise UserError("feature encoding needs a perception module")
    return int(p.config.num_frames), int(p.config.img_size)


@torch.no_grad()
def encode(arch: Architecture, refs: list[ClipRef], batch_size: int = 16, progress: bool = True, desc: str = "encode"):
    """Yield (refs_batch, bus) after running every module of `arch` on each batch of clips."""
    num_frames, size = _frame_shape(arch)
    for i in tqdm(range(0, len(refs), batch_size), desc=desc, disable=not progress, unit="batch"):
        chunk = refs[i : i + batch_size]
        frames = torch.stack([read_frames(r.video, num_frames, size) for r in chunk])  # [B, T, 3, H, W]
        bus = LatentBus()
        arch.run(bus, frames=frames)
        yield chunk, bus


def message_steps(bus: LatentBus, kind: str = "percept") -> torch.Tensor:
    """percept (or objects) tokens [B, N, D] -> [B, T', P, D] using the message's grid (time-major
    order; for objects P = K slots)."""
    msg = bus.latest(kind)
    if msg is None:
        raise UserError(f"the perception module publishes no {kind!r} message (objects need a folder with object slots)")
    tok = msg.tokens
    B, N, D = tok.shape
    grid = msg.meta.get("grid")
    if msg.meta.get("pooled"):
        return tok.reshape(B, N, 1, D)
    T = int(grid[0])
    return tok.reshape(B, T, N // T, D)


def write_world_model_features(
    perception: str, data_dir: str | os.PathLike, out_dir: str | os.PathLike, batch_size: int = 16, progress: bool = True,
    kind: str = "percept",
) -> Path:
    """Encode every clip of a generated suite with a frozen perception module (fp16 latents of the
    `kind` message: "percept" patch tokens or "objects" slot rows)."""
    from safetensors.torch import save_file

    suite, refs = clip_refs(data_dir)
    arch = load_modules({"perception": perception})
    chunks, ids, splits, extras = [], [], [], []
    for chunk, bus in encode(arch, refs, batch_size, progress, desc=f"features {suite}"):
        chunks.append(message_steps(bus, kind).to(torch.float16))
        ids += [r.clip_id for r in chunk]
        splits += [r.split for r in chunk]
        extras += [r.extra for r in chunk]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{suite}.safetensors"
    meta = {"clip_ids": json.dumps(ids), "splits": json.dumps(splits), "extras": json.dumps(extras), "suite": suite}
    with atomic_path(path) as tmp:  # a failed or interrupted write leaves no shard and no temp file
        save_file({"latents": torch.cat(chunks).contiguous()}, tmp, metadata=meta)
    return path


def write_language_features(
    modules: dict[str, str],
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    splits: Iterable[str] = SPLITS,
    batch_size: int = 16,
    progress: bool = True,
    kinds: Iterable[str] = ("percept", "objects", "forecast", "surprise", "cost"),
) -> Path:
    """Run perception -> world_model -> cost over a suite's clips; one language shard per split."""
    from cogarch.modules.language.data import write_shard

    suite, refs = clip_refs(data_dir, splits)
    arch = load_modules(modules)
    kinds = tuple(kinds)
    for split in splits:
        split_refs = [r for r in refs if r.split == split]
        if not split_refs:
            continue
        parts: dict[str, dict[str, list[torch.Tensor]]] = {}
        sources: dict[str, str] = {}
        for _, bus in encode(arch, split_refs, batch_size, progress, desc=f"bus features {split}"):
            for kind in kinds:
                msg = bus.latest(kind)
                if msg is None:
                    continue
                sources[kind] = msg.source
                d = parts.setdefault(kind, {"tokens": [], "time": [], "mask": []})
                d["tokens"].append(msg.tokens.to(torch.float16))
                d["time"].append(msg.time.float() if msg.time is not None else None)
                d["mask"].append(msg.mask if msg.mask is not None else None)
        tensors: dict[str, dict[str, Any]] = {}
        for kind, d in parts.items():
            tensors[kind] = {"tokens": torch.cat(d["tokens"])}
            for side in ("time", "mask"):
                if all(x is not None for x in d[side]):
                    tensors[kind][side] = torch.cat(d[side])
        write_shard(
            out_dir,
            split,
            [r.clip_id for r in split_refs],
            tensors,
            sources=sources,
            meta={"suite": suite, "data_dir": str(data_dir), "modules": dict(modules)},
        )
    return Path(out_dir)
