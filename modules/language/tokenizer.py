"""Train our own SentencePiece tokenizer and wrap it as a transformers tokenizer (no hub downloads).

SentencePiece (Kudo & Richardson 2018) BPE with byte fallback, so any string round-trips even if a
character never occurred in the training corpus. The `.model` file is converted by transformers'
own Llama tokenizer into a `tokenizer.json`, so `AutoTokenizer.from_pretrained(folder,
local_files_only=True)` loads it like any other local tokenizer. Special ids are fixed:
unk=0, bos=1, eos=2, pad=3.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable

import sentencepiece as spm

from cogarch.errors import ConfigError

UNK, BOS, EOS, PAD = 0, 1, 2, 3
MIN_VOCAB = 260 + 16  # 256 byte pieces + 4 specials + a few merges


def train_sentencepiece(texts: Iterable[str], vocab_size: int, model_type: str = "bpe", seed_sentences: int = 2_000_000) -> bytes:
    """Train a SentencePiece model on `texts`; returns the serialized model proto."""
    if vocab_size < MIN_VOCAB:
        raise ConfigError(f"tokenizer vocab_size must be >= {MIN_VOCAB} (byte fallback needs 256 pieces), got {vocab_size}")
    lines = [t.replace("\n", " ").strip() for t in texts]
    lines = [t for t in lines if t]
    if not lines:
        raise ConfigError("cannot train a tokenizer on an empty corpus")
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type=model_type,
        unk_id=UNK,
        bos_id=BOS,
        eos_id=EOS,
        pad_id=PAD,
        byte_fallback=True,
        character_coverage=1.0,
        # A small corpus cannot always fill the requested vocab; take what it supports.
        hard_vocab_limit=False,
        input_sentence_size=seed_sentences,
        shuffle_input_sentence=False,  # deterministic: same corpus -> same tokenizer
        num_threads=1,
        minloglevel=2,
    )
    return buf.getvalue()


def save_hf_tokenizer(model_proto: bytes, folder: str | os.PathLike):
    """Write tokenizer.model + the transformers files into `folder`; return the loaded tokenizer."""
    from transformers import AutoTokenizer, LlamaTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(model_proto)
    # transformers converts the SentencePiece proto into a fast (tokenizers) tokenizer on load.
    tok = LlamaTokenizer.from_pretrained(str(folder), local_files_only=True)
    tok.pad_token = "<pad>"
    tok.save_pretrained(str(folder))
    loaded = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if loaded.pad_token_id != PAD or loaded.eos_token_id != EOS or loaded.bos_token_id != BOS:
        raise RuntimeError("tokenizer special ids changed in conversion")  # a bug, not user input
    return loaded


def build_tokenizer(texts: Iterable[str], vocab_size: int, folder: str | os.PathLike):
    """Train on `texts` and save a transformers-loadable tokenizer into `folder`."""
    return save_hf_tokenizer(train_sentencepiece(texts, vocab_size), folder)
