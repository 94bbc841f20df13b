"""Which physqa templates can a small reader learn from the pack's bus rows? A supervised probe.

The language module reads perception's object rows (and the world model's forecast of them) as
soft prefix tokens. On several templates it stays near the answer prior while a fixed rule on the
same rows does far better (slot_readout.py). This trains the smallest learned reader that sees
what the module sees, one template at a time: the question's words (a learned embedding per word
of the train questions) followed by one clip's rows of the chosen bus kinds (the language feature
shards, time-major [T' x K, D] per kind; learned step, slot and kind embeddings), through a
2-layer transformer encoder whose first output classifies among the train split's answers. Trained
on the TRAIN split's questions of that template only; accuracy on val and test beside the train
split's majority answer (the prior). A diagnostic: it never answers for the pack. Where it learns
a template and the language module does not, the rows and the training questions suffice and the
module's reader is the limit; where it does not, a learned reader of this size cannot get the
answer out of these rows either.

    python -m cogarch.evals.bench.template_probe --data runs/vf/physqa --features runs/l7/features --template desc_collide
    python -m cogarch.evals.bench.template_probe ... --template pred_collide --kinds objects,forecast
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

import torch
from torch import nn

from cogarch.errors import UserError
from cogarch.evals.bench import cli
from cogarch.evals.bench.forecast_readout import question_rows  # one-line errors for a bad folder or split


def words(question: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", question.lower())


def template_rows(data: str, features: str, split: str, template: str, kinds: tuple[str, ...]):
    """A split's questions of one template -> (rows {kind: [Q, N_k, D]}, question words, answers)."""
    from cogarch.modules.language.data import FeatureShard

    shard = FeatureShard(features, split)  # a missing or malformed shard is a UserError already
    xs: dict[str, list[torch.Tensor]] = {k: [] for k in kinds}
    qs, ys = [], []
    for r in question_rows(data, split, (template,)):
        for k, v in shard.tokens(r["clip_id"], kinds).items():
            xs[k].append(v)
        qs.append(words(r["question"]))
        ys.append(str(r["answer"]))
    return {k: torch.stack(v) for k, v in xs.items()}, qs, ys


def pair_tokens(rows: torch.Tensor, slots: int, contact: float = 15 / 64, ordered: bool = False) -> torch.Tensor:
    """Object rows [Q, T'*K, 18] -> one token per pair of slots [Q, K(K-1)/2, 17]: the two slots'
    identities summed (each ungated at its most visible step, zero for a slot never visible),
    then their smallest centre distance over the steps both are visible (/ 64), the first such step
    closer than `contact` (/ T'; 1 if never), the step of the smallest distance (/ T') and the
    fraction of steps both are visible. A diagnostic input (--pairs): the relation already computed
    for every pair, so a reader only has to find the asked pair. ordered (--pairs ordered): one
    token per ordered pair (a, b), a != b, [K(K-1), 30], the identities side by side (a's, then
    b's), so "a is the red sphere AND b is the blue cube" is a sum of two matches, not a bag."""
    Q, N, D = rows.shape
    T = N // slots
    R = rows.float().reshape(Q, T, slots, D)
    g = R[..., 13]
    top = g.max(1).values  # [Q, K]
    best = g.argmax(1)[:, None, :, None].expand(Q, 1, slots, 13)
    ident = torch.gather(R[..., :13], 1, best)[:, 0] / top.clamp_min(1e-6)[..., None] * (top > 0.5)[..., None]
    pos = R[..., 14:16] / g.clamp_min(1e-6)[..., None]
    on = g > 0.5
    out = []
    for a in range(slots):
        for b in range(slots) if ordered else range(a + 1, slots):
            if a == b:
                continue
            both = on[:, :, a] & on[:, :, b]  # [Q, T']
            d = (pos[:, :, a] - pos[:, :, b]).norm(dim=-1).masked_fill(~both, 2.0)
            dmin, tmin = d.min(1)
            close = d < contact
            first = torch.where(close.any(1), close.float().argmax(1).float(), torch.full_like(dmin, T)) / T
            who = [ident[:, a], ident[:, b]] if ordered else [ident[:, a] + ident[:, b]]
            out.append(torch.cat([*who, torch.stack([dmin, first, tmin.float() / T, both.float().mean(1)], -1)], -1))
    return torch.stack(out, 1)


def bound_token(rows: torch.Tensor, questions: list[str], slots: int) -> torch.Tensor:
    """desc_collide only, a diagnostic of binding (--bound): one token per question [Q, 1, R], the
    closest approach of the two NAMED slots, bound by code as slot_signal binds them, expanded onto
    the relation channels' soft steps (relations.RADII). A reader given it has nothing left to find."""
    from cogarch.evals.bench.slot_signal import scalar
    from cogarch.evals.world import vocab
    from cogarch.modules.language.relations import RADII, STEP_PX

    names = [list(vocab.COLORS), list(vocab.SHAPES), list(vocab.MATERIALS)]
    d = torch.tensor([-scalar("desc_collide", q, r, names, slots) for q, r in zip(questions, rows)])
    return torch.sigmoid((torch.tensor(RADII) - d[:, None]) / STEP_PX)[:, None, :]


class TemplateProbe(nn.Module):
    """question word ids [B, L] + rows {kind: [B, N_k, D]} (time-major, `slots` per step) -> logits [B, C]."""

    def __init__(self, dims: dict[str, int], steps: int, slots: int, vocab: int, classes: int, width: int = 64, layers: int = 2,
                 unplaced: tuple[str, ...] = (), binder: bool = False) -> None:
        super().__init__()
        self.kinds, self.slots, self.unplaced = list(dims), slots, set(unplaced)  # unplaced: no step / slot embedding
        self.inp = nn.ModuleDict({k: nn.Sequential(nn.Linear(d, width), nn.GELU(), nn.Linear(width, width)) for k, d in dims.items()})
        self.kind = nn.Embedding(len(dims), width)
        self.word = nn.Embedding(vocab, width, padding_idx=0)
        self.pos = nn.Embedding(64, width)  # word position in the question
        self.step = nn.Embedding(steps, width)
        self.slot = nn.Embedding(slots, width)
        self.cls = nn.Parameter(torch.zeros(width))
        layer = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)  # padded words: no prototype fast path
        self.out = nn.Linear(width, classes)
        self.binder = None
        if binder:  # the language module's slot binder over the objects rows, reading this probe's word embeddings
            from cogarch.modules.language.binder import PAIR_WIDTH, ROLE_WIDTH, SlotBinder

            self.binder = SlotBinder(width)
            self.bind_in = nn.Sequential(nn.Linear(ROLE_WIDTH + PAIR_WIDTH, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, qids: torch.Tensor, rows: dict[str, torch.Tensor]) -> torch.Tensor:
        B, L = qids.shape
        h = [self.cls.expand(B, 1, -1), self.word(qids) + self.pos(torch.arange(L, device=qids.device))]
        pad = [torch.zeros(B, 1, dtype=torch.bool, device=qids.device), qids == 0]
        for i, k in enumerate(self.kinds):
            x = rows[k]
            idx = torch.arange(x.shape[1], device=x.device)
            e = self.inp[k](x) + self.kind.weight[i]
            h.append(e if k in self.unplaced else e + self.step(idx // self.slots) + self.slot(idx % self.slots))
            pad.append(torch.zeros(B, x.shape[1], dtype=torch.bool, device=x.device))
        if self.binder is not None:
            words = self.word(qids) + self.pos(torch.arange(L, device=qids.device))
            tok, _, _ = self.binder(rows["objects"], self.slots, words, qids != 0)
            h.append(self.bind_in(tok))
            pad.append(torch.zeros(B, tok.shape[1], dtype=torch.bool, device=qids.device))
        return self.out(self.enc(torch.cat(h, 1), src_key_padding_mask=torch.cat(pad, 1))[:, 0])


def encode(qs: list[list[str]], vocab: dict[str, int]) -> torch.Tensor:
    """Word lists -> [Q, L] ids (0 = padding; words the train questions lack share id 1)."""
    L = min(max(len(q) for q in qs), 64)
    out = torch.zeros(len(qs), L, dtype=torch.long)
    for i, q in enumerate(qs):
        out[i, : min(len(q), L)] = torch.tensor([vocab.get(w, 1) for w in q[:L]])
    return out


def run(data: str, features: str, template: str = "desc_count", kinds: tuple[str, ...] = ("objects",), steps: int = 1500,
        batch: int = 64, seed: int = 0, every: int = 500, slots: int = 6, lr: float = 1e-3, relations: bool = False,
        pairs: bool | str = False, train_from: tuple[str, str] | None = None, bound: bool = False, layers: int = 2,
        binder: bool = False) -> dict:
    """Train on the train split's questions of `template`; accuracy on train / val / test every `every` steps.
    relations: append the language module's relation channels (modules/language/relations.py) to every row.
    pairs: also give the probe one token per pair of `objects` slots (pair_tokens; "ordered": per ordered pair).
    binder: also read the objects rows through the language module's SlotBinder (binder.py).
    bound: desc_collide only; also give it the named pair's closest approach, bound by code (bound_token).
    train_from: (data, features) of another suite whose train split it trains on instead (more
    questions; val and test still come from `data`)."""
    torch.manual_seed(seed)
    sources = {s: train_from if train_from and s == "train" else (data, features) for s in ("train", "val", "test")}
    sets = {s: template_rows(*src, s, template, kinds) for s, src in sources.items()}
    if relations:
        from cogarch.modules.language.relations import OBJECT_ROW, slot_relations

        narrow = [k for k, v in sets["train"][0].items() if v.shape[-1] < OBJECT_ROW]
        if narrow:
            raise UserError(f"--relations needs 18-wide object rows; {narrow} rows are narrower")
        try:
            sets = {s: ({k: torch.cat([v, slot_relations(v, slots)], -1) for k, v in r.items()}, q, y) for s, (r, q, y) in sets.items()}
        except ValueError as e:  # rows that are not steps x slots
            raise UserError(f"--relations: {e} (--slots)") from None
    if pairs not in (False, True, "ordered"):
        raise UserError(f"pairs must be off, on or 'ordered', got {pairs!r}")
    if pairs:
        if "objects" not in kinds:
            raise UserError("--pairs reads the objects rows: add objects to --kinds")
        if sets["train"][0]["objects"].shape[-1] < 18:
            raise UserError("--pairs needs 18-wide object rows")
        for r, _, _ in sets.values():
            r["pairs"] = pair_tokens(r["objects"][..., :18], slots, ordered=pairs == "ordered")
    if bound:
        if template != "desc_collide" or "objects" not in kinds:
            raise UserError("--bound is for --template desc_collide with objects in --kinds")
        for s, (r, _, _) in sets.items():
            r["bound"] = bound_token(r["objects"], [q["question"] for q in question_rows(sources[s][0], s, (template,))], slots)
    rows, qs, ys = sets["train"]
    vocab = {w: i + 2 for i, w in enumerate(sorted({w for q in qs for w in q}))}
    answers = sorted(set(ys))
    for s, (r, _, _) in sets.items():  # every split: the step embedding is sized from train's rows
        for k in kinds:
            if r[k].shape[1:] != rows[k].shape[1:] or rows[k].shape[1] % slots:
                raise UserError(f"{s}: {tuple(r[k].shape[1:])} {k} rows per clip, train {tuple(rows[k].shape[1:])}, "
                                f"which must be steps x {slots} slots (--slots)")
    # an answer never given in train cannot be predicted: it counts as wrong (class -1)
    enc = {s: (encode(q, vocab), r, torch.tensor([answers.index(a) if a in answers else -1 for a in y])) for s, (r, q, y) in sets.items()}
    steps_max = max(rows[k].shape[1] // slots for k in kinds)
    model = TemplateProbe({k: rows[k].shape[-1] for k in rows}, steps_max, slots, len(vocab) + 2, len(answers),
                          layers=layers, unplaced=("pairs", "bound"), binder=binder)
    if binder and "objects" not in kinds:
        raise UserError("--binder reads the objects rows: add objects to --kinds")
    res = {"template": template, "kinds": list(kinds), "relations": relations, "pairs": pairs, "bound": bound, "binder": binder,
           "n": {s: len(t[2]) for s, t in enc.items()}, "prior": prior(enc), "curve": fit(model, enc, steps, batch, seed, every, lr)}
    if binder and template == "desc_collide":  # did the binder find the named pair? (bound by code, as --bound)
        res["binder_picks"] = {s: binder_picks(model, enc[s], [q["question"] for q in question_rows(sources[s][0], s, (template,))], slots)
                               for s in enc}
    return res


@torch.no_grad()
def binder_picks(model: "TemplateProbe", split: tuple, questions: list[str], slots: int, template: str = "desc_collide") -> float:
    """% of questions whose named objects (found by code in the rows, slot_signal.named_slots: the pair
    of a desc_collide question, the subject of a "hits first" / "hits next" / "moving at the end" one;
    questions where that finds no such slots are left out) are the binder's first picks, in any order."""
    from cogarch.evals.bench.slot_signal import named_slots

    ids, rows, _ = split
    picked = []
    pick = model.binder.select
    model.binder.select = lambda *a: picked.append(pick(*a)) or picked[-1]  # record the weights of one pass
    try:
        model.eval()
        for i in torch.arange(len(ids)).split(512):
            model(take(ids, i), take(rows, i))
    finally:
        model.binder.select = pick
    w = torch.cat(picked).argmax(-1)  # [Q, roles]
    right = n = 0
    for q, x, p in zip(questions, rows["objects"], w.tolist()):
        named = named_slots(template, q, x, slots)
        if named is not None:
            n, right = n + 1, right + (set(named) == set(p[: len(named)]))
    return round(100 * right / max(n, 1), 1)


def prior(enc: dict) -> dict[str, float]:
    """Accuracy of always answering the train split's majority label, per split (labels: enc[s][2])."""
    majority = Counter(enc["train"][2].tolist()).most_common(1)[0][0]
    return {s: round(100 * float((t[2] == majority).float().mean()), 1) for s, t in enc.items()}


def take(a, i: torch.Tensor):
    """Rows i of a tensor, or of every tensor of a {kind: tensor} dict."""
    return {k: v[i] for k, v in a.items()} if isinstance(a, dict) else a[i]


@torch.no_grad()
def accuracy(model: nn.Module, a, b, y: torch.Tensor, chunk: int = 512) -> float:
    """% of `y` that model(a, b) gets right, scored `chunk` questions at a time (bounded memory)."""
    right = sum(int((model(take(a, i), take(b, i)).argmax(-1) == y[i]).sum())
                for i in torch.arange(len(y)).split(chunk))
    return round(100 * right / max(len(y), 1), 1)


def fit(model: nn.Module, enc: dict, steps: int, batch: int, seed: int, every: int, lr: float) -> list[dict]:
    """Train `model(a, b) -> logits` on enc["train"] = (a, b, labels) with AdamW, batches drawn with
    replacement; accuracy on every split of `enc` every `every` steps and at the end (the curve).
    Shared by count_probe and template_probe."""
    opt = torch.optim.AdamW(model.parameters(), lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    a, b, y = enc["train"]
    curve = []
    for step in range(steps + 1):
        if step % every == 0 or step == steps:
            model.eval()
            acc = {s: accuracy(model, *t) for s, t in enc.items()}
            model.train()
            curve.append({"step": step, **acc})
        if step == steps:
            break
        i = torch.randint(0, len(y), (batch,), generator=g)
        loss = nn.functional.cross_entropy(model(take(a, i), take(b, i)), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return curve


def report(res: dict, title: str, out: str | None) -> None:
    """Print the curve as a markdown table; write the result JSON to `out` when given."""
    print(f"{title}: questions {res['n']}; prior (train majority) {res['prior']}")
    if "binder_picks" in res:
        print(f"binder's first two picks = the named pair (bound by code), % of questions: {res['binder_picks']}")
    print("| step | train | val | test |\n|---|---|---|---|")
    for r in res["curve"]:
        print(f"| {r['step']} | {r['train']} | {r['val']} | {r['test']} |")
    if out:
        from cogarch.fsutil import atomic_write_json

        atomic_write_json(out, res)

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="generated physqa suite (its questions/)")
    ap.add_argument("--features", required=True, help="language feature shards of that suite (cogarch/features.py)")
    ap.add_argument("--template", default="desc_count", help="question template (default desc_count)")
    ap.add_argument("--kinds", default="objects", help="bus kinds read, comma-separated (e.g. objects,forecast)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slots", type=int, default=6, help="object slots per step in the rows (the pack's head: 6)")
    ap.add_argument("--relations", action="store_true", help="append relation channels (speed, contact, who is in contact) to the rows")
    ap.add_argument("--pairs", nargs="?", const=True, default=False, choices=["ordered"],
                    help="also one token per pair of object slots (their distance; pair_tokens); 'ordered': per ordered pair")
    ap.add_argument("--layers", type=int, default=2, help="transformer layers of the probe")
    ap.add_argument("--bound", action="store_true", help="desc_collide: also the named pair's closest approach, bound by code")
    ap.add_argument("--binder", action="store_true", help="also read the objects rows through the language module's slot binder")
    ap.add_argument("--train-data", help="train on this suite's train split instead (with --train-features)")
    ap.add_argument("--train-features", help="language feature shards of --train-data (its train split)")
    ap.add_argument("--out", help="write the curve as JSON here")
    args = ap.parse_args(argv)
    if min(args.steps, args.batch, args.every, args.slots, args.layers) < 1:
        raise UserError("--steps, --batch, --every, --slots and --layers must be >= 1")
    if bool(args.train_data) != bool(args.train_features):
        raise UserError("--train-data and --train-features go together")
    kinds = tuple(k for k in args.kinds.split(",") if k)
    if not kinds:
        raise UserError("--kinds names no bus kind")
    res = run(args.data, args.features, args.template, kinds, args.steps, args.batch, args.seed, args.every, args.slots,
              relations=args.relations, pairs=args.pairs, bound=args.bound, layers=args.layers, binder=args.binder,
              train_from=(args.train_data, args.train_features) if args.train_data else None)
    report(res, f"{res['template']} from {','.join(kinds)}", args.out)
    return 0


if __name__ == "__main__":
    cli(main)
