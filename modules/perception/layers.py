"""Fused 3-D RoPE forward for stock `VJEPA2Layer`s (same weights, same maths, less work).

Why: profiling one V-JEPA training step of the tiny config on a 2-core CPU showed the stock
`VJEPA2RopeAttention` spending most of its time on RoPE bookkeeping, not on matmuls: per layer and
per call it repeats the position ids over heads, recomputes sin/cos separately for queries and keys
and for each of the three axes, slices the head dim into t/h/w segments and concatenates them again
(whose backward allocates and fills zero tensors). Positions are the same for every layer of one
pass, so here the rotation tables are built ONCE per pass as full-head-width cos/sin tensors (the
unrotated tail of the head dim gets cos = 1, sin = 0) and each layer applies one fused
`x * cos + rot(x) * sin`.

The rotation follows transformers' `rotate_queries_or_keys` exactly (which follows the reference
V-JEPA 2 code): per axis segment of width d, frequencies 1 / 10000^(j / (d/2)), j < d/2, laid out as
[f_0 .. f_{d/2-1}, f_0 .. f_{d/2-1}], applied to the pair-rotated vector (-x1, x0, -x3, x2, ...).
Attention runs through `torch.nn.functional.scaled_dot_product_attention`. Tests check equality with
the stock layers (and the HF export round trip checks it against stock `VJEPA2Model`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers.models.vjepa2.modeling_vjepa2 import VJEPA2Layer, VJEPA2RopeAttention


def rope_tables(
    attn: VJEPA2RopeAttention, positions: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables [B or 1, 1, N, head_dim] for token positions [B, N] or [N] (flat t,h,w index)."""
    hd = attn.attention_head_size
    d = attn.d_dim  # width per axis (even); the same for t, h, w in VJEPA2RopeAttention
    g = attn.grid_size
    pos = positions if positions.dim() == 2 else positions.unsqueeze(0)  # [B, N]
    pos = pos.to(torch.float32)
    per_frame = float(g * g)
    t = torch.div(pos, per_frame, rounding_mode="floor")
    rem = pos - t * per_frame
    h = torch.div(rem, float(g), rounding_mode="floor")
    w = rem - h * g
    omega = torch.arange(d // 2, dtype=torch.float32, device=pos.device) / (d / 2.0)
    omega = 1.0 / 10000**omega  # [d/2]
    ang = torch.stack([t, h, w], dim=-1).unsqueeze(-1) * omega  # [B, N, 3, d/2]
    ang = torch.cat([ang, ang], dim=-1).flatten(-2)  # [B, N, 3*d]: per axis [f, f] layout
    cos, sin = ang.cos(), ang.sin()
    tail = hd - 3 * d
    if tail:
        cos = torch.cat([cos, cos.new_ones(*cos.shape[:-1], tail)], dim=-1)
        sin = torch.cat([sin, sin.new_zeros(*sin.shape[:-1], tail)], dim=-1)
    return cos.unsqueeze(1).to(dtype), sin.unsqueeze(1).to(dtype)  # [B, 1, N, hd]


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x2 = x.unflatten(-1, (-1, 2))
    rot = torch.stack((-x2[..., 1], x2[..., 0]), dim=-1).flatten(-2)  # (-x1, x0, -x3, x2, ...)
    return x * cos + rot * sin


def attention_forward(attn: VJEPA2RopeAttention, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, N, D] (already normed) -> attention output [B, N, D] with the module's weights."""
    B, N, _ = x.shape
    nh, hd = attn.num_attention_heads, attn.attention_head_size
    q = attn.query(x).view(B, N, nh, hd).transpose(1, 2)  # [B, nh, N, hd]
    k = attn.key(x).view(B, N, nh, hd).transpose(1, 2)
    v = attn.value(x).view(B, N, nh, hd).transpose(1, 2)
    q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
    p = attn.dropout_prob if attn.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, scale=attn.scaling)  # [B, nh, N, hd]
    return attn.proj(out.transpose(1, 2).reshape(B, N, nh * hd))


def layer_forward(layer: VJEPA2Layer, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Pre-norm block, as `VJEPA2Layer.forward`, with precomputed RoPE tables."""
    x = x + layer.drop_path(attention_forward(layer.attention, layer.norm1(x), cos, sin))
    return x + layer.drop_path(layer.mlp(layer.norm2(x)))


def supports_fused(layers: nn.ModuleList) -> bool:
    """Fused path needs an even head dim (pairs) - true for every published V-JEPA 2 shape."""
    return all(layer.attention.attention_head_size % 2 == 0 for layer in layers)


def run_layers(
    layers: nn.ModuleList, x: torch.Tensor, positions: torch.Tensor | None, fused: bool = True, grad_ckpt: bool = False
) -> torch.Tensor:
    """Run a stack of VJEPA2Layers on tokens x [B, N, D] at flat grid positions [B, N] (None: arange)."""
    if not fused or not supports_fused(layers):
        for layer in layers:
            x = layer(x, positions)[0]
        return x
    pos = positions if positions is not None else torch.arange(x.shape[1], device=x.device)
    cos, sin = rope_tables(layers[0].attention, pos, x.dtype)
    for layer in layers:
        if grad_ckpt and torch.is_grad_enabled() and x.requires_grad:
            x = checkpoint(layer_forward, layer, x, cos, sin, use_reentrant=False)
        else:
            x = layer_forward(layer, x, cos, sin)
    return x
