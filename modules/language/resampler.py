"""Question-conditioned resampler: M learned queries read the bus prefix in the light of the question.

Why: with LLaVA's layout the bus tokens enter the LM before the question, so they cannot depend on
what is asked, and the LM (1M parameters, adapted only by LoRA) must itself find the object a
question names among dozens of prefix tokens. With the simulator's own object tokens it reached
only 39 % on "What color is the cylinder?" (docs/bench_pack_history.md). Moving the prefix after the
question (config.prefix_at = "answer") did not help. This is the fix InstructBLIP (Dai et al. 2023)
makes to BLIP-2's Q-Former (Li et al. 2023): learned queries and the instruction's text tokens share
self-attention, the queries cross-attend to the visual tokens, and only the queries go to the LM.
A dedicated, fully trained attention layer can bind "cylinder" to the token whose shape is a
cylinder; the LoRA-adapted LM then only has to say the answer.

Shapes: bus prefix [B, P, H] + mask [B, P] (already projected, with kind/time embeddings), question
text [B, L, H] (the LM's frozen input embeddings of the prompt) + mask [B, L] -> [B, M, H] + mask.
Each block: self-attention over [queries; text] -> cross-attention of that sequence to the bus
tokens -> MLP, all pre-norm with residuals. A learned "null" key is always present, so a query can
attend to nothing and a row without bus tokens gives no NaN.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class ResamplerBlock(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(hidden)
        self.self_attn = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.norm_cross = nn.LayerNorm(hidden)
        self.norm_kv = nn.LayerNorm(hidden)
        self.cross_attn = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))

    def forward(self, x: torch.Tensor, x_pad: torch.Tensor, kv: torch.Tensor, kv_pad: torch.Tensor) -> torch.Tensor:
        """x [B, Q, H] with x_pad [B, Q] (True = padding); kv [B, P, H] with kv_pad [B, P]."""
        h = self.norm_self(x)
        x = x + self.self_attn(h, h, h, key_padding_mask=x_pad, need_weights=False)[0]
        h = self.norm_cross(x)
        kvn = self.norm_kv(kv)
        x = x + self.cross_attn(h, kvn, kvn, key_padding_mask=kv_pad, need_weights=False)[0]
        return x + self.mlp(self.norm_mlp(x))


class QuestionResampler(nn.Module):
    """[B, P, H] bus prefix + [B, L, H] question -> [B, M, H] question-aware prefix (see file docstring)."""

    def __init__(self, hidden: int, queries: int, layers: int, heads: int) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(queries, hidden) * 0.02)
        self.null_kv = nn.Parameter(torch.zeros(1, hidden))
        self.text_in = nn.Linear(hidden, hidden)  # LM embedding space -> resampler space
        self.blocks = nn.ModuleList(ResamplerBlock(hidden, heads) for _ in range(layers))
        self.norm_out = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, hidden)  # back to the LM's input-embedding space

    def forward(
        self, prefix: torch.Tensor, prefix_mask: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, M = prefix.shape[0], self.queries.shape[0]
        q = self.queries.to(prefix.dtype).expand(B, M, -1)
        x = torch.cat([q, self.text_in(text.to(prefix.dtype))], 1)  # [B, M + L, H]
        x_pad = torch.cat([torch.zeros(B, M, dtype=torch.bool, device=x.device), ~text_mask.bool()], 1)
        kv = torch.cat([self.null_kv.to(prefix.dtype).expand(B, 1, -1), prefix], 1)  # [B, 1 + P, H]
        kv_pad = torch.cat([torch.zeros(B, 1, dtype=torch.bool, device=x.device), ~prefix_mask.bool()], 1)
        for block in self.blocks:
            x = block(x, x_pad, kv, kv_pad)
        out = self.out(self.norm_out(x[:, :M]))  # [B, M, H]
        return out, torch.ones(B, M, dtype=torch.bool, device=out.device)
