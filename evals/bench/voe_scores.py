"""Which VoE clip score does an object world model support? Score variants, chosen on val.

The module's surprise (modules/world_model, `surprise`) is the mean |prediction - observation| over
all slot rows and dimensions. A violation concerns ONE object, so that mean may dilute it; and a
motion-driven error ranks a floating object (gravity) or a vanished one (permanence) as LESS
surprising than the moving one of the possible twin. This diagnostic scores the same one-step
predictions several ways and reports pairwise accuracy per violation type:

  row_mean   the module's surprise: mean error over slots and row dimensions
  slot_max   the largest per-slot mean error (the one object that broke the rules)
  presence   the largest error of a slot's visibility entry (something (dis)appeared unexpectedly)
  ratio      row_mean / (copy-last row_mean + 0.01): error relative to how much the scene changed

each from three predictors on the same rows: the trained world model, an untrained one of the
same config (seed 0) and copy-last (the previous step). Clip score: mean of the k largest per-step
scores after the first step (k = 1, 2, all). The variant and k are chosen on val by the trained
model; test and test_ood report that choice for all three predictors (no selection on test).

    python -m cogarch.evals.bench.voe_scores --perception PACK/perception --world-model PACK/world_model \
        --data runs/voe1000 [--features runs/voe_exp/obj/voe.safetensors]
--features reuses a shard written by cogarch.features.write_world_model_features(kind="objects");
without it the clips are encoded here (and the shard is not kept).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from cogarch.errors import UserError
from cogarch.evals.bench import cli
from cogarch.evals.bench.world_model import voe_eval, voe_rows

VISIBLE = 13  # row layout: identity probs (13) | visible | x, y | vx, vy (ObjectHead.tokens in objects.py)
SPLITS = ("val", "test", "test_ood")
KS = (1, 2, 0)  # 0 = all steps


def load_rows(features: str | None, perception: str | None, data: str) -> tuple[torch.Tensor, list[str]]:
    """Object rows [N, T', K, D] of every clip of a VoE suite (D = 18, or wider when the oracle shard
    appends static-element columns after the 18 object columns), and their clip ids."""
    from safetensors import safe_open

    if features is None:
        if perception is None:
            raise UserError("give --features SHARD or --perception FOLDER to encode the clips")
        import tempfile

        from cogarch.features import write_world_model_features

        with tempfile.TemporaryDirectory() as tmp:
            path = write_world_model_features(perception, data, tmp, kind="objects")
            return load_rows(str(path), None, data)
    if not Path(features).is_file():
        raise UserError(f"--features {features!r} is not a file")
    with safe_open(features, "pt") as f:
        meta = f.metadata() or {}
        z = f.get_tensor("latents").float() if "latents" in f.keys() else None
    if meta.get("suite") != "voe" or "clip_ids" not in meta or z is None or z.dim() != 4 or z.shape[-1] < 18:
        raise UserError(f"{features!r} is not a VoE shard of object rows [N, T, K, >=18] with clip ids")
    return z, json.loads(meta["clip_ids"])


@torch.no_grad()
def predictions(wm, z: torch.Tensor) -> torch.Tensor:
    """One-step teacher-forced predictions [N, T'-1, K, D]: entry t predicts step t + 1."""
    return torch.cat([wm.predict(wm.normalize(z[i:i + 64]))[:, :-1] for i in range(0, len(z), 64)])


def step_scores(pred: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-step scores [N, T'-1] of each variant from predictions of steps 1..T'-1."""
    obs, prev = z[:, 1:], z[:, :-1]
    err = (pred - obs).abs()  # [N, T'-1, K, D]
    row = err.mean((2, 3))
    return {"row_mean": row, "slot_max": err.mean(3).amax(2), "presence": err[..., VISIBLE].amax(2),
            "ratio": row / ((prev - obs).abs().mean((2, 3)) + 0.01)}


def clip_score(s: torch.Tensor, k: int, min_context: int = 2) -> torch.Tensor:
    """Mean of the k largest per-step scores [N, T'-1] (k = 0: all) of the steps the module scores:
    entry t predicts step t + 1, so steps with >= min_context observed steps start at entry min_context - 1."""
    s = s[:, max(min_context - 1, 0):]
    return s.topk(min(k, s.shape[1]) if k else s.shape[1], dim=1).values.mean(1)


def evaluate(scores: torch.Tensor, idx: dict[str, int], rows: list[dict]) -> dict[str, dict]:
    out = {}
    for sp in SPLITS:
        rs = [r for r in rows if r["split"] == sp]
        out[sp] = voe_eval(rs, {r["clip_id"]: float(scores[idx[r["clip_id"]]]) for r in rs})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world-model", required=True, help="an object world model folder (model.source=objects)")
    ap.add_argument("--data", required=True, help="a generated VoE suite")
    ap.add_argument("--features", help="a VoE shard of object rows (else encoded with --perception)")
    ap.add_argument("--perception", help="the perception folder (with object slots) that encodes the clips")
    ap.add_argument("--json", help="also write every score here")
    a = ap.parse_args(argv)
    from cogarch.registry import module_class

    if not Path(a.world_model, "config.json").is_file():
        raise UserError(f"--world-model {a.world_model!r} is not a saved module folder")
    wm = module_class("world_model").from_pretrained(a.world_model).eval()
    if wm.config.source != "objects" or wm.config.normalize:
        raise UserError(f"--world-model {a.world_model!r} must read raw object rows (source=objects, normalize=false)")
    if not Path(a.data, "manifest.json").is_file():
        raise UserError(f"--data {a.data!r} is not a generated suite (no manifest.json)")
    z, ids = load_rows(a.features, a.perception, a.data)
    wm._check(z)  # slot count and row width against the model's config
    idx = {c: i for i, c in enumerate(ids)}
    rows = voe_rows(Path(a.data), set(SPLITS))
    missing = [r["clip_id"] for r in rows if r["clip_id"] not in idx]
    if missing:
        raise UserError(f"the features hold no rows for {len(missing)} clips of {a.data!r} (e.g. {missing[0]}): another suite?")
    mc = wm.config.surprise_min_context
    torch.manual_seed(0)
    untrained = type(wm)(wm.config).eval()
    preds = {"trained": predictions(wm, z), "untrained": predictions(untrained, z), "copy-last": z[:, :-1]}
    res = {m: {f"{v}@{k}": evaluate(clip_score(s, k, mc), idx, rows) for v, s in step_scores(p, z).items()
               if not (m == "copy-last" and v == "ratio") for k in KS} for m, p in preds.items()}
    best = max(res["trained"], key=lambda key: res["trained"][key]["val"]["mean"]["pairwise_acc"])
    types = [t for t in res["trained"][best]["test"] if t != "mean"]
    print("trained model, every variant (pairwise accuracy %, mean over types; k = 0: all steps)\n")
    print("| variant@k | val | test | test_ood |\n|---|---|---|---|")
    for key, r in res["trained"].items():
        print(f"| {key} | " + " | ".join(f"{100 * r[sp]['mean']['pairwise_acc']:.1f}" for sp in SPLITS) + " |")
    print(f"\nchosen on val: {best}. Per type (pairs per type: "
          f"{', '.join(str(res['trained'][best]['test'][t]['pairs']) for t in types)} on test)\n")
    print("| predictor | split | " + " | ".join(types) + " | mean |\n|---|---|" + "---|" * (len(types) + 1))
    for m in preds:
        key = best if best in res[m] else best.replace("ratio", "row_mean")
        for sp in ("test", "test_ood"):
            r = res[m][key][sp]
            print(f"| {m} ({key}) | {sp} | " + " | ".join(f"{100 * r[t]['pairwise_acc']:.0f}" for t in types)
                  + f" | {100 * r['mean']['pairwise_acc']:.1f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"chosen": best, "results": res}, indent=1))
    return 0


if __name__ == "__main__":
    cli(main)
