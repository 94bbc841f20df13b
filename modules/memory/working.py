"""Working memory: a bounded buffer of recent bus messages, per kind, with wall-clock timestamps.

The bus is cleared between `ask`s; working memory is what survives from one pass to the next
(e.g. the previous clip of a conversation), a few entries per kind, oldest dropped first. Each
entry keeps the message itself and its pooled summary [B, D], which is what the memory module
puts on the bus (as extra recall slots) so other modules can read it without importing us.
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from dataclasses import dataclass

import torch

from cogarch.bus import LatentBus, Message


def pool_tokens(tokens: torch.Tensor, mask: torch.Tensor | None = None, how: str = "mean") -> torch.Tensor:
    """[B, N, D] tokens (+ [B, N] bool mask of real tokens) → [B, D] pooled over real tokens."""
    x = tokens.detach().float()
    m = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask.to(x.device)
    if how == "max":
        pooled = x.masked_fill(~m[..., None], float("-inf")).amax(dim=1)
        return torch.where(torch.isfinite(pooled), pooled, torch.zeros_like(pooled))  # all-padding rows → 0
    w = m.float()[..., None]  # [B, N, 1]
    return (x * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)


@dataclass(frozen=True)
class WorkingEntry:
    """One remembered message. summary: [B, D] pooled tokens (float32, detached)."""

    kind: str
    source: str
    t: float  # time.time() when observed
    summary: torch.Tensor
    message: Message


class WorkingMemory:
    """Keeps the newest `capacity` messages of each kind seen on the bus."""

    def __init__(self, capacity: int = 16) -> None:
        self.capacity = capacity
        self._by_kind: dict[str, deque[WorkingEntry]] = {}
        # Messages already recorded; weak so a cleared bus does not keep its messages alive.
        self._seen: weakref.WeakSet[Message] = weakref.WeakSet()

    def observe(self, bus: LatentBus, skip: tuple[str, ...] = ()) -> int:
        """Record every message on `bus` not seen before (except kinds in `skip`); returns how many."""
        if self.capacity == 0:
            return 0
        added = 0
        now = time.time()
        for msg in bus.messages():
            if msg.kind in skip or msg in self._seen:
                continue
            self._seen.add(msg)
            entry = WorkingEntry(msg.kind, msg.source, now, pool_tokens(msg.tokens, msg.mask).cpu(), msg)
            self._by_kind.setdefault(msg.kind, deque(maxlen=self.capacity)).append(entry)
            added += 1
        return added

    def recent(self, kind: str, n: int | None = None) -> list[WorkingEntry]:
        """The newest `n` (default all) entries of `kind`, newest first."""
        entries = list(reversed(self._by_kind.get(kind, ())))
        return entries if n is None else entries[:n]

    def newest(self, kinds: list[str], n: int, dim: int) -> list[WorkingEntry]:
        """The `n` newest entries over `kinds` whose token width is `dim`, newest first."""
        pool = [e for k in kinds for e in reversed(self._by_kind.get(k, ())) if e.summary.shape[-1] == dim]
        return sorted(pool, key=lambda e: e.t, reverse=True)[:n]

    def kinds(self) -> list[str]:
        return [k for k, v in self._by_kind.items() if v]

    def clear(self) -> None:
        self._by_kind.clear()
        self._seen = weakref.WeakSet()

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_kind.values())
