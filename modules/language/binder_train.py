"""`cogarch train language-binder`: pretrain the slot binder before it meets the LM (BLIP-2's first stage).

Why: trained inside a stage-2 round from a zero-initialised projector, the binder (binder.py)
learned nothing useful. Every role took the same slot, mostly an absent one, so its tokens were
empty (docs/benchmarks.md, "What the object slots hold", part 7). Through the LM its gradient is
weak and late: the projector starts at zero and the LM must learn to read the tokens at the same
time. A small reader trained on the binder's tokens directly learns binding from the answers within
1000 steps. So, as BLIP-2 (Li et al. 2023) trains its Q-Former with its own objective before
connecting it to the frozen LLM, this trains the binder first:

    prompt (as LanguageModule.bind feeds the binder: the LM's tokenizer, and its own token table or
    the LM's frozen input embeddings) + the clip's slot rows per kind (language feature shards)
      -> SlotBinder (the module's own class) -> role and pair tokens
      -> BinderReader: a 2-layer transformer over [CLS; the binder's tokens; the prompt's words]
      -> logits over the TRAIN split's answers of `templates`            (cross-entropy)

Only the train split's questions train it. A curriculum continues an earlier run's binder (`init`,
e.g. collide first, then "hits first" / "hits next": several templates at once from scratch lost
the binding, part 8). The export (out_dir/final) holds binder.safetensors (what `cogarch train
language binder_init=FILE` loads), reader.safetensors and binder_config.json (what it was trained
on and the answer classes), so evals/bench/binder_pretrain.py can score the reader per template.

    cogarch train language-binder --config configs/language/binder_tiny.yaml language=runs/language_tiny/final
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cogarch.errors import ConfigError, UserError
from cogarch.modules.language.adapters import canonical_kinds
from cogarch.modules.language.binder import PAIR_WIDTH, ROLE_WIDTH, SlotBinder
from cogarch.modules.language.corpus import load_split
from cogarch.modules.language.data import FeatureShard
from cogarch.modules.language.relations import OBJECT_ROW
from cogarch.train import OptimConfig, TrainerConfig, TrainJob

KINDS = ("objects", "forecast")  # slot-row kinds a binder reads
EXPORT = {"binder": "binder.safetensors", "reader": "reader.safetensors", "config": "binder_config.json"}


@dataclass
class Config:
    language: str = ""  # a saved language folder: its tokenizer, prompt format and LM input embeddings
    data_dir: str = "data/physqa"  # generated suite (questions/)
    features_dir: str = "data/physqa_features"  # its language feature shards
    templates: list[str] = field(default_factory=lambda: ["desc_collide"])  # question templates trained on
    kinds: list[str] = field(default_factory=lambda: ["objects"])  # the module's model.binder kinds
    first: bool = False  # the binder's first token too (the module's model.binder_first)
    init: str = ""  # continue this binder's weights (a curriculum): an earlier export's binder.safetensors
    binder_text: str = "own"  # own token table or the LM's embeddings (the module's model.binder_text)
    slots: int = 0  # object slots per step in the rows; 0: read off the rows' per-step times, as the module does
    width: int = 64  # the reader's width
    # The optimiser of the bench loop that pretrained the v14/v15 binders (AdamW, lr 1e-3, wd 0.01,
    # constant LR, no clipping); unlike it, the trainer draws epochs and skips decay on 1-D weights.
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, weight_decay=0.01, min_lr_ratio=1.0, grad_clip=0.0))
    # float32 everywhere: the binder's slot scores and contact thresholds are float32 by design, and
    # the model is small enough that bf16 would save nothing (measured only in float32, on the CPU).
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(out_dir="runs/binder", max_steps=1500, batch_size=64,
                                                                         log_every=100, ckpt_every=500, mixed_precision="no"))

    def validate(self) -> None:
        if not self.templates:
            raise ConfigError("templates must name at least one question template")
        bad = [k for k in self.kinds if k not in KINDS]
        if not self.kinds or bad:
            raise ConfigError(f"kinds must be slot-row kinds among {', '.join(KINDS)} (got {self.kinds})")
        if self.binder_text not in ("own", "lm"):
            raise ConfigError(f"binder_text must be 'own' or 'lm', got {self.binder_text!r}")
        if self.init and not os.path.isfile(self.init):
            raise ConfigError(f"init: no file {self.init!r}")
        if self.slots < 0:
            raise ConfigError(f"slots must be >= 1 (or 0: read off the rows), got {self.slots}")
        if self.width < 4 or self.width % 4:
            raise ConfigError(f"width must be a positive multiple of 4 (the reader's attention heads), got {self.width}")


class BinderReader(nn.Module):
    """prompt ids [B, L] (0 = padding, ids shifted by 1) + {kind: rows [B, T'*K, 18]} -> logits [B, C]."""

    def __init__(self, embed: torch.Tensor, slots: int, classes: int, width: int = 64, own_text: bool = True,
                 kinds: tuple[str, ...] = ("objects",), first: bool = False) -> None:
        super().__init__()
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

    def logits(self, ids: torch.Tensor, rows: dict[str, torch.Tensor]) -> torch.Tensor:
        B, L = ids.shape
        tmask = ids > 0
        tokens = (ids - 1).clamp_min(0)
        text = self.embed(tokens)  # [B, L, H]
        # what LanguageModule.bind gives the binder: the token ids (binder_text own) or the LM's
        # embeddings; as adapters.binder_tokens, the slots picked from the first kind serve the next
        toks, w = [], None
        for kind in self.kinds:
            tok, _, w = self.binder(rows[kind], self.slots, tokens if self.own_text else text, tmask, w=w)
            toks.append(tok)
        tok = torch.cat(toks, 1)  # [B, M, ROLE_WIDTH + PAIR_WIDTH]
        words = self.text_in(text) + self.pos(torch.arange(L, device=ids.device).clamp(max=255))
        h = torch.cat([self.cls.expand(B, 1, -1), self.bind_in(tok), words], 1)
        pad = torch.cat([torch.zeros(B, 1 + tok.shape[1], dtype=torch.bool, device=ids.device), ~tmask], 1)
        return self.out(self.enc(h, src_key_padding_mask=pad)[:, 0])

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        logits = self.logits(batch["ids"], batch["rows"])
        loss = nn.functional.cross_entropy(logits, batch["label"])
        return loss, {"acc": float((logits.argmax(-1) == batch["label"]).float().mean())}


def encode_questions(language, data_dir: str, features_dir: str, split: str, templates: list[str], kinds: list[str],
                     slots: int = 0) -> dict:
    """The `templates` questions of a split: {"ids": [[prompt ids + 1]], "rows": {kind: [Q, N, 18]},
    "answers", "templates", "questions", "slots"} (rows: `kinds` and "objects", where a diagnostic
    finds names; slots: per step, read off the rows, and checked against `slots` unless that is 0)."""
    from cogarch.modules.language.model import encode_pair, format_prompt

    shard = FeatureShard(features_dir, split)
    need = sorted({"objects", *kinds})
    out = {"ids": [], "rows": {k: [] for k in need}, "answers": [], "templates": [], "questions": [],
           "slots": rows_slots(shard, need, slots)}
    for r in load_split(data_dir, "questions", split):
        if r["template"] not in templates:
            continue
        for k, v in shard.tokens(r["clip_id"], need).items():
            out["rows"][k].append(v[:, :OBJECT_ROW])
        prompt = format_prompt(language.config, r["question"], list(r.get("choices") or []) or None)
        out["ids"].append([i + 1 for i in encode_pair(language.tokenizer, prompt, None, language.config)[0]])
        for key, value in (("answers", str(r["answer"])), ("templates", r["template"]), ("questions", r["question"])):
            out[key].append(value)
    if not out["ids"]:
        raise UserError(f"no {'/'.join(templates)} questions in {data_dir} split {split}")
    out["rows"] = {k: torch.stack(v) for k, v in out["rows"].items()}
    return out


def rows_slots(shard: FeatureShard, kinds: list[str], slots: int = 0) -> int:
    """Object slots per step of the kinds' rows, read off their per-step times as the module does. A
    ConfigError naming `slots` when it is given (> 0) and the rows hold another count (reshaped with
    the wrong count, rows mix objects), or when the kinds disagree."""
    from cogarch.modules.language.adapters import steps_slots

    if not len(shard):
        return slots
    row, found = shard.get(0), {}
    for kind in kinds:
        if kind in row and "time" in row[kind]:
            found[kind] = steps_slots(row[kind]["time"][None], kind, "language-binder")[1]
    for kind, K in found.items():
        if slots and K != slots:
            raise ConfigError(f"slots={slots}, but the {kind!r} rows of {shard.tensors_path.parent} hold {K} slots per step")
    if len(set(found.values())) > 1:
        raise ConfigError(f"the kinds' rows hold different slot counts per step ({found}) in {shard.tensors_path.parent}")
    if not found and not slots:
        raise ConfigError(f"no {'/'.join(kinds)} rows with per-step times in {shard.tensors_path.parent}: set slots")
    return next(iter(found.values()), slots)


class BinderQuestions(torch.utils.data.Dataset):
    """(prompt ids, slot rows per kind, answer class) per question."""

    def __init__(self, enc: dict, kinds: list[str], answers: list[str]) -> None:
        self.enc, self.kinds = enc, kinds
        index = {a: i for i, a in enumerate(answers)}
        self.labels = [index.get(a, -1) for a in enc["answers"]]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"ids": self.enc["ids"][i], "rows": {k: self.enc["rows"][k][i] for k in self.kinds}, "label": self.labels[i]}


def pad_ids(prompts: list[list[int]]) -> torch.Tensor:
    """Prompt ids (shifted by 1) -> [B, L], right-padded with 0."""
    L = max(len(p) for p in prompts)
    return torch.tensor([p + [0] * (L - len(p)) for p in prompts])


def collate(items: list[dict]) -> dict:
    """Pad prompt ids (0 = padding), stack rows per kind, labels [B]."""
    return {"ids": pad_ids([x["ids"] for x in items]),
            "rows": {k: torch.stack([x["rows"][k] for x in items]) for k in items[0]["rows"]},
            "label": torch.tensor([x["label"] for x in items])}


def build_reader(cfg: Config, language, classes: int, slots: int) -> BinderReader:
    embed = language.lm.get_input_embeddings().weight.detach().float().clone()
    return BinderReader(embed, slots, classes, cfg.width, own_text=cfg.binder_text == "own", kinds=tuple(cfg.kinds), first=cfg.first)


def load_language(path: str):
    from cogarch.modules.language.model import LanguageModule

    if not path:
        raise ConfigError("language: name the saved language folder whose LM the binder will read (language=DIR)")
    return LanguageModule.from_pretrained(path)


def make_job(cfg: Config) -> TrainJob:
    cfg.validate()
    language = load_language(cfg.language)
    enc = encode_questions(language, cfg.data_dir, cfg.features_dir, "train", cfg.templates, cfg.kinds, cfg.slots)
    answers = sorted(set(enc["answers"]))
    model = build_reader(cfg, language, len(answers), enc["slots"])
    if cfg.init:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            model.binder.load_state_dict(load_file(cfg.init))
        except (OSError, SafetensorError, RuntimeError) as e:
            raise ConfigError(f"init {cfg.init}: not a binder of this shape ({str(e).splitlines()[0]})") from None
    meta = {"module": "language-binder", "templates": list(cfg.templates), "kinds": list(cfg.kinds), "first": cfg.first,
            "binder_text": cfg.binder_text, "slots": enc["slots"], "width": cfg.width, "answers": answers,
            "language": cfg.language, "init": cfg.init}

    def save(m: BinderReader, folder) -> None:
        from safetensors.torch import save_file

        from cogarch.fsutil import atomic_dir

        with atomic_dir(Path(folder)) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in m.binder.state_dict().items()}, str(tmp / EXPORT["binder"]))
            save_file({k: v.detach().cpu().contiguous() for k, v in m.state_dict().items() if not k.startswith("embed.")},
                      str(tmp / EXPORT["reader"]))
            (tmp / EXPORT["config"]).write_text(json.dumps(meta, indent=1))

    return TrainJob(model=model, dataset=BinderQuestions(enc, cfg.kinds, answers), collate_fn=collate, save=save)


def load_reader(folder: str | os.PathLike, language) -> tuple[BinderReader, dict]:
    """An export's reader (binder included) on `language`'s embeddings, and its binder_config.json."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / EXPORT["config"]).is_file():
        raise UserError(f"{str(folder)!r} is not a language-binder export (no {EXPORT['config']})")
    meta = json.loads((folder / EXPORT["config"]).read_text())
    cfg = Config(kinds=meta["kinds"], first=meta["first"], binder_text=meta["binder_text"], slots=meta["slots"], width=meta["width"])
    model = build_reader(cfg, language, len(meta["answers"]), meta["slots"])
    missing, unexpected = model.load_state_dict(load_file(str(folder / EXPORT["reader"])), strict=False)
    if unexpected or [k for k in missing if not k.startswith("embed.")]:
        raise UserError(f"{folder}: reader weights do not match its binder_config.json")
    return model.eval(), meta
