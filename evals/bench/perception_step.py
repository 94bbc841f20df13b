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

from cogarch.evals.bench import cli
from cogarch.modules.perception.config import vjepa_tiny
from cogarch.modules.perception.masking import MaskCollator
from cogarch.modules.perception.model import PerceptionModule


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _Runner:
    """One model + optimizer; `step(batch)` runs and times one full training step."""

    def __init__(self, fused: bool, seed: int) -> None:
        torch.manual_seed(seed)
        cfg = vjepa_tiny()
        cfg.fused_rope = fused
        cfg.monitor_every = 0  # monitors are a logging cost, not part of the step
        self.fused = fused
        self.model = PerceptionModule(cfg).train()
        self.opt = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=5e-4, weight_decay=0.04)
        self.times: list[float] = []
        self.cpu: list[float] = []
        self.n = 0

    def step(self, batch: dict, record: bool) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        loss, _ = self.model(batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.n += 1
        self.model.update(self.n)
        if record:
            self.times.append(time.perf_counter() - t0)
            self.cpu.append(time.process_time() - c0)

    def result(self) -> dict:
        med = statistics.median(self.times)
        return {"fused": self.fused, "median_s": med, "min_s": min(self.times), "clips_per_s_median": 8 / med,
                "clips_per_s_best": 8 / min(self.times), "cpu_s_median": statistics.median(self.cpu),
                "steps": len(self.times)}


def bench(steps: int, warmup: int, compare_stock: bool, seed: int = 0) -> tuple[list[dict], float, float]:
    """Time `steps` steps (after `warmup`); with compare_stock, fused and stock steps alternate so
    that both see the same machine load. Returns (results, RSS before the steps, peak RSS) in MiB."""
    cfg = vjepa_tiny()
    runners = [_Runner(True, seed)] + ([_Runner(False, seed)] if compare_stock else [])
    col = MaskCollator(cfg, torch.Generator().manual_seed(seed))
    frames = torch.randn(8, cfg.num_frames, 3, cfg.img_size, cfg.img_size)
    rss0 = _rss_mb()
    for i in range(steps + warmup):
        enc, pred = col.sample(frames.shape[0])  # fresh masks per step, one shared frames tensor
        batch = {"frames": frames, "masks_enc": enc, "masks_pred": pred}
        for r in runners:
            r.step(batch, record=i >= warmup)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    return [r.result() for r in runners], rss0, peak


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
    runs, rss0, peak = bench(a.steps, a.warmup, a.compare_stock)
    load1 = os.getloadavg()
    lines = [
        "| layers | median s/step | min s/step | clips/s (median) | clips/s (best) | CPU s/step (median) |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        name = "fused RoPE + SDPA (ours)" if r["fused"] else "stock VJEPA2Layer (transformers)"
        lines.append(f"| {name} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['clips_per_s_median']:.2f} | "
                     f"{r['clips_per_s_best']:.2f} | {r['cpu_s_median']:.2f} |")
    head = (f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"threads={a.threads}, batch 8, fp32, {a.steps} timed steps after {a.warmup} warmup"
            f"{' (fused and stock steps interleaved)' if a.compare_stock else ''}; "
            f"load average before {load0[0]:.2f}, after {load1[0]:.2f}; peak RSS {peak:.0f} MiB "
            f"(ru_maxrss of the whole process{', both models' if a.compare_stock else ''}), {rss0:.0f} MiB before the first step")
    report = head + "\n\n" + "\n".join(lines) + "\n"
    print(report)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            fh.write(report)
    return 0


if __name__ == "__main__":
    cli(main)
