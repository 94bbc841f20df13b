"""Multi-block 3-D masking for V-JEPA, built in the data-loader workers (the collate function).

Semantics follow the reference V-JEPA collator (Bardes et al. 2024, "Revisiting Feature Prediction
for Learning Visual Representations from Video", Sec. 3.2 and App. C; facebookresearch/vjepa2
`src/masks/multiseq_multiblock3d.py`):

- per mask set, ONE block size (t, h, w) is drawn per batch (scale, aspect ratio), then every clip
  draws `num_blocks` independent block positions; the target is the union of the blocks, the
  context is the complement (optionally restricted to the first `max_temporal_keep` of time);
- blocks are spatially strictly smaller than the frame (h < H', w < W') as in the reference, so a
  context always survives; a clip with fewer than `min_context` context tokens is redrawn;
- masks are index tensors into the flattened (t, h, w) token grid, sorted ascending; within a
  batch all clips get the same count by truncation to the batch minimum (the reference does this
  so that a batch is one dense tensor; it drops a few tokens from the end of the longer lists).
- a set with `future: n` draws no blocks: the context is all steps before a cut drawn per batch,
  the target the next n steps (future prediction, as V-JEPA 2-AC's predictor is trained).

Output of `MaskCollator.__call__`: {"frames": [B, T, 3, H, W], "masks_enc": [LongTensor[B, Nc_i]],
"masks_pred": [LongTensor[B, Np_i]]} with one entry per mask set, plus any other per-clip fields
that the dataset returned (stacked when they are tensors, listed otherwise).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from cogarch.modules.perception.config import MaskSetConfig, PerceptionConfig


def sample_block_size(
    grid: tuple[int, int, int], mset: MaskSetConfig, generator: torch.Generator | None = None
) -> tuple[int, int, int]:
    """Draw one block shape (t, h, w) in tokens for a mask set."""
    T, H, W = grid
    r = torch.rand(3, generator=generator).tolist()
    t_scale = mset.temporal_scale[0] + r[0] * (mset.temporal_scale[1] - mset.temporal_scale[0])
    s_scale = mset.spatial_scale[0] + r[1] * (mset.spatial_scale[1] - mset.spatial_scale[0])
    ar = mset.aspect_ratio[0] + r[2] * (mset.aspect_ratio[1] - mset.aspect_ratio[0])
    t = max(1, int(T * t_scale))
    keep = int(H * W * s_scale)  # block area in tokens
    h = int(round(math.sqrt(keep * ar)))
    w = int(round(math.sqrt(keep / ar)))
    # strictly smaller than the frame (reference); a 1-token-wide grid cannot satisfy that
    h = max(1, min(h, H - 1)) if H > 1 else 1
    w = max(1, min(w, W - 1)) if W > 1 else 1
    return min(t, T), h, w


def sample_target_union(
    batch: int,
    grid: tuple[int, int, int],
    block: tuple[int, int, int],
    num_blocks: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """[batch, T', H', W'] bool, True where a token lies in one of the clip's `num_blocks` blocks."""
    T, H, W = grid
    t, h, w = block
    starts = torch.randint(0, T - t + 1, (batch, num_blocks, 1), generator=generator)
    tops = torch.randint(0, H - h + 1, (batch, num_blocks, 1), generator=generator)
    lefts = torch.randint(0, W - w + 1, (batch, num_blocks, 1), generator=generator)
    ar_t, ar_h, ar_w = torch.arange(T), torch.arange(H), torch.arange(W)
    in_t = (ar_t >= starts) & (ar_t < starts + t)  # [B, K, T]
    in_h = (ar_h >= tops) & (ar_h < tops + h)  # [B, K, H]
    in_w = (ar_w >= lefts) & (ar_w < lefts + w)  # [B, K, W]
    blocks = in_t[:, :, :, None, None] & in_h[:, :, None, :, None] & in_w[:, :, None, None, :]  # [B,K,T,H,W]
    return blocks.any(dim=1)


def sample_mask_set(
    batch: int,
    grid: tuple[int, int, int],
    mset: MaskSetConfig,
    min_context: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(context indices [B, Nc], target indices [B, Np]), sorted, disjoint, equal counts per batch."""
    T, H, W = grid
    if mset.future:
        # Future set: one cut c for the whole batch (equal counts), context = steps < c, target =
        # steps c .. c+future-1; tokens are (t, h, w) row-major, so both are contiguous ranges.
        c = int(torch.randint(1, T, (1,), generator=generator))
        ctx_idx = torch.arange(c * H * W).expand(batch, -1)
        tgt_idx = torch.arange(c * H * W, min(T, c + mset.future) * H * W).expand(batch, -1)
        return ctx_idx.contiguous(), tgt_idx.contiguous()
    block = sample_block_size(grid, mset, generator)
    target = sample_target_union(batch, grid, block, mset.num_blocks, generator)  # [B,T,H,W]
    allowed = torch.zeros(T, dtype=torch.bool)
    allowed[: max(1, int(math.ceil(T * mset.max_temporal_keep)))] = True
    context = ~target & allowed[None, :, None, None]
    n_ctx = context.flatten(1).sum(1)
    for b in torch.nonzero(n_ctx < min_context).flatten().tolist():  # rare: redraw that clip
        for _ in range(20):
            target[b] = sample_target_union(1, grid, block, mset.num_blocks, generator)[0]
            context[b] = ~target[b] & allowed[:, None, None]
            if int(context[b].sum()) >= min_context:
                break
    ctx_flat, tgt_flat = context.flatten(1), target.flatten(1)  # [B, N]
    n_keep_ctx = int(ctx_flat.sum(1).min())
    n_keep_tgt = int(tgt_flat.sum(1).min())
    # Stable sort of the boolean rows puts the True positions first in ascending index order.
    ar = torch.arange(ctx_flat.shape[1])
    ctx_idx = torch.stack([ar[row][:n_keep_ctx] for row in ctx_flat])
    tgt_idx = torch.stack([ar[row][:n_keep_tgt] for row in tgt_flat])
    return ctx_idx, tgt_idx


class MaskCollator:
    """collate_fn: stacks clips and draws one (context, target) pair per mask set.

    A sample is a frames tensor [T, 3, H, W] or a dict with a "frames" entry. Randomness comes from
    torch's global RNG, which the DataLoader seeds per worker (reproducible given the loader seed),
    or from `generator` when given (tests).
    """

    def __init__(self, cfg: PerceptionConfig, generator: torch.Generator | None = None) -> None:
        self.grid = cfg.grid
        self.masks: Sequence[MaskSetConfig] = list(cfg.masks)
        self.min_context = cfg.min_context
        self.generator = generator

    def sample(self, batch: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        enc, pred = [], []
        for mset in self.masks:
            c, t = sample_mask_set(batch, self.grid, mset, self.min_context, self.generator)
            enc.append(c)
            pred.append(t)
        return enc, pred

    def __call__(self, samples: list[Any]) -> dict[str, Any]:
        if not samples:
            raise ValueError("MaskCollator got an empty batch")
        if isinstance(samples[0], dict):
            out: dict[str, Any] = {}
            for key in samples[0]:
                vals = [s[key] for s in samples]
                out[key] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
        else:
            out = {"frames": torch.stack(samples)}
        masks_enc, masks_pred = self.sample(out["frames"].shape[0])
        out["masks_enc"], out["masks_pred"] = masks_enc, masks_pred
        return out
