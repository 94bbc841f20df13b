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

Why expansions, not raw numbers: in the rows a speed sits at v / 32, so "moving" (about 2 units/s)
and "still" (about 1) differ by 0.03, and a contact kernel of 10 px put the answer-deciding
distances (10-20 px on the train split) at 0.3-0.01. A reader trained with Adam at ordinary
learning rates cannot grow weights large enough to separate such values. The first version of
these channels had exactly that form and gave nothing measurable (docs/benchmarks.md, part 5).
So each quantity is expanded as SchNet expands interatomic distances (Schuett et al. 2017): the
speed onto Gaussian bumps over its logarithm, distances onto soft steps "within r px", each
channel of order 1 where the answer is decided.

Channels per row (slot k, step t), all zero for a slot never present; every channel but `met` is
weighted by k's gate now, `met` keeps what k met after k leaves (the language module projects them
with their own projector and adds the result to the row's token; template_probe appends them):
    speed      Gaussian bumps over log2 of k's speed in units/s (ungated), x g_k        [len(SPEED_LOG2)]
    near       per radius r: max_j s_r(d_kj) g_j, someone within r px now, x g_k        [len(RADII)]
    neighbour  sum_j s_r(d_kj) g_j identity_j at r = NEIGHBOUR_PX: who is close now, x g_k  [I]
    first      neighbour at the first step <= t where g_k s_r(d_kj) g_j > TOUCH for some j at
               r = NEIGHBOUR_PX (about 16 px for two visible objects), zero before: whom k touched
               first, held from then on, x g_k                                            [I]
    met        per radius r: running max over steps <= t of sum_j s_r(d_kj) g_j g_k identity_j:
               whom k has come within r px of so far                                     [len(RADII) x I]
with s_r(d) = sigmoid((r - d) / STEP_PX) and d_kj the distance of the ungated centres in px.
"""

from __future__ import annotations

import torch

IDENT = 13      # identity columns: colour 8 + shape 3 + material 2
VISIBLE = 13    # the row's visible column: 1 x gate, so it holds the gate itself
POS = 14        # x, y / CANVAS_PX
VEL = 16        # vx, vy / SPEED_UNITS
OBJECT_ROW = 18  # the narrowest row these channels read (perception's rows; wider with static slots)
CANVAS_PX = 64.0    # the physics world's frame; rows hold positions / 64
SPEED_UNITS = 32.0  # rows hold velocities / 32 (units/s)
GATE_FLOOR = 0.05   # the smallest gate a row is ungated by (ungated)
# log2 speed bump centres: 0.25 ... 8 units/s, half an octave apart (train split: "moving at the end"
# yes/no medians 2.1 / 1.0 units/s); width half an octave
SPEED_LOG2 = tuple(-2.0 + 0.5 * i for i in range(11))
SPEED_WIDTH = 0.5
# contact radii in px (train split: closest approach of colliding pairs 3-21 px, 10th-90th
# percentile, of non-colliding 10-40 px); each soft step rises over about 2 px
RADII = (8.0, 12.0, 16.0, 20.0, 28.0)
STEP_PX = 2.0
NEIGHBOUR_PX = 14.0
TOUCH = 0.25  # "touching" for `first`: g_k s_r(d_kj) g_j above this at r = NEIGHBOUR_PX (a half-visible other counts)


def ungated(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Rows are base x gate: columns x [..., C] of rows whose gates are g [...] -> the base values.
    A near-absent row is divided by at most 1 / GATE_FLOOR; callers weight it out by its gate after."""
    return x * (1.0 / g.clamp_min(GATE_FLOOR)[..., None])


def relation_width(ident: int = IDENT) -> int:
    """Channels slot_relations appends to each row."""
    return len(SPEED_LOG2) + len(RADII) + 2 * ident + len(RADII) * ident


def slot_relations(x: torch.Tensor, slots: int) -> torch.Tensor:
    """x: [B, T'*K, D] time-major slot rows (D >= 18) -> the appended channels [B, T'*K, relation_width()]."""
    B, N, D = x.shape
    if N % slots or D < OBJECT_ROW:
        raise ValueError(f"slot_relations: {N} rows of width {D} are not [steps x {slots} slots] object rows")
    T = N // slots
    r = x.reshape(B, T, slots, D).float()
    g = r[..., VISIBLE].clamp(0, 1)  # [B, T', K]
    pos = ungated(r[..., POS:POS + 2], g) * CANVAS_PX  # [B, T', K, 2] px
    speed = ungated(r[..., VEL:VEL + 2], g).norm(dim=-1) * SPEED_UNITS  # [B, T', K] units/s
    centres = torch.tensor(SPEED_LOG2, device=x.device, dtype=r.dtype)
    bumps = torch.exp(-((torch.log2(speed + 2 ** -4)[..., None] - centres) / SPEED_WIDTH) ** 2)  # [B, T', K, S]

    d = (pos[:, :, :, None] - pos[:, :, None]).norm(dim=-1)  # [B, T', K, K] px
    other = (1 - torch.eye(slots, device=x.device, dtype=r.dtype)) * g[..., None, :]  # g_j, no contact with itself
    ident = ungated(r[..., :IDENT], g)  # [B, T', K, I]
    radii = torch.tensor(RADII, device=x.device, dtype=r.dtype)
    s = torch.sigmoid((radii - d[..., None]) / STEP_PX) * other[..., None]  # [B, T', K, K, R]
    near = s.amax(3)  # [B, T', K, R]
    close = torch.sigmoid((NEIGHBOUR_PX - d) / STEP_PX) * other  # [B, T', K, K]
    neighbour = close @ ident  # [B, T', K, I]
    touching = (close.amax(-1) * g > TOUCH).float()  # [B, T', K]: k itself visible too (an absent row sits at the origin)
    is_first = touching * (touching.cumsum(1) == 1)  # the first touching step, once
    first = (neighbour * is_first[..., None]).cumsum(1)  # [B, T', K, I]: zero before it, held after
    met = (torch.einsum("btkjr,btji->btkri", s, ident) * g[..., None, None]).cummax(dim=1).values  # [B, T', K, R, I]

    gk = g[..., None]
    out = torch.cat([bumps * gk, near * gk, neighbour * gk, first * gk, met.flatten(3)], -1)
    return out.reshape(B, N, relation_width()).to(x.dtype)
