"""Object-centric readout of the V-JEPA tokens: a DETR-style set predictor (perception's `objects`).

Why: the encoder's patch tokens carry WHAT is in a clip (a frozen probe reads "a red object is
present" at 0.91 AUROC) but not which colour belongs to which shape (0.77), and most physqa
questions need exactly that binding. With ground-truth object tokens the language module reaches
59 % on val; with the pooled patch tokens 44 % (docs/bench_pack_history.md, "Object slots"). So perception gets a second
output: K object slots, each a tracked object with its identity and its trajectory.

How (DETR, Carion et al. 2020): K learned queries cross-attend to the frozen encoder tokens (plus a
learned map of each token's 3-D sin-cos position: the encoder's tokens carry none, V-JEPA 2 uses
RoPE inside attention only) through a small transformer decoder. Optionally (`pixels` > 0) a small
CNN reads the frames themselves, down to the encoder's patch grid, and its map is added to the
tokens. Why: physics-world objects are about 7 px wide, under one 8 px patch, and from the frozen
tokens alone the slots count right on 56 % of clips and name 72 % of shapes (49 % and 69 % on a
random-init encoder; docs/benchmarks.md, "The v9 recipe on an untrained encoder"); DETR itself
reads a CNN's map. Each slot predicts
  exist      is this slot an object?                       [B, K]
  colour / shape / material logits                         [B, K, C_*]
  visible    per latent step t', is the object in view?    [B, K, T']
  pos, vel   per latent step, (x, y) / 64 and (vx, vy) / 32 [B, K, T', 2]
A clip-level slot (not a per-frame detection) keeps one object's identity across time, which the
reader needs ("did the red cube move?"). Training matches slots to the clip's true objects with the
Hungarian algorithm (scipy's linear_sum_assignment) and is supervised only by the TRAIN split's
simulator annotations; the encoder stays frozen (the standard frozen-feature protocol of V-JEPA's
probes). At `ask` time nothing but the pixels goes in.

Published tokens use the same 18-D layout as the ground-truth diagnostic (evals/bench/oracle_bus.py)
so the two are directly comparable, one token per slot per step, time-major:
    [colour probs | shape probs | material probs | visible | x, y | vx, vy] * p(exist) * p(visible)

Static slots (`statics` S > 0): S more queries, decoded with the object queries (so each side sees
the other), read the scene's static elements: walls, floor, ramps, ledges and the side view's
occluder (evals/world/vocab.STATIC_KINDS). An object's track alone cannot say whether a ball
stopped at a wall or passed through one, or rests on a shelf or on nothing; on the simulator's true
tracks the world model's VoE solidity score rises from 50 % to 78-85 % once it gets these rows
(docs/bench_world_model.md, section 7). Each static slot predicts
  static_exist  [B, S],  static_kind logits [B, S, C_kind],  static_box (x0, y0, x1, y1) / 64 [B, S, 4]
(a segment's end points or the occluder's box), matched to the scene's elements like the objects.
With statics the published rows are 18 + C_kind + 4 wide, in the VoE oracle's layout: K object
rows [object columns | zeros], then S static rows [zeros | kind probs | box] * p(exist), the same
at every step (the scene does not move).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cogarch.modules.perception.probe import sincos_3d  # the probe's fixed 3-D position code

CANVAS = 64.0  # annotation units of the physics world: 1 unit = 1 px of a 64 x 64 frame
SPEED = 32.0   # velocity scale (units/s) so typical speeds are O(1)


class ObjectHead(nn.Module):
    """Frozen tokens [B, T'*H'*W', D] -> K object slots (see the file docstring)."""

    def __init__(self, dim: int, grid: tuple[int, int, int], slots: int, hidden: int, layers: int, heads: int,
                 blocks: int, classes: tuple[int, int, int], step_layers: int = 0, pixels: int = 0,
                 patch: int = 8, tubelet: int = 2, statics: int = 0, static_kinds: int = 0) -> None:
        super().__init__()
        self.grid, self.slots, self.classes = tuple(grid), slots, tuple(classes)
        self.inp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden))
        self.register_buffer("pos_code", sincos_3d(self.grid), persistent=False)  # [N, 48]
        self.pos_proj = nn.Sequential(nn.Linear(self.pos_code.shape[1], hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.pixels, self.patch, self.tubelet = pixels, patch, tubelet
        if pixels:
            if patch < 2 or patch & (patch - 1):
                raise ValueError(f"object head: the pixel branch needs a power-of-two patch size, got {patch}")
            # One step's tubelet of frames, stacked as channels (so the stem sees motion), down to the
            # encoder's patch grid by stride-2 3x3 convolutions (log2(patch) of them; receptive field
            # 15 px at patch 8). Its map is ADDED to the patch tokens: the memory the slots read keeps
            # its size, so the decoder costs what it did, and the convolutions can code where in
            # its 8 px cell an object sits, which a patch token of a frozen encoder does not keep.
            # (Padding 1 centres map cell j on the top-left pixel of patch j, half a patch off its
            # centre, so the cell sees patch j and the last 7 px of patch j-1; the learned position
            # code and the 15 px field absorb that. The shipped v10 head was trained this way; a
            # centred variant (k=4, p=1) is untested.)
            convs, c_in, c = [], 3 * tubelet, pixels
            for _ in range(patch.bit_length() - 1):
                convs += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GELU()]
                c_in, c = c, min(2 * c, 4 * pixels)
            self.stem = nn.Sequential(*convs, nn.Conv2d(c_in, hidden, 1))
        self.blocks = nn.ModuleList(  # DETR's encoder: lets tokens of one object gather before the slots read them
            nn.TransformerEncoderLayer(hidden, heads, 4 * hidden, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
            for _ in range(blocks)
        )
        self.queries = nn.Parameter(torch.randn(slots, hidden) * 0.02)
        self.statics, self.static_kinds = statics, static_kinds
        if statics:
            if static_kinds < 1:
                raise ValueError("object head: static slots need at least one static kind")
            self.static_queries = nn.Parameter(torch.randn(statics, hidden) * 0.02)
            self.static_out = nn.Linear(hidden, 1 + static_kinds + 4)  # exist | kind | box
        layer = nn.TransformerDecoderLayer(hidden, heads, 4 * hidden, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers, norm=nn.LayerNorm(hidden))
        n_col, n_shape, n_mat = self.classes
        self.attr = nn.Linear(hidden, 1 + n_col + n_shape + n_mat)  # exist | colour | shape | material
        T = self.grid[0]
        self.step_layers = step_layers
        if step_layers:
            # Per-step readout: slot k at step t' queries ONLY step t''s tokens (slot vector + a step
            # embedding; with blocks > 0 those tokens have already mixed across steps). A clip-level slot vector read by an MLP codes a whole trajectory in one
            # vector and smooths it: a sudden jump (a VoE teleport) came out as a shifted smooth
            # track (docs/benchmarks.md, "Object world model"). Self-attention among the K slots
            # of one step keeps two slots from reading the same object.
            self.step_embed = nn.Parameter(torch.randn(T, hidden) * 0.02)
            step = nn.TransformerDecoderLayer(hidden, heads, 4 * hidden, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
            self.step_decoder = nn.TransformerDecoder(step, step_layers, norm=nn.LayerNorm(hidden))
            self.track = nn.Linear(hidden, 5)
        else:  # v8 heads: the whole track from the clip-level slot vector
            self.track = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, T * 5))

    def forward(self, tokens: torch.Tensor, frames: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """tokens [B, T'H'W', D]; frames [B, T, 3, H, W] normalised (needed only with the pixel branch)."""
        B, N, _ = tokens.shape
        if N != self.pos_code.shape[0]:
            raise ValueError(f"object head: {N} tokens per clip, but its grid {self.grid} has {self.pos_code.shape[0]}")
        x = self.inp(tokens) + self.pos_proj(self.pos_code)  # [B, N, h]
        if self.pixels:
            x = self.with_pixels(x, frames)  # [B, T'H'W', h]
        for block in self.blocks:
            x = block(x)
        q = self.queries if not self.statics else torch.cat([self.queries, self.static_queries])
        s = self.decoder(q.expand(B, -1, -1), x)  # [B, K(+S), h]
        s, s_static = s[:, : self.slots], s[:, self.slots :]
        n_col, n_shape, n_mat = self.classes
        a = self.attr(s)  # [B, K, 1 + C]
        tr = self.read_tracks(s, x)  # [B, K, T', 5]
        extra = {}
        if self.statics:
            st = self.static_out(s_static)  # [B, S, 1 + C_kind + 4]
            extra = {"static_exist": st[..., 0], "static_kind": st[..., 1 : 1 + self.static_kinds],
                     "static_box": st[..., 1 + self.static_kinds :]}
        return extra | {
            "exist": a[..., 0],
            "color": a[..., 1 : 1 + n_col],
            "shape": a[..., 1 + n_col : 1 + n_col + n_shape],
            "material": a[..., 1 + n_col + n_shape :],
            "visible": tr[..., 0],
            "pos": tr[..., 1:3],
            "vel": tr[..., 3:5],
        }

    def with_pixels(self, x: torch.Tensor, frames: torch.Tensor | None) -> torch.Tensor:
        """Token memory [B, T'H'W', h] + the stem's map of `frames` [B, T, 3, H, W] at the same grid."""
        T, gh, gw = self.grid
        if frames is None:
            raise ValueError("object head: this head has a pixel branch; pass the clip's frames too")
        B = x.shape[0]
        want = (B, T * self.tubelet, 3, gh * self.patch, gw * self.patch)
        if tuple(frames.shape) != want:
            raise ValueError(f"object head: frames {tuple(frames.shape)}, expected {list(want)}")
        f = frames.reshape(B * T, 3 * self.tubelet, *want[3:]).to(x.dtype)  # a step's frames as channels
        p = self.stem(f)  # [B*T', h, H', W']
        return x + p.flatten(2).transpose(1, 2).reshape(B, T * gh * gw, -1)  # time-major, row-major like the tokens

    def read_tracks(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Slots [B, K, h] and tokens [B, T'H'W', h] -> per-step (visible, x, y, vx, vy) [B, K, T', 5]."""
        B, K, h = s.shape
        T = self.grid[0]
        if not self.step_layers:
            return self.track(s).view(B, K, T, 5)
        q = (s[:, None] + self.step_embed[None, :, None]).reshape(B * T, K, h)  # [B*T', K, h]
        mem = x.reshape(B * T, -1, h)  # [B*T', H'W', h]: time-major tokens, one step per row
        out = self.step_decoder(q, mem)  # [B*T', K, h]
        return self.track(out).view(B, T, K, 5).transpose(1, 2)

    @staticmethod
    def tokens(out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Slots -> bus tokens [B, T'*K, 18] (time-major) and their step index [B, T'*K]; with static
        slots [B, T'*(K+S), 18 + C_kind + 4] (the file docstring's layout)."""
        B, K, T = out["visible"].shape
        ident = torch.cat([out["color"].softmax(-1), out["shape"].softmax(-1), out["material"].softmax(-1)], -1)
        gate = out["exist"].sigmoid()[..., None] * out["visible"].sigmoid()  # [B, K, T']
        rows = torch.cat([ident[:, :, None].expand(-1, -1, T, -1), torch.ones_like(gate)[..., None], out["pos"], out["vel"]], -1)
        rows = rows * gate[..., None]  # [B, K, T', 18]: an absent or unseen object is a zero row, as in the oracle
        if "static_exist" in out:
            S = out["static_exist"].shape[1]
            st = torch.cat([out["static_kind"].softmax(-1), out["static_box"]], -1) * out["static_exist"].sigmoid()[..., None]
            rows = torch.cat([torch.cat([rows, rows.new_zeros(B, K, T, st.shape[-1])], -1),
                              torch.cat([rows.new_zeros(B, S, T, rows.shape[-1]), st[:, :, None].expand(-1, -1, T, -1)], -1)], 1)
            K = K + S  # [B, K+S, T', 18 + C_kind + 4]
        time = torch.arange(T, device=rows.device).repeat_interleave(K).expand(B, -1)
        return rows.transpose(1, 2).reshape(B, T * K, -1), time


# ------------------------------------------------------------------------------------ supervision
def clip_targets(objects: list[dict], annotations: dict, steps: int,
                 vocab: tuple[list[str], list[str], list[str]], frames_seen: int = 0,
                 static_kinds: tuple[str, ...] = (), spread: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
    """A physics-world clip's truth as set targets over its objects seen in any frame the encoder reads.

    Step t' is read at the last frame of its tubelet (the state the encoder's token ends on). Which
    frames those are depends on how the clip is read:
      spread=(n, m): m frames spread uniformly over the video's n frames (cogarch.video.read_clip
        with fps=None, as feature encoding and `ask` read a clip): sample i is frame
        floor((i + 0.5) n / m), and step t' ends on sample (t' + 1) m / T' - 1;
      otherwise the first `frames_seen` observed frames (0: all), step t' ending on frame
        (t' + 1) per - 1 with per = frames // T', as in the ground-truth diagnostic.
    Returns colour/shape/material [M] (long), visible [M, T'] (float), pos / vel [M, T', 2]
    normalised like the published tokens; with `static_kinds`, also the scene's static elements:
    static_kind [M_s] (long) and static_box [M_s, 4] / 64."""
    tracks, observed = annotations["tracks"], int(annotations["observed_frames"])
    if spread is not None:
        n, m = spread
        per_step = max(1, m // steps)
        read = [min(n - 1, int((i + 0.5) * n / m)) for i in range(m)]  # the frames the encoder sees
        frames = [read[min(m - 1, (t + 1) * per_step - 1)] for t in range(steps)]
        seen = read[-1] + 1
    else:
        seen = min(observed, frames_seen) if frames_seen > 0 else observed
        per = max(1, seen // steps)
        frames = [min((t + 1) * per - 1, seen - 1) for t in range(steps)]
    cols, shps, mats, vis, pos, vel = [], [], [], [], [], []
    for ob in objects:
        tr = tracks[str(ob["id"])]
        if not any(tr["visible"][:seen]):
            continue  # never in view: no camera could report it
        for name, key, out in ((0, "color", cols), (1, "shape", shps), (2, "material", mats)):
            if ob[key] not in vocab[name]:
                raise ValueError(f"object {ob['id']}: {key} {ob[key]!r} is not in the head's vocabulary {vocab[name]}")
            out.append(vocab[name].index(ob[key]))
        vis.append([float(bool(tr["visible"][f])) for f in frames])
        pos.append([[tr["pos"][f][0] / CANVAS, tr["pos"][f][1] / CANVAS] for f in frames])
        vel.append([[tr["vel"][f][0] / SPEED, tr["vel"][f][1] / SPEED] for f in frames])
    M = len(cols)
    out = {}
    if static_kinds:
        from cogarch.evals.world.vocab import static_elements

        elems = static_elements(annotations.get("scene", {}))
        for kind, _ in elems:
            if kind not in static_kinds:
                raise ValueError(f"static kind {kind!r} is not in the head's vocabulary {list(static_kinds)}")
        out = {"static_kind": torch.tensor([static_kinds.index(k) for k, _ in elems], dtype=torch.long),
               "static_box": torch.tensor([b for _, b in elems], dtype=torch.float32).view(-1, 4) / CANVAS}
    return out | {
        "color": torch.tensor(cols, dtype=torch.long), "shape": torch.tensor(shps, dtype=torch.long),
        "material": torch.tensor(mats, dtype=torch.long),
        "visible": torch.tensor(vis, dtype=torch.float32).view(M, steps),
        "pos": torch.tensor(pos, dtype=torch.float32).view(M, steps, 2),
        "vel": torch.tensor(vel, dtype=torch.float32).view(M, steps, 2),
    }


def _pair_costs(out: dict[str, torch.Tensor], b: int, tgt: dict[str, torch.Tensor]) -> torch.Tensor:
    """[K, M] matching cost of slot k for object m (classification NLL + visibility BCE + track L1)."""
    K, M = out["exist"].shape[1], tgt["color"].shape[0]
    c = -out["color"][b].log_softmax(-1)[:, tgt["color"]] - out["shape"][b].log_softmax(-1)[:, tgt["shape"]]
    c = c - out["material"][b].log_softmax(-1)[:, tgt["material"]] - F.logsigmoid(out["exist"][b])[:, None]
    vis_logit = out["visible"][b][:, None].expand(K, M, -1)
    c = c + F.binary_cross_entropy_with_logits(vis_logit, tgt["visible"][None].expand(K, M, -1), reduction="none").mean(-1)
    w = tgt["visible"][None, :, :, None]  # L1 only where the object is in view
    l1 = ((out["pos"][b][:, None] - tgt["pos"][None]).abs() * w).sum((-1, -2)) / w.sum((-1, -2)).clamp(min=1)
    return c + 5.0 * l1


def _hungarian(out: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]], costs, key: str
               ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per clip, the minimum-cost assignment of slots to the targets counted by `key`, with
    costs(out, b, target) -> [slots, M]: [(slot indices, target indices)] (DETR's bipartite loss)."""
    from scipy.optimize import linear_sum_assignment

    pairs = []
    with torch.no_grad():
        for b, tgt in enumerate(targets):
            if tgt[key].numel() == 0:
                pairs.append((torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)))
                continue
            rows, cols = linear_sum_assignment(costs(out, b, tgt).float().cpu().numpy())
            pairs.append((torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)))
    return pairs


def match(out: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Hungarian matching of object slots to each clip's objects: [(slot indices, object indices)]."""
    return _hungarian(out, targets, _pair_costs, "color")


def _static_costs(out: dict[str, torch.Tensor], b: int, tgt: dict[str, torch.Tensor]) -> torch.Tensor:
    """[S, M_s] matching cost of static slot s for scene element m (kind NLL + exist + box L1)."""
    c = -out["static_kind"][b].log_softmax(-1)[:, tgt["static_kind"]] - F.logsigmoid(out["static_exist"][b])[:, None]
    return c + 5.0 * (out["static_box"][b][:, None] - tgt["static_box"][None]).abs().mean(-1)


def match_statics(out: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Hungarian matching of static slots to each clip's static elements (as `match` for objects)."""
    return _hungarian(out, targets, _static_costs, "static_kind")


def static_loss(out: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, dict[str, float]]:
    """Matched static-slot loss: exist BCE on every static slot, kind CE + box L1 on matched ones."""
    for t in targets:
        if len(t["static_kind"]) > out["static_exist"].shape[1]:
            raise ValueError(f"a clip has {len(t['static_kind'])} static elements, more than the head's "
                             f"{out['static_exist'].shape[1]} static slots")
    pairs = match_statics(out, targets)
    dev = out["static_exist"].device
    exist_t = torch.zeros_like(out["static_exist"])
    ce = box = out["static_exist"].new_zeros(())
    n, right = 0, 0
    for b, ((si, oi), tgt) in enumerate(zip(pairs, targets)):
        if si.numel() == 0:
            continue
        si, oi = si.to(dev), oi.to(dev)
        exist_t[b, si] = 1.0
        logits, y = out["static_kind"][b, si], tgt["static_kind"].to(dev)[oi]
        ce = ce + F.cross_entropy(logits, y, reduction="sum")
        right += int((logits.argmax(-1) == y).sum())
        box = box + (out["static_box"][b, si] - tgt["static_box"].to(dev)[oi]).abs().mean(-1).sum()
        n += si.numel()
    exist = F.binary_cross_entropy_with_logits(out["static_exist"], exist_t)
    loss = exist + (ce + 5.0 * box) / max(n, 1)
    count_ok = ((out["static_exist"] > 0).sum(1) == exist_t.sum(1)).float().mean()
    return loss, {"static_count_acc": float(count_ok), "static_kind_acc": right / max(n, 1),
                  "static_box_l1": float(box.detach()) / max(n, 1)}


def set_loss(out: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, dict[str, float]]:
    """Matched-slot loss: exist BCE on every slot, identity CE + visibility BCE + track L1 on matched."""
    pairs = match(out, targets)
    dev = out["exist"].device
    exist_t = torch.zeros_like(out["exist"])
    ce = vis = trk = out["exist"].new_zeros(())
    n_obj = 0
    correct = {"color": 0, "shape": 0, "material": 0}
    for b, ((si, oi), tgt) in enumerate(zip(pairs, targets)):
        if si.numel() == 0:
            continue
        si, oi = si.to(dev), oi.to(dev)
        exist_t[b, si] = 1.0
        for key in correct:
            logits, y = out[key][b, si], tgt[key].to(dev)[oi]
            ce = ce + F.cross_entropy(logits, y, reduction="sum")
            correct[key] += int((logits.argmax(-1) == y).sum())
        tv = tgt["visible"].to(dev)[oi]  # [m, T']
        vis = vis + F.binary_cross_entropy_with_logits(out["visible"][b, si], tv, reduction="sum") / tv.shape[1]
        w = tv[..., None]
        err = (out["pos"][b, si] - tgt["pos"].to(dev)[oi]).abs() + (out["vel"][b, si] - tgt["vel"].to(dev)[oi]).abs()
        trk = trk + (err * w).sum() / (w.sum().clamp(min=1) * 4) * si.numel()  # mean per visible coordinate, per object
        n_obj += si.numel()
    n = max(n_obj, 1)
    exist = F.binary_cross_entropy_with_logits(out["exist"], exist_t)
    loss = exist + ce / n + vis / n + 5.0 * trk / n
    count_ok = ((out["exist"] > 0).sum(1) == exist_t.sum(1)).float().mean()
    metrics = {"exist_bce": float(exist.detach()), "count_acc": float(count_ok), "track_l1": float(trk.detach() / n)}
    metrics.update({f"{k}_acc": v / n for k, v in correct.items()})
    if "static_exist" in out:
        l_static, m_static = static_loss(out, targets)
        loss = loss + l_static
        metrics.update(m_static)
    return loss, metrics
