"""Keep the first slots and columns of a world-model feature shard (an ablation's input).

    python -m cogarch.evals.bench.shard_slice --shard runs/perc_voe/feat_s6/train/voe.safetensors \
        --out runs/perc_voe/feat_s6_obj/train --slots 6 --width 18

A shard from a perception with static slots holds, per step, K object rows then S static rows, 18 +
9 columns wide (modules/perception/objects.py); `--slots K --width 18` leaves the object rows in the
18-column layout, so the same perception can be compared with and without its static slots. Writes
OUT/<same file name> with the same metadata (clip ids, splits, extras, suite).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cogarch.evals.bench import cli
from cogarch.fsutil import atomic_path


def slice_shard(shard: str, out: str, slots: int, width: int) -> Path:
    from safetensors import safe_open
    from safetensors.torch import save_file

    from cogarch.errors import UserError

    if not Path(shard).is_file():
        raise UserError(f"shard not found: {shard}")
    with safe_open(shard, "pt") as f:
        meta, lat = f.metadata(), f.get_tensor("latents")  # [N, T', P, D]
    if lat.dim() != 4 or not (0 < slots <= lat.shape[2]) or not (0 < width <= lat.shape[3]):
        raise UserError(f"{shard}: latents {list(lat.shape)} cannot keep {slots} slots x {width} columns")
    path = Path(out) / Path(shard).name
    with atomic_path(path) as tmp:
        save_file({"latents": lat[:, :, :slots, :width].contiguous()}, tmp, metadata=meta)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shard", required=True, help="a world-model feature shard (.safetensors)")
    ap.add_argument("--out", required=True, help="output folder (the shard keeps its file name)")
    ap.add_argument("--slots", type=int, required=True, help="rows per step to keep (the first ones)")
    ap.add_argument("--width", type=int, required=True, help="columns to keep (the first ones)")
    a = ap.parse_args()
    print(slice_shard(a.shard, a.out, a.slots, a.width))


if __name__ == "__main__":
    cli(main)
