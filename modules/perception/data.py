"""Clip dataset for perception pretraining and probing: the generated clips DatasetDict (schema:
`DIR/clips/` saved with `datasets.save_to_disk`, one row per clip, video path relative to DIR).

    ds = ClipDataset("data/physqa", "train", num_frames=16, size=64)
    ds[i] -> frames [T, 3, H, W] float32, normalised with the ImageNet mean/std (V-JEPA inputs)

Masks are NOT built here: `MaskCollator` (masking.py) builds them per batch in the loader workers.
Decoding goes through `cogarch.video.read_clip` (PyAV), at the clip's native frame rate so that T
consecutive frames are read (from frame 0, or from a random start when `random_start` and the mp4
holds more than T frames).

`windows=True` cuts clips longer than `num_frames` into windows of consecutive frames (stride
num_frames / 2, the last window ending at the clip's end), one sample each: a 32-frame VoE clip
gives 3 samples, so training sees its middle and end at the clip's own rate (`random_start` is then
unused). With `possible_only=True` (what perception training passes) a VoE suite yields only its
POSSIBLE clips: an impossible clip must never be learned as normal (the same rule as the world
model's training data). Probes and the object head read every clip, with labels from frame 0, so
they never use windows; `objects(i)` / `annotations(i)` of a window that starts later raise.

`cache=True` decodes every sample once (its T frames, uint8) into DIR/.cache/perception/*.npy and
memory-maps it: on a loaded 2-core machine PyAV needs 0.1-0.3 s per 16-frame clip, more than a
whole training step of the tiny model, and pretraining plus two probes read each clip many times.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cogarch.errors import UserError
from cogarch.fsutil import safe_join
from cogarch.modules.perception.config import IMAGENET_MEAN, IMAGENET_STD
from cogarch.train import worker_context

SPLITS = ("train", "val", "test", "test_ood")


def load_clips_split(data_dir: str | os.PathLike, split: str):
    """The `datasets.Dataset` of one split of DIR/clips, with one-line errors."""
    root = Path(data_dir)
    clips = root / "clips"
    if not clips.is_dir():
        raise UserError(
            f"{str(root)!r} has no clips/ dataset (make one with `cogarch generate --suite physqa --n 2000 --out {root}`)"
        )
    from datasets import load_from_disk

    try:
        dd = load_from_disk(str(clips))
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"{clips}: not a readable datasets folder ({str(e).splitlines()[0]})") from None
    if split not in dd:
        raise UserError(f"{clips}: no split {split!r} (has {', '.join(dd.keys())})")
    return dd[split]


def voe_possible_ids(data_dir: str | os.PathLike) -> set[str] | None:
    """clip_ids of the possible clips of a VoE suite; None for other suites and hand-made folders."""
    root = Path(data_dir)
    try:
        suite = json.loads((root / "manifest.json").read_text()).get("suite")
    except (OSError, json.JSONDecodeError):
        return None  # hand-made clip folders (tests) carry no manifest
    if suite != "voe":
        return None  # other suites: no need to read their questions
    from cogarch.features import clip_refs  # the one reader of the suites' possible flags

    try:
        _, refs = clip_refs(root)
    except (FileNotFoundError, ValueError, KeyError) as e:  # JSONDecodeError is a ValueError
        raise UserError(f"{root}: a voe suite whose questions/ cannot be read ({str(e).splitlines()[0]})") from None
    return {r.clip_id for r in refs if r.extra.get("possible") is True}


def read_frames(path: str | os.PathLike, num_frames: int, size: int, fps: float, start: int = 0) -> torch.Tensor:
    """Decode `num_frames` consecutive frames from frame `start`: [T, 3, size, size] float in [0, 1]."""
    from cogarch.video import read_clip

    return read_clip(path, num_frames=num_frames, fps=fps, size=size, start_s=start / fps if fps > 0 else 0.0)


class ClipDataset(Dataset):
    """Frames of the generated clips; optionally with the row index (for probes)."""

    def __init__(
        self,
        data_dir: str | os.PathLike,
        split: str = "train",
        num_frames: int = 16,
        size: int = 64,
        random_start: bool = False,
        normalize: bool = True,
        max_clips: int = 0,
        with_index: bool = False,
        cache: bool = False,
        cache_workers: int = 2,
        windows: bool = False,
        possible_only: bool = False,
        uniform: bool = False,
    ) -> None:
        if num_frames < 1 or size < 1:
            raise UserError(f"ClipDataset: num_frames and size must be positive, got {num_frames}, {size}")
        self.root = Path(data_dir)
        self.split = split
        self.rows = load_clips_split(data_dir, split)
        possible = voe_possible_ids(self.root) if possible_only else None
        if possible is not None:
            self.rows = self.rows.select([i for i, c in enumerate(self.rows["clip_id"]) if c in possible])
            if len(self.rows) == 0:
                raise UserError(f"{self.root / 'clips'}: split {split!r} has no possible clips")
        if max_clips and max_clips < len(self.rows):
            self.rows = self.rows.select(range(max_clips))
        if len(self.rows) == 0:
            raise UserError(f"{self.root / 'clips'}: split {split!r} is empty")
        self.num_frames, self.size = int(num_frames), int(size)
        self.random_start, self.normalize, self.with_index = random_start, normalize, with_index
        self.windows, self.possible_only = windows, possible_only
        # uniform: num_frames spread over the whole clip, as feature encoding and `ask` read a clip
        # (cogarch/features.py); otherwise consecutive frames at the clip's rate from the start.
        self.uniform = bool(uniform)
        if uniform and (windows or random_start):
            raise UserError("ClipDataset: uniform sampling reads the whole clip; it takes no windows or random start")
        # One sample per (row, start frame); without windows, one per row starting at frame 0.
        self._items = [(r, st) for r, n in enumerate(self.rows["num_frames"])
                       for st in (window_starts(int(n), self.num_frames) if windows else [0])]
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        # Only the light columns are kept in memory; annotations are parsed lazily (probe targets).
        self._video = self.rows["video"]
        self._n = self.rows["num_frames"]
        self._fps = self.rows["fps"]
        self._cache: np.ndarray | None = None
        self._cache_file: Path | None = self._build_cache(cache_workers) if cache else None

    def __getstate__(self) -> dict:
        # Workers re-open the memory map instead of receiving a pickled copy of the frames.
        state = dict(self.__dict__)
        state["_cache"] = None
        return state

    def _cache_path(self) -> Path:
        # Keyed by exactly which frames are cached (every sample's video and start), so a possible-only
        # or windowed selection never reuses another selection's file.
        digest = hashlib.sha1("\n".join(f"{self._video[r]}:{st}" for r, st in self._items).encode()).hexdigest()[:16]
        fp = f"{self.split}_{len(self)}_{self.num_frames}x{self.size}{'_uniform' if self.uniform else ''}_{digest}"
        return self.root / ".cache" / "perception" / f"{fp}.npy"

    def _build_cache(self, workers: int) -> Path:
        path = self._cache_path()
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            arr = np.empty((len(self), self.num_frames, 3, self.size, self.size), dtype=np.uint8)
            src = ClipDataset(self.root, self.split, self.num_frames, self.size, normalize=False,
                              max_clips=len(self.rows), with_index=True, windows=self.windows,
                              possible_only=self.possible_only, uniform=self.uniform)
            # Workers never fork this process (cogarch.train.worker_context: with av 18.1.1 the pack
            # pipeline hung here after the video-writing stages); torch, numpy and av preloaded.
            ctx = worker_context(("torch", "numpy", __name__)) if workers > 0 else None
            loader = torch.utils.data.DataLoader(src, batch_size=16, num_workers=max(0, workers), multiprocessing_context=ctx)
            for b in loader:
                arr[b["index"].numpy()] = (b["frames"] * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, arr)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        if arr.shape != (len(self), self.num_frames, 3, self.size, self.size):
            raise UserError(f"{path}: stale frame cache (shape {arr.shape}); delete it and retry")
        return path

    def __len__(self) -> int:
        return len(self._items)

    def row(self, i: int) -> dict[str, Any]:
        """The clips row of sample i (with windows, every window of a clip shares its row)."""
        return self.rows[self._items[int(i)][0]]

    def start(self, i: int) -> int:
        """First frame of sample i in its clip (0 without windows)."""
        return int(self._items[int(i)][1])

    def _labels_at_zero(self, i: int) -> None:
        # Labels (objects, tracks) are indexed from the clip's frame 0; a later window would pair its
        # frames with the wrong targets without any error, so it is refused.
        if self.start(i) != 0:
            raise ValueError(f"sample {i} is a window starting at frame {self.start(i)}; clip labels "
                             "start at frame 0 (build the dataset with windows=False to read labels)")

    def objects(self, i: int) -> list[dict]:
        self._labels_at_zero(i)
        return json.loads(self.row(i)["objects"])

    def annotations(self, i: int) -> dict:
        self._labels_at_zero(i)
        return json.loads(self.row(i)["annotations"])

    def __getitem__(self, i: int) -> Any:
        i = int(i)
        if self._cache_file is not None:
            if self._cache is None:
                self._cache = np.load(self._cache_file, mmap_mode="r", allow_pickle=False)
            frames = torch.from_numpy(np.array(self._cache[i])).float().div_(255.0)  # [T,3,H,W]
        else:
            r, start = self._items[i]
            path = safe_join(self.root, self._video[r])
            spare = int(self._n[r]) - self.num_frames
            if self.random_start and not self.windows and spare > 0:
                start = int(torch.randint(0, spare + 1, ()).item())
            if self.uniform:
                from cogarch.video import read_clip

                frames = read_clip(path, num_frames=self.num_frames, fps=None, size=self.size)  # [T,3,H,W]
            else:
                frames = read_frames(path, self.num_frames, self.size, float(self._fps[r]), start)  # [T,3,H,W]
        if self.normalize:
            frames = (frames - self.mean) / self.std
        if self.with_index:
            return {"frames": frames, "index": torch.tensor(i)}
        return frames


def window_starts(n: int, num_frames: int) -> list[int]:
    """Start frames of the windows of a clip of n frames: stride num_frames // 2, last one ending at n."""
    if n <= num_frames:
        return [0]
    starts = list(range(0, n - num_frames + 1, max(1, num_frames // 2)))
    return starts if starts[-1] == n - num_frames else starts + [n - num_frames]
