"""VoE with the V-JEPA predictor itself: surprise = error predicting the next step's tokens from the past.

Garrido et al. (2025, "Intuitive physics understanding emerges from self-supervised pretraining on
natural videos") score violation-of-expectation clips with a pretrained V-JEPA's own predictor:
the context encoder sees the past frames, the predictor fills in the future tokens, and the L1
error against the target encoder's tokens is the surprise. This script does that with a cogarch
perception TRAINING folder (encoder + predictor + EMA target; a shipped pack keeps only the target
encoder): for every latent step t >= 2 of a clip, the context is all tokens of steps < t, the
targets are step t's tokens (of the full clip, encoded by the target encoder, as in training).
Per step it keeps the mean and the max over the step's tokens; a clip scores the max or the mean
of its steps. Reported: pairwise accuracy per violation type, for the trained module and for an
untrained one of the same config (seed 0) on the same clips.

    python -m cogarch.evals.bench.vjepa_surprise --perception runs/pack/perception/final --data runs/voe1000

Frames: perception trains on consecutive frames at the clip rate (ClipDataset), while VoE clips are
longer (32 frames) and `cogarch eval` reads 16 of them spread over the clip, i.e. objects move twice
as far per step as in training. `--frames native` (the default) reads every frame at the clip's
own rate and scores overlapping windows of num_frames (stride num_frames / 2), so the predictor sees
the motion statistics it was trained on; a clip's steps are those of all its windows.
`--frames uniform` is the pipeline's read (16 frames over the whole clip).

Caveat: the pack's masks are tubes over the whole clip (temporal_scale 1.0), so the predictor never
trained on "future from past" targets; the original paper's models did not either. A perception
trained with a future mask set (`MaskSetConfig.future`) did: its predictor is then run with that
set's mask token (the first future set; `--mask-index` picks another).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from cogarch.errors import UserError
from cogarch.evals.bench import cli
from cogarch.evals.bench.world_model import voe_eval, voe_rows

SPLITS = ("val", "test", "test_ood")


@torch.no_grad()
def step_surprise(m, frames: torch.Tensor, mask_index: int = 0) -> torch.Tensor:
    """frames [B, T, 3, H, W] in [0, 1] -> [B, T', 4]: the error's mean and max over step t's tokens,
    and the mean error relative to copy-last's (|target_t - target_{t-1}|, how much the step changed,
    so that a clip with more motion is not more surprising for that alone), and copy-last's error
    itself (the control: a score that reads only how much changes); steps 0-1 are 0."""
    c = m.config
    T, H, W = m.token_grid(c.num_frames)
    P = H * W
    x = m.normalize(frames)
    target = m.encode_target(x)  # [B, T'*P, D]
    B = x.shape[0]
    out = torch.zeros(B, T, 4)
    for t in range(2, T):
        ci = torch.arange(t * P).expand(B, -1)
        ti = torch.arange(t * P, (t + 1) * P).expand(B, -1)
        ctx = m.encode_context(x, [ci])[0]  # context encoder on the past only (tokens are (t', h', w') row-major)
        err = (m.predict(ctx, ci, ti, mask_index=mask_index) - target[:, t * P:(t + 1) * P]).abs().mean(-1)  # [B, P]
        copy = (target[:, (t - 1) * P:t * P] - target[:, t * P:(t + 1) * P]).abs().mean(-1)  # [B, P]
        e, cp = err.mean(1), copy.mean(1)  # [B]
        out[:, t, 0], out[:, t, 1], out[:, t, 2], out[:, t, 3] = e, err.amax(1), e / (cp + 1e-6), cp
    return out


def native_windows(video: str, num_frames: int, size: int) -> torch.Tensor:
    """Every frame of a clip at its own rate, cut into windows -> [W, num_frames, 3, H, W] in [0, 1]."""
    from cogarch.modules.perception.data import window_starts
    from cogarch.video import probe, read_clip

    info = probe(video)
    n = max(info.frames, num_frames)  # a short clip pads its last frame (read_clip's rule)
    frames = read_clip(video, num_frames=n, fps=info.fps or None, size=size)
    # the same windows as training's data.windows (stride num_frames / 2, the last at the clip's end)
    return torch.stack([frames[s:s + num_frames] for s in window_starts(n, num_frames)])


def clip_steps(m, refs, mode: str, batch: int, mask_index: int) -> dict[str, torch.Tensor]:
    """clip_id -> [S, 4] step scores (token mean, token max, ratio to copy-last, copy-last) of every
    scored step (>= 2 steps of context; with windows, the scored steps of all of them)."""
    from cogarch.features import read_frames

    c, out = m.config, {}
    if mode == "uniform":
        for i in range(0, len(refs), batch):
            chunk = refs[i:i + batch]
            frames = torch.stack([read_frames(r.video, c.num_frames, c.img_size) for r in chunk])
            for r, v in zip(chunk, step_surprise(m, frames, mask_index)):
                out[r.clip_id] = v[2:]
        return out
    for r in refs:
        out[r.clip_id] = step_surprise(m, native_windows(r.video, c.num_frames, c.img_size), mask_index)[:, 2:].flatten(0, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--perception", required=True, help="a perception training folder (with the predictor)")
    ap.add_argument("--data", required=True, help="a generated VoE suite")
    ap.add_argument("--batch", type=int, default=16, help="clips per batch (uniform frames; native reads one clip at a time)")
    ap.add_argument("--skip-untrained", action="store_true",
                    help="score only the trained module (the untrained baseline depends only on the config)")
    ap.add_argument("--frames", choices=("native", "uniform"), default="native",
                    help="native: every frame at the clip's rate, in windows (default); uniform: the pipeline's read")
    ap.add_argument("--mask-index", type=int, default=None,
                    help="the predictor's mask token (default: the first future mask set's, else 0)")
    a = ap.parse_args(argv)
    from cogarch.features import clip_refs
    from cogarch.registry import module_class

    if not Path(a.perception, "config.json").is_file():
        raise UserError(f"--perception {a.perception!r} is not a saved module folder")
    if not Path(a.data, "manifest.json").is_file():
        raise UserError(f"--data {a.data!r} is not a generated suite (no manifest.json)")
    if a.batch < 1:
        raise UserError(f"--batch must be >= 1, got {a.batch}")
    try:
        meta = json.loads((Path(a.perception) / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{a.perception!r}: unreadable config.json ({e})") from None
    if meta.get("inference_only"):
        raise UserError(f"{a.perception!r} holds the target encoder only (a shipped pack): use the training folder")
    trained = module_class("perception").from_pretrained(a.perception).eval()
    torch.manual_seed(0)
    models = {"trained": trained}
    if not a.skip_untrained:
        models["untrained"] = type(trained)(trained.config).eval()
    suite, refs = clip_refs(a.data, SPLITS)
    if suite != "voe":
        raise UserError(f"--data {a.data!r} is a {suite!r} suite, not voe")
    c = trained.config
    if c.grid[0] < 3:
        raise UserError(f"{a.perception!r}: {c.grid[0]} latent steps per clip; scoring needs >= 3 (2 of context)")
    mask_index = a.mask_index
    if mask_index is None:
        mask_index = next((i for i, m in enumerate(c.masks) if m.future), 0)
    if not 0 <= mask_index < len(c.masks):
        raise UserError(f"--mask-index must be in [0, {len(c.masks) - 1}] (the config's mask sets), got {mask_index}")
    print(f"frames: {a.frames}; mask token {mask_index}: {c.masks[mask_index]}")
    rows = voe_rows(Path(a.data), set(SPLITS))
    print("| encoder + predictor | score | " + " | ".join(SPLITS) + " |\n|---|---|" + "---|" * len(SPLITS))
    per_type = {}
    for name, m in models.items():
        s = clip_steps(m, refs, a.frames, a.batch, mask_index)  # steps with >= 2 steps of context
        for j, tok in enumerate(("token mean", "token max", "ratio to copy-last", "copy-last error (control)")):
            for agg in ("max", "mean"):
                res = {sp: voe_eval([r for r in rows if r["split"] == sp],
                                    {r["clip_id"]: float(getattr(s[r["clip_id"]][:, j], agg)())
                                     for r in rows if r["split"] == sp}) for sp in SPLITS}
                per_type[(name, tok, agg)] = res
                print(f"| {name} | {tok}, {agg} over steps | "
                      + " | ".join(f"{100 * res[sp]['mean']['pairwise_acc']:.1f}" for sp in SPLITS) + " |")
    print("\nper type on test (pairwise %):")
    for (name, tok, agg), res in per_type.items():
        r = res["test"]
        print(f"  {name:9s} {tok}, {agg}: " + ", ".join(f"{t} {100 * r[t]['pairwise_acc']:.0f}" for t in r if t != "mean"))
    return 0


if __name__ == "__main__":
    cli(main)
