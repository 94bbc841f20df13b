"""Can a reader trained on the pack's object rows count? A small supervised probe for desc_count.

The language module answers "How many cubes are there?" right on 38 % of physqa test questions,
while a fixed rule on the same rows (slot_readout.py) gets 73.5 %. This trains the smallest
learned reader that sees what the module sees: one clip's `objects` rows from the language feature
shards (perception's time-major slot rows, [T' x K, D]) plus the asked noun, through a 2-layer
transformer encoder (the noun as a first token, learned step and slot embeddings, the classic
probe of a frozen representation), on the TRAIN split's desc_count questions only, and reports
its accuracy on val and test beside the train split's majority answer (the prior). A diagnostic:
it never answers for the pack. If it counts where the language module does not, the rows and the
training questions suffice, and what misses is the module's reader (its training mix, its layout,
its capacity).

    python -m cogarch.evals.bench.count_probe --data runs/vf/physqa --features runs/l7/features
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from cogarch.errors import UserError
from cogarch.evals.bench import cli
from cogarch.evals.bench.forecast_readout import question_rows  # one-line errors for a bad folder or split
from cogarch.evals.bench.template_probe import fit, prior, report  # the training loop and table template_probe uses

TEMPLATE = "desc_count"
HEAD, TAIL = "How many ", " are there?"


def count_rows(data: str, features: str, split: str, kind: str = "objects"):
    """desc_count questions of a split -> (rows [Q, N, D], noun [Q] as strings, answer [Q] long)."""
    from cogarch.modules.language.data import FeatureShard

    shard = FeatureShard(features, split)  # a missing or malformed shard is a UserError already
    xs, nouns, ys = [], [], []
    for r in question_rows(data, split, (TEMPLATE,)):
        if r["clip_id"] not in shard:
            raise UserError(f"{features} has no {split} features for {r['clip_id']} (features of another suite?)")
        parts = shard.get(shard.row_of(r["clip_id"]))
        if kind not in parts:
            raise UserError(f"{features} has no {kind!r} tokens (a pack without object slots?)")
        q = r["question"]
        if not (q.startswith(HEAD) and q.endswith(TAIL)):
            raise UserError(f"cannot parse count question {q!r}")
        xs.append(parts[kind]["tokens"].float())
        nouns.append(q[len(HEAD):-len(TAIL)])
        ys.append(int(r["answer"]))
    return torch.stack(xs), nouns, torch.tensor(ys)


class CountProbe(nn.Module):
    """rows [B, T'*K, D] (time-major) + noun id [B] -> answer logits [B, classes]."""

    def __init__(self, dim: int, steps: int, slots: int, nouns: int, classes: int, width: int = 64, layers: int = 2) -> None:
        super().__init__()
        self.steps, self.slots = steps, slots
        self.inp = nn.Sequential(nn.Linear(dim, width), nn.GELU(), nn.Linear(width, width))
        self.noun = nn.Embedding(nouns, width)
        self.step = nn.Embedding(steps, width)
        self.slot = nn.Embedding(slots, width)
        layer = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, layers)
        self.out = nn.Linear(width, classes)

    def forward(self, rows: torch.Tensor, noun: torch.Tensor) -> torch.Tensor:
        idx = torch.arange(rows.shape[1], device=rows.device)
        h = self.inp(rows) + self.step(idx // self.slots) + self.slot(idx % self.slots)  # [B, N, W]
        h = torch.cat([self.noun(noun)[:, None], h], 1)  # the noun first: every row sees what is asked
        return self.out(self.enc(h)[:, 0])


def run(data: str, features: str, steps: int = 1500, batch: int = 64, seed: int = 0, every: int = 500,
        slots: int = 6, lr: float = 1e-3) -> dict:
    """Train on the train split's count questions; accuracy on train / val / test every `every` steps."""
    torch.manual_seed(seed)
    sets = {s: count_rows(data, features, s) for s in ("train", "val", "test")}
    vocab = sorted(set(sets["train"][1]))
    for s, (_, nouns, _) in sets.items():
        unknown = sorted(set(nouns) - set(vocab))
        if unknown:
            raise UserError(f"{s} asks about {unknown}, never asked in train")
    enc = {s: (x, torch.tensor([vocab.index(n) for n in nouns]), y) for s, (x, nouns, y) in sets.items()}
    x = enc["train"][0]
    for s, t in enc.items():  # every split: the step embedding is sized from train's rows
        if t[0].shape[1:] != x.shape[1:] or x.shape[1] % slots:
            raise UserError(f"{s}: {tuple(t[0].shape[1:])} object rows per clip, train {tuple(x.shape[1:])}, "
                            f"which must be steps x {slots} slots (--slots)")
    classes = int(max(int(t[2].max()) for t in enc.values())) + 1
    model = CountProbe(x.shape[-1], x.shape[1] // slots, slots, len(vocab), classes)
    return {"n": {s: len(t[2]) for s, t in enc.items()}, "prior": prior(enc), "curve": fit(model, enc, steps, batch, seed, every, lr)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="generated physqa suite (its questions/)")
    ap.add_argument("--features", required=True, help="language feature shards of that suite (cogarch/features.py)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slots", type=int, default=6, help="object slots per step in the rows (the pack's head: 6)")
    ap.add_argument("--out", help="write the curve as JSON here")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.batch < 1 or args.every < 1 or args.slots < 1:
        raise UserError("--steps, --batch, --every and --slots must be >= 1")
    res = run(args.data, args.features, args.steps, args.batch, args.seed, args.every, args.slots)
    report(res, "desc_count", args.out)
    return 0


if __name__ == "__main__":
    cli(main)
