"""`cogarch train language`: teach the LM to read the bus, from precomputed feature shards.

Two stages, as LLaVA trains (Liu et al. 2023): (1) projectors only, on captions (scene description
+ event narration) of each training clip — aligns every kind's latents with the LM's embedding
space while the LM stays fixed; (2) projectors + LoRA on the physics world's QA pairs. Perception
and the world model are frozen: their outputs were computed once into feature shards (data.py), so
this job never runs a video encoder. `blind: true` trains the same recipe with no bus tokens (the
text-only baseline the module must beat).

Loss normalisation across gradient accumulation: the trainer calls forward/backward once per
micro-batch and averages over `grad_accum` micro-batches. forward() returns
sum(token NLL) / token_norm with token_norm = batch_size x (mean target length over the dataset),
a constant computed here. So every target token carries the same gradient weight wherever it falls
(a short answer in a short micro-batch is not up-weighted, the bias a per-micro-batch mean has), and
the step's loss equals sum(NLL) / (grad_accum x token_norm) — the exact per-token mean up to the
ratio (actual tokens / expected tokens) of that step, a scalar the learning rate absorbs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field

import torch

from cogarch.errors import ConfigError
from cogarch.modules.language.config import LanguageConfig
from cogarch.modules.language.corpus import clip_captions, load_split
from cogarch.modules.language.data import FeatureShard
from cogarch.modules.language.model import LanguageModule, encode_pair, format_prompt
from cogarch.train import OptimConfig, TrainerConfig, TrainJob

log = logging.getLogger("cogarch.language")


@dataclass
class Config:
    model: LanguageConfig = field(default_factory=LanguageConfig)
    stage: int = 2  # 1: captions, projectors only; 2: QA, projectors + LoRA
    init_from: str = ""  # a saved language folder to continue from (its config replaces `model`; model.relations can add)
    data_dir: str = "data/physqa"  # generated suite: clips/ (captions) and questions/ (QA)
    features_dir: str = "data/physqa_features"  # feature shards (data.py format)
    split: str = "train"
    blind: bool = False  # train without bus tokens (the text-only baseline)
    kinds: list[str] = field(default_factory=list)  # restrict the bus kinds read (ablations); [] = all
    # Stage 2 only: train on these question templates alone (diagnostics, e.g. "can this reader
    # count at all": templates=[desc_count]); [] = every template. A name no question has is an error.
    templates: list[str] = field(default_factory=list)
    # Stage 2 only: oversampling. Each question of template T appears template_repeat[T] times per
    # epoch (e.g. template_repeat.desc_count=4); unnamed templates appear once. It changes the mix's
    # proportions without dropping a template (`templates` drops the rest).
    template_repeat: dict[str, int] = field(default_factory=dict)
    # The slot binder's starting weights (a .safetensors of SlotBinder's state, as `cogarch train
    # language-binder` exports it: final/binder.safetensors), and whether it stays frozen: trained inside a round from
    # scratch it learned nothing useful (docs/benchmarks.md, "What the object slots hold", part 7).
    # Both need a module with a binder (model.binder); a blind LM ignores them, as it ignores model.binder.
    binder_init: str = ""
    freeze_binder: bool = False
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, warmup_steps=20))
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(out_dir="runs/language"))

    def validate(self) -> None:
        # With init_from the saved config replaces `model`; only its relations and binder carry over,
        # checked against the saved config when added (LanguageModule.add_relations / add_binder).
        # A blind LM reads no bus, so it gets neither (a recipe's round applies to it unchanged).
        (dataclasses.replace(self.model, relations=[], binder=[], binder_first=False) if self.init_from or self.blind else self.model).validate()
        if self.stage not in (1, 2):
            raise ConfigError(f"stage must be 1 (captions) or 2 (QA), got {self.stage}")
        if self.split.startswith("test"):
            raise ConfigError(f"the language module must not train on a test split (split={self.split!r})")
        if self.binder_init and not self.blind and not os.path.isfile(self.binder_init):
            raise ConfigError(f"binder_init: no file {self.binder_init!r}")
        if self.blind and self.stage == 1:
            raise ConfigError("blind training has no projectors to align: use stage 2 with blind: true")
        if self.templates and self.stage != 2:
            raise ConfigError("templates restricts the QA of stage 2; stage 1 trains on captions")
        if self.template_repeat and self.stage != 2:
            raise ConfigError("template_repeat weights the QA of stage 2; stage 1 trains on captions")
        for name, n in self.template_repeat.items():
            if int(n) < 1:
                raise ConfigError(f"template_repeat.{name} must be a whole number >= 1, got {n}")


class BusTextDataset(torch.utils.data.Dataset):
    """(clip features, prompt ids, target ids) examples; features are read lazily per item."""

    def __init__(self, examples: list[tuple[int, list[int], list[int]]], shard: FeatureShard | None, kinds: list[str]) -> None:
        self.examples, self.shard, self.kinds = examples, shard, kinds

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        row, p, t = self.examples[i]
        item = {"prompt": p, "target": t}
        if self.shard is not None:
            feats = self.shard.get(row)
            item["bus"] = {k: v for k, v in feats.items() if k in self.kinds}
        return item


def collate(items: list[dict]) -> dict:
    """Pad prompt/target ids (right), stack bus tensors per kind ([B, n_tokens, D])."""
    B = len(items)

    def pad(key: str) -> tuple[torch.Tensor, torch.Tensor]:
        lens = [len(x[key]) for x in items]
        out = torch.zeros(B, max(max(lens), 1), dtype=torch.long)
        for i, x in enumerate(items):
            out[i, : lens[i]] = torch.tensor(x[key], dtype=torch.long)
        return out, torch.tensor(lens, dtype=torch.long)

    batch: dict = {}
    batch["prompt_ids"], batch["prompt_len"] = pad("prompt")
    batch["target_ids"], batch["target_len"] = pad("target")
    if "bus" in items[0]:
        batch["bus"] = {
            kind: {side: torch.stack([x["bus"][kind][side] for x in items]) for side in items[0]["bus"][kind]}
            for kind in items[0]["bus"]
        }
    return batch


def build_examples(cfg: Config, module: LanguageModule, shard: FeatureShard | None) -> list[tuple[int, list[int], list[int]]]:
    """Tokenised (shard row, prompt ids, target ids); clips without features are skipped (logged)."""
    mcfg, tok = module.config, module.tokenizer
    pairs: list[tuple[str, str, str, int]] = []  # (clip_id, prompt, target, copies per epoch)
    if cfg.stage == 1:
        for cid, cap in clip_captions(cfg.data_dir, cfg.split).items():
            pairs.append((cid, mcfg.caption_prompt, cap, 1))
    else:
        rows = list(load_split(cfg.data_dir, "questions", cfg.split))
        if cfg.templates:
            unknown = sorted(set(cfg.templates) - {r.get("template") for r in rows})
            if unknown:
                raise ConfigError(f"templates {unknown}: no {cfg.split} question of {cfg.data_dir} has them")
            rows = [r for r in rows if r.get("template") in cfg.templates]
        if cfg.template_repeat:
            unknown = sorted(set(cfg.template_repeat) - {r.get("template") for r in rows})
            if unknown:
                raise ConfigError(f"template_repeat {unknown}: no {cfg.split} question of {cfg.data_dir} (after templates) has them")
        for r in rows:
            if r["question"] and r["answer"]:
                copies = int(cfg.template_repeat.get(r.get("template"), 1))
                pairs.append((r["clip_id"], format_prompt(mcfg, r["question"], list(r["choices"] or [])), r["answer"], copies))
    out, missing = [], 0
    for cid, prompt, target, copies in pairs:
        if shard is not None and cid not in shard:
            missing += 1
            continue
        p, t = encode_pair(tok, prompt, target, mcfg, eos=True)
        out.extend([(shard.row_of(cid) if shard is not None else -1, p, t)] * copies)  # tokenised once, repeated
    if missing:
        log.warning("language: %d of %d examples have no features in %s; skipped", missing, len(pairs), cfg.features_dir)
    if not out:
        raise ConfigError(f"no training examples: {cfg.data_dir} split {cfg.split!r} x features {cfg.features_dir}")
    return out


def build_module(cfg: Config) -> LanguageModule:
    if cfg.init_from:
        module = LanguageModule.from_pretrained(cfg.init_from, trainable=True)
        # The saved config replaces `model`, except that model.relations (and model.binder) may add
        # relation (binder) projectors to a module that lacks them; they start at zero.
        if not cfg.blind:
            module.add_relations(cfg.model.relations)  # kinds it already has are skipped
            if cfg.model.binder and module.adapter.binder is None:  # a new binder takes the round's binder_* settings
                for key in ("binder_roles", "binder_width", "binder_text", "binder_first"):
                    setattr(module.config, key, getattr(cfg.model, key))
            module.add_binder(cfg.model.binder)  # likewise: model.binder may add a slot binder
            if cfg.model.binder_first:  # ... and model.binder_first its first token (binder.py)
                if module.adapter.binder is None:
                    raise ConfigError("model.binder_first: this language module has no slot binder (add one with model.binder=[...])")
                module.adapter.add_binder_first()
    else:
        module = LanguageModule.build(dataclasses.replace(cfg.model, relations=[], binder=[], binder_first=False) if cfg.blind else cfg.model)
    module.set_stage(cfg.stage)
    if not cfg.blind and (cfg.binder_init or cfg.freeze_binder):
        binder = module.adapter.binder
        if binder is None:
            raise ConfigError("binder_init / freeze_binder: this language module has no slot binder (add one with model.binder=[...])")
        if cfg.binder_init:
            from safetensors import SafetensorError
            from safetensors.torch import load_file

            try:
                binder.load_state_dict(load_file(cfg.binder_init))
            except (RuntimeError, OSError, SafetensorError) as e:  # other shapes (another LM's width, other roles) or not a safetensors file
                raise ConfigError(f"binder_init {cfg.binder_init}: not this module's binder ({str(e).splitlines()[0]})") from None
        for p in binder.parameters():
            p.requires_grad = not cfg.freeze_binder
    if cfg.blind:  # no prefix: the projectors would receive no gradient
        for p in module.adapter.parameters():
            p.requires_grad = False
    return module


def resolve_dims(cfg: Config, shard: FeatureShard | None) -> None:
    """kind_dims entries of 0 take their width from the shards; kinds the shards lack are dropped."""
    dims = cfg.model.kind_dims
    if cfg.init_from or not any(int(d) == 0 for d in dims.values()):
        return
    if shard is None:  # blind: no features to read widths from; the projectors are never used
        cfg.model.kind_dims = {k: (int(d) or 1) for k, d in dims.items()}
        return
    cfg.model.kind_dims = {k: int(d) or int(shard.kinds[k]["dim"]) for k, d in dims.items() if int(d) or k in shard.kinds}
    cfg.model.input_norm_per_kind = {k: v for k, v in cfg.model.input_norm_per_kind.items() if k in cfg.model.kind_dims}


def make_job(cfg: Config) -> TrainJob:
    cfg.validate()
    torch.manual_seed(cfg.trainer.seed)  # projector / LoRA init
    shard = None if cfg.blind else FeatureShard(cfg.features_dir, cfg.split)
    resolve_dims(cfg, shard)
    module = build_module(cfg)
    kinds = [k for k in module.config.kind_dims if (not cfg.kinds or k in cfg.kinds)]
    if shard is not None:
        for k in kinds:
            if k in shard.kinds and shard.kinds[k]["dim"] != module.config.kind_dims[k]:
                raise ConfigError(
                    f"features {k} have width {shard.kinds[k]['dim']}, model.kind_dims.{k} = {module.config.kind_dims[k]}"
                )
        kinds = [k for k in kinds if k in shard.kinds]
        if not kinds:
            raise ConfigError(f"{cfg.features_dir} holds none of the kinds {list(module.config.kind_dims)}")
    for k in module.config.kind_dims:  # projectors that see no data get no grad: freeze (DDP-safe)
        if k not in kinds or shard is None:
            module.adapter.proj[k].requires_grad_(False)
            if k in module.adapter.rel:
                module.adapter.rel[k].requires_grad_(False)
    examples = build_examples(cfg, module, shard)
    mean_target = sum(len(t) for _, _, t in examples) / len(examples)
    module.token_norm = float(cfg.trainer.batch_size * mean_target)
    return TrainJob(model=module, dataset=BusTextDataset(examples, shard, kinds), collate_fn=collate)
