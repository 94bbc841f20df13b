"""The memory module: working memory + episodic recall on the latent bus.

Reads "percept" tokens [B, N, D], pools a clip embedding per batch row (mean over real tokens,
L2-normalised for the cosine metric), and publishes "recall": the k nearest past episodes'
embeddings [B, k, D] with their similarities and ages, so the language module can condition on
what it has seen before (episodic memory as retrieval, cf. RETRO, Borgeaud et al. 2022, and
kNN-LM, Khandelwal et al. 2020 — here over clip latents rather than text).

After an `ask` answers, `write_episode` commits the episode (clip hash, pooled embedding,
per-step embeddings, question, answer, time) to the persistent store (store.py).

Not trained: no parameters, no `forward` objective, no registry entry under `cogarch train`.
`save_pretrained` writes the config (and an empty model.safetensors, so every module folder has
the same shape); the store itself lives outside the pack, at `config.store`.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from cogarch.bus import LatentBus, Message
from cogarch.module import load_module_config, save_module
from cogarch.modules.memory.config import MemoryConfig
from cogarch.modules.memory.episode import Hit
from cogarch.modules.memory.store import DB_NAME, EpisodeStore
from cogarch.modules.memory.working import WorkingMemory, pool_tokens


class MemoryModule(nn.Module):
    """name="memory", reads ("percept",), writes ("recall",). See the file docstring."""

    name: ClassVar[str] = "memory"
    reads: tuple[str, ...] = ("percept",)
    writes: tuple[str, ...] = ("recall",)

    def __init__(self, config: MemoryConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else MemoryConfig()
        self.config.validate()
        self.working = WorkingMemory(self.config.working_capacity)
        self._store: EpisodeStore | None = None
        self.last_hits: list[list[Hit]] = []  # of the last step, for `ask --explain`

    # ------------------------------------------------------------------------------ store

    def store(self, create: bool = False) -> EpisodeStore | None:
        """The episodic store, opened on first use; None if it does not exist and create=False."""
        if self._store is None:
            if not create and not (Path(self.config.store).expanduser() / DB_NAME).is_file():
                return None
            self._store = EpisodeStore(self.config, create=create)
        return self._store

    def close(self) -> None:
        """Close the store (saves its index cache if it changed)."""
        if self._store is not None:
            self._store.close()
            self._store = None

    # ------------------------------------------------------------------------------ pooling

    def pool(self, percept: Message | torch.Tensor) -> torch.Tensor:
        """percept tokens [B, N, D] (or a Message) → clip embeddings [B, D], float32."""
        tokens, mask = (percept.tokens, percept.mask) if isinstance(percept, Message) else (percept, None)
        if tokens.dim() == 2:
            tokens = tokens[None]
        z = pool_tokens(tokens, mask, self.config.pool)
        if self.config.metric == "cos":
            z = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return z

    @staticmethod
    def step_embeddings(percept: Message) -> torch.Tensor | None:
        """Per-step embeddings [T', D] of batch row 0: mean over the tokens of each time index.

        None when the percept carries no time index (tokens cannot be grouped by step).
        """
        if percept.time is None:
            return None
        t = percept.time[0]
        keep = percept.mask[0] if percept.mask is not None else torch.ones_like(t, dtype=torch.bool)
        x = percept.tokens[0].detach().float()
        steps = torch.unique(t[keep])
        return torch.stack([x[keep & (t == s)].mean(dim=0) for s in steps]) if len(steps) else None

    # ------------------------------------------------------------------------------ bus

    def step(self, bus: LatentBus) -> None:
        """Read the latest percept, publish recall [B, k (+ working_slots), D]."""
        percept = bus.latest("percept")
        if percept is None:  # perception disabled: nothing to recall by
            return
        query = self.pool(percept)  # [B, D]
        B, D = query.shape
        cfg = self.config
        # Working-memory slots come from *earlier* passes: select them before observing this one.
        wm = self.working.newest(cfg.working_kinds, cfg.working_slots, D) if cfg.working_slots else []
        self.working.observe(bus, skip=self.writes)
        k, W = cfg.k, cfg.working_slots
        tokens = torch.zeros(B, k + W, D)
        age = torch.zeros(B, k + W)
        mask = torch.zeros(B, k + W, dtype=torch.bool)
        store = self.store() if cfg.enabled else None
        hits: list[list[Hit]] = [[] for _ in range(B)]
        if store is not None:  # a store of another width raises a one-line CheckpointError
            hits = store.search(query.cpu().numpy(), k)  # type: ignore[assignment]
        now = time.time()
        for b, row in enumerate(hits):
            for j, h in enumerate(row):
                tokens[b, j] = torch.from_numpy(h.episode.embedding)
                age[b, j] = now - h.episode.created
                mask[b, j] = True
            for j, e in enumerate(wm):
                if e.summary.shape[0] in (1, B):
                    tokens[b, k + j] = e.summary[b if e.summary.shape[0] == B else 0]
                    age[b, k + j] = now - e.t
                    mask[b, k + j] = True
        self.last_hits = hits
        meta: dict[str, Any] = {
            "scores": [[round(h.score, 6) for h in row] for row in hits],
            "episode_ids": [[h.episode.id for h in row] for row in hits],
            "clip_hashes": [[h.episode.clip_hash for h in row] for row in hits],
            "n_episodic": k,
            "n_working": W,
            "time": "seconds since the episode was stored / the message was seen",
        }
        dev, dt = percept.tokens.device, percept.tokens.dtype
        bus.publish(Message("recall", self.name, tokens.to(dev, dt), time=age.to(dev), mask=mask.to(dev), meta=meta))

    # ------------------------------------------------------------------------------ writing

    def write_episode(
        self,
        clip: str | os.PathLike | None,
        percept: Message | torch.Tensor,
        question: str = "",
        answer: str = "",
        *,
        clip_hash: str | None = None,
        meta: dict | None = None,
    ) -> int | None:
        """Commit one episode for a single clip (percept batch of 1); returns its id, or None if disabled.

        clip: the clip's path (its content hash is its identity) — or pass `clip_hash` directly.
        percept: the "percept" Message of this pass (tokens [1, N, D]) or tokens [1, N, D] / [N, D].
        """
        if not self.config.enabled:
            return None
        if clip_hash is None:
            if clip is None:
                raise ValueError("write_episode needs the clip path or its clip_hash")
            from cogarch.video import clip_hash as _hash

            clip_hash = _hash(clip)
        z = self.pool(percept)
        if z.shape[0] != 1:
            raise ValueError(f"write_episode stores one clip; percept batch is {z.shape[0]}")
        steps = None
        if self.config.store_steps and isinstance(percept, Message):
            st = self.step_embeddings(percept)
            steps = None if st is None else st.cpu().numpy()
        store = self.store(create=True)
        assert store is not None
        return store.add(
            z[0].cpu().numpy(), clip_hash=clip_hash, clip_path="" if clip is None else str(clip),
            question=question or "", answer=answer or "", steps=steps, meta=meta,
        )

    # ------------------------------------------------------------------------------ checkpoint

    def save_pretrained(self, path: str | os.PathLike) -> None:
        save_module(path, self, self.name, self.config)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, store: str | None = None) -> "MemoryModule":
        """Load the config saved by save_pretrained; `store` overrides where episodes live."""
        cfg, _ = load_module_config(path, cls.name, MemoryConfig)
        return cls(replace(cfg, store=store) if store else cfg)

