"""Relation channels for object-slot rows: speed, contact and who is in contact, per slot and step.

Perception publishes one row per object slot per latent step (time-major [T' x K, 18]):
    [colour probs (8) | shape probs (3) | material probs (2) | visible | x, y | vx, vy] * gate
with gate = p(exist) x p(visible) (modules/perception/objects.py; the world model's object
forecast uses the same layout). A fixed rule on these rows answers "did X and Y collide", "what
does X hit first" and "is X moving at the end" far better than the language module or a small
probe trained on them (docs/benchmarks.md, "What the object slots hold"): the answers need a
distance between two rows and a speed, products of columns a small reader does not discover from a
few thousand questions. These channels compute them from the rows themselves, so a reader gets
them the way Interaction Networks (Battaglia et al. 2016) and relation networks (Santoro et al.
2017) get pairwise terms: computed for every pair, not learned per question. Nothing here reads
ground truth or the question; the language module still has to find the named objects and read
the channels.

Channels per row (slot k, step t), all zero for an absent slot (the language module projects them
with their own projector and adds the result to the row's token; template_probe appends them):
    speed        |v_k| (ungated) x g_k                                                  [1]
    contact      max_j c_kj, with c_kj = exp(-(|p_k - p_j| / scale)^2) g_k g_j (j != k) [1]
    neighbour    sum_j c_kj x identity_j: the identity of whoever is close to k now      [I]
    met          running max over steps <= t of neighbour: whoever k has come close to  [I]
"""

from __future__ import annotations

import torch

IDENT = 13      # identity columns: colour 8 + shape 3 + material 2
VISIBLE = 13    # the row's visible column: 1 x gate, so it holds the gate itself
POS = 14        # x, y / 64
VEL = 16        # vx, vy / 32
OBJECT_ROW = 18  # the narrowest row these channels read (perception's rows; wider with static slots)
SCALE = 0.15    # contact kernel width in canvas units (/ 64): about 10 px, an object's diameter


def relation_width(ident: int = IDENT) -> int:
    """Channels slot_relations appends to each row."""
    return 2 + 2 * ident


def slot_relations(x: torch.Tensor, slots: int, scale: float = SCALE) -> torch.Tensor:
    """x: [B, T'*K, D] time-major slot rows (D >= 18) -> the appended channels [B, T'*K, relation_width()]."""
    B, N, D = x.shape
    if N % slots or D < OBJECT_ROW:
        raise ValueError(f"slot_relations: {N} rows of width {D} are not [steps x {slots} slots] object rows")
    T = N // slots
    r = x.reshape(B, T, slots, D).float()
    g = r[..., VISIBLE].clamp(0, 1)  # [B, T', K]
    ungate = 1.0 / g.clamp_min(0.05)[..., None]  # rows are base x gate; a near-absent row is weighted out below
    pos = r[..., POS:POS + 2] * ungate  # [B, T', K, 2]
    speed = (r[..., VEL:VEL + 2] * ungate).norm(dim=-1) * g  # [B, T', K]
    d = (pos[:, :, :, None] - pos[:, :, None]).norm(dim=-1)  # [B, T', K, K]
    c = torch.exp(-(d / scale) ** 2) * g[..., :, None] * g[..., None, :]
    c = c * (1 - torch.eye(slots, device=x.device, dtype=c.dtype))  # no contact with itself
    contact = c.amax(-1)  # [B, T', K]
    neighbour = c @ (r[..., :IDENT] * ungate)  # [B, T', K, I]: identity_j = row_j / g_j (c holds g_j)
    met = neighbour.cummax(dim=1).values  # running max over time
    out = torch.cat([speed[..., None], contact[..., None], neighbour, met], -1)
    return out.reshape(B, N, relation_width()).to(x.dtype)
