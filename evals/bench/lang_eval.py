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
clip id of the split, cyclic (modules/language/scoring.py: ShardBus); `ablate_kinds --swap-clips`
takes the next video file of the folder instead, so the two controls may differ slightly; if
accuracy does not drop, the module is not reading the clip); the blind-trained folder (`--blind`,
no bus tokens); the model without some bus kinds (`--drop forecast`); the model with a copy-last
object forecast (`--still`: the last observed rows held at every forecast step, so the binder still
picks the same slots and only the prediction is gone; ShardBus). Per
category and per template, beside a baseline column: the train split's most common answer of the
template for open questions, the expected accuracy of a uniform guess for multiple choice.
`--samples DIR` writes each variant's per-question rows to DIR/<variant>.samples.jsonl, so two
folders scored on the same split can be compared question by question with evals/bench/paired.py.
`--caption-lm LM` adds a text oracle (CaptionScorer): a base LM answering with the clip's true
caption before the question, and without it; it measures whether the LM can read its context.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

from cogarch.evals.bench import cli


def scorer(language: str, features: str | None, split: str, swap: bool = False, drop: tuple[str, ...] = (), still: bool = False):
    """A language folder as the runner's Scorer: reading `features` (ShardBus, with the swap / drop
    controls), or blind when features is None. LoRA is merged for speed (equal outputs)."""
    from cogarch.modules.language.model import LanguageModule
    from cogarch.modules.language.scoring import LanguageScorer, ShardBus

    module = LanguageModule.from_pretrained(language).merge_lora_()
    module.eval()
    if features is None:
        return LanguageScorer(module, None, blind=True)
    return LanguageScorer(module, ShardBus(features, split, swap=swap, drop=drop, still=still))


class CaptionScorer:
    """Text oracle: a base LM (no bus, no training on the bus) answering with the simulator's true
    caption of the clip (corpus.clip_caption) written before the question, "CAPTION\nQuestion: ...".
    It measures the LM's reading comprehension: the best a reader with this LM could do if the bus
    carried the caption's facts. A diagnostic only: the caption is ground truth."""

    blind = False

    def __init__(self, base_lm: str, data: str, split: str, with_caption: bool = True) -> None:
        from cogarch.modules.language.config import LanguageConfig
        from cogarch.modules.language.corpus import clip_captions
        from cogarch.modules.language.model import LanguageModule

        self.module = LanguageModule.build(LanguageConfig(base_lm=base_lm, kind_dims={}, lora_dropout=0.0)).merge_lora_()
        self.module.eval()
        # A caption + question is ~160 tokens (up to ~400): the default max_prompt_tokens (128, cut
        # from the left) would drop the object list, so the LM's own context (less room for the
        # answer) is the limit, and _prompt refuses a longer prompt instead of cutting it.
        self.module.config.max_prompt_tokens = int(getattr(self.module.lm.config, "max_position_embeddings", 512)) - 32
        self.captions = clip_captions(data, split) if with_caption else {}

    def _prompt(self, video: str, question: str, choices: list[str] | None) -> str:
        from cogarch.errors import UserError
        from cogarch.modules.language.model import format_prompt

        head = self.captions.get(Path(video).stem) if self.captions else None
        body = format_prompt(self.module.config, question, choices)
        prompt = body if head is None else head + "\n" + body
        n = len(self.module.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if n > self.module.config.max_prompt_tokens:
            raise UserError(f"caption + question of {video} is {n} tokens, more than the LM's {self.module.config.max_prompt_tokens}")
        return prompt

    def loglik(self, video: str, question: str, choices: list[str]):
        from cogarch.modules.language.scoring import choice_logliks

        return choice_logliks(self.module, None, self._prompt(video, question, choices), choices, blind=True)

    def generate(self, video: str, question: str) -> str:
        from cogarch.modules.language.scoring import generate_texts

        return generate_texts(self.module, None, [self._prompt(video, question, None)], blind=True)[0]


def evaluate(data: str, features: str, split: str, model: str, blind: str | None, swap: bool, limit: int = 0,
             drop: tuple[str, ...] = (), caption_lm: str | None = None, samples_dir: str | None = None, still: bool = False) -> dict:
    """Accuracy of each variant (model, swap, drop, blind) overall, per category and per template.
    `samples_dir`: also write each variant's per-question rows (qid, category, correct, ...) to
    `<samples_dir>/<variant>.samples.jsonl`, the input of evals/bench/paired.py."""
    from cogarch.evals.metrics import aggregate
    from cogarch.evals.runner import ScorerPredictor, score
    from cogarch.evals.suites.generated import load_generated

    rows = sorted((dict(r) for r in load_generated(data, split)), key=lambda r: r["qid"])
    rows = rows[:limit] if limit else rows
    train = load_generated(data, "train")
    prior = defaultdict(Counter)
    for r in train:
        prior[r["template"]][r["answer"]] += 1
    variants = {"model": scorer(model, features, split)}
    if swap:
        variants["other clip's bus"] = scorer(model, features, split, swap=True)
    if drop:
        variants[f"without {'+'.join(drop)}"] = scorer(model, features, split, drop=drop)
    if still:
        variants["forecast copy-last"] = scorer(model, features, split, still=True)
    if blind:
        variants["blind-trained"] = scorer(blind, None, split)
    if caption_lm:
        variants["base LM + true caption"] = CaptionScorer(caption_lm, data, split)
        variants["base LM, no caption"] = CaptionScorer(caption_lm, data, split, with_caption=False)
    out: dict = {"n": len(rows), "split": split, "variants": {}, "templates": {}}
    per_t: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        # Open questions: the train split's most common answer of the template; multiple choice:
        # the expected accuracy of a uniform guess (the options name objects of this clip).
        top = prior[r["template"]].most_common(1)
        hit = 1 / len(r["choices"]) if r["choices"] else bool(top) and r["answer"] == top[0][0]
        per_t[r["template"]]["prior"].append(float(hit))
    for name, sc in variants.items():
        pred = ScorerPredictor(sc, name, blind=sc.blind)
        items, samples = score("physqa", rows, pred, Path(data), progress=True)
        out["variants"][name] = {k: round(100 * v["acc"], 1) for k, v in aggregate(items).items()}
        if samples_dir:
            from cogarch.fsutil import atomic_write_text

            lines = "".join(json.dumps(s) + "\n" for s in samples)
            atomic_write_text(Path(samples_dir) / f"{_slug(name)}.samples.jsonl", lines)
        for r, s in zip(rows, samples):
            per_t[r["template"]][name].append(bool(s["correct"]))
    out["templates"] = {t: {"n": len(v["prior"])} | {k: round(100 * sum(x) / len(x), 1) for k, x in v.items()}
                        for t, v in sorted(per_t.items())}
    return out


def _slug(name: str) -> str:
    """A variant's name as a file name: "other clip's bus" -> "other_clip_s_bus"."""
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="generated physqa folder")
    ap.add_argument("--features", required=True, help="language feature shards of that folder")
    ap.add_argument("--split", default="val")
    ap.add_argument("--model", required=True, help="saved language folder (…/final)")
    ap.add_argument("--blind", default=None, help="a blind-trained language folder to score beside it")
    ap.add_argument("--swap", action="store_true", help="also score with another clip's bus")
    ap.add_argument("--drop", nargs="+", default=[], help="also score without these bus kinds (e.g. forecast)")
    ap.add_argument("--still", action="store_true", help="also score with a copy-last forecast (the last observed "
                    "object rows held, nothing moving: the world model's prediction removed, the kind and its slots kept)")
    ap.add_argument("--caption-lm", default=None,
                    help="also score this base LM folder with the true caption written before each question (text oracle)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the result JSON here too")
    ap.add_argument("--samples", default=None, metavar="DIR",
                    help="write each variant's per-question rows to DIR/<variant>.samples.jsonl (for evals/bench/paired.py)")
    a = ap.parse_args()
    res = evaluate(a.data, a.features, a.split, a.model, a.blind, a.swap, a.limit, tuple(a.drop), a.caption_lm, a.samples, a.still)
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
