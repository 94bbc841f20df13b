"""Ablation: evaluate a pack with some bus kinds removed before the language module reads the bus.

    python -m cogarch.evals.bench.ablate_kinds --pack runs/pack/pack --data runs/pack/data/physqa --drop forecast

Evidence that the language module reads the world model: removing `forecast` should lower
predictive-question accuracy. Prints full-bus vs ablated accuracy per question type (same split,
same questions, same seed).
"""

from __future__ import annotations

import argparse
import json

from cogarch.evalglue import PackScorer
from cogarch.evals.runner import run_eval


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pack", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--drop", nargs="+", default=["forecast"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", default="outputs/ablate")
    a = ap.parse_args()
    rows = {}
    for tag, drop in (("full bus", ()), (f"without {'+'.join(a.drop)}", tuple(a.drop))):
        res = run_eval("physqa", PackScorer(a.pack, drop_kinds=drop), a.data, a.limit, f"{a.out}/{tag.replace(' ', '_')}", split=a.split)
        rows[tag] = {k: v["acc"] for k, v in res["metrics"].items()}
    cats = list(next(iter(rows.values())))
    print("| type | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for c in cats:
        print(f"| {c} | " + " | ".join(f"{100 * rows[t][c]:.1f}" for t in rows) + " |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
