"""How faithfully perceived object rows follow the VoE "hero" (the object a violation acts on).

    python -m cogarch.evals.bench.voe_hero_rows --perceived runs/perc_voe/feat_s6/eval/voe.safetensors \
        --true runs/voe_static/eval27/voe.safetensors --data runs/voeq2000 --split test --object-slots 6

A VoE clip is judged on one object's row: the hero vanishes, jumps, passes a wall or floats. The
objects bench (objects.py) averages over every object and step; this one looks at the hero only,
per violation type, possible (P) vs impossible (I) clips, and before vs from the violation step on.
The hero's true row is its slot in the oracle shard (voe_oracle.py: slot j = the clip's j-th
object); its perceived slot is the one of the first `--object-slots` whose gate-weighted identity
(colour | shape | material columns summed over steps) is most similar (cosine) to the hero's true
identity, so a clip with two look-alike objects may pick the wrong slot. Per group it reports the
share of steps the hero is truly in view, how often the perceived gate (p(exist) p(visible) > 0.5)
agrees, and the position error in pixels where both say "in view". Both shards must hold the same
clips in the same order (both are written over the whole suite).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import torch

from cogarch.evals.bench import cli
from cogarch.evals.bench.oracle_bus import DIM, identity

N_ID = DIM - 5  # the colour | shape | material columns of the 18-wide object rows (oracle_bus.py)


def _load(path: str) -> tuple[list[str], torch.Tensor]:
    """(clip ids, latents [N, T', P, D] float) of a world-model feature shard."""
    from cogarch.evals.bench.shard_slice import read_shard

    meta, lat = read_shard(path)
    return json.loads(meta["clip_ids"]), lat.float()


def hero_rows(perceived: str, true: str, data: str, split: str = "test", object_slots: int = 6) -> list[dict]:
    """One dict per (type, P/I, phase): clips, steps, true_visible, visible_agree, pos_err_px."""
    from datasets import load_from_disk

    from cogarch.errors import UserError

    ids, P = _load(perceived)
    ids_true, O = _load(true)
    if ids != ids_true:
        raise UserError(f"{perceived} and {true} do not hold the same clips in the same order")
    if not 0 < object_slots <= P.shape[2]:
        raise UserError(f"--object-slots {object_slots}: the perceived shard has {P.shape[2]} slots per step")
    index = {c: i for i, c in enumerate(ids)}
    acc: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    clips: dict[tuple, set] = defaultdict(set)
    try:
        rows = load_from_disk(f"{data}/clips")[split]
    except (FileNotFoundError, KeyError) as e:
        raise UserError(f"{data}: no generated suite with a {split!r} split ({e})") from None
    for r in rows:
        v = json.loads(r["annotations"]).get("voe")
        if not v or r["clip_id"] not in index:
            continue
        objects = json.loads(r["objects"])
        hero = [n for n, ob in enumerate(objects) if ob["id"] == v["violated_obj"]]
        if not hero:
            raise UserError(f"{r['clip_id']}: its violated object {v['violated_obj']} is not among its objects")
        j = hero[0]
        o, p = O[index[r["clip_id"]]], P[index[r["clip_id"]]]  # [T', slots, D]
        vis = o[:, j, N_ID] > 0  # [T'] hero in view (true)
        ident = identity(objects[j])
        pid = p[:, :object_slots, :N_ID].sum(0)  # [K, 13]: gate-weighted identity of each perceived slot
        k = int((pid / pid.norm(dim=-1, keepdim=True).clamp(min=1e-6) @ ident).argmax())
        gate = p[:, k, N_ID]
        xy_p = p[:, k, N_ID + 1 : N_ID + 3] / gate[:, None].clamp(min=1e-3) * 64  # un-gated pixels
        xy_t = o[:, j, N_ID + 1 : N_ID + 3] * 64
        per = max(1, int(r["observed_frames"]) // o.shape[0])  # frames per step (4 in a 32-frame clip)
        v_step = min(o.shape[0] - 1, int(v["violation_frame"]) // per)
        for t in range(o.shape[0]):
            key = (v["violation"], "P" if v["possible"] else "I", "before" if t < v_step else "after")
            clips[key].add(r["clip_id"])
            acc[key]["true_visible"].append(float(vis[t]))
            acc[key]["visible_agree"].append(float(bool(gate[t] > 0.5) == bool(vis[t])))
            if vis[t] and gate[t] > 0.5:
                acc[key]["pos_err_px"].append(float((xy_p[t] - xy_t[t]).abs().mean()))
    if not acc:
        raise UserError(f"{data}: split {split!r} has no VoE clips in these shards")
    out = []
    for key in sorted(acc):
        d = acc[key]
        out.append({"type": key[0], "clips": key[1], "phase": key[2], "n_clips": len(clips[key]), "steps": len(d["true_visible"]),
                    "true_visible": sum(d["true_visible"]) / len(d["true_visible"]),
                    "visible_agree": sum(d["visible_agree"]) / len(d["visible_agree"]),
                    "pos_err_px": sum(d["pos_err_px"]) / len(d["pos_err_px"]) if d["pos_err_px"] else None})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--perceived", required=True, help="world-model shard of perceived object rows")
    ap.add_argument("--true", required=True, help="the oracle shard of the same suite (voe_oracle.py)")
    ap.add_argument("--data", required=True, help="the VoE suite both shards were written from")
    ap.add_argument("--split", default="test")
    ap.add_argument("--object-slots", type=int, default=6, help="perceived object slots per step (before any static slots)")
    a = ap.parse_args()
    rows = hero_rows(a.perceived, a.true, a.data, a.split, a.object_slots)  # before any output: no half table
    print("| type | clips | phase | n clips | hero truly in view % | perceived agrees % | position error px |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        pos = "—" if r["pos_err_px"] is None else f"{r['pos_err_px']:.1f}"
        print(f"| {r['type']} | {r['clips']} | {r['phase']} | {r['n_clips']} | {100 * r['true_visible']:.0f} | "
              f"{100 * r['visible_agree']:.0f} | {pos} |")


if __name__ == "__main__":
    cli(main)
