"""Score perception's object slots on held-out clips, beside majority baselines.

    python -m cogarch.evals.bench.objects --perception runs/objects/final --data runs/pack/data/physqa --split val

For every clip of the split the exported perception folder (encoder + object head) predicts its slot
set from pixels; slots are matched to the clip's true objects (seen in any observed frame) with the
same Hungarian cost as training. Reported:
  count_acc      predicted objects (p(exist) > 0.5) == true objects, per clip
  color/shape/material_acc   class of each matched slot (per true object)
  pos_err_px     mean |x| + |y| error / 2 in pixels at steps where the object is in view
  visible_acc    per matched object and step; visible_acc_hidden: at the steps where the object is
                 NOT in view (behind the VoE screen or off the canvas), hidden_frac: their share
and, for a head with static slots (walls, floor, ramps, ledges, occluder):
  static_count_acc, static_kind_acc, static_box_err_px (mean |coordinate| error of matched elements)
and, as baselines, the majority count and majority classes of the TRAIN split (what a head that
ignores the pixels would score). Prints one JSON object; --out writes it too.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import torch

from cogarch.evals.bench import cli
from cogarch.fsutil import atomic_write_json


@torch.no_grad()
def score(perception: str, data: str, split: str, batch: int = 50, max_clips: int = 0) -> dict:
    from cogarch.errors import UserError
    from cogarch.modules.perception.objects import CANVAS, match, match_statics
    from cogarch.modules.perception.objects_train import encode_split, load_with_head, split_targets

    model = load_with_head(perception)
    if model.objects is None:
        raise UserError(f"{perception}: this perception module has no object slots (train them: cogarch train objects)")
    model.eval()
    tokens, targets, frames = encode_split(model, data, split, max_clips, progress=True)
    train_targets = split_targets(model, data, "train", cache=False)[1]  # the majority baselines are fit there
    n_obj = count_ok = vis_ok = vis_n = hid_ok = hid_n = 0
    st = Counter()
    correct = Counter()
    pos_err, pos_n = 0.0, 0
    for i in range(0, len(targets), batch):
        out = model.objects(tokens[i : i + batch].float(), None if frames is None else frames[i : i + batch].float())
        tg = targets[i : i + batch]
        pairs = match(out, tg)
        for b, ((si, oi), y) in enumerate(zip(pairs, tg)):
            count_ok += int(int((out["exist"][b] > 0).sum()) == y["color"].numel())
            for key in ("color", "shape", "material"):
                correct[key] += int((out[key][b, si].argmax(-1) == y[key][oi]).sum())
            n_obj += si.numel()
            w = y["visible"][oi]  # [m, T']
            vis_ok += int(((out["visible"][b, si] > 0).float() == w).sum())
            vis_n += w.numel()
            hid_ok += int(((out["visible"][b, si] <= 0) & (w == 0)).sum())
            hid_n += int((w == 0).sum())
            err = (out["pos"][b, si] - y["pos"][oi]).abs().mean(-1) * CANVAS  # [m, T'] px
            pos_err += float((err * w).sum())
            pos_n += int(w.sum())
        if "static_exist" in out:
            for b, ((si, oi), y) in enumerate(zip(match_statics(out, tg), tg)):
                st["count"] += int(int((out["static_exist"][b] > 0).sum()) == y["static_kind"].numel())
                st["kind"] += int((out["static_kind"][b, si].argmax(-1) == y["static_kind"][oi]).sum())
                st["box"] += float((out["static_box"][b, si] - y["static_box"][oi]).abs().mean(-1).sum()) * CANVAS
                st["n"] += si.numel()
    res = {"split": split, "clips": len(targets), "objects": n_obj,
           "count_acc": count_ok / max(len(targets), 1),
           **{f"{k}_acc": correct[k] / max(n_obj, 1) for k in ("color", "shape", "material")},
           "pos_err_px": pos_err / max(pos_n, 1), "visible_acc": vis_ok / max(vis_n, 1),
           "visible_acc_hidden": hid_ok / hid_n if hid_n else None, "hidden_frac": hid_n / max(vis_n, 1)}
    if st:
        res.update(static_count_acc=st["count"] / max(len(targets), 1), static_kind_acc=st["kind"] / max(st["n"], 1),
                   static_box_err_px=st["box"] / max(st["n"], 1), static_elements=st["n"])
    res["baselines"] = majority_baselines(train_targets, targets)
    return res


def majority_baselines(train: list[dict], held_out: list[dict]) -> dict:
    """Accuracy on `held_out` of always answering the train split's most common count / class."""
    out = {}
    top_count = Counter(y["color"].numel() for y in train).most_common(1)[0][0]
    out["count_acc"] = sum(y["color"].numel() == top_count for y in held_out) / max(len(held_out), 1)
    n = sum(y["color"].numel() for y in held_out)
    for key in ("color", "shape", "material"):
        top = Counter(int(v) for y in train for v in y[key]).most_common(1)[0][0]
        out[f"{key}_acc"] = sum(int((y[key] == top).sum()) for y in held_out) / max(n, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--perception", required=True, help="perception folder with object slots (cogarch train objects)")
    ap.add_argument("--data", required=True, help="a generated suite with object annotations")
    ap.add_argument("--split", default="val")
    ap.add_argument("--max-clips", type=int, default=0)
    ap.add_argument("--out", default="", help="also write the JSON here")
    a = ap.parse_args()
    res = score(a.perception, a.data, a.split, max_clips=a.max_clips)
    if a.out:
        atomic_write_json(a.out, res)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    cli(main)
