"""Pretrain the language module's slot binder and score its reader per template (a bench wrapper).

The training is the module's own: `cogarch train language-binder` (modules/language/binder_train.py,
the generic trainer; why a binder is pretrained at all: its docstring). This wrapper keeps the
command line the bench scripts (language_round5.sh, language_round6.sh) use, trains in a scratch
folder beside --out, writes the binder's weights to --out (safetensors, what `cogarch train language
binder_init=FILE` loads) and beside it a JSON: the reader's accuracy per template on train / val /
test beside the train majority, and how often the binder's first picks are the named objects (the
pair of a collide question, the subject of "hits first" / "hits next", bound by code: a diagnostic,
nothing here answers for a pack).

    python -m cogarch.evals.bench.binder_pretrain --language cogarch/assets/default_pack/language \
        --data runs/vf/physqa --features runs/l7/features --out runs/l13/binder.safetensors
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from cogarch.errors import ConfigError, UserError
from cogarch.evals.bench import cli
from cogarch.evals.bench.slot_signal import NAMED
from cogarch.evals.bench.template_probe import accuracy, binder_picks

TEMPLATES = ("desc_collide", "desc_moving_end", "desc_first_hit", "pred_collide", "cf_collide")


class _Logits(nn.Module):
    """The reader as template_probe's helpers call a probe: model(ids, rows) -> logits, .binder."""

    def __init__(self, reader: nn.Module) -> None:
        super().__init__()
        self.reader, self.binder = reader, reader.binder

    def forward(self, ids: torch.Tensor, rows: dict) -> torch.Tensor:
        return self.reader.logits(ids, rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--language", required=True, help="the language folder whose LM (tokenizer, input embeddings) the binder will read")
    ap.add_argument("--data", required=True, help="generated physqa suite (its questions/)")
    ap.add_argument("--features", required=True, help="language feature shards of that suite")
    ap.add_argument("--templates", default=",".join(TEMPLATES), help="question templates trained on, comma-separated")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--every", type=int, default=1000, help="checkpoint every this many steps")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slots", type=int, default=0, help="object slots per step (0: read off the rows)")
    ap.add_argument("--kinds", default="objects",
                    help="slot-row kinds the binder reads, comma-separated (the module's model.binder; the first in prefix order picks)")
    ap.add_argument("--first", action="store_true", help="read the binder's first token too (the module's model.binder_first)")
    ap.add_argument("--init", default=None, metavar="FILE",
                    help="start from this binder's weights (an earlier run's --out): a curriculum, e.g. collide first, then more templates")
    ap.add_argument("--binder-text", default="own", choices=["own", "lm"],
                    help="the binder reads the prompt through its own token table (own) or the LM's embeddings (lm): language.binder_text")
    ap.add_argument("--out", required=True, help="the binder's weights (.safetensors)")
    args = ap.parse_args(argv)
    if not args.out.endswith(".safetensors"):
        raise UserError("--out must end in .safetensors")
    from cogarch.config import load_config
    from cogarch.fsutil import atomic_write_json
    from cogarch.modules.language import binder_train as bt
    from cogarch.train import fit

    overrides = [f"language={args.language}", f"data_dir={args.data}", f"features_dir={args.features}",
                 f"templates=[{args.templates}]", f"kinds=[{args.kinds}]", f"first={str(args.first).lower()}",
                 f"binder_text={args.binder_text}", f"slots={args.slots}", f"optim.lr={args.lr}",
                 f"trainer.max_steps={args.steps}", f"trainer.batch_size={args.batch}", f"trainer.ckpt_every={args.every}",
                 f"trainer.seed={args.seed}", "trainer.progress=false"] + ([f"init={args.init}"] if args.init else [])
    try:
        cfg = load_config(bt.Config, None, overrides)
        cfg.validate()
    except ConfigError as e:  # the bench's flags, not the config keys, in the message
        raise UserError(f"binder_pretrain: {e}") from None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    run = Path(tempfile.mkdtemp(prefix=out.stem + ".", dir=out.parent))  # scratch: the trainer's checkpoints and export
    try:
        cfg.trainer.out_dir = str(run)
        from accelerate.utils import set_seed

        set_seed(cfg.trainer.seed)  # as `cogarch train` does before the model is built
        job = bt.make_job(cfg)
        final = fit(job, cfg)
        language = bt.load_language(args.language)
        reader, meta = bt.load_reader(final, language)  # the export as a user loads it
        res = report(_Logits(reader), language, cfg, meta["answers"], job.dataset.enc)
        tmp = out.with_name(out.name + ".tmp")
        shutil.copyfile(final / bt.EXPORT["binder"], tmp)
        tmp.replace(out)
    finally:
        shutil.rmtree(run, ignore_errors=True)
    atomic_write_json(args.out[: -len(".safetensors")] + ".json", res)
    print(f"binder pretraining on {', '.join(cfg.templates)}: {cfg.trainer.max_steps} steps; weights {args.out}")
    print("| template | prior (val / test) | train | val | test |\n|---|---|---|---|---|")
    for t, acc in res["per_template"].items():
        print(f"| {t} | {res['prior'][t].get('val')} / {res['prior'][t].get('test')} | {acc.get('train')} | {acc.get('val')} | {acc.get('test')} |")
    for t, got in res.get("binder_picks", {}).items():
        print(f"{t}: the binder's first picks = the named object(s), % per split: {got}")
    return 0


def report(model: _Logits, language, cfg, answers: list[str], train: dict) -> dict:
    """Per template and split: the reader's accuracy, the train majority's, and the binder's picks
    (`train`: the training split as make_job encoded it)."""
    from cogarch.modules.language.binder_train import encode_questions, pad_ids

    sets = {"train": train}
    for s in ("val", "test"):  # reported where the split has such questions (a tiny suite may not)
        try:
            sets[s] = encode_questions(language, cfg.data_dir, cfg.features_dir, s, cfg.templates, cfg.kinds, train["slots"])
        except UserError as e:
            if not str(e).startswith("no "):
                raise
            print(f"note: {e}; not reported")
    res = {"templates": list(cfg.templates), "steps": cfg.trainer.max_steps, "binder_text": cfg.binder_text, "first": cfg.first,
           "init": cfg.init, "per_template": {}, "prior": {}}
    for s, e in sets.items():
        ids = pad_ids(e["ids"])
        y = torch.tensor([answers.index(a) if a in answers else -1 for a in e["answers"]])
        for t in cfg.templates:
            i = torch.tensor([j for j, x in enumerate(e["templates"]) if x == t], dtype=torch.long)
            if len(i) == 0:
                continue
            sub = {k: v[i] for k, v in e["rows"].items()}
            with torch.no_grad():
                res["per_template"].setdefault(t, {})[s] = accuracy(model, ids[i], sub, y[i])
            train_t = [a for a, x in zip(sets["train"]["answers"], sets["train"]["templates"]) if x == t]
            majority = Counter(train_t).most_common(1)[0][0] if train_t else None
            res["prior"].setdefault(t, {})[s] = round(100 * sum(e["answers"][j] == majority for j in i.tolist()) / len(i), 1)
            if t in NAMED:  # did the binder pick the named objects? (bound by code, a diagnostic)
                with torch.no_grad():
                    res.setdefault("binder_picks", {}).setdefault(t, {})[s] = binder_picks(
                        model, (ids[i], sub, None), [e["questions"][j] for j in i.tolist()], train["slots"], t)
    return res


if __name__ == "__main__":
    cli(main)
