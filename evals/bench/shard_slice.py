"""Keep the first slots and columns of a world-model feature shard (an ablation's input).

    python -m cogarch.evals.bench.shard_slice --shard runs/perc_voe/feat_s6/train/voe.safetensors \
        --out runs/perc_voe/feat_s6_obj/train --slots 6 --width 18

A shard from a perception with static slots holds, per step, K object rows then S static rows, 18 +
9 columns wide (modules/perception/objects.py); `--slots K --width 18` leaves the object rows in the
18-column layout, so the same perception can be compared with and without its static slots.
`--insert K:N` then puts N zero rows after the first K slots of every step: a perceived shard with
6 object + 6 static slots becomes the 8 + 6 layout of the VoE oracle's shards, which a world model
trained on true tracks reads. Writes OUT/<same file name> with the same metadata (clip ids, splits,
extras, suite).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cogarch.evals.bench import cli
from cogarch.errors import UserError
from cogarch.fsutil import atomic_path


def read_shard(path: str) -> tuple[dict, torch.Tensor]:
    """(metadata, latents [N, T', P, D]) of a world-model feature shard; a one-line UserError otherwise."""
    from safetensors import SafetensorError, safe_open

    if not Path(path).is_file():
        raise UserError(f"shard not found: {path}")
    try:
        with safe_open(path, "pt") as f:
            meta, lat = f.metadata(), f.get_tensor("latents")
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a world-model feature shard ({e})") from None
    if not meta or "clip_ids" not in meta:
        raise UserError(f"{path}: not a world-model feature shard (no clip_ids metadata)")
    return meta, lat


def slice_shard(shard: str, out: str, slots: int, width: int, insert: tuple[int, int] | None = None) -> Path:
    """Write OUT/<shard's name> keeping the first `slots` rows and `width` columns of every step,
    then (insert=(K, N)) N zero rows after the first K; the metadata is kept. Refuses to overwrite
    the input."""
    from safetensors.torch import save_file

    meta, lat = read_shard(shard)
    if lat.dim() != 4 or not (0 < slots <= lat.shape[2]) or not (0 < width <= lat.shape[3]):
        raise UserError(f"{shard}: latents {list(lat.shape)} cannot keep {slots} slots x {width} columns")
    lat = lat[:, :, :slots, :width]
    if insert is not None:
        at, n = insert
        if not (0 <= at <= slots and n > 0):
            raise UserError(f"--insert {at}:{n}: need 0 <= K <= {slots} kept slots and N > 0")
        lat = torch.cat([lat[:, :, :at], lat.new_zeros(*lat.shape[:2], n, lat.shape[3]), lat[:, :, at:]], 2)
    path = Path(out) / Path(shard).name
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    if path.exists() and path.resolve() == Path(shard).resolve():
        raise UserError(f"{path} is the input shard; give another --out folder")
    with atomic_path(path) as tmp:
        save_file({"latents": lat.contiguous()}, tmp, metadata=meta)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shard", required=True, help="a world-model feature shard (.safetensors)")
    ap.add_argument("--out", required=True, help="output folder (the shard keeps its file name)")
    ap.add_argument("--slots", type=int, required=True, help="rows per step to keep (the first ones)")
    ap.add_argument("--width", type=int, required=True, help="columns to keep (the first ones)")
    ap.add_argument("--insert", default="", help="K:N puts N zero rows after the first K slots of each step")
    a = ap.parse_args()
    insert = None
    if a.insert:
        try:
            k, n = (int(v) for v in a.insert.split(":"))
        except ValueError:
            raise UserError(f"--insert {a.insert!r}: expected K:N, e.g. 6:2") from None
        insert = (k, n)
    print(slice_shard(a.shard, a.out, a.slots, a.width, insert))


if __name__ == "__main__":
    cli(main)
