"""What do the language module's bus features carry, and does a trained language module read them?

Two diagnostics on the feature shards `cogarch train pack` writes (`<run>/features/language`):

    # 1. probe: can a small attentive probe, trained on the TRAIN shard, read per-clip facts from the
    #    `percept` tokens of the VAL shard? (colour presence, colour+shape presence: mean AUROC;
    #    object count: accuracy beside the majority class)
    python -m cogarch.evals.bench.bus_info probe --features runs/pack/features/language --data runs/pack/data/physqa
    # 2. nll: val token NLL of a trained language folder with each clip's own bus vs another clip's
    #    bus (a fixed random derangement). Equal NLLs mean the module ignores the video.
    python -m cogarch.evals.bench.bus_info nll --language runs/pack/language/final \
        --features runs/pack/features/language --data runs/pack/data/physqa --stage 2

Run `probe` on the shards of different encoders (trained, untrained, VICReg) to see where the
information is lost: in perception, or between the bus and the answer. The probe is the standard
frozen-feature protocol of V-JEPA (Bardes et al. 2024: a cross-attention pooler on frozen tokens).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cogarch.evals.bench import cli

COLORS = ["brown", "gray", "purple", "cyan", "blue", "yellow", "red", "green"]
SHAPES = ["sphere", "cube", "cylinder"]


def clip_targets(data: str, split: str, clip_ids: list[str]) -> dict[str, torch.Tensor]:
    """Per-clip ground truth from the generated suite: colour [N, 8], colour+shape [N, 24], count [N]."""
    from cogarch.modules.language.corpus import load_split

    rows = {r["clip_id"]: json.loads(r["objects"]) for r in load_split(data, "clips", split)}
    objs = [rows[c] for c in clip_ids]
    colour = [[float(any(o["color"] == c for o in ob)) for c in COLORS] for ob in objs]
    pair = [[float(any(o["color"] == c and o["shape"] == s for o in ob)) for c in COLORS for s in SHAPES] for ob in objs]
    return {"colour": torch.tensor(colour), "colour+shape": torch.tensor(pair), "count": torch.tensor([len(ob) for ob in objs])}


class AttentiveProbe(nn.Module):
    """[B, N, D] -> [B, out]: `queries` learned queries cross-attend to the tokens, then a linear head.

    Deliberately not perception's MultiQueryProbe (modules/perception/probe.py): that one adds a
    3-D position code of a known token grid and has one query per target. This one reads any bus
    tokens (pooled, slot rows; no grid) and scores a whole multi-label target with one head.
    """

    def __init__(self, dim: int, out: int, queries: int = 8, width: int = 64) -> None:
        super().__init__()
        self.q = nn.Parameter(torch.randn(queries, width) * 0.1)
        self.k, self.v = nn.Linear(dim, width), nn.Linear(dim, width)
        self.head = nn.Linear(queries * width, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        att = torch.softmax(torch.einsum("qd,bnd->bqn", self.q, self.k(x)) / self.q.shape[1] ** 0.5, -1)  # [B, Q, N]
        return self.head(torch.einsum("bqn,bnd->bqd", att, self.v(x)).flatten(1))


def auroc(score: np.ndarray, y: np.ndarray) -> float:
    """Mean one-vs-rest AUROC (cogarch.evals.metrics.auroc) over label columns with both classes."""
    from cogarch.evals.metrics import auroc as binary_auroc

    vals = [binary_auroc(score[y[:, j] == 1, j], score[y[:, j] == 0, j]) for j in range(y.shape[1])]
    return float(np.mean([v for v in vals if v is not None]))


def probe(features: str, data: str, kind: str = "percept", epochs: int = 60, seed: int = 0) -> dict:
    from safetensors.torch import load_file

    torch.manual_seed(seed)
    xs, ys = {}, {}
    for split in ("train", "val"):
        ids = json.loads((Path(features) / f"{split}.json").read_text())["clip_ids"]
        xs[split] = load_file(str(Path(features) / f"{split}.safetensors"))[kind].float()  # [N, n_tokens, D]
        ys[split] = clip_targets(data, split, ids)
    mu, sd = xs["train"].mean((0, 1)), xs["train"].std((0, 1)) + 1e-5  # train statistics only
    xtr, xva = (xs["train"] - mu) / sd, (xs["val"] - mu) / sd
    out = {}
    for name in ("colour", "colour+shape", "count"):
        ytr, yva = ys["train"][name], ys["val"][name]
        multilabel = ytr.dim() == 2
        if not multilabel:
            lo = int(ytr.min())
            ytr, yva = ytr - lo, (yva - lo).clamp(0, int(ytr.max()))
        net = AttentiveProbe(xtr.shape[-1], ytr.shape[1] if multilabel else int(ytr.max()) + 1)
        opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=0.05)
        for _ in range(epochs):
            for b in torch.randperm(len(xtr)).split(64):
                logits = net(xtr[b])
                loss = F.binary_cross_entropy_with_logits(logits, ytr[b]) if multilabel else F.cross_entropy(logits, ytr[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            pred = net(xva)
        if multilabel:
            out[name] = {"val_auroc": auroc(pred.numpy(), yva.numpy())}
        else:
            majority = torch.mode(ytr).values
            out[name] = {"val_acc": float((pred.argmax(-1) == yva).float().mean()), "majority": float((yva == majority).float().mean())}
    return out


@torch.no_grad()
def nll(language: str, features: str, data: str, stage: int = 2, n: int = 1200, seed: int = 0) -> dict:
    from cogarch.modules.language.data import FeatureShard
    from cogarch.modules.language.model import LanguageModule
    from cogarch.modules.language.train import BusTextDataset, Config, build_examples, collate

    module = LanguageModule.from_pretrained(language)
    module.eval()
    module.token_norm = 1.0
    shard = FeatureShard(features, "val")
    examples = build_examples(Config(stage=stage, data_dir=data, features_dir=features, split="val"), module, shard)
    g = torch.Generator().manual_seed(seed)
    examples = [examples[i] for i in torch.randperm(len(examples), generator=g)[:n].tolist()]
    perm = torch.randperm(len(shard), generator=g)
    derange = torch.empty_like(perm)
    derange[perm] = torch.roll(perm, -1)  # a random cycle: row perm[j] -> perm[j+1], never itself
    kinds = [k for k in module.config.kind_dims if k in shard.kinds]
    out = {}
    for tag, rows in (("own clip", examples), ("other clip", [(int(derange[r]), p, t) for r, p, t in examples])):
        ds = BusTextDataset(rows, shard, kinds)
        total, count = 0.0, 0
        for i in range(0, len(ds), 32):
            batch = collate([ds[j] for j in range(i, min(i + 32, len(ds)))])
            _, metrics = module(batch)
            k = int(batch["target_len"].sum())
            total, count = total + metrics["token_nll"] * k, count + k
        out[tag] = {"token_nll": total / count, "tokens": count}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--features", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=60)
    q = sub.add_parser("nll")
    q.add_argument("--language", required=True)
    q.add_argument("--features", required=True)
    q.add_argument("--data", required=True)
    q.add_argument("--stage", type=int, default=2, choices=(1, 2))
    q.add_argument("--n", type=int, default=1200)
    a = ap.parse_args()
    res = probe(a.features, a.data, epochs=a.epochs) if a.cmd == "probe" else nll(a.language, a.features, a.data, a.stage, a.n)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    cli(main)
