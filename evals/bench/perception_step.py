"""Benchmark: one full V-JEPA training step of the tiny perception config on the CPU.

    python -m cogarch.evals.bench.perception_step [--steps 10] [--warmup 3] [--threads 2]
        [--compare-stock] [--out docs/bench_perception.md]

Measures exactly: 64 px, 16 frames, patch 8, tubelet 2, encoder 192/6/3, predictor 96/4/3, the
V-JEPA 2 mask sets (8 x 0.15 + 2 x 0.7), batch 8, fp32, `torch.set_num_threads(threads)`. One step =
EMA target forward on the full clip + context encoder on the visible tokens of both mask sets +
predictor + L1 + backward + AdamW + EMA update. Masks are drawn beforehand (the data-loader
workers draw them during training) and frames are random normal (the data path is not timed).

CPU s/step is the process CPU time (all threads) per step: on an idle machine about threads x wall
time; on a loaded one OpenMP threads that spin while a peer is descheduled inflate it.

Memory: peak resident set size of the process (`resource.getrusage(...).ru_maxrss`, the OS view,
which includes torch's CPU allocator, weights, Adam moments and the Python runtime), reported both
absolute and as growth over the RSS right before the first step. The machine load average is
printed before and after, because the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time

import torch

from cogarch.modules.perception.config import vjepa_tiny
from cogarch.modules.perception.masking import MaskCollator
from cogarch.modules.perception.model import PerceptionModule


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def bench(steps: int, warmup: int, fused: bool, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    cfg = vjepa_tiny()
    cfg.fused_rope = fused
    cfg.monitor_every = 0  # monitors are a logging cost, not part of the step
    model = PerceptionModule(cfg).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4, weight_decay=0.04)
    col = MaskCollator(cfg, torch.Generator().manual_seed(seed))
    frames = torch.randn(8, cfg.num_frames, 3, cfg.img_size, cfg.img_size)
    batches = []
    for _ in range(steps + warmup):  # one frames tensor shared by all steps, fresh masks per step
        enc, pred = col.sample(frames.shape[0])
        batches.append({"frames": frames, "masks_enc": enc, "masks_pred": pred})
    rss0 = _rss_mb()
    times, cpu = [], []
    for i, b in enumerate(batches):
        t0, c0 = time.perf_counter(), time.process_time()
        loss, _ = model(b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.update(i + 1)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if i >= warmup:
            times.append(dt)
            cpu.append(dc)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    med = statistics.median(times)
    return {"fused": fused, "median_s": med, "min_s": min(times), "clips_per_s_median": 8 / med,
            "clips_per_s_best": 8 / min(times), "cpu_s_median": statistics.median(cpu), "rss_before_mb": rss0, "peak_rss_mb": peak, "steps": len(times)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compare-stock", action="store_true", help="also time transformers' unfused VJEPA2 layers")
    p.add_argument("--out", default="", help="write a markdown report here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    load0 = os.getloadavg()
    runs = [bench(a.steps, a.warmup, fused=True)]
    if a.compare_stock:
        runs.append(bench(a.steps, a.warmup, fused=False))
    load1 = os.getloadavg()
    lines = [
        "| layers | median s/step | min s/step | clips/s (median) | clips/s (best) | CPU s/step (median) | peak RSS MiB (before steps) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        name = "fused RoPE + SDPA (ours)" if r["fused"] else "stock VJEPA2Layer (transformers)"
        lines.append(f"| {name} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['clips_per_s_median']:.2f} | "
                     f"{r['clips_per_s_best']:.2f} | {r['cpu_s_median']:.2f} | {r['peak_rss_mb']:.0f} ({r['rss_before_mb']:.0f}) |")
    head = (f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"threads={a.threads}, batch 8, fp32, {a.steps} timed steps after {a.warmup} warmup; "
            f"load average before {load0[0]:.2f}, after {load1[0]:.2f}")
    report = head + "\n\n" + "\n".join(lines) + "\n"
    print(report)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            fh.write(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
