"""Ablations: evaluate a pack with some bus kinds removed, or with every clip's bus swapped for another's.

    python -m cogarch.evals.bench.ablate_kinds --pack runs/pack/pack --data runs/pack/data/physqa --drop forecast
    python -m cogarch.evals.bench.ablate_kinds --pack runs/pack/pack --data runs/pack/data/physqa --drop forecast --swap-clips

Evidence that the language module reads the world model: removing `forecast` should lower
predictive-question accuracy. Evidence that it reads the clip at all: answering every question from
the NEXT clip's bus (`--swap-clips`: the next video file of the folder in sorted order, so no
question is answered from its own clip) should lower accuracy
towards the blind LM. Prints accuracy per question type for each variant (same split, same
questions, same seed).
"""

from __future__ import annotations

import argparse
import json

from cogarch.evalglue import PackScorer
from cogarch.evals.bench import cli
from cogarch.evals.runner import run_eval


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pack", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--drop", nargs="*", default=["forecast"], help="kinds to drop (none: skip this variant)")
    ap.add_argument("--swap-clips", action="store_true", help="also score with another clip's bus")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", default="outputs/ablate")
    a = ap.parse_args()
    variants = [("full bus", {})]
    if a.drop:
        variants.append((f"without {'+'.join(a.drop)}", {"drop_kinds": tuple(a.drop)}))
    if a.swap_clips:
        variants.append(("other clip's bus", {"swap_clips": True}))
    rows = {}
    for tag, kw in variants:
        out = f"{a.out}/{tag.replace(' ', '_').replace(chr(39), '')}"
        res = run_eval("physqa", PackScorer(a.pack, **kw), a.data, a.limit, out, split=a.split)
        rows[tag] = {k: v["acc"] for k, v in res["metrics"].items()}
    cats = list(next(iter(rows.values())))
    print("| type | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for c in cats:
        print(f"| {c} | " + " | ".join(f"{100 * rows[t][c]:.1f}" for t in rows) + " |")
    print(json.dumps(rows))


if __name__ == "__main__":
    cli(main)
