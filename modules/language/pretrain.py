"""`cogarch train language-pretrain`: the default base LM, trained by us on physics-world text.

A small Llama-architecture model (Touvron et al. 2023: RMSNorm, SwiGLU, rotary positions) with our
own SentencePiece tokenizer, both trained on the text of the physics world's TRAIN split (scene
descriptions, event narrations, QA pairs; see corpus.py). The export is a plain transformers folder
(config.json, model.safetensors, tokenizer files) that `language.base_lm` points at.

Documents are packed into fixed blocks of `seq_len` tokens ([BOS] doc [EOS] [BOS] doc ...), as in
GPT-style pretraining, so every micro-batch has exactly batch_size * seq_len target tokens and the
trainer's per-micro-batch mean loss is already the exact per-token mean across accumulation.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from cogarch.errors import ConfigError
from cogarch.modules.language.config import LanguageConfig
from cogarch.modules.language.corpus import GROUNDED, build_corpus
from cogarch.modules.language.tokenizer import build_tokenizer
from cogarch.train import OptimConfig, TrainerConfig, TrainJob

FAMILIES = ("llama", "qwen2")


@dataclass
class LMArchConfig:
    family: str = "llama"  # llama | qwen2 (any transformers causal LM loads later; these we can build)
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    kv_heads: int = 4
    intermediate: int = 688  # ~8/3 * hidden (SwiGLU keeps the MLP parameter count of a 4x GELU MLP)
    max_positions: int = 512
    tie_embeddings: bool = True  # saves vocab*hidden parameters, standard for small LMs

    def validate(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"lm.family must be one of {FAMILIES}, got {self.family!r}")
        if self.hidden % self.heads or self.heads % self.kv_heads:
            raise ConfigError(f"lm.hidden ({self.hidden}) must divide by heads ({self.heads}), heads by kv_heads ({self.kv_heads})")


@dataclass
class Config:
    data_dir: str = "data/physqa"  # a generated suite (`cogarch generate --suite physqa`)
    split: str = "train"  # ONLY this split's text is used (never test)
    vocab_size: int = 2000
    seq_len: int = 128
    # Caption + QA documents (corpus.build_corpus): "none" (captions and bare QA texts), "add" (plus,
    # per question, its clip's caption then the QA), "only" (captions + those; no bare QA). With them
    # the LM learns to answer from the text before the question. They are ~100-200 tokens: use
    # seq_len >= 256.
    grounded: str = "none"
    lm: LMArchConfig = field(default_factory=LMArchConfig)
    prompts: LanguageConfig = field(default_factory=LanguageConfig)  # QA text uses its prompt templates
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, warmup_steps=50, weight_decay=0.1))
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(out_dir="runs/language_pretrain"))

    def validate(self) -> None:
        self.lm.validate()
        if self.split.startswith("test"):
            raise ConfigError(f"language-pretrain must not read a test split (split={self.split!r})")
        if self.grounded not in GROUNDED:
            raise ConfigError(f"grounded must be one of {'|'.join(GROUNDED)}, got {self.grounded!r}")
        if self.seq_len < 8:
            raise ConfigError(f"seq_len must be >= 8, got {self.seq_len}")
        if self.seq_len > self.lm.max_positions:
            raise ConfigError(f"seq_len {self.seq_len} exceeds lm.max_positions {self.lm.max_positions}")


def new_lm(arch: LMArchConfig, vocab_size: int, pad_id: int = 3, bos_id: int = 1, eos_id: int = 2):
    """A randomly initialised transformers causal LM of the given family."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    common = dict(
        vocab_size=vocab_size,
        hidden_size=arch.hidden,
        intermediate_size=arch.intermediate,
        num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads,
        num_key_value_heads=arch.kv_heads,
        max_position_embeddings=arch.max_positions,
        tie_word_embeddings=arch.tie_embeddings,
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
    )
    if arch.family == "llama":
        return LlamaForCausalLM(LlamaConfig(**common))
    return Qwen2ForCausalLM(Qwen2Config(**common))


class PackedText(torch.utils.data.Dataset):
    """Fixed blocks of seq_len + 1 token ids cut from the concatenated documents."""

    def __init__(self, docs: list[str], tokenizer, seq_len: int) -> None:
        stream: list[int] = []
        for d in docs:
            stream += [tokenizer.bos_token_id] + tokenizer(d, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        n = (len(stream) - 1) // seq_len
        if n < 1:
            raise ConfigError(f"corpus has {len(stream)} tokens, fewer than one block of seq_len={seq_len}")
        self.blocks = torch.tensor(stream[: n * seq_len + 1], dtype=torch.long)
        self.seq_len, self.n = seq_len, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        s = i * self.seq_len
        return {"input_ids": self.blocks[s : s + self.seq_len + 1]}


class PretrainLM(nn.Module):
    """forward(batch) -> (mean next-token NLL, metrics) for the generic trainer."""

    def __init__(self, lm: nn.Module, tokenizer) -> None:
        super().__init__()
        self.lm, self.tokenizer = lm, tokenizer

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        ids = batch["input_ids"]  # [B, seq_len + 1]
        logits = self.lm(input_ids=ids[:, :-1]).logits.float()  # [B, seq_len, V]
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        return loss, {"ppl": float(torch.exp(loss.detach().clamp(max=20)))}

    def save_pretrained(self, path: str | os.PathLike) -> None:
        from cogarch.fsutil import atomic_dir

        with atomic_dir(path) as tmp:
            self.lm.save_pretrained(str(tmp))
            self.tokenizer.save_pretrained(str(tmp))


def tokenizer_for(cfg: Config, docs: list[str]):
    """Train the tokenizer once per run folder (a resumed run reuses it: same ids, same blocks)."""
    from transformers import AutoTokenizer

    folder = Path(cfg.trainer.out_dir) / "tokenizer"
    if (folder / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return build_tokenizer(docs, cfg.vocab_size, folder)


def make_job(cfg: Config) -> TrainJob:
    cfg.validate()
    docs = build_corpus(cfg.data_dir, cfg.split, cfg.prompts, grounded=cfg.grounded)
    tok = tokenizer_for(cfg, docs)
    torch.manual_seed(cfg.trainer.seed)  # same init for the same seed
    lm = new_lm(cfg.lm, len(tok), tok.pad_token_id, tok.bos_token_id, tok.eos_token_id)
    data = PackedText(docs, tok, cfg.seq_len)
    info = {"docs": len(docs), "blocks": len(data), "tokens": int(data.blocks.numel()),
            "params": sum(p.numel() for p in lm.parameters()), "vocab": len(tok)}
    out = Path(cfg.trainer.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "corpus_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return TrainJob(model=PretrainLM(lm, tok), dataset=data)
