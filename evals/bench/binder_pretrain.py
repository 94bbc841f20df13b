"""Pretrain the language module's slot binder before it is connected to the LM (BLIP-2's two stages).

Trained inside a stage-2 round from a zero-initialised projector, the binder (modules/language/
binder.py) learned nothing useful: every role took the same slot, mostly an absent one, so its
tokens were empty (docs/benchmarks.md, "What the object slots hold", part 7). Through the LM its
gradient is weak and late (the projector starts at zero, the LM has to learn to read the tokens
at the same time). A small reader trained on the binder's tokens directly learns binding from the
answers within 1000 steps. So, as BLIP-2 (Li et al. 2023) trains its Q-Former with its own
objectives before connecting it to the frozen LLM, this trains the binder first: it reads the
exact prompt the language module will see (the LM's tokenizer and its frozen input embeddings, as
LanguageModule.bind feeds it) and the clip's `objects` rows from the language feature shards; a
2-layer transformer over [the binder's tokens; the prompt's tokens] classifies among the train
split's answers of the chosen templates. Only the TRAIN split's questions train it; val and test
are reported per template, beside the train majority, with how often the binder's first two picks
are the named pair on desc_collide (bound by code, a diagnostic; nothing here answers for a pack).
The binder's weights go to --out (safetensors); `cogarch train language binder_init=FILE
freeze_binder=true` (with model.binder_text as --binder-text) starts a module's binder from them.

    python -m cogarch.evals.bench.binder_pretrain --language cogarch/assets/default_pack/language \
        --data runs/vf/physqa --features runs/l7/features --out runs/l13/binder.safetensors
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from cogarch.errors import UserError
from cogarch.evals.bench import cli
from cogarch.evals.bench.forecast_readout import question_rows
from cogarch.evals.bench.slot_signal import NAMED
from cogarch.evals.bench.template_probe import accuracy, binder_picks, fit

TEMPLATES = ("desc_collide", "desc_moving_end", "desc_first_hit", "pred_collide", "cf_collide")


class BinderReader(nn.Module):
    """prompt ids [B, L] (0 = padding, ids shifted by 1) + {"objects": rows [B, T'*K, 18]} -> logits [B, C]."""

    def __init__(self, embed: torch.Tensor, slots: int, classes: int, width: int = 64, own_text: bool = True,
                 kinds: tuple[str, ...] = ("objects",), first: bool = False) -> None:
        super().__init__()
        from cogarch.modules.language.adapters import canonical_kinds
        from cogarch.modules.language.binder import PAIR_WIDTH, ROLE_WIDTH, SlotBinder

        self.slots, self.own_text = slots, own_text
        self.kinds = canonical_kinds(kinds)  # the module's prefix order: the first kind's picks serve the rest
        self.embed = nn.Embedding.from_pretrained(embed, freeze=True)  # the LM's input embeddings [V, H]
        self.binder = SlotBinder(embed.shape[1], vocab=embed.shape[0] if own_text else 0, first=first)  # as the module builds it
        self.bind_in = nn.Sequential(nn.Linear(ROLE_WIDTH + PAIR_WIDTH, width), nn.GELU(), nn.Linear(width, width))
        self.text_in = nn.Linear(embed.shape[1], width)
        self.pos = nn.Embedding(256, width)
        self.cls = nn.Parameter(torch.zeros(width))
        layer = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.out = nn.Linear(width, classes)

    def forward(self, ids: torch.Tensor, rows: dict[str, torch.Tensor]) -> torch.Tensor:
        B, L = ids.shape
        tmask = ids > 0
        tokens = (ids - 1).clamp_min(0)
        text = self.embed(tokens)  # [B, L, H]
        # what LanguageModule.bind gives the binder: the token ids (binder_text own) or the LM's embeddings;
        # as adapters.binder_tokens, the slots picked from the first kind are reused for the next
        toks, w = [], None
        for kind in self.kinds:
            tok, _, w = self.binder(rows[kind], self.slots, tokens if self.own_text else text, tmask, w=w)
            toks.append(tok)
        tok = torch.cat(toks, 1)
        words = self.text_in(text) + self.pos(torch.arange(L, device=ids.device).clamp(max=255))
        h = torch.cat([self.cls.expand(B, 1, -1), self.bind_in(tok), words], 1)
        pad = torch.cat([torch.zeros(B, 1 + tok.shape[1], dtype=torch.bool, device=ids.device), ~tmask], 1)
        return self.out(self.enc(h, src_key_padding_mask=pad)[:, 0])


def load_split(language, data: str, features: str, split: str, templates: tuple[str, ...], kinds: tuple[str, ...] = ("objects",)):
    """(prompt ids [Q, L] shifted by 1, {kind: [Q, N, 18]} for `kinds` and "objects", answers, templates, question texts)."""
    from cogarch.modules.language.data import FeatureShard
    from cogarch.modules.language.model import encode_pair, format_prompt

    shard = FeatureShard(features, split)
    need = sorted({"objects", *kinds})  # objects: where the named-slot diagnostic finds the names
    rows, prompts, ys, tpl, texts = {k: [] for k in need}, [], [], [], []
    for r in question_rows(data, split, templates):
        if r["clip_id"] not in shard:
            raise UserError(f"{features} has no {split} features for {r['clip_id']} (features of another suite?)")
        parts = shard.get(shard.row_of(r["clip_id"]))
        for k in need:
            if k not in parts:
                raise UserError(f"{features} has no {k!r} tokens (it has {sorted(parts)})")
            rows[k].append(parts[k]["tokens"].float()[:, :18])
        prompt = format_prompt(language.config, r["question"], list(r.get("choices") or []) or None)
        prompts.append([i + 1 for i in encode_pair(language.tokenizer, prompt, None, language.config)[0]])
        ys.append(str(r["answer"]))
        tpl.append(r["template"])
        texts.append(r["question"])
    L = max(len(p) for p in prompts)
    ids = torch.tensor([p + [0] * (L - len(p)) for p in prompts])
    return ids, {k: torch.stack(v) for k, v in rows.items()}, ys, tpl, texts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--language", required=True, help="the language folder whose LM (tokenizer, input embeddings) the binder will read")
    ap.add_argument("--data", required=True, help="generated physqa suite (its questions/)")
    ap.add_argument("--features", required=True, help="language feature shards of that suite")
    ap.add_argument("--templates", default=",".join(TEMPLATES), help="question templates trained on, comma-separated")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--every", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slots", type=int, default=6)
    ap.add_argument("--kinds", default="objects",
                    help="slot-row kinds the binder reads, comma-separated (the module's model.binder; the first in prefix order picks)")
    ap.add_argument("--first", action="store_true", help="read the binder's first token too (the module's model.binder_first)")
    ap.add_argument("--init", default=None, metavar="FILE",
                    help="start from this binder's weights (an earlier run's --out): a curriculum, e.g. collide first, then more templates")
    ap.add_argument("--binder-text", default="own", choices=["own", "lm"],
                    help="the binder reads the prompt through its own token table (own) or the LM's embeddings (lm): language.binder_text")
    ap.add_argument("--out", required=True, help="the binder's weights (.safetensors)")
    args = ap.parse_args(argv)
    templates = tuple(t for t in args.templates.split(",") if t)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    if not kinds or any(k not in ("objects", "forecast") for k in kinds):
        raise UserError(f"--kinds must name slot-row kinds among objects, forecast (got {args.kinds!r})")
    if not templates or args.steps < 1 or not args.out.endswith(".safetensors"):
        raise UserError("--templates must name templates, --steps be >= 1 and --out end in .safetensors")
    from safetensors.torch import save_file

    from cogarch.fsutil import atomic_write_json
    from cogarch.modules.language.model import LanguageModule

    torch.manual_seed(args.seed)
    language = LanguageModule.from_pretrained(args.language)
    embed = language.lm.get_input_embeddings().weight.detach().float().clone()
    sets = {"train": load_split(language, args.data, args.features, "train", templates, kinds)}
    for s in ("val", "test"):  # reported where the split has such questions (a tiny suite may not)
        try:
            sets[s] = load_split(language, args.data, args.features, s, templates, kinds)
        except UserError as e:
            if not str(e).startswith("no "):
                raise
            print(f"note: {e}; not reported")
    answers = sorted(set(sets["train"][2]))
    enc = {s: (ids, rows, torch.tensor([answers.index(a) if a in answers else -1 for a in ys])) for s, (ids, rows, ys, _, _) in sets.items()}
    model = BinderReader(embed, args.slots, len(answers), own_text=args.binder_text == "own", kinds=kinds, first=args.first)
    if args.init:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            model.binder.load_state_dict(load_file(args.init))
        except (OSError, SafetensorError, RuntimeError) as e:
            raise UserError(f"--init {args.init}: not a binder of this shape ({str(e).splitlines()[0]})") from None
    curve = fit(model, enc, args.steps, args.batch, args.seed, args.every, args.lr)
    res = {"templates": list(templates), "steps": args.steps, "binder_text": args.binder_text, "first": args.first, "curve": curve, "per_template": {}, "prior": {}}
    for s, (ids, rows, ys, tpl, texts) in sets.items():
        for t in templates:
            i = torch.tensor([j for j, x in enumerate(tpl) if x == t])
            if len(i) == 0:
                continue
            sub = {k: v[i] for k, v in rows.items()}
            res["per_template"].setdefault(t, {})[s] = accuracy(model, ids[i], sub, enc[s][2][i])
            train_t = [y for y, x in zip(sets["train"][2], sets["train"][3]) if x == t]
            majority = Counter(train_t).most_common(1)[0][0] if train_t else None
            res["prior"].setdefault(t, {})[s] = round(100 * sum(ys[j] == majority for j in i.tolist()) / len(i), 1)
            if t in NAMED:  # did the binder pick the named objects? (bound by code, a diagnostic)
                res.setdefault("binder_picks", {}).setdefault(t, {})[s] = binder_picks(
                    model, (ids[i], sub, None), [texts[j] for j in i.tolist()], args.slots, t)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.out + ".tmp")
    save_file({k: v.detach().contiguous() for k, v in model.binder.state_dict().items()}, str(tmp))
    tmp.replace(args.out)
    atomic_write_json(args.out[: -len(".safetensors")] + ".json", res)
    print(f"binder pretraining on {', '.join(templates)}: {args.steps} steps; weights {args.out}")
    print("| template | prior (val / test) | train | val | test |\n|---|---|---|---|---|")
    for t, acc in res["per_template"].items():
        print(f"| {t} | {res['prior'][t].get('val')} / {res['prior'][t].get('test')} | {acc.get('train')} | {acc.get('val')} | {acc.get('test')} |")
    for t, got in res.get("binder_picks", {}).items():
        print(f"{t}: the binder's first picks = the named object(s), % per split: {got}")
    return 0


if __name__ == "__main__":
    cli(main)
