"""Fixtures shared by several test files: one intra-op thread for micro models, and a writer of tiny
generated suites (the `clips` table `cogarch generate` writes, from frames made in the test)."""

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
