"""Typed config of the memory module (working memory + persistent episodic store).

The memory module has no trained weights: its config *is* the checkpoint (config.json via
cogarch.module.save_module, with an empty model.safetensors so every module folder looks alike).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cogarch.errors import ConfigError

METRICS = ("cos", "ip", "l2sq")
INDEX_DTYPES = ("f32", "f16", "i8")
POOLS = ("mean", "max")


@dataclass
class MemoryConfig:
    """Everything `MemoryModule` and `EpisodeStore` need.

    store:   folder of the persistent episodic store (created on the first write; "~" expands).
    enabled: False → `write_episode` writes nothing and `step` publishes empty (masked) recall.
    dim:     embedding width; 0 = take it from the store or from the first episode written.
    k:       episodes recalled per query (recall tokens are [B, k, D]).
    metric:  "cos" (embeddings are L2-normalised before storing) | "ip" | "l2sq".
    pool:    how a clip embedding is pooled from percept tokens [B, N, D]: "mean" over real
             tokens (then L2-normalised for "cos"), or element-wise "max".
    store_steps: also keep per-step embeddings [T, D] (mean over the tokens of each time index).
    connectivity / expansion_add / expansion_search: HNSW parameters (Malkov & Yashunin 2018:
             M, efConstruction, efSearch) of the usearch index.
    index_dtype: scalar type of vectors *inside the ANN index* ("f16" halves its memory; SQLite
             always keeps exact float32, and hits are re-ranked exactly from it).
    rerank:  candidates fetched from the index per wanted hit, re-scored exactly in float32.
    exact_below: stores smaller than this are searched exhaustively (exact and just as fast).
    index_save_every: the writer re-saves the index cache after this many new rows, or after
             `index_save_fraction` of the store size if that is larger (amortised O(1) per add).
    synchronous: SQLite durability: "full" survives power loss, "normal" survives process kills.
    working_capacity: recent bus messages kept per kind in working memory.
    working_kinds / working_slots: the newest `working_slots` working-memory entries of these
             kinds (pooled to [D]) are appended to the recall message after the k episodes;
             0 keeps recall exactly [B, k, D].
    """

    store: str = "~/.cache/cogarch/memory"
    enabled: bool = True
    dim: int = 0
    k: int = 5
    metric: str = "cos"
    pool: str = "mean"
    store_steps: bool = True
    connectivity: int = 32  # M 32 / efC 128: recall@10 >= 0.996 at 1M (docs/bench_memory.md); M 16 / 64 plateaued at 0.94
    expansion_add: int = 128
    expansion_search: int = 128
    index_dtype: str = "f16"
    rerank: int = 2
    exact_below: int = 2048
    index_save_every: int = 1000
    index_save_fraction: float = 0.1
    synchronous: str = "full"
    working_capacity: int = 16
    working_kinds: list[str] = field(default_factory=lambda: ["percept"])
    working_slots: int = 0

    def validate(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"memory.metric must be one of {METRICS}, got {self.metric!r}")
        if self.index_dtype not in INDEX_DTYPES:
            raise ConfigError(f"memory.index_dtype must be one of {INDEX_DTYPES}, got {self.index_dtype!r}")
        if self.pool not in POOLS:
            raise ConfigError(f"memory.pool must be one of {POOLS}, got {self.pool!r}")
        if self.synchronous not in ("full", "normal"):
            raise ConfigError(f"memory.synchronous must be 'full' or 'normal', got {self.synchronous!r}")
        for key in ("k", "connectivity", "expansion_add", "expansion_search", "rerank", "index_save_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"memory.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("dim", "exact_below", "working_capacity", "working_slots"):
            if getattr(self, key) < 0:
                raise ConfigError(f"memory.{key} must be >= 0, got {getattr(self, key)}")
        if self.working_slots > self.working_capacity * max(1, len(self.working_kinds)):
            raise ConfigError("memory.working_slots exceeds what working memory can hold")
        if not 0.0 <= self.index_save_fraction <= 1.0:
            raise ConfigError(f"memory.index_save_fraction must be in [0, 1], got {self.index_save_fraction}")
