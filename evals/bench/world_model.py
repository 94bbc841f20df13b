"""World-model benchmarks: rollout L1 vs horizon against copy-last-frame, and VoE surprise.

    # rollout quality on held-out feature shards (any split not used for training)
    python -m cogarch.evals.bench.world_model rollout --model WM_FOLDER --features DIR --context 3
    # VoE: encode a generated voe suite, train on possible train clips, score pairs on test
    python -m cogarch.evals.bench.world_model voe-features --data runs/voe --encoder blur-pixels --out DIR
    python -m cogarch.evals.bench.world_model voe --data runs/voe --model WM_FOLDER --encoder blur-pixels

Rollout L1 is measured in the world model's target space (layer-normed latents), from a context of
C observed steps, predicting steps C+1..C+h autoregressively; copy-last predicts LN(z_C) for all.

VoE: each clip gets a surprise score (WorldModelScorer.surprise(video) -> float: per-step L1 error
of each step given the steps before it, clip score = mean of the top-k steps, see the world model
README); pairwise accuracy = fraction of (impossible, possible) comparisons within a pair or
quadruplet where the impossible clip scores higher (ties 1/2);
AUROC per violation type over all clips of that type.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from cogarch.errors import UserError
from cogarch.evals.bench import cli
from cogarch.evals.metrics import auroc, voe_group_score
from cogarch.fsutil import atomic_write_json


# ------------------------------------------------------------------------------------------ encoders
class FramePixels:
    """FIXED per-frame features (not learned): gray, box-blurred, avg-pooled to grid x grid.

    A stand-in while no trained perception checkpoint exists; always named in results.
    """

    def __init__(self, kernel: int = 5, grid: int = 16) -> None:
        self.kernel, self.grid, self.name = kernel, grid, f"blur-pixels(k={kernel},g={grid})"

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [T, 3, H, W] in [0, 1] -> latents [T, D]."""
        x = frames.float().mean(1, keepdim=True)
        k = self.kernel
        if k > 1:
            x = F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, 1)
        return F.adaptive_avg_pool2d(x, self.grid).flatten(1)


class PerceptionClips:
    """A saved perception module (loaded through the registry): frames -> [T', P, D] token grid."""

    def __init__(self, folder: str) -> None:
        from cogarch.registry import module_class

        self.model = module_class("perception").from_pretrained(folder).eval()
        self.name = f"perception:{folder}"

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        tok = self.model.encode(frames[None])[0]  # [T'*H'*W', D]
        T, h, w = self.model.token_grid(frames.shape[0])
        return tok.reshape(T, h * w, tok.shape[-1])


def make_clip_encoder(spec: str) -> Any:
    if spec == "blur-pixels":
        return FramePixels()
    if spec.startswith("perception:"):
        return PerceptionClips(spec.split(":", 1)[1])
    raise UserError(f"unknown encoder {spec!r}: use blur-pixels or perception:<folder>")


def baseline_world_model(spec: str) -> Any:
    """"untrained:D": a randomly initialised predictor that predicts z_{t+1} directly (chance
    expected); "copy-last:D": residual predictor with a zero output layer, i.e. surprise = the
    L1 change between consecutive (layer-normed) steps — a frame-difference baseline."""
    from cogarch.modules.world_model import WorldModel, WorldModelConfig

    kind, dim = spec.split(":")
    torch.manual_seed(0)
    wm = WorldModel(WorldModelConfig(latent_dim=int(dim), residual=kind == "copy-last")).eval()
    if kind == "copy-last":
        torch.nn.init.zeros_(wm.out_proj.weight)
        torch.nn.init.zeros_(wm.out_proj.bias)
    return wm


def load_world_model(folder: str) -> Any:
    from cogarch.registry import module_class

    return module_class("world_model").from_pretrained(folder).eval()


class WorldModelScorer:
    """The VoE scorer the eval runner calls: `surprise(video) -> float` (higher = more surprising)."""

    def __init__(self, world_model: Any, encoder: Any, num_frames: int = 16, size: int = 64) -> None:
        self.wm, self.encoder, self.num_frames, self.size = world_model, encoder, num_frames, size

    def latents(self, video: str) -> torch.Tensor:
        from cogarch.video import probe, read_clip

        n = max(1, probe(video).frames) if self.num_frames <= 0 else self.num_frames
        return self.encoder(read_clip(video, num_frames=n, size=self.size))

    def surprise(self, video: str) -> float:
        return self.wm.score_clip(self.latents(video))


# ------------------------------------------------------------------------------------------ rollout
@torch.no_grad()
def rollout_l1(wm: Any, latents: torch.Tensor, actions: torch.Tensor | None, context: int, horizon: int,
               boot: int = 2000, seed: int = 0) -> dict:
    """Mean L1 per horizon of model rollouts vs copy-last, over all windows of every clip.

    latents: [N, T, (P,) D]; actions: [N, T, A] or None. Returns {"model": [h], "copy_last": [h],
    "diff_ci": [h][lo, hi]}: a paired bootstrap over clips (windows of one clip are not independent,
    so clips are the resampling unit) of the 95% interval of mean(model - copy_last); an interval
    entirely below 0 means the model beats copy-last at that horizon beyond clip-sampling noise.
    """
    z = latents.float() if latents.dim() == 4 else latents.float().unsqueeze(2)
    zn = wm.normalize(z)
    N, T = z.shape[:2]
    m_err, c_err = torch.zeros(N, horizon), torch.zeros(N, horizon)  # per clip, summed over windows
    count = 0
    for s in range(0, T - context - horizon + 1):
        ctx = z[:, s : s + context]
        kw = {}
        if actions is not None and wm.config.action_dim:
            kw = {"actions": actions[:, s + context - 1 : s + context - 1 + horizon].float(),
                  "past_actions": actions[:, s : s + context - 1].float()}
        pred = wm.rollout(ctx, horizon, **kw)  # [N, h, P, D]
        tgt = zn[:, s + context : s + context + horizon]
        m_err += (pred - tgt).abs().mean(dim=(2, 3))
        c_err += (zn[:, s + context - 1 : s + context] - tgt).abs().mean(dim=(2, 3))
        count += 1
    if count == 0:
        raise UserError(f"clips of {T} steps are too short for context {context} + horizon {horizon}")
    m_err, c_err = m_err / count, c_err / count  # [N, h]
    diff = m_err - c_err
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, N, (boot, N), generator=g)
    means = diff[idx].mean(1)  # [boot, h]
    lo, hi = means.quantile(0.025, dim=0), means.quantile(0.975, dim=0)
    return {"model": m_err.mean(0).tolist(), "copy_last": c_err.mean(0).tolist(),
            "diff_ci": [[float(a), float(b)] for a, b in zip(lo, hi)], "windows_per_clip": count, "clips": N}


def read_split_shards(folder: Path, splits: set[str]) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    lat, act = [], []
    for f in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as fh:
            sp = json.loads(fh.metadata()["splits"])
            keep = [i for i, s in enumerate(sp) if s in splits]
            if not keep:
                continue
            lat.append(fh.get_tensor("latents")[keep])
            if "actions" in fh.keys():
                act.append(fh.get_tensor("actions")[keep])
    if not lat:
        raise UserError(f"no clips of splits {sorted(splits)} in {folder}")
    return {"latents": torch.cat(lat), "actions": torch.cat(act) if act else None}


# ------------------------------------------------------------------------------------------ VoE
def voe_rows(data: Path, splits: set[str]) -> list[dict]:
    from datasets import load_from_disk

    qs = load_from_disk(str(data / "questions"))
    rows = []
    for sp in qs:
        if sp not in splits:
            continue
        for r in qs[sp]:
            rows.append({"clip_id": r["clip_id"], "video": str(data / r["video"]), "category": r["category"],
                         "pair_id": r["pair_id"], "split": sp, "extra": json.loads(r["extra"] or "{}")})
    return rows


def voe_features(data: Path, encoder_spec: str, out: Path, num_frames: int) -> Path:
    """Encode every VoE clip (all splits) into one feature shard; the world model's loader keeps
    only possible train clips (extras carry extra.possible)."""
    from cogarch.video import read_clip

    enc = make_clip_encoder(encoder_spec)
    rows = voe_rows(data, {"train", "val", "test", "test_ood"})
    lats = [enc(read_clip(r["video"], num_frames=num_frames, size=64)) for r in rows]
    out.mkdir(parents=True, exist_ok=True)
    save_file({"latents": torch.stack(lats).contiguous()}, str(out / "voe.safetensors"), metadata={
        "clip_ids": json.dumps([r["clip_id"] for r in rows]), "splits": json.dumps([r["split"] for r in rows]),
        "extras": json.dumps([r["extra"] for r in rows]), "suite": "voe", "encoder": enc.name})
    return out


def voe_eval(rows: list[dict], scores: dict[str, float]) -> dict:
    """Pairwise accuracy and AUROC per violation type (category) + their means.

    A group (pair_id) is a matched pair or an IntPhys quadruplet; its score is the fraction of
    (impossible, possible) cross comparisons that rank the impossible clip as more surprising
    (ties count half): evals/metrics.voe_group_score, as `cogarch eval` scores it."""
    out: dict[str, dict] = {}
    for cat in sorted({r["category"] for r in rows}):
        rs = [r for r in rows if r["category"] == cat]
        groups: dict[str, dict[bool, list[float]]] = {}
        for r in rs:
            g = groups.setdefault(r["pair_id"], {True: [], False: []})
            g[bool(r["extra"].get("possible"))].append(scores[r["clip_id"]])
        full = [g for g in groups.values() if g[True] and g[False]]
        acc = float(np.mean([voe_group_score(g[False], g[True]) for g in full])) if full else float("nan")
        au = auroc([scores[r["clip_id"]] for r in rs if r["extra"].get("possible") is False],
                   [scores[r["clip_id"]] for r in rs if r["extra"].get("possible") is True])
        out[cat] = {"pairwise_acc": acc, "auroc": float("nan") if au is None else au, "pairs": len(full)}
    out["mean"] = {"pairwise_acc": float(np.nanmean([v["pairwise_acc"] for v in out.values()])),
                   "auroc": float(np.nanmean([v["auroc"] for v in out.values() if "auroc" in v]))}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rollout")
    r.add_argument("--model", required=True)
    r.add_argument("--features", type=Path, required=True)
    r.add_argument("--splits", default="val,test,test_ood")
    r.add_argument("--context", type=int, default=3)
    r.add_argument("--horizon", type=int, default=8)
    f = sub.add_parser("voe-features")
    f.add_argument("--data", type=Path, required=True)
    f.add_argument("--encoder", default="blur-pixels")
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--frames", type=int, default=16)
    v = sub.add_parser("voe")
    v.add_argument("--data", type=Path, required=True)
    v.add_argument("--model", required=True, help="world model folder, untrained:<D> or copy-last:<D>")
    v.add_argument("--encoder", default="blur-pixels")
    v.add_argument("--splits", default="test")
    v.add_argument("--frames", type=int, default=16)
    for p in (r, v):
        p.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.cmd == "rollout":
        d = read_split_shards(args.features, set(args.splits.split(",")))
        res = rollout_l1(load_world_model(args.model), d["latents"], d["actions"], args.context, args.horizon)
        print("| horizon | world model L1 | copy-last L1 | model - copy-last, 95% CI (paired bootstrap over clips) |")
        print("|---|---|---|---|")
        for h, (m, c, (lo, hi)) in enumerate(zip(res["model"], res["copy_last"], res["diff_ci"]), 1):
            print(f"| {h} | {m:.4f} | {c:.4f} | {m - c:+.4f} [{lo:+.4f}, {hi:+.4f}] |")
    elif args.cmd == "voe-features":
        print(voe_features(args.data, args.encoder, args.out, args.frames))
        return 0
    else:
        wm = baseline_world_model(args.model) if args.model.startswith(("untrained:", "copy-last:")) else load_world_model(args.model)
        scorer = WorldModelScorer(wm, make_clip_encoder(args.encoder), num_frames=args.frames)
        rows = voe_rows(args.data, set(args.splits.split(",")))
        scores = {row["clip_id"]: scorer.surprise(row["video"]) for row in rows}
        res = voe_eval(rows, scores)
        print("| violation | pairwise acc | AUROC | pairs |\n|---|---|---|---|")
        for k, val in res.items():
            print(f"| {k} | {val['pairwise_acc'] * 100:.1f}% | {val['auroc']:.3f} | {val.get('pairs', '')} |")
    if args.json is not None:
        atomic_write_json(args.json, {"args": {k: str(x) for k, x in vars(args).items()}, "result": res})
    return 0


if __name__ == "__main__":
    cli(main)
