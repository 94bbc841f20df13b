"""Slot binder: the question picks object slots by their identity, and fixed pair terms are read out.

Why: "Does the red metal ball collide with the blue rubber cube?" needs two things: find the two
named objects among the slots (binding), then compare their tracks. Given the named pair (bound by
code), a small probe reads collide at 79.5 % on the test split; no learned reader tried — the LM,
probes over all pairs, ordered pairs, more layers, relation channels — found the pair (50-57 %;
docs/benchmarks.md, "What the object slots hold", part 6). A generic reader must discover that
"red" means "colour column 0 is high" AND combine two rows picked by two different phrases.

So the binding is given a shape that needs no discovery beyond the vocabulary, as in attention-based
referring-expression grounding (MAttNet, Yu et al. 2018) and InstructBLIP's instruction-aware
queries (Dai et al. 2023): R learned role queries attend over the question's text; each role's
summary is mapped into the slots' *identity space* (colour / shape / material columns) and scores
every slot by a dot product with that slot's identity; the roles pick in turn, each by a softmax
over the slots the earlier roles left open (soft weights w [B, R, K]). Nothing here parses text or
reads ground truth: the role queries, the text encoder and the map into identity space are learned
from the answers alone. Trained inside a language round (its projector starting at zero) it learned
to pick empty slots; pretrained first on collide answers (binder_train.py, as BLIP-2
pretrains its Q-Former) and frozen, it lets the module read "collide" (docs/benchmarks.md, part 7).

Read-outs, all fixed formulas on the rows (as relations.py, SchNet-style soft steps):
    role token r   [ident_r | gate, x, y at the last step | relation channels of r at the last step]
                   = sum_k w_rk (.)_k                                                [ROLE_WIDTH]
    first token    (first=True) a role token of the slot role 0 touched first: among the other slots
                   whose contact with role 0's pick, sum_k w_0k touch(d_tkl) g_tk g_tl, passes TOUCH at
                   some step, the earliest (ties share the weight), zero if none touched: the answer
                   of "which object does X hit first" (X = role 0) has its identity where a role's stands
    pair token ab  per radius: max over steps, mean over steps and last step of
                   sum_kl w_ak w_bl s_rad(d_tkl) g_tk g_tl  (both visible and that close), plus the
                   first step at which that passes TOUCH at NEIGHBOUR_PX, / T' (1 if never)          [PAIR_WIDTH]
R roles give R role tokens (R + 1 with the first token) and R(R-1)/2 pair tokens per kind read. Shapes: rows [B, T'*K, D>=18]
time-major, text [B, L, H_text] (or token ids [B, L] with the binder's own table) + mask [B, L] ->
tokens [B, R' + P, ROLE_WIDTH + PAIR_WIDTH] with is_pair [R' + P] (R' = R, or R + 1 with the first token;
the caller projects them), and w [B, R, K].
"""

from __future__ import annotations

import itertools

import torch
import torch.nn as nn

from cogarch.modules.language.relations import (
    CANVAS_PX, IDENT, NEIGHBOUR_PX, OBJECT_ROW, POS, RADII, STEP_PX, TOUCH, VISIBLE, relation_width, slot_relations, ungated,
)

ROLE_WIDTH = IDENT + 3 + relation_width()
PAIR_WIDTH = 3 * len(RADII) + 1
MAX_TEXT = 256  # positions of the question text the binder embeds


class SlotBinder(nn.Module):
    """Question text + object slot rows -> role and pair read-outs (see the file docstring)."""

    def __init__(self, text_dim: int, roles: int = 3, width: int = 64, heads: int = 4, vocab: int = 0, first: bool = False) -> None:
        super().__init__()
        self.roles, self.first = roles, first  # first: no parameters, so a pretrained binder loads either way
        self.pairs = list(itertools.combinations(range(roles), 2))
        # vocab > 0: the text is token ids [B, L] read through the binder's own embedding table. The
        # small LM's own input embeddings barely tell colours apart (red / green cosine 0.97 in the
        # v13 LM: they occur in the same contexts), and at norm 0.7 they sat far below the position
        # embeddings; a binder reading them found the named pair for 35 % of questions, one with
        # its own table for 83 % (docs/benchmarks.md, part 7).
        self.word = nn.Embedding(vocab, width) if vocab > 0 else None
        self.text_in = nn.Linear(text_dim, width)
        self.pos = nn.Embedding(MAX_TEXT, width)  # which object a phrase names depends on where it stands
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True), 1, enable_nested_tensor=False
        )
        self.queries = nn.Parameter(torch.randn(roles, width) * 0.02)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.to_ident = nn.Linear(width, IDENT)  # role summary -> identity space
        self.presence = nn.Parameter(torch.ones(()))  # weight of log(presence) in the slot scores

    def select(self, ident: torch.Tensor, present: torch.Tensor, text: torch.Tensor, tmask: torch.Tensor) -> torch.Tensor:
        """ident [B, K, I], present [B, K] in (0, 1], text [B, L, H_text] (or token ids [B, L] with a
        vocab), tmask [B, L] -> w [B, R, K]."""
        B, L = tmask.shape
        dtype = self.text_in.weight.dtype  # the binder may sit in another dtype than the LM's embeddings
        h = self.word(text) if self.word is not None else self.text_in(text.to(dtype))
        h = h + self.pos(torch.arange(L, device=text.device).clamp(max=MAX_TEXT - 1))
        h = self.encoder(h, src_key_padding_mask=~tmask)
        role = self.attn(self.queries.expand(B, -1, -1), h, h, key_padding_mask=~tmask, need_weights=False)[0]
        u = self.to_ident(role).float()  # [B, R, I]; slot scores in float32
        score = u @ ident.float().transpose(1, 2) + self.presence.float() * present.float().clamp_min(1e-4).log()[:, None]  # [B, R, K]
        # Roles pick in turn and a slot one role took is (softly) closed to the next: without it all
        # roles learned one summary of both names and took the same slot, so every pair read-out was
        # empty (measured: roles 0 and 1 on one slot for 99 % of desc_collide questions). With it a
        # summary that matches both named objects gives the pair: the best match, then the next.
        w, taken = [], torch.zeros_like(score[:, 0])
        for r in range(self.roles):
            w.append((score[:, r] + (1 - taken).clamp_min(1e-4).log()).softmax(-1))  # [B, K]
            taken = (taken + w[-1]).clamp(max=1)
        return torch.stack(w, 1)

    def forward(self, rows: torch.Tensor, slots: int, text: torch.Tensor, tmask: torch.Tensor,
                w: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """rows [B, T'*K, D], text [B, L, H_text], tmask [B, L] bool -> (tokens [B, R + P, ROLE_WIDTH
        + PAIR_WIDTH] (role tokens fill the first ROLE_WIDTH columns, pair tokens the rest), is_pair
        [R + P] bool, w [B, R, K]). `w` given: reuse that selection (another kind's: adapters.binder_tokens)."""
        B, N, D = rows.shape
        if N % slots or D < OBJECT_ROW:
            raise ValueError(f"SlotBinder: {N} rows of width {D} are not [steps x {slots} slots] object rows")
        T = N // slots
        r = rows[..., :OBJECT_ROW].float().reshape(B, T, slots, OBJECT_ROW)
        if w is None:
            g = r[..., VISIBLE].clamp(0, 1)  # [B, T', K]
            # a slot's identity: its gate-weighted mean over steps (rows are identity x gate)
            ident = r[..., :IDENT].sum(1) / g.sum(1).clamp_min(1e-3)[..., None]  # [B, K, I]
            w = self.select(ident, g.amax(1), text, tmask)
        g, pos, d, both = _geometry(r)
        ident_t = ungated(r[..., :IDENT], g)
        rel = slot_relations(rows[..., :OBJECT_ROW].float(), slots).reshape(B, T, slots, -1)
        per_slot = torch.cat([ident_t[:, -1], g[:, -1, :, None], pos[:, -1], rel[:, -1]], -1)  # [B, K, ROLE_WIDTH]
        role = w @ per_slot  # [B, R, ROLE_WIDTH]

        radii = torch.tensor(RADII, device=rows.device)
        close = torch.sigmoid((radii - d[..., None]) / STEP_PX) * both[..., None]  # [B, T', K, K, R_rad]
        touch = torch.sigmoid((NEIGHBOUR_PX - d) / STEP_PX) * both  # [B, T', K, K]
        if self.first:
            role = torch.cat([role, first_touched(touch, w[:, 0])[:, None] @ per_slot], 1)  # [B, R + 1, ROLE_WIDTH]
        pair = []
        for a, b in self.pairs:
            wab = w[:, a, :, None] * w[:, b, None, :]  # [B, K, K]
            c = torch.einsum("btklr,bkl->btr", close, wab)  # [B, T', R_rad]
            t_hit = torch.einsum("btkl,bkl->bt", touch, wab) > TOUCH  # [B, T']
            first = torch.where(t_hit.any(1), t_hit.float().argmax(1).float(), torch.full_like(t_hit[:, 0], T, dtype=torch.float))
            pair.append(torch.cat([c.amax(1), c.mean(1), c[:, -1], (first / T)[:, None]], -1))  # [B, PAIR_WIDTH]
        pair = torch.stack(pair, 1)  # [B, P, PAIR_WIDTH]
        R = role.shape[1]
        tokens = torch.cat([
            torch.cat([role, role.new_zeros(B, R, PAIR_WIDTH)], -1),
            torch.cat([pair.new_zeros(B, len(self.pairs), ROLE_WIDTH), pair], -1),
        ], 1)
        is_pair = torch.tensor([False] * R + [True] * len(self.pairs), device=rows.device)
        return tokens.to(rows.dtype), is_pair, w


def _geometry(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Object rows r [B, T', K, OBJECT_ROW] (identity x gate, gate, x, y, ...) -> gates g [B, T', K],
    ungated centres pos [B, T', K, 2] (canvas units), centre distances d [B, T', K, K] (px) and
    both [B, T', K, K]: both slots visible, never a slot with itself."""
    g = r[..., VISIBLE].clamp(0, 1)
    pos = ungated(r[..., POS:POS + 2], g)
    d = (pos[:, :, :, None] - pos[:, :, None]).norm(dim=-1) * CANVAS_PX
    both = g[..., :, None] * g[..., None, :] * (1 - torch.eye(r.shape[2], device=r.device))
    return g, pos, d, both


def first_pick(rows: torch.Tensor, slots: int, w0: torch.Tensor) -> torch.Tensor:
    """The first token's slot weights [B, K] (see first_touched) for object rows [B, T'*K, D] and role
    0's pick w0 [B, K]: what the token reads, for evidence (`LanguageModule.binder_picks`)."""
    B, N, _ = rows.shape
    _, _, d, both = _geometry(rows[..., :OBJECT_ROW].float().reshape(B, N // slots, slots, OBJECT_ROW))
    return first_touched(torch.sigmoid((NEIGHBOUR_PX - d) / STEP_PX) * both, w0.float())


def first_touched(touch: torch.Tensor, w0: torch.Tensor) -> torch.Tensor:
    """touch [B, T', K, K] soft contacts, w0 [B, K] role 0's pick -> weights [B, K] on the slot(s) role 0
    touched first: contact sum_k w0_k touch_tkl (times 1 - w0_l: not itself) above TOUCH, the earliest
    step wins, ties share; all zero where nothing was touched."""
    T = touch.shape[1]
    hit = torch.einsum("btkl,bk->btl", touch, w0) * (1 - w0[:, None]) > TOUCH  # [B, T', K]
    step = torch.where(hit.any(1), hit.float().argmax(1), T)  # [B, K]; T: never
    earliest = step == step.min(-1, keepdim=True).values
    pick = (earliest & (step < T)).float()
    return pick / pick.sum(-1, keepdim=True).clamp_min(1)
