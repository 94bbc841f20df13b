"""Bus adapters: per-kind projectors that turn bus messages into soft prefix tokens for the LM.

As in LLaVA-1.5 (Liu et al. 2023, "Improved Baselines with Visual Instruction Tuning") each kind
gets a 2-layer MLP with GELU from its token width D to the LM's hidden size H. Because several
kinds share one prefix, each projected token also gets a learned *kind* embedding (which module
said it) and a learned *time* embedding (which frame / rollout step it is about; untimed kinds such
as recall or cost use a dedicated "no time" row). Long token sequences are pooled first (per time
step mean, then adaptive average pooling to <= M tokens per kind), the same trade-off as
LLaMA-VID / Video-LLaVA's token pooling: the LM's context is the scarce resource.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from cogarch.bus import KNOWN_KINDS, LatentBus, Message
from cogarch.errors import ConfigError, UserError
from cogarch.modules.language.binder import PAIR_WIDTH, ROLE_WIDTH, SlotBinder, first_pick
from cogarch.modules.language.config import LanguageConfig
from cogarch.modules.language.relations import OBJECT_ROW, relation_width, slot_relations
from cogarch.modules.language.resampler import QuestionResampler


class BusInputError(UserError):
    """A bus message the language module cannot read (width or batch size mismatch)."""


def adaptive_pool(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor, cap: int):
    """Masked adaptive average pool over tokens.

    x: [B, N, D], t: [B, N] float times, m: [B, N] bool -> ([B, M, D], [B, M], [B, M]) with M = min(N, cap).
    A pooled slot covering only padding stays masked out.
    """
    B, N, D = x.shape
    if N <= cap:
        return x, t, m
    mf = m.to(x.dtype)
    den = F.adaptive_avg_pool1d(mf[:, None, :], cap)[:, 0]  # [B, M]
    num = F.adaptive_avg_pool1d((x * mf[..., None]).transpose(1, 2), cap).transpose(1, 2)  # [B, M, D]
    tnum = F.adaptive_avg_pool1d((t.to(x.dtype) * mf)[:, None, :], cap)[:, 0]  # [B, M]
    safe = den.clamp_min(1e-6)
    return num / safe[..., None], tnum / safe, den > 0


def time_mean_pool(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor, n_buckets: int):
    """Mean of the tokens of each time step (e.g. the H'xW' patches of one V-JEPA tubelet).

    x: [B, N, D], t: [B, N], m: [B, N] bool -> ([B, K, D], [B, K], [B, K]), K = most distinct times
    in any sample; time steps come out in increasing order, padded slots masked.
    """
    B, N, D = x.shape
    tb = t.round().long().clamp(0, n_buckets - 1)  # [B, N]
    mf = m.to(x.dtype)
    sums = x.new_zeros(B, n_buckets, D).scatter_add_(1, tb[..., None].expand(B, N, D), x * mf[..., None])
    cnt = x.new_zeros(B, n_buckets).scatter_add_(1, tb, mf)  # [B, n_buckets]
    nonempty = cnt > 0
    K = max(int(nonempty.sum(1).max()), 1)
    # Stable sort puts the non-empty buckets first, in increasing time order.
    order = torch.argsort((~nonempty).to(torch.int8), dim=1, stable=True)[:, :K]  # [B, K]
    pooled = torch.gather(sums / cnt.clamp_min(1)[..., None], 1, order[..., None].expand(B, K, D))
    return pooled, order.to(x.dtype), torch.gather(nonempty, 1, order)


def step_index(t: torch.Tensor) -> torch.Tensor:
    """[B, N] times -> [B, N] long: each token's rank among the earlier tokens of the same time
    step (the slot k of a time-major [T' x K] layout, the cell of a pooled grid). Untimed
    messages pass all-zero times, so their index is the token's position."""
    N = t.shape[1]
    same = t[:, :, None] == t[:, None, :]  # [B, N, N]
    earlier = torch.ones(N, N, dtype=torch.bool, device=t.device).tril(-1)  # key j before query n
    return (same & earlier).sum(-1)


def steps_slots(t: torch.Tensor, kind: str, why: str) -> tuple[int, int]:
    """[B, N] times of a time-major [T' x K] message -> (T', K); a one-line error otherwise."""
    B, N = t.shape
    T = torch.unique_consecutive(t[0]).numel()
    K = N // max(T, 1)
    if T * K != N or not bool((t.reshape(B, T, K) == t.reshape(B, T, K)[..., :1]).all()):
        raise BusInputError(f"language: {kind} is not a time-major [steps x slots] layout ({why})")
    return T, K


def slot_pool(x: torch.Tensor, t: torch.Tensor, steps: int, kind: str):
    """One token per slot: a time-major [T' x K] message -> its K slots, each the T' rows concatenated.

    x: [B, T'*K, D], t: [B, T'*K] (equal within a step, K tokens per step) -> ([B, K, steps*D],
    [B, K] the first step's time, [B, K] all True). Why: perception publishes every object slot at
    every step, so an object appears T' times in the prefix and "how many cubes" means counting
    distinct slots among T'*K rows; one token per object is the layout of object-centric readers
    (Slot Attention's set of slots, Locatello et al. 2020). Steps after T' are zero, as the rows of
    an unseen object are. Measured on the v10 pack: no gain over per-step rows (docs/benchmarks.md,
    "What the object slots hold"), so no preset uses it.
    """
    B, N, D = x.shape
    T, K = steps_slots(t, kind, "pool 'slot'")
    if T > steps:
        raise BusInputError(f"language: {kind} has {T} time steps, its slot projector holds slot_steps={steps}")
    h = x.reshape(B, T, K, D).transpose(1, 2).reshape(B, K, T * D)
    h = F.pad(h, (0, (steps - T) * D))  # [B, K, steps*D]
    times = t.reshape(B, T, K)[:, 0]  # [B, K]
    return h, times, torch.ones(B, K, dtype=torch.bool, device=x.device)


def canonical_kinds(kinds) -> list[str]:
    """Prefix / kind-embedding order: the bus's KNOWN_KINDS order, then unknown kinds by name.

    Never the config dict's order: a JSON/YAML round trip may sort keys, and the kind embedding
    rows and prefix layout must not depend on how a config file happened to be written.
    """
    rank = {k: i for i, k in enumerate(KNOWN_KINDS)}
    return sorted(kinds, key=lambda k: (rank.get(k, len(rank)), k))


def grid_pool(x: torch.Tensor, t: torch.Tensor, grid: int, cap: int):
    """Spatio-temporal pooling for patch tokens laid out time-major (V-JEPA: T' x H' x W').

    x: [B, N, D], t: [B, N] with N = T' * S * S (S*S tokens per time step, row-major) ->
    [B, T'' * g * g, D], g = min(grid, S), T'' = min(T', cap // g^2): each step's S x S grid is
    average-pooled to g x g (2x2 pooling keeps "where" for a small LM; as Video-LLaVA-style pooling),
    then time is average-pooled if the sequence would exceed `cap`. Returns None if the layout is
    not T' equal square grids (the caller then falls back to time_mean).
    """
    B, N, D = x.shape
    steps = torch.unique_consecutive(t[0])
    T = steps.numel()
    S = int(round((N / max(T, 1)) ** 0.5))
    if T * S * S != N:
        return None
    tt = t.reshape(B, T, S * S)
    if not bool((tt == tt[..., :1]).all()):
        return None  # tokens of one step are not contiguous
    g = max(1, min(grid, S))
    h = x.reshape(B * T, S, S, D).permute(0, 3, 1, 2)  # [B*T, D, S, S]
    h = F.adaptive_avg_pool2d(h, g).permute(0, 2, 3, 1).reshape(B, T, g * g, D)
    times = tt[..., 0]  # [B, T]
    T2 = max(1, min(T, cap // (g * g)))
    if T2 < T:
        h = F.adaptive_avg_pool1d(h.permute(0, 2, 3, 1).reshape(B, g * g * D, T), T2).reshape(B, g * g, D, T2).permute(0, 3, 1, 2)
        times = F.adaptive_avg_pool1d(times[:, None].to(x.dtype), T2)[:, 0]
    out_t = times[..., None].expand(B, T2, g * g).reshape(B, T2 * g * g)
    return h.reshape(B, T2 * g * g, D), out_t, torch.ones(B, T2 * g * g, dtype=torch.bool, device=x.device)


class KindProjector(nn.Module):
    """[*, D] -> [*, H]: (LayerNorm) -> Linear -> GELU -> Linear (LLaVA-1.5's mlp2x_gelu)."""

    def __init__(self, dim: int, hidden: int, out: int, norm: bool) -> None:
        super().__init__()
        # A LayerNorm per kind puts V-JEPA latents, rollouts and energies on one scale; a scalar
        # kind (D == 1, e.g. surprise) would be zeroed by it, so scalars pass through unchanged.
        self.norm = nn.LayerNorm(dim) if (norm and dim > 1) else nn.Identity()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class BusAdapter(nn.Module):
    """All projectors plus kind/time embeddings; `forward(messages)` -> prefix [B, P, H], mask [B, P]."""

    def __init__(self, config: LanguageConfig, lm_hidden: int, lm_vocab: int = 0) -> None:
        super().__init__()
        self.config = config
        self.lm_vocab = lm_vocab  # the tokenizer's id range, for a binder with its own table (binder_text: own)
        unresolved = [k for k, d in config.kind_dims.items() if int(d) < 1]
        if unresolved:
            raise ConfigError(f"language.kind_dims {unresolved} are 0 (width from the features) but no features resolved them")
        self.kinds = canonical_kinds(config.kind_dims)
        self.hidden = lm_hidden
        width = config.proj_hidden or lm_hidden
        self.proj = nn.ModuleDict(
            {k: KindProjector(config.proj_dim(k), width, lm_hidden, config.norm_of(k)) for k in config.kind_dims}
        )
        self.kind_embed = nn.Embedding(max(len(self.kinds), 1), lm_hidden)
        self.time_embed = nn.Embedding(config.max_time + 1, lm_hidden)  # last row: "untimed"
        nn.init.normal_(self.kind_embed.weight, std=0.02)
        nn.init.normal_(self.time_embed.weight, std=0.02)
        # within-step token index (config.index_embed; shared by all kinds), absent when 0 so
        # packs saved without it load unchanged
        self.index_embed = nn.Embedding(config.index_embed, lm_hidden) if config.index_embed else None
        if self.index_embed is not None:
            nn.init.normal_(self.index_embed.weight, std=0.02)
        # Relation projectors (config.relations): absent when empty so older packs load unchanged.
        self.rel = nn.ModuleDict()
        self.add_relations(config.relations)
        # Optional question-conditioned resampler (config.resampler_queries > 0), applied by
        # LanguageModule.prefix once the prompt is known; saved with the projectors.
        self.resampler = None
        if config.resampler_queries > 0:
            if lm_hidden % config.resampler_heads:
                raise ConfigError(f"language.resampler_heads {config.resampler_heads} must divide the LM's hidden size {lm_hidden}")
            self.resampler = QuestionResampler(lm_hidden, config.resampler_queries, config.resampler_layers, config.resampler_heads)
        # Optional slot binder (config.binder, binder.py): absent when empty so older packs load unchanged.
        self.binder, self.bind_proj, self.bind_index = None, nn.ModuleDict(), None
        self.add_binder(config.binder)

    def add_binder(self, kinds: list[str]) -> None:
        """The slot binder (one, shared) and a zero-initialised projector per kind in `kinds` that has
        none yet: the binder's tokens start as their small index embeddings only, so a trained
        module (init_from) gains them with its answers nearly unchanged."""
        kinds = [k for k in kinds if k not in self.bind_proj]
        if not kinds:
            return
        ref = self.kind_embed.weight
        for kind in kinds:
            if kind not in self.config.kind_dims:
                raise ConfigError(f"language.binder: {kind!r} is not a kind the module reads ({sorted(self.config.kind_dims)})")
            if 0 < int(self.config.kind_dims[kind]) < OBJECT_ROW:
                raise ConfigError(f"language.binder: {kind!r} is {self.config.kind_dims[kind]} wide; the binder reads "
                                  f"object-slot rows ({OBJECT_ROW} wide)")
        if self.binder is None:
            if self.config.binder_text == "own" and self.lm_vocab < 1:
                raise ConfigError("language.binder_text: own needs the LM's vocabulary size (BusAdapter lm_vocab)")
            vocab = self.lm_vocab if self.config.binder_text == "own" else 0
            self.binder = SlotBinder(self.hidden, self.config.binder_roles, self.config.binder_width, vocab=vocab,
                                     first=self.config.binder_first).to(device=ref.device)
            n = self.binder.roles + self.binder.first + len(self.binder.pairs)
            self.bind_index = nn.Embedding(n, self.hidden).to(device=ref.device, dtype=ref.dtype)
            nn.init.normal_(self.bind_index.weight, std=0.02)
        for kind in kinds:
            proj = KindProjector(ROLE_WIDTH + PAIR_WIDTH, self.config.proj_hidden or self.hidden, self.hidden, norm=False)
            nn.init.zeros_(proj.fc2.weight)
            nn.init.zeros_(proj.fc2.bias)
            self.bind_proj[kind] = proj.to(device=ref.device, dtype=ref.dtype)

    def add_binder_first(self) -> None:
        """Switch on the binder's first token (config.binder_first) in a module that has a binder without
        it: its index embedding row goes in after the role rows, at zero (init_from), the others kept."""
        if self.binder is None or self.binder.first:
            return
        R, old = self.binder.roles, self.bind_index.weight.data
        new = nn.Embedding(old.shape[0] + 1, self.hidden).to(device=old.device, dtype=old.dtype)
        new.weight.data = torch.cat([old[:R], old.new_zeros(1, old.shape[1]), old[R:]])
        self.bind_index, self.binder.first, self.config.binder_first = new, True, True

    def binder_tokens(self, messages: Mapping[str, Message], text: torch.Tensor, tmask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """([B, M, H] binder tokens, the slot weights w [B, R, K] or None) for the question text [B, L, H]
        (token ids [B, L] with binder_text own; mask [B, L]) and the binder's
        kinds present in `messages` (a message of batch 1 is shared by all B questions). The slots
        picked from the first kind present in prefix order (forecast, then objects: canonical_kinds)
        are reused for the next: the world model forecasts each slot's own object (SlotFormer), so
        slot k is the same object in both, and its forecast rows carry the slot's identity columns."""
        B, dtype = text.shape[0], self.kind_embed.weight.dtype
        outs, w = [], None
        for ki, kind in enumerate(self.kinds):
            msg = messages.get(kind)
            if kind not in self.bind_proj or msg is None:
                continue
            if msg.time is None or msg.mask is not None:
                raise BusInputError(f"language: {kind} from {msg.source} has no per-step times (or has a mask); the binder needs slot rows")
            _, K = steps_slots(msg.time.to(msg.tokens.device), kind, "binder")
            rows = msg.tokens.to(text.device)
            if rows.shape[0] == 1 and B > 1:
                rows = rows.expand(B, -1, -1)
            elif rows.shape[0] != B:
                raise BusInputError(f"language: {kind} from {msg.source} has batch {rows.shape[0]}, expected {B}")
            tok, _, w = self.binder(rows, K, text, tmask, w=w if w is not None and w.shape[-1] == K else None)
            outs.append(self.bind_proj[kind](tok.to(dtype)) + self.kind_embed.weight[ki] + self.bind_index.weight)
        return (torch.cat(outs, 1) if outs else text.new_zeros(B, 0, self.hidden, dtype=dtype)), w

    def first_picks(self, messages: Mapping[str, Message], w: torch.Tensor) -> list[dict]:
        """Evidence for batch item 0: with binder_first, one {"role": "first", "kind", "slot", "weight"}
        per binder kind present, the slot the first token reads (slot None: role 0 touched nothing);
        `w` [B, R, K] the binder's picks, as binder_tokens reuses them."""
        if self.binder is None or not self.binder.first:
            return []
        out = []
        for kind in self.kinds:
            msg = messages.get(kind)
            if kind in self.bind_proj and msg is not None and msg.time is not None:
                K = steps_slots(msg.time.to(msg.tokens.device), kind, "binder")[1]
                if w.shape[-1] == K:
                    v, k = first_pick(msg.tokens[:1].to(w.device), K, w[:1, 0])[0].max(-1)
                    out.append({"role": "first", "kind": kind, "slot": int(k) if v > 0 else None, "weight": round(float(v), 3)})
        return out

    def add_relations(self, kinds: list[str]) -> None:
        """A relation projector for each kind in `kinds` that has none yet (relations.py). Its last
        layer is zero, so the prefix, and the module's outputs, are unchanged until it trains (the
        zero-initialised branch of LoRA's B and ControlNet's zero convolutions)."""
        ref = self.kind_embed.weight
        for kind in kinds:
            if kind in self.rel:
                continue
            if kind not in self.config.kind_dims:
                raise ConfigError(f"language.relations: {kind!r} is not a kind the module reads ({sorted(self.config.kind_dims)})")
            if 0 < int(self.config.kind_dims[kind]) < OBJECT_ROW:
                raise ConfigError(f"language.relations: {kind!r} is {self.config.kind_dims[kind]} wide; relations read "
                                  f"object-slot rows ({OBJECT_ROW} wide: identity, visible, x, y, vx, vy)")
            proj = KindProjector(relation_width(), self.config.proj_hidden or self.hidden, self.hidden, norm=False)
            nn.init.zeros_(proj.fc2.weight)
            nn.init.zeros_(proj.fc2.bias)
            self.rel[kind] = proj.to(device=ref.device, dtype=ref.dtype)

    def relation_tokens(self, kind: str, msg: Message) -> torch.Tensor:
        """[B, N, H]: the relation projector's output for each slot row of `msg`."""
        if msg.time is None or msg.mask is not None:
            raise BusInputError(f"language: {kind} from {msg.source} has no per-step times (or has a mask); relations need slot rows")
        _, K = steps_slots(msg.time.to(msg.tokens.device), kind, "relations")
        rel = slot_relations(msg.tokens.float(), K)
        return self.rel[kind](rel.to(self.kind_embed.weight.dtype))

    def _pool(self, kind: str, msg: Message):
        x = msg.tokens
        B, N, _ = x.shape
        timed = msg.time is not None
        t = msg.time.to(x.device, torch.float32) if timed else torch.zeros(B, N, device=x.device)
        m = msg.mask.to(x.device) if msg.mask is not None else torch.ones(B, N, dtype=torch.bool, device=x.device)
        cap = self.config.cap(kind)
        pool = kind_pool = self.config.pool_per_kind.get(kind, self.config.pool)
        if pool == "slot":
            if not timed or msg.mask is not None:
                raise BusInputError(f"language: {kind} from {msg.source} has no per-step times (or has a mask); pool 'slot' needs slot rows")
            return (*slot_pool(x.float(), t, self.config.slot_steps, kind), timed)
        if pool == "grid" and timed and msg.mask is None:
            pooled = grid_pool(x.float(), t, self.config.grid, cap)
            if pooled is not None:
                return (*pooled, timed)
            pool = "time_mean"  # not a time-major square patch layout (e.g. surprise [B, T', 1])
        if pool in ("time_mean", "grid") and timed:
            x, t, m = time_mean_pool(x.float(), t, m, self.config.max_time)
        if kind_pool != "none":
            x, t, m = adaptive_pool(x.float(), t, m, cap)
        return x, t, m, timed

    def forward(self, messages: Mapping[str, Message], batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """messages: {kind: Message [B, N_k, D_k]} (unknown kinds ignored, missing kinds absent).

        Returns prefix [B, P, H] (P = sum of pooled N_k) and its mask [B, P] bool (True = real).
        """
        device = self.kind_embed.weight.device
        dtype = self.kind_embed.weight.dtype
        outs, masks = [], []
        B = batch_size
        for ki, kind in enumerate(self.kinds):
            msg = messages.get(kind)
            if msg is None:
                continue
            want = int(self.config.kind_dims[kind])
            if msg.dim != want:
                raise BusInputError(f"language: {kind} from {msg.source} has width {msg.dim}, its projector expects {want}")
            if B is None:
                B = msg.batch_size
            elif msg.batch_size != B:
                raise BusInputError(f"language: {kind} from {msg.source} has batch {msg.batch_size}, expected {B}")
            msg = Message(msg.kind, msg.source, msg.tokens.to(device), msg.time, msg.mask)
            x, t, m, timed = self._pool(kind, msg)
            h = self.proj[kind](x.to(dtype))  # [B, M, H]
            if kind in self.rel:  # pool "none" (config.validate): row n of h is row n of the message
                h = h + self.relation_tokens(kind, msg)
            tidx = t.round().long().clamp(0, self.config.max_time - 1) if timed else torch.full_like(t, self.config.max_time, dtype=torch.long)
            h = h + self.kind_embed.weight[ki] + self.time_embed(tidx)
            if self.index_embed is not None:
                h = h + self.index_embed(step_index(t).clamp(max=self.index_embed.num_embeddings - 1))
            outs.append(h)
            masks.append(m)
        if not outs:
            B = B or 1
            return torch.zeros(B, 0, self.hidden, device=device, dtype=dtype), torch.zeros(B, 0, dtype=torch.bool, device=device)
        return torch.cat(outs, 1), torch.cat(masks, 1)


def messages_of(bus: LatentBus | Mapping[str, Message] | None, kinds: list[str]) -> dict[str, Message]:
    """The latest message of each wanted kind on a bus (several messages of one kind are joined along N)."""
    if bus is None:
        return {}
    if not isinstance(bus, LatentBus):
        return {k: v for k, v in bus.items() if k in kinds}
    out: dict[str, Message] = {}
    for kind in kinds:
        msgs = bus.read(kind)
        if not msgs:
            continue
        if len(msgs) == 1:
            out[kind] = msgs[0]
            continue
        # e.g. memory publishing one recall per query: concatenate tokens (and side data) along N.
        B = msgs[0].batch_size

        def side(name: str, fill):
            parts = [getattr(m, name) if getattr(m, name) is not None else fill(m) for m in msgs]
            return torch.cat(parts, 1)

        any_time = any(m.time is not None for m in msgs)
        any_mask = any(m.mask is not None for m in msgs)
        out[kind] = Message(
            kind,
            msgs[-1].source,
            torch.cat([m.tokens for m in msgs], 1),
            time=side("time", lambda m: torch.zeros(B, m.tokens.shape[1])) if any_time else None,
            mask=side("mask", lambda m: torch.ones(B, m.tokens.shape[1], dtype=torch.bool)) if any_mask else None,
        )
    return out


def batch_messages(bus_batch: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, Message]:
    """Collated training batch {kind: {"tokens": [B,N,D], "time"?: [B,N], "mask"?: [B,N]}} -> Messages."""
    return {
        kind: Message(kind, "features", parts["tokens"].float(), time=parts.get("time"), mask=parts.get("mask"))
        for kind, parts in bus_batch.items()
    }
