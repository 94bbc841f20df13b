"""The latent bus: the only way modules talk to each other.

A module publishes immutable `Message`s (a kind such as "percept" or "surprise", its source
module, a token tensor [B, N, D], optional per-token time index and padding mask, small metadata)
and reads other modules' messages by kind. Modules never import each other; the architecture
schedules them from the kinds they declare they read and write (see cogarch/architecture.py).

The bus can record every publish (kind, source, shapes, norms, timing) for `cogarch ask --trace`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import torch

# Kinds the shipped modules use (DESIGN.md). The set is open: a new module may publish a new kind,
# as long as the name is a plain identifier.
KNOWN_KINDS = ("frames", "percept", "forecast", "surprise", "recall", "cost", "goal", "question", "answer")


class BusError(ValueError):
    """A message that violates the bus contract (shape, dtype, unknown kind)."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise BusError(msg)


@dataclass(frozen=True, eq=False)
class Message:
    """One immutable bus message.

    tokens: [B, N, D] floating point latents.
    time:   [B, N] time index of each token (frame or step index; float or int), optional.
    mask:   [B, N] bool, True where a token is real, False where it is padding, optional.
    meta:   small JSON-like metadata (e.g. {"fps": 8, "peak_step": 11}); frozen on creation.
    """

    kind: str
    source: str
    tokens: torch.Tensor
    time: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(isinstance(self.kind, str) and self.kind.isidentifier(), f"bad message kind {self.kind!r}")
        _check(isinstance(self.source, str) and bool(self.source), "message source must be a module name")
        t = self.tokens
        _check(isinstance(t, torch.Tensor), f"{self.kind}: tokens must be a torch.Tensor, got {type(t).__name__}")
        _check(t.dim() == 3, f"{self.kind} from {self.source}: tokens must be [B, N, D], got shape {tuple(t.shape)}")
        _check(t.is_floating_point(), f"{self.kind} from {self.source}: tokens must be floating point, got {t.dtype}")
        B, N, _ = t.shape
        if self.time is not None:
            _check(
                isinstance(self.time, torch.Tensor) and tuple(self.time.shape) == (B, N),
                f"{self.kind} from {self.source}: time must be [B, N]=[{B}, {N}], got {_shape(self.time)}",
            )
        if self.mask is not None:
            _check(
                isinstance(self.mask, torch.Tensor) and tuple(self.mask.shape) == (B, N),
                f"{self.kind} from {self.source}: mask must be [B, N]=[{B}, {N}], got {_shape(self.mask)}",
            )
            _check(self.mask.dtype == torch.bool, f"{self.kind}: mask must be bool, got {self.mask.dtype}")
        # Freeze metadata so a reader cannot change what another reader sees.
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    @property
    def dim(self) -> int:
        return self.tokens.shape[-1]


def _shape(x: Any) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


@dataclass(frozen=True)
class TraceEntry:
    """What `--trace` shows about one publish."""

    seq: int
    kind: str
    source: str
    shape: tuple[int, ...]
    dtype: str
    norm: float  # mean L2 norm of a token
    ms: float  # wall time since the bus was created (or cleared)

    def line(self) -> str:
        shape = "x".join(str(s) for s in self.shape)
        return f"[{self.ms:8.1f} ms] {self.source:>12} -> {self.kind:<9} {shape:<14} {self.dtype:<8} |t|={self.norm:.3f}"


class LatentBus:
    """Publish/read messages by kind; optionally record traffic.

    `dims` optionally fixes the token width per kind (e.g. {"percept": 192}); a publish that
    disagrees is an error naming the kind and the source.
    """

    def __init__(self, record: bool = False, dims: Mapping[str, int] | None = None) -> None:
        self.record = record
        self.dims = dict(dims or {})
        self._messages: dict[str, list[Message]] = {}
        self._log: list[Message] = []
        self.trace: list[TraceEntry] = []
        self._t0 = time.perf_counter()
        self._seq = 0

    def publish(self, msg: Message) -> Message:
        if not isinstance(msg, Message):
            raise BusError(f"can only publish Message objects, got {type(msg).__name__}")
        want = self.dims.get(msg.kind)
        if want is not None and msg.dim != want:
            raise BusError(f"{msg.kind} from {msg.source}: token width {msg.dim}, bus expects {want}")
        self._messages.setdefault(msg.kind, []).append(msg)
        self._log.append(msg)
        if self.record:
            with torch.no_grad():
                norm = float(msg.tokens.detach().float().norm(dim=-1).mean()) if msg.tokens.numel() else 0.0
            self.trace.append(
                TraceEntry(
                    seq=self._seq,
                    kind=msg.kind,
                    source=msg.source,
                    shape=tuple(msg.tokens.shape),
                    dtype=str(msg.tokens.dtype).replace("torch.", ""),
                    norm=norm if math.isfinite(norm) else float("nan"),
                    ms=(time.perf_counter() - self._t0) * 1e3,
                )
            )
        self._seq += 1
        return msg

    def read(self, kind: str) -> list[Message]:
        """All messages of `kind`, in publish order (empty if none)."""
        return list(self._messages.get(kind, ()))

    def latest(self, kind: str) -> Message | None:
        msgs = self._messages.get(kind)
        return msgs[-1] if msgs else None

    def has(self, kind: str) -> bool:
        return bool(self._messages.get(kind))

    def kinds(self) -> list[str]:
        return [k for k, v in self._messages.items() if v]

    def messages(self) -> list[Message]:
        """Every message, in publish order."""
        return list(self._log)

    def drop(self, kind: str) -> None:
        """Remove a kind (used for ablations such as "answer without the forecast")."""
        self._messages.pop(kind, None)
        self._log = [m for m in self._log if m.kind != kind]

    def clear(self) -> None:
        self._messages.clear()
        self._log.clear()
        self.trace.clear()
        self._t0 = time.perf_counter()
        self._seq = 0

    def format_trace(self) -> str:
        if not self.trace:
            return "(bus trace is empty: was the bus created with record=True?)"
        return "\n".join(e.line() for e in self.trace)
