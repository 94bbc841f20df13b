"""Ceiling diagnostic for VoE: world-model feature shards written from the simulator's TRUE tracks.

On balanced VoE quadruplets every predictor over the pack's perceived object slots is at chance
(docs/benchmarks.md, "Balanced VoE quadruplets"). This separates the two suspects: perception (the
slots do not carry the objects faithfully) and the predictor (it cannot tell lawful from unlawful
motion even with perfect tracks). It writes shards in the world model's format (`latents`
[N, T', K, 18] plus clip_ids / splits / extras, as `cogarch.features.write_world_model_features`
writes for kind="objects"), whose rows are what a PERFECT object-centric perception would publish
(evals/bench/oracle_bus.py's layout: identity one-hots 13 | visible | x, y | vx, vy; zero where the
object is not visible). Slot k is always object k of the clip. A clip's 8 steps span ALL its
simulated frames: a physqa clip's 16 observed and 16 future frames (32, so 4 frames per step, the
same time scale as a 32-frame VoE clip read as 8 steps by the pipeline). Then train the object world
model on them and score the quadruplets with evals/bench/voe_scores.py:

    python -m cogarch.evals.bench.voe_oracle --data runs/vf/physqa runs/voeq2000 --out runs/voe_oracle/features
    cogarch train world_model --config configs/world_model/objects_tiny.yaml \\
        data.features_dir=runs/voe_oracle/features trainer.out_dir=runs/voe_oracle/wm trainer.seed=0
    python -m cogarch.evals.bench.voe_scores --world-model runs/voe_oracle/wm/final \\
        --data runs/voeq2000 --features runs/voe_oracle/features/voe.safetensors

With `--statics S` each step also carries S static-element slots after the object slots (the
scene's walls, floor, ramps, ledges and occluder, constant over the clip), and every row widens to
27: the 18 object columns, then [kind one-hot 5 (STATIC_KINDS) | x0, y0, x1, y1] (a segment's end
points or the occluder's box, /64), zero in the other part. Object rows alone hold no wall, shelf
or screen, so an object-slot predictor cannot tell a bounce off a wall from one off nothing; this
measures what the static scene adds (train with `model.latent_dim=27 model.max_patches=8+S`).

A diagnostic ONLY: the shards hold ground truth, so nothing trained on them may ship.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from cogarch.errors import UserError
from cogarch.evals.bench import cli
from cogarch.evals.bench.oracle_bus import CANVAS, clip_tokens
from cogarch.evals.world.vocab import STATIC_KINDS, static_elements
from cogarch.fsutil import atomic_path

STATIC_DIM = len(STATIC_KINDS) + 4


def static_rows(row: dict, statics: int) -> torch.Tensor:
    """The clip's static scene elements -> [statics, STATIC_DIM] (unused slots are zero rows)."""
    try:
        elems = static_elements(json.loads(row["annotations"])["scene"])
    except ValueError as e:
        raise UserError(f"{row['clip_id']}: {e}") from None
    if len(elems) > statics:
        raise UserError(f"{row['clip_id']}: {len(elems)} static elements, more than the {statics} static slots")
    out = torch.zeros(statics, STATIC_DIM)
    for i, (kind, box) in enumerate(elems):
        out[i, STATIC_KINDS.index(kind)] = 1
        out[i, len(STATIC_KINDS):] = torch.tensor(box) / CANVAS
    return out


def clip_rows(row: dict, steps: int, slots: int, statics: int) -> torch.Tensor:
    """[steps, slots, 18] object rows, or with statics > 0 [steps, slots + statics, 18 + STATIC_DIM]."""
    obj = clip_tokens(row, steps, slots)
    if not statics:
        return obj
    st = static_rows(row, statics)
    top = torch.cat([obj, obj.new_zeros(steps, slots, STATIC_DIM)], dim=-1)
    bottom = torch.cat([obj.new_zeros(statics, obj.shape[-1]), st], dim=-1).expand(steps, -1, -1)
    return torch.cat([top, bottom], dim=1)


def all_frames(row: dict) -> dict:
    """A clip row whose "observed" frames are all its simulated frames (a physqa clip's future too),
    so that clip_tokens spreads the steps over the whole clip."""
    return dict(row, observed_frames=json.loads(row["annotations"])["num_frames"])


def write(data: str, out: str, steps: int = 8, slots: int = 8, statics: int = 0) -> Path:
    """One shard `OUT/<suite>.safetensors` over every clip of the suite at `data`."""
    from datasets import load_from_disk
    from safetensors.torch import save_file

    from cogarch.features import clip_refs

    suite, refs = clip_refs(data)
    clips = load_from_disk(str(Path(data) / "clips"))
    rows = {r["clip_id"]: r for split in clips for r in clips[split]}
    missing = [r.clip_id for r in refs if r.clip_id not in rows]
    if missing:
        raise UserError(f"{data}: {len(missing)} clips have no row in clips/ (e.g. {missing[0]!r})")
    lat = torch.stack([clip_rows(all_frames(rows[r.clip_id]), steps, slots, statics) for r in refs]).to(torch.float16)
    meta = {"clip_ids": json.dumps([r.clip_id for r in refs]), "splits": json.dumps([r.split for r in refs]),
            "extras": json.dumps([r.extra for r in refs]), "suite": suite}
    path = Path(out) / f"{suite}.safetensors"
    with atomic_path(path) as tmp:
        save_file({"latents": lat.contiguous()}, tmp, metadata=meta)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", nargs="+", required=True, help="generated suite folders (physqa, voe)")
    ap.add_argument("--out", required=True, help="output feature folder")
    ap.add_argument("--steps", type=int, default=8, help="time steps per clip (perception's frame groups)")
    ap.add_argument("--slots", type=int, default=8, help="object slots (the world model's max_patches)")
    ap.add_argument("--statics", type=int, default=0,
                    help="static-element slots per step (0: object rows only, 18 wide)")
    a = ap.parse_args()
    for d in a.data:
        print(write(d, a.out, a.steps, a.slots, a.statics))


if __name__ == "__main__":
    cli(main)
