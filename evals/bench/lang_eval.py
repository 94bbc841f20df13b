"""Score saved language folders on a physqa split from precomputed feature shards.

`cogarch eval --suite physqa --model PACK` decodes every clip and runs perception and the world
model before the language module answers. To compare language recipes on val without assembling a
pack, this script reads each clip's bus from the feature shards the language module trained on
(`<run>/features/language`, the same messages the pack's modules publish) and answers every
question with the runner's scoring (greedy generation for open questions, option log-likelihood
for multiple choice), so the model's and the blind folder's numbers are those `cogarch eval` would
report on the same bus (checked on the v6 pack's test split: 42.8 both ways).

    python -m cogarch.evals.bench.lang_eval --data runs/pack/data/physqa --features runs/pack/features/language \
        --split val --model runs/pack/language/final --blind runs/pack/language_blind/final --swap

Rows: the model; the model with every clip's bus replaced by another clip's (`--swap`: the next
clip id of the split, cyclic; `ablate_kinds --swap-clips` takes the next video file of the folder
instead, so the two controls may differ slightly; if accuracy does not drop, the module is not
reading the clip); the blind-trained
folder (`--blind`, no bus tokens); the model without some bus kinds (`--drop forecast`). Per
category and per template, beside a baseline column: the train split's most common answer of the
template for open questions, the expected accuracy of a uniform guess for multiple choice.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import torch

from cogarch.errors import UserError
from cogarch.evals.bench import cli


class ShardScorer:
    """The runner's Scorer protocol over a language folder and a feature shard (clip id = video stem)."""

    def __init__(self, language: str, features: str | None, split: str, swap: bool = False,
                 drop: tuple[str, ...] = ()) -> None:
        from cogarch.modules.language.data import FeatureShard
        from cogarch.modules.language.model import LanguageModule

        self.lm = LanguageModule.from_pretrained(language).merge_lora_()
        self.lm.eval()
        self.shard = FeatureShard(features, split) if features else None
        ids = self.shard.clip_ids if self.shard else []
        if swap and len(ids) < 2:
            raise UserError(f"--swap needs at least two clips in the {split!r} shard, found {len(ids)}")
        # swap: every clip answers from the next clip's bus (sorted clip ids, cyclic: never itself).
        order = sorted(ids)
        self.partner = {c: order[(i + 1) % len(order)] for i, c in enumerate(order)} if swap else {}
        unknown = [k for k in drop if self.shard is None or k not in self.shard.kinds]
        if unknown:
            have = ", ".join(sorted(self.shard.kinds)) if self.shard else "none"
            raise UserError(f"--drop {' '.join(unknown)}: not a kind of these features (have: {have})")
        self.drop = tuple(drop)  # ablation: answer without these bus kinds

    def _bus(self, video: str | None):
        if video is None or self.shard is None:
            return None
        cid = Path(video).stem
        bus = self.shard.bus(self.partner.get(cid, cid))
        for kind in self.drop:
            bus.drop(kind)
        return bus

    @torch.no_grad()
    def loglik(self, video, question, choices):
        bus = self._bus(video)
        return [(float(a), int(b)) for a, b in self.lm.score_choices(bus, question, list(choices), blind=bus is None)]

    @torch.no_grad()
    def generate(self, video, question):
        bus = self._bus(video)
        return self.lm.answer(bus, question, blind=bus is None).strip()

    @torch.no_grad()
    def generate_many(self, video, questions, batch: int = 16):
        from cogarch.modules.language.model import format_prompt
        from cogarch.modules.language.scoring import generate_texts

        bus = self._bus(video)
        out: list[str] = []
        for i in range(0, len(questions), batch):
            prompts = [format_prompt(self.lm.config, q, None) for q in questions[i : i + batch]]
            out += [t.strip() for t in generate_texts(self.lm, bus, prompts, blind=bus is None)]
        return out

    def surprise(self, video):  # pragma: no cover - physqa never asks for it
        raise NotImplementedError


def evaluate(data: str, features: str, split: str, model: str, blind: str | None, swap: bool, limit: int = 0,
             drop: tuple[str, ...] = ()) -> dict:
    """Accuracy of each variant (model, swap, drop, blind) overall, per category and per template."""
    from cogarch.evals.metrics import aggregate
    from cogarch.evals.runner import ScorerPredictor, score
    from cogarch.evals.suites.generated import load_generated

    rows = sorted((dict(r) for r in load_generated(data, split)), key=lambda r: r["qid"])
    rows = rows[:limit] if limit else rows
    train = load_generated(data, "train")
    prior = defaultdict(Counter)
    for r in train:
        prior[r["template"]][r["answer"]] += 1
    variants = {"model": ShardScorer(model, features, split)}
    if swap:
        variants["other clip's bus"] = ShardScorer(model, features, split, swap=True)
    if drop:
        variants[f"without {'+'.join(drop)}"] = ShardScorer(model, features, split, drop=drop)
    if blind:
        variants["blind-trained"] = ShardScorer(blind, None, split)
    out: dict = {"n": len(rows), "split": split, "variants": {}, "templates": {}}
    per_t: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        # Open questions: the train split's most common answer of the template; multiple choice:
        # the expected accuracy of a uniform guess (the options name objects of this clip).
        top = prior[r["template"]].most_common(1)
        hit = 1 / len(r["choices"]) if r["choices"] else bool(top) and r["answer"] == top[0][0]
        per_t[r["template"]]["prior"].append(float(hit))
    for name, scorer in variants.items():
        pred = ScorerPredictor(scorer, name, blind=scorer.shard is None)
        items, samples = score("physqa", rows, pred, Path(data), progress=True)
        out["variants"][name] = {k: round(100 * v["acc"], 1) for k, v in aggregate(items).items()}
        for r, s in zip(rows, samples):
            per_t[r["template"]][name].append(bool(s["correct"]))
    out["templates"] = {t: {"n": len(v["prior"])} | {k: round(100 * sum(x) / len(x), 1) for k, x in v.items()}
                        for t, v in sorted(per_t.items())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="generated physqa folder")
    ap.add_argument("--features", required=True, help="language feature shards of that folder")
    ap.add_argument("--split", default="val")
    ap.add_argument("--model", required=True, help="saved language folder (…/final)")
    ap.add_argument("--blind", default=None, help="a blind-trained language folder to score beside it")
    ap.add_argument("--swap", action="store_true", help="also score with another clip's bus")
    ap.add_argument("--drop", nargs="+", default=[], help="also score without these bus kinds (e.g. forecast)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the result JSON here too")
    a = ap.parse_args()
    res = evaluate(a.data, a.features, a.split, a.model, a.blind, a.swap, a.limit, tuple(a.drop))
    if a.out:
        from cogarch.fsutil import atomic_write_json

        atomic_write_json(a.out, res)
    print(markdown(res))


def markdown(res: dict) -> str:
    """The result as a markdown table: one row per template, then one per category."""
    names = list(res["variants"])
    lines = [f"{res['split']}, {res['n']} questions", "", "| | n | prior / guess | " + " | ".join(names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    for t, v in res["templates"].items():
        lines.append(f"| {t} | {v['n']} | {v['prior']} | " + " | ".join(str(v[k]) for k in names) + " |")
    for cat in res["variants"][names[0]]:
        lines.append(f"| **{cat}** | | | " + " | ".join(str(res["variants"][k].get(cat)) for k in names) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    cli(main)
