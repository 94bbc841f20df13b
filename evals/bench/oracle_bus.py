"""Ceiling diagnostic for the language module: a `percept` shard written from the simulator's truth.

The language module answers physqa from what perception puts on the bus. When it barely beats the
blind LM, the loss is either in perception (the tokens do not carry the facts) or in the reader
(the projectors + LoRA cannot find them). This script separates the two: it writes feature shards in
the language module's format (modules/language/data.py) whose `percept` message is what a PERFECT
object-centric perception would publish from the observed frames, one token per object per time
step:

    [colour one-hot 8 | shape one-hot 3 | material one-hot 2 | visible | x, y | vx, vy]   (18-D)

Everything is zero at steps where the object is not visible in the frame (a camera cannot see it),
and only the observed frames are used (predictive questions still need extrapolation). Every step
has K slots (K = the most objects any clip of the suite has); empty slots are zero rows, written
without a mask, so the reader sees them as one constant token (a mask would make the adapter pool
a step's tokens together). Train the
language module on these shards with the pack's recipe, `model.pool=none` (pooling would average
the object tokens of a step together):

    python -m cogarch.evals.bench.oracle_bus --data runs/pack/data/physqa --out runs/oracle/features
    cogarch train language --config configs/language/tiny.yaml stage=1 features_dir=runs/oracle/features ...

This is a diagnostic ONLY: the shards hold ground truth, so nothing trained on them may ship, and
no score from them is a score of the architecture. It estimates what a reader recipe reaches with
perfect perception at a given training budget (one run, not an upper bound).
"""

from __future__ import annotations

import argparse
import json

import torch

from cogarch.errors import UserError
from cogarch.evals.bench import cli
from cogarch.evals.world.vocab import COLORS, MATERIALS, SHAPES

DIM = len(COLORS) + len(SHAPES) + len(MATERIALS) + 5
CANVAS = 64.0  # annotation units: 1 unit = 1 px of a 64x64 frame
SPEED = 32.0   # velocity scale (units/s) so typical speeds are O(1)


def identity(ob: dict) -> torch.Tensor:
    """An object's one-hot colour | shape | material vector [13], the rows' first columns."""
    colours, shapes, materials = list(COLORS), list(SHAPES), list(MATERIALS)
    ident = torch.zeros(len(colours) + len(shapes) + len(materials))
    ident[colours.index(ob["color"])] = 1
    ident[len(colours) + shapes.index(ob["shape"])] = 1
    ident[len(colours) + len(shapes) + materials.index(ob["material"])] = 1
    return ident


def clip_tokens(row: dict, steps: int, max_objects: int) -> torch.Tensor:
    """One clip -> [steps, max_objects, DIM] (absent objects and unseen steps are zero rows)."""
    objects = json.loads(row["objects"])
    if len(objects) > max_objects:
        raise UserError(f"{row['clip_id']}: {len(objects)} objects, more than the {max_objects} slots")
    tracks = json.loads(row["annotations"])["tracks"]
    observed = int(row["observed_frames"])
    frames_per_step = max(1, observed // steps)
    out = torch.zeros(steps, max_objects, DIM)
    for j, ob in enumerate(objects):
        tr = tracks[str(ob["id"])]
        ident = identity(ob)
        for t in range(steps):
            # The last frame of each frame group: the state perception's tubelet ends on.
            f = min((t + 1) * frames_per_step - 1, observed - 1)
            if not tr["visible"][f]:
                continue
            (x, y), (vx, vy) = tr["pos"][f], tr["vel"][f]
            out[t, j, : ident.numel()] = ident
            out[t, j, ident.numel():] = torch.tensor([1.0, x / CANVAS, y / CANVAS, vx / SPEED, vy / SPEED])
    return out


def write(data: str, out: str, steps: int = 8) -> dict:
    """Write one oracle shard per split of the suite; returns {split: clips}."""
    from cogarch.evals.suites.generated import load_generated_dict
    from cogarch.modules.language.corpus import load_split
    from cogarch.modules.language.data import write_shard

    splits = {s: list(load_split(data, "clips", s)) for s in load_generated_dict(data)}  # the questions' splits
    max_objects = max((len(json.loads(r["objects"])) for rows in splits.values() for r in rows), default=1)
    counts = {}
    for split, rows in splits.items():
        if not rows:
            continue
        tok = torch.stack([clip_tokens(r, steps, max_objects) for r in rows])  # [N, T, K, D]
        n = tok.shape[0]
        time = torch.arange(steps, dtype=torch.float32)[None, :, None].expand(n, steps, max_objects)
        write_shard(out, split, [r["clip_id"] for r in rows],
                    {"percept": {"tokens": tok.reshape(n, steps * max_objects, DIM), "time": time.reshape(n, -1)}},
                    sources={"percept": "oracle"}, meta={"suite": "physqa", "data_dir": data, "oracle": True})
        counts[split] = n
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="a generated physqa folder")
    ap.add_argument("--out", required=True, help="output feature folder")
    ap.add_argument("--steps", type=int, default=8, help="time steps per clip (perception's frame groups)")
    a = ap.parse_args()
    print(json.dumps(write(a.data, a.out, a.steps)))


if __name__ == "__main__":
    cli(main)
