"""What the episodic store returns: `Episode` rows and search `Hit`s, and the float32 BLOB codec."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Episode:
    """One stored episode. embedding: [D] float32; steps: [T, D] float32 (loaded on request)."""

    id: int
    clip_hash: str
    clip_path: str
    question: str
    answer: str
    created: float  # unix time of the write
    embedding: np.ndarray
    n_steps: int = 0
    meta: dict = field(default_factory=dict)
    steps: np.ndarray | None = None

    def summary(self) -> dict:
        """JSON-able view without the vectors (for `cogarch memory list --json`)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("embedding", "steps")}


@dataclass(frozen=True)
class Hit:
    """A search result; score: cosine ("cos"), dot product ("ip") or -squared L2 ("l2sq"), higher is closer."""

    episode: Episode
    score: float


def to_blob(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x, dtype="<f4").tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)
