"""Video out: write frames to mp4 (H.264) or GIF atomically, with the mode any normal file gets.

Split from cogarch/video.py (which reads); `cogarch.video.write_mp4` / `write_gif` re-export these.
frames: uint8 numpy [T, H, W, 3] or float tensor [T, 3, H, W] in [0, 1].
"""

from __future__ import annotations

import contextlib
import math
import os
from fractions import Fraction
from typing import Any, Iterator

import av
import numpy as np
import torch

from cogarch.fsutil import atomic_path
from cogarch.video import _EXACT_CHROMA, _Interp, _os_err


def _frames_uint8(frames: Any, fps: float) -> np.ndarray:
    """uint8 numpy [T, H, W, 3] or float tensor [T, 3, H, W] in [0, 1] -> uint8 [T, H, W, 3]."""
    if not 0 < fps < math.inf:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    if isinstance(frames, torch.Tensor):
        if frames.dim() != 4 or frames.shape[1] not in (1, 3):
            raise ValueError(f"frames tensor must be [T, 3, H, W], got {tuple(frames.shape)}")
        frames = frames.detach().cpu().permute(0, 2, 3, 1).numpy()
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3) or arr.shape[0] < 1:
        raise ValueError(f"frames must be [T>=1, H, W, 3] (numpy) or [T, 3, H, W], got {arr.shape}")
    if arr.dtype != np.uint8:  # float in [0, 1]
        arr = (np.clip(arr.astype(np.float32), 0, 1) * 255.0).round().astype(np.uint8)
    return np.ascontiguousarray(np.repeat(arr, 3, axis=-1) if arr.shape[-1] == 1 else arr)


@contextlib.contextmanager
def _atomic_file(path: str | os.PathLike, suffix: str) -> Iterator[str]:
    """fsutil.atomic_path, with a failure to create or write the file as a one-line VideoError."""
    try:
        with atomic_path(path, suffix) as tmp:
            yield tmp
    except OSError as e:
        raise _os_err(path, e, "cannot write") from None


def write_mp4(path: str | os.PathLike, frames: Any, fps: float, *, crf: int = 18,
              preset: str = "medium") -> None:
    """Write H.264 (libx264, yuv420p, faststart) mp4 atomically (temp file + os.replace).

    frames: uint8 numpy [T, H, W, 3] or float tensor [T, 3, H, W] in [0, 1]. yuv420p needs even
    sizes, so an odd H or W is padded by one replicated edge row/column (output H+1 or W+1).
    """
    arr = _frames_uint8(frames, fps)
    ph, pw = arr.shape[1] % 2, arr.shape[2] % 2
    if ph or pw:
        arr = np.pad(arr, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    rate = Fraction(fps).limit_denominator(1001)
    with _atomic_file(path, ".mp4") as tmp:
        with av.open(tmp, "w", format="mp4", options={"movflags": "+faststart"}) as out:
            s = out.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": preset})
            s.width, s.height, s.pix_fmt = arr.shape[2], arr.shape[1], "yuv420p"
            for i, a in enumerate(arr):
                f = av.VideoFrame.from_ndarray(a, format="rgb24").reformat(
                    format="yuv420p", interpolation=_Interp.BICUBIC | _EXACT_CHROMA)
                f.pts, f.time_base = i, 1 / rate
                out.mux(s.encode(f))
            out.mux(s.encode(None))


def write_gif(path: str | os.PathLike, frames: Any, fps: float) -> None:
    """Write a looping GIF atomically (Pillow, adaptive palette per frame; frames as write_mp4).

    GIF delays are in 1/100 s, so 1/fps is rounded to 10 ms; Pillow may merge identical
    consecutive frames into one longer frame (timing is kept, the frame count is not).
    """
    from PIL import Image

    ims = [Image.fromarray(a) for a in _frames_uint8(frames, fps)]
    with _atomic_file(path, ".gif") as tmp:
        ims[0].save(tmp, format="GIF", save_all=True, append_images=ims[1:], loop=0,
                    duration=max(10, int(round(100.0 / fps)) * 10))
