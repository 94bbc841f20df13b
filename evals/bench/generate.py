"""Benchmark suite generation throughput (clips/s).

    .venv/bin/python evals/bench/generate.py --suite physqa --n 2000 --workers 2

Generates into a temporary folder (deleted afterwards unless --keep), prints the generator's
summary as JSON plus CPU-normalised numbers. Target (DESIGN): physqa >= 50 clips/s on 2 cores
at 64x64, i.e. <= ~35 ms of CPU per clip including counterfactual re-simulations and encoding.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from cogarch.evals.bench import cli


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="physqa", choices=["physqa", "voe", "planning"])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--keep", action="store_true", help="keep the generated folder")
    args = ap.parse_args(argv)

    from cogarch.evals.world.generate import generate

    tmp = Path(tempfile.mkdtemp(prefix="bench-gen-"))
    out = tmp / args.suite
    cpu0 = os.times()
    t0 = time.perf_counter()
    try:
        summary = generate(args.suite, args.n, out, seed=args.seed, workers=args.workers,
                           progress=True, size=args.size)
    finally:
        wall = time.perf_counter() - t0
        cpu1 = os.times()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    # CPU of this process plus its (joined) worker processes.
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system) + \
          (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
    summary.update({"wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                    "cpu_ms_per_clip": round(1000 * cpu / max(1, summary["clips"]), 2),
                    "cpus": os.cpu_count(), "kept": str(out) if args.keep else None})
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    cli(main)
