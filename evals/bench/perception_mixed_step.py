"""Benchmark: one bf16 V-JEPA training step at an official size (ViT-L by default) on an accelerator, with MFU.

    python -m cogarch.evals.bench.perception_mixed_step --preset vitl --device cuda --batch 4 \
        --steps 10 --warmup 3 --peak-tflops 989

The step is the same as evals/bench/perception_step.py (EMA target forward on the full clip,
context encoder on the visible tokens of each mask set, predictor, L1, backward, AdamW, EMA update)
at the preset's shape (`vitl`: 256 px, 16 frames, patch 16, tubelet 2, 1024/24/16 encoder), from
random init, with fp32 weights under bf16 autocast (as mixed-precision training runs it).

FLOPs per step are counted once with `torch.utils.flop_counter.FlopCounterMode` (matmuls,
convolutions and attention, forward and backward; elementwise work is not counted, so MFU is the
usual matmul-FLOPs utilisation, as in PaLM's definition). MFU = FLOPs per step / (median step time x
peak), with the accelerator's dense bf16 peak given by --peak-tflops (e.g. 989 for an H100/H200
SXM). Nothing here assumes CUDA: --device cpu runs the same code (tests use it on the tiny preset).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from cogarch.errors import UserError
from cogarch.evals.bench import cli
from cogarch.modules.perception.config import BUILDERS, build_config
from cogarch.modules.perception.masking import MaskCollator
from cogarch.modules.perception.model import PerceptionModule


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(preset: str, device: str, batch: int, steps: int, warmup: int, seed: int = 0) -> dict:
    """Time `steps` bf16 training steps after `warmup`; count one step's FLOPs. Returns the numbers."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda, but torch sees no CUDA device (use --device cpu to smoke-test)")
    torch.manual_seed(seed)
    cfg = build_config(preset)
    cfg.monitor_every = 0  # monitors are logging, not the step
    model = PerceptionModule(cfg).to(dev).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.04)
    col = MaskCollator(cfg, torch.Generator().manual_seed(seed))
    frames = torch.randn(batch, cfg.num_frames, 3, cfg.img_size, cfg.img_size, device=dev)  # [B, T, C, H, W]
    n = 0

    def step() -> None:
        nonlocal n
        enc, pred = col.sample(batch)
        b = {"frames": frames, "masks_enc": [m.to(dev) for m in enc], "masks_pred": [m.to(dev) for m in pred]}
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
            loss, _ = model(b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += 1
        model.update(n)

    for _ in range(warmup):
        step()
    counter = FlopCounterMode(display=False)
    with counter:
        step()  # counted once; masks differ per step only in positions, not in counts
    times = []
    for _ in range(steps):
        _sync(dev)
        t0 = time.perf_counter()
        step()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    peak_mem = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
    return {"preset": preset, "device": str(dev), "batch": batch, "steps": steps, "median_s": statistics.median(times),
            "min_s": min(times), "flops_per_step": counter.get_total_flops(),
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "peak_mem_gib": peak_mem}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="vitl", choices=sorted(BUILDERS))
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--peak-tflops", type=float, default=0.0, help="dense bf16 peak of the device, for MFU")
    a = p.parse_args(argv)
    if a.batch < 1 or a.steps < 1 or a.warmup < 0:
        raise UserError("--batch and --steps must be >= 1, --warmup >= 0")
    r = bench(a.preset, a.device, a.batch, a.steps, a.warmup)
    tflops = r["flops_per_step"] / r["median_s"] / 1e12
    mfu = f"{100 * tflops / a.peak_tflops:.1f} %" if a.peak_tflops > 0 else "— (give --peak-tflops)"
    mem = "—" if r["peak_mem_gib"] is None else f"{r['peak_mem_gib']:.1f} GiB"
    print(f"torch {torch.__version__}, {r['device']}, preset {r['preset']} ({r['params_m']:.0f} M params incl. "
          f"target and predictor), batch {r['batch']}, bf16 autocast, {r['steps']} timed steps after {a.warmup} warmup\n\n"
          "| median s/step | min s/step | clips/s | counted TFLOP/step | achieved TFLOP/s | MFU | peak memory |\n"
          "|---|---|---|---|---|---|---|\n"
          f"| {r['median_s']:.3f} | {r['min_s']:.3f} | {r['batch'] / r['median_s']:.2f} | "
          f"{r['flops_per_step'] / 1e12:.3f} | {tflops:.2f} | {mfu} | {mem} |")
    return 0


if __name__ == "__main__":
    cli(main)
