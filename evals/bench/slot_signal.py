"""How much of "collide" and "moving at the end" one number from the language features holds.

A DIAGNOSTIC, never an answer. For each desc_collide and desc_moving_end question it binds the
named objects to slots of the clip's `objects` rows in the language feature shards (the rows the
language module reads), read as slot_readout reads the pack's bus (slot_view: the present slot whose
identity best matches the name; "visible" = gate > 0.5 with the centre on the canvas), and computes
one scalar:
  desc_moving_end  the slot's speed at the last step (ungated, x 32 units/s), 0 if not visible then;
  desc_collide     minus the smallest distance between the two slots' centres (ungated, x 64 px)
                   over the steps where both are visible.
It reports the scalar's AUC for the answer "yes" per split and the accuracy of one threshold fitted
on the TRAIN split (the best midpoint between neighbouring train values), applied unchanged to val and test. Where this
is far above what a learned reader reaches (template_probe.py, the language module), the rows hold
the answer and reading it is the limit.

    python -m cogarch.evals.bench.slot_signal --data runs/vf/physqa --features runs/l7/features
"""

from __future__ import annotations

import argparse
import re

import torch

from cogarch.errors import UserError
from cogarch.evals.bench import cli
from cogarch.evals.bench.forecast_readout import question_rows
from cogarch.evals.bench.slot_readout import slot_view
from cogarch.evals.metrics import auroc

TEMPLATES = ("desc_moving_end", "desc_collide")
CANVAS = 64.0  # px of the physics world's frame (the rows hold x, y / 64)


COLLIDE = r"Does the (.+) collide with the (.+)\?"  # desc_collide's question form
# the question forms whose named objects a binding diagnostic looks up (the generator's templates)
NAMED = {
    "desc_collide": COLLIDE,
    "desc_first_hit": r"Which object does the (.+) hit first\?",
    "pred_next_hit": r"Which object will the (.+) hit next\?",
    "desc_moving_end": r"Is the (.+) moving at the end of the video\?",
}


def named_slots(template: str, question: str, rows: torch.Tensor, slots: int = 6) -> tuple[int, ...] | None:
    """The slots a question names (two for desc_collide, the subject for the others in NAMED), found
    by code in a clip's rows [T' x K, >= 18] through their identity columns (slot_view's find, the
    world's vocabulary), or None where the rows hold no such distinct slots. A diagnostic of binding
    (template_probe, binder_pretrain, binder_check); never an answer."""
    if template not in NAMED:
        raise UserError(f"no named-slot form for template {template!r} (known: {', '.join(NAMED)})")
    m = re.fullmatch(NAMED[template], question)
    if m is None:
        raise UserError(f"not a {template} question: {question!r}")
    find = find_slot(rows, slots)
    got = tuple(find(n) for n in m.groups())
    return got if min(got) >= 0 and len(set(got)) == len(got) else None


def scalar(template: str, question: str, rows: torch.Tensor, names: list[list[str]], slots: int = 6) -> float:
    """One question's scalar from a clip's time-major rows [T' x K, 18] (see the file docstring); the
    slots are read as slot_readout reads the pack's bus (slot_view)."""
    if rows.shape[0] % slots or rows.shape[-1] < 18:
        raise UserError(f"{tuple(rows.shape)} object rows are not steps x {slots} slots of 18 columns (--slots)")
    xy, on, speed, _, find = slot_view(rows.float().reshape(-1, slots, rows.shape[-1]), names)
    if template == "desc_moving_end":
        m = re.fullmatch(r"Is the (.+) moving at the end of the video\?", question)
        if m is None:
            raise UserError(f"cannot parse question {question!r}")
        a = find(m.group(1))
        return float(speed[a]) if a >= 0 and bool(on[-1, a]) else 0.0
    m = re.fullmatch(COLLIDE, question)
    if m is None:
        raise UserError(f"cannot parse question {question!r}")
    a, b = (find(n) for n in m.groups())
    if a < 0 or b < 0 or a == b:
        return -2 * CANVAS  # no two slots to compare: as far apart as the canvas allows
    d = (xy[:, a] - xy[:, b]).norm(dim=-1).masked_fill(~(on[:, a] & on[:, b]), 2 * CANVAS)
    return -float(d.min())


def auc(x: torch.Tensor, y: torch.Tensor) -> float | None:
    """The scalar's AUROC for "yes" (evals/metrics.auroc), 3 decimals; None if a class is empty."""
    a = auroc(x[y].tolist(), x[~y].tolist())
    return None if a is None else round(a, 3)


def run(data: str, features: str, templates: tuple[str, ...] = TEMPLATES, slots: int = 6) -> dict:
    from cogarch.evals.world import vocab
    from cogarch.modules.language.data import FeatureShard

    names = [list(vocab.COLORS), list(vocab.SHAPES), list(vocab.MATERIALS)]
    out = {}
    for template in templates:
        per = {}
        for split in ("train", "val", "test"):
            shard = FeatureShard(features, split)
            xs, ys = [], []
            for r in question_rows(data, split, (template,)):
                if r["clip_id"] not in shard:
                    raise UserError(f"{features} has no {split} features for {r['clip_id']} (features of another suite?)")
                rows = shard.get(shard.row_of(r["clip_id"]))["objects"]["tokens"]
                xs.append(scalar(template, r["question"], rows, names, slots))
                ys.append(str(r["answer"]) == "yes")
            per[split] = (torch.tensor(xs), torch.tensor(ys))
        x, y = per["train"]
        u = x.unique()  # sorted; candidate thresholds halfway between neighbouring train values
        cands = torch.cat([u[:1] - 1, (u[1:] + u[:-1]) / 2])
        acc, t = max((float(((x > t) == y).float().mean()), float(t)) for t in cands)
        out[template] = {"threshold": round(t, 2), "splits": {
            s: {"n": len(yv), "auc": auc(xv, yv), "accuracy": round(100 * float(((xv > t) == yv).float().mean()), 1),
                "prior": round(100 * max(float(yv.float().mean()), 1 - float(yv.float().mean())), 1)}
            for s, (xv, yv) in per.items()}}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="generated physqa suite (its questions/)")
    ap.add_argument("--features", required=True, help="language feature shards of that suite (train, val, test)")
    ap.add_argument("--slots", type=int, default=6, help="object slots per step in the rows (the pack's head: 6)")
    ap.add_argument("--out", help="write the result as JSON here")
    args = ap.parse_args(argv)
    if args.slots < 1:
        raise UserError("--slots must be >= 1")
    res = run(args.data, args.features, slots=args.slots)
    print("| template | threshold (fit on train) | split | n | AUC | accuracy | prior |\n|---|---|---|---|---|---|---|")
    for template, r in res.items():
        for s, v in r["splits"].items():
            print(f"| {template} | {r['threshold']} | {s} | {v['n']} | {v['auc']} | {v['accuracy']} | {v['prior']} |")
    if args.out:
        from cogarch.fsutil import atomic_write_json

        atomic_write_json(args.out, res)
    return 0


def find_slot(rows: torch.Tensor, slots: int = 6):
    """name ("red metal cube") -> the present slot of a clip's rows [T' x K, >= 18] whose identity best
    matches it (-1 for a word outside the world's vocabulary; slot_view's find). A diagnostic lookup; never an answer."""
    from cogarch.evals.world import vocab

    return slot_view(rows[:, :18].float().reshape(-1, slots, 18), [list(vocab.COLORS), list(vocab.SHAPES), list(vocab.MATERIALS)])[4]


if __name__ == "__main__":
    cli(main)

