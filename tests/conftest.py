"""Fixtures shared by several test files: one intra-op thread for micro models, a writer of tiny
generated suites (the `clips` table `cogarch generate` writes, from frames made in the test), and a
writer of tiny random causal LMs with our own SentencePiece tokenizer (nothing is downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch


@pytest.fixture
def one_thread():
    """Micro tensors gain nothing from intra-op threads, and on a shared, oversubscribed 2-core machine
    OpenMP spin-waiting made such tests ~20x slower with 2 threads. Use with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def write_clip_suite():
    """write(root, {split: [(frames uint8 [T, S, S, 3], annotations, objects), ...]}) -> root: an mp4 per
    clip under root/videos and the suite's `clips` DatasetDict, as the physics world writes them."""

    def write(root: Path, splits: dict[str, list[tuple]], fps: float = 8.0) -> Path:
        from datasets import Dataset, DatasetDict

        from cogarch.video import write_mp4

        (root / "videos").mkdir(parents=True, exist_ok=True)
        tables = {}
        for split, clips in splits.items():
            rows = []
            for i, (frames, ann, objects) in enumerate(clips):
                rel = f"videos/{split}_{i}.mp4"
                write_mp4(root / rel, frames, fps)
                T, S = frames.shape[0], frames.shape[1]
                rows.append({"clip_id": f"{split}_{i}", "split": split, "family": "table", "seed": i, "video": rel,
                             "num_frames": T, "observed_frames": T, "fps": fps, "width": S, "height": S,
                             "objects": json.dumps(objects), "annotations": json.dumps(ann)})
            tables[split] = Dataset.from_list(rows)
        DatasetDict(tables).save_to_disk(str(root / "clips"))
        return root

    return write


@pytest.fixture(scope="session")
def write_tiny_lm():
    """write(root, texts, family="llama") -> folder of a 2-layer, width-32 random LM (seed 0) with a
    300-piece SentencePiece tokenizer trained on `texts`, as `LanguageConfig.base_lm` reads it."""

    def write(root: Path, texts: list[str], family: str = "llama") -> str:
        from cogarch.modules.language.pretrain import LMArchConfig, new_lm
        from cogarch.modules.language.tokenizer import build_tokenizer

        tok = build_tokenizer(texts, 300, root / "tok")
        torch.manual_seed(0)
        arch = LMArchConfig(family=family, hidden=32, layers=2, heads=2, kv_heads=1, intermediate=64, max_positions=256)
        new_lm(arch, len(tok)).save_pretrained(root / "lm")
        tok.save_pretrained(root / "lm")
        return str(root / "lm")

    return write
