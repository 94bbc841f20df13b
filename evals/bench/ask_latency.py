"""Latency of `ask`: cold (a fresh process: import + load pack + one ask) and warm (pack loaded,
new clip each time), with the per-module breakdown and peak RSS.

    python -m cogarch.evals.bench.ask_latency [--pack PACK] [--clip CLIP] [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

from cogarch.evals.bench import cli


def cold(pack: str | None, clip: str, question: str) -> float:
    args = [sys.executable, "-m", "cogarch.cli", "ask", clip, question] + (["--model", pack] if pack else [])
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pack", default=None, help="default: the shipped default pack")
    ap.add_argument("--clip", default=None, help="default: the bundled table_collision.mp4")
    ap.add_argument("--question", default="How many pairs of objects collide?")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--cold-repeats", type=int, default=3)
    a = ap.parse_args()
    import torch

    import cogarch
    from cogarch.assets import example_clips

    clip = a.clip or str(next(c for c in example_clips() if c.name == "table_collision.mp4"))
    colds = [cold(a.pack, clip, a.question) for _ in range(a.cold_repeats)]
    model = cogarch.load(a.pack)
    model.ask(clip, a.question)  # warm-up
    walls, parts = [], {}
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        ans = model.ask(clip, a.question)  # decode + every module + language, nothing cached
        walls.append((time.perf_counter() - t0) * 1e3)
        for k, v in ans.timings_ms.items():
            parts.setdefault(k, []).append(v)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "threads": torch.get_num_threads(),
        "cold_s_median": round(statistics.median(colds), 2),
        "warm_ms_median": round(statistics.median(walls), 1),
        "warm_ms_min": round(min(walls), 1),
        "breakdown_ms_median": {k: round(statistics.median(v), 1) for k, v in parts.items()},
        "peak_rss_mib": round(rss, 1),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    cli(main)
