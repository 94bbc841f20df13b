"""Precomputed bus features ("feature shards"): the language module's training input.

Perception and the world model stay frozen while the language module trains, so their outputs are
computed once (by `cogarch/features.py`) and stored per split. FORMAT (version 1), in one folder:

    <root>/<split>.safetensors     one tensor per kind and per kind's side data, row i = clip i:
        "<kind>"        float32/bf16/fp16 [N, n_tokens, D]   the message tokens
        "<kind>.time"   float32 or int     [N, n_tokens]      time index of each token (optional)
        "<kind>.mask"   uint8 / bool       [N, n_tokens]      1 = real token, 0 = padding (optional)
    <root>/<split>.json            the index:
        {"format": "cogarch-features", "version": 1, "split": "<split>",
         "clip_ids": ["<clip_id>", ...],          # row order of every tensor above
         "kinds": {"<kind>": {"dim": D, "n_tokens": n, "source": "<module>"}, ...},
         "meta": {...free-form provenance: pack, suite, generator seed...}}

Every kind present in the index must have its "<kind>" tensor with N = len(clip_ids) rows.
`write_shard` writes this format (tests and `cogarch/features.py` may use it); `FeatureShard`
reads it lazily (one row at a time via safetensors slices, so a large split is never loaded whole).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from cogarch.bus import LatentBus, Message
from cogarch.errors import CheckpointError, UserError
from cogarch.fsutil import atomic_write_json

FORMAT = "cogarch-features"
VERSION = 1


class FeatureError(UserError):
    """A missing or malformed feature shard."""


def shard_paths(root: str | os.PathLike, split: str) -> tuple[Path, Path]:
    root = Path(root)
    return root / f"{split}.safetensors", root / f"{split}.json"


def write_shard(
    root: str | os.PathLike,
    split: str,
    clip_ids: list[str],
    kinds: Mapping[str, Mapping[str, torch.Tensor]],
    sources: Mapping[str, str] | None = None,
    meta: Mapping | None = None,
) -> None:
    """Write one split. `kinds[kind]` = {"tokens": [N, n, D], optional "time": [N, n], "mask": [N, n]}."""
    tensors_path, index_path = shard_paths(root, split)
    tensors_path.parent.mkdir(parents=True, exist_ok=True)
    n = len(clip_ids)
    if len(set(clip_ids)) != n:
        raise FeatureError(f"feature shard {split!r}: duplicate clip ids")
    tensors: dict[str, torch.Tensor] = {}
    info: dict[str, dict] = {}
    for kind, parts in kinds.items():
        tok = parts["tokens"]
        if tok.dim() != 3 or tok.shape[0] != n:
            raise FeatureError(f"feature shard {split!r}: {kind} must be [N={n}, n_tokens, D], got {tuple(tok.shape)}")
        tensors[kind] = tok.detach().contiguous().cpu()
        for side in ("time", "mask"):
            if parts.get(side) is not None:
                t = parts[side].detach().cpu()
                if tuple(t.shape) != tuple(tok.shape[:2]):
                    raise FeatureError(f"feature shard {split!r}: {kind}.{side} must be {tuple(tok.shape[:2])}")
                tensors[f"{kind}.{side}"] = (t.to(torch.uint8) if side == "mask" else t).contiguous()
        info[kind] = {"dim": int(tok.shape[2]), "n_tokens": int(tok.shape[1]), "source": (sources or {}).get(kind, "")}
    tmp = tensors_path.with_name(f".{tensors_path.name}.tmp-{os.getpid()}")
    save_file(tensors, str(tmp))
    os.replace(tmp, tensors_path)  # tensors first, index last: a reader never sees an index without data
    atomic_write_json(
        index_path,
        {"format": FORMAT, "version": VERSION, "split": split, "clip_ids": list(clip_ids), "kinds": info, "meta": dict(meta or {})},
    )


class FeatureShard:
    """Read one split of precomputed bus features; rows are addressed by index or clip id."""

    def __init__(self, root: str | os.PathLike, split: str) -> None:
        self.tensors_path, self.index_path = shard_paths(root, split)
        if not self.index_path.is_file() or not self.tensors_path.is_file():
            raise FeatureError(
                f"no feature shard for split {split!r} in {str(root)!r} (need {self.tensors_path.name} and {self.index_path.name})"
            )
        try:
            index = json.loads(self.index_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise FeatureError(f"{self.index_path}: corrupt JSON") from None
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            raise FeatureError(f"{self.index_path}: not a cogarch feature index (format != {FORMAT!r})")
        if int(index.get("version", 0)) > VERSION:
            raise FeatureError(f"{self.index_path}: written by a newer cogarch (version {index.get('version')})")
        self.split = split
        self.clip_ids: list[str] = list(index["clip_ids"])
        self.kinds: dict[str, dict] = dict(index.get("kinds", {}))
        self.meta: dict = dict(index.get("meta", {}))
        self._row = {cid: i for i, cid in enumerate(self.clip_ids)}
        self._handle = None
        self._pid = -1
        keys = set(self._open().keys())
        for kind, info in self.kinds.items():
            if kind not in keys:
                raise FeatureError(f"{self.tensors_path}: index lists kind {kind!r} but the file has no such tensor")
            shape = self._open().get_slice(kind).get_shape()
            if shape[0] != len(self.clip_ids) or shape[2] != info["dim"]:
                raise FeatureError(f"{self.tensors_path}: {kind} has shape {shape}, index says N={len(self.clip_ids)}, D={info['dim']}")
        self._side = {k for k in keys if "." in k}

    def _open(self):
        # One handle per process: a forked DataLoader worker must not share the parent's file handle.
        if self._handle is None or self._pid != os.getpid():
            try:
                self._handle = safe_open(str(self.tensors_path), framework="pt", device="cpu")
            except (SafetensorError, OSError) as e:
                raise CheckpointError(f"{self.tensors_path}: corrupt feature shard ({str(e).splitlines()[0]})") from None
            self._pid = os.getpid()
        return self._handle

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self._row

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handle"] = None  # safetensors handles are per process
        return state

    def row_of(self, clip_id: str) -> int:
        if clip_id not in self._row:
            raise FeatureError(f"clip {clip_id!r} has no features in {self.tensors_path}")
        return self._row[clip_id]

    def get(self, i: int) -> dict[str, dict[str, torch.Tensor]]:
        """Row i as {kind: {"tokens": [n, D] float32, "time": [n] float32?, "mask": [n] bool?}}."""
        f = self._open()
        out: dict[str, dict[str, torch.Tensor]] = {}
        for kind in self.kinds:
            parts = {"tokens": f.get_slice(kind)[i].float()}
            if f"{kind}.time" in self._side:
                parts["time"] = f.get_slice(f"{kind}.time")[i].float()
            if f"{kind}.mask" in self._side:
                parts["mask"] = f.get_slice(f"{kind}.mask")[i].bool()
            out[kind] = parts
        return out

    def tokens(self, clip_id: str, kinds) -> dict[str, torch.Tensor]:
        """{kind: [n, D] float32 tokens} of one clip for `kinds`; a one-line FeatureError naming the
        clip or the kind when the shard lacks it (features of another suite, or without that kind)."""
        if clip_id not in self._row:
            raise FeatureError(f"{self.tensors_path.parent} has no {self.split} features for {clip_id} (features of another suite?)")
        parts = self.get(self._row[clip_id])
        missing = [k for k in kinds if k not in parts]
        if missing:
            raise FeatureError(f"{self.tensors_path.parent} has no {missing[0]!r} tokens (it has {sorted(parts)})")
        return {k: parts[k]["tokens"] for k in kinds}

    def bus(self, clip_id: str) -> LatentBus:
        """A bus holding this clip's messages (batch of one), as the live modules would publish them."""
        return bus_from_rows([self.get(self.row_of(clip_id))], sources={k: v.get("source") or "features" for k, v in self.kinds.items()})


def bus_from_rows(rows: list[dict[str, dict[str, torch.Tensor]]], sources: Mapping[str, str] | None = None) -> LatentBus:
    """Stack rows (same kinds, same n_tokens per kind) into one bus of batch size len(rows)."""
    bus = LatentBus()
    for kind in rows[0]:
        parts = [r[kind] for r in rows]
        tokens = torch.stack([p["tokens"] for p in parts])
        time = torch.stack([p["time"] for p in parts]) if "time" in parts[0] else None
        mask = torch.stack([p["mask"] for p in parts]) if "mask" in parts[0] else None
        bus.publish(Message(kind=kind, source=(sources or {}).get(kind) or "features", tokens=tokens, time=time, mask=mask))
    return bus
