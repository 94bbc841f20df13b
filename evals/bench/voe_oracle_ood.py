"""Oracle VoE scores of test_ood read at the training time scale (4 simulated frames per step).

evals/bench/voe_oracle.py spreads 8 steps over ALL of a clip's simulated frames, as the pipeline
reads a clip: 4 frames per step for the 32-frame train/val/test clips, but 6 for test_ood, whose
clips are 1.5x longer (evals/world/generate.py). A world model trained at 4 frames per step then
meets 1.5x faster motion on test_ood. This rereads the test_ood quadruplets as 12 steps of 4
frames (the world model accepts up to max_steps) and scores them with one variant of
evals/bench/voe_scores.py (the one chosen on val there), for the trained model, an untrained one of
the same config (seed 0) and copy-last:

    python -m cogarch.evals.bench.voe_oracle_ood --world-model runs/voe_static/wm_D/final \\
        --data runs/voeq2000 --statics 6 [--variant row_mean@0]

A diagnostic on ground-truth tracks, like voe_oracle.py: nothing here is a score of the pipeline.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from cogarch.errors import UserError
from cogarch.evals.bench import cli
from cogarch.evals.bench.voe_oracle import all_frames, clip_rows
from cogarch.evals.bench.voe_scores import clip_score, predictions, step_scores
from cogarch.evals.bench.world_model import voe_eval, voe_rows

FRAMES_PER_STEP = 4  # the time scale of the 32-frame clips read as 8 steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world-model", required=True, help="an object world model trained on oracle rows")
    ap.add_argument("--data", required=True, help="a generated VoE suite with a test_ood split")
    ap.add_argument("--slots", type=int, default=8, help="object slots of the model's training shards")
    ap.add_argument("--statics", type=int, default=0, help="static-element slots of the model's training shards")
    ap.add_argument("--variant", default="row_mean@0", help="score variant@k of voe_scores.py (k = 0: all steps)")
    a = ap.parse_args(argv)
    from datasets import load_from_disk

    from cogarch.registry import module_class

    if not Path(a.world_model, "config.json").is_file():
        raise UserError(f"--world-model {a.world_model!r} is not a saved module folder")
    if not Path(a.data, "clips").is_dir():
        raise UserError(f"--data {a.data!r} is not a generated suite (no clips/)")
    variant, _, k = a.variant.partition("@")
    if variant not in ("row_mean", "slot_max", "presence", "ratio") or not k.isdigit():
        raise UserError(f"--variant {a.variant!r}: expected row_mean|slot_max|presence|ratio@k")
    wm = module_class("world_model").from_pretrained(a.world_model).eval()
    # voe_static.sh trains on shards of exactly slots + statics rows per step (max_patches): any other
    # split would put the scene rows where the model learned objects, without a shape error.
    if a.slots + a.statics != wm.config.max_patches or (wm.config.latent_dim > 18) != (a.statics > 0):
        raise UserError(f"--slots {a.slots} --statics {a.statics} do not fit the world model "
                        f"(max_patches {wm.config.max_patches}, latent width {wm.config.latent_dim})")
    clips = load_from_disk(str(Path(a.data) / "clips"))["test_ood"]
    frames = {json.loads(r["annotations"])["num_frames"] for r in clips}
    if len(frames) != 1 or next(iter(frames)) % FRAMES_PER_STEP:
        raise UserError(f"test_ood clips have {sorted(frames)} frames: need one length divisible by {FRAMES_PER_STEP}")
    steps = next(iter(frames)) // FRAMES_PER_STEP

    # fp16 round trip: the same values the training shards held
    z = torch.stack([clip_rows(all_frames(r), steps, a.slots, a.statics) for r in clips]).half().float()
    wm._check(z)
    ids = [r["clip_id"] for r in clips]
    rows = voe_rows(Path(a.data), {"test_ood"})
    torch.manual_seed(0)
    untrained = type(wm)(wm.config).eval()
    print(f"test_ood, {steps} steps of {FRAMES_PER_STEP} frames, variant {a.variant}\n")
    print("| predictor | " + " | ".join(sorted({r["category"] for r in rows})) + " | mean |")
    print("|---|" + "---|" * (len({r["category"] for r in rows}) + 1))
    for name, pred in (("trained", predictions(wm, z)), ("untrained", predictions(untrained, z)),
                       ("copy-last", z[:, :-1])):
        v = "row_mean" if name == "copy-last" and variant == "ratio" else variant
        s = clip_score(step_scores(pred, z)[v], int(k), wm.config.surprise_min_context)
        r = voe_eval(rows, {c: float(s[i]) for i, c in enumerate(ids)})
        print(f"| {name} | " + " | ".join(f"{100 * r[t]['pairwise_acc']:.0f}" for t in r if t != "mean")
              + f" | {100 * r['mean']['pairwise_acc']:.1f} |")
    return 0


if __name__ == "__main__":
    cli(main)
