"""Write uint8 frames to an H.264 mp4 with PyAV (libx264, yuv420p), atomically.

The file is encoded into memory and written via temp file + os.replace, so a reader never sees a
half-written clip. One encoder thread per clip: generation parallelises over clips instead, and a
single-threaded x264 is also bit-for-bit deterministic (same frames -> same bytes).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import av
import numpy as np


def encode_mp4(frames: np.ndarray, fps: float = 8.0, crf: int = 18) -> bytes:
    """frames uint8 [T, H, W, 3] (H, W even) -> mp4 bytes."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 [T,H,W,3] frames, got {frames.dtype} {frames.shape}")
    T, H, W, _ = frames.shape
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        st = c.add_stream("libx264", rate=int(round(fps)))
        st.width, st.height, st.pix_fmt = W, H, "yuv420p"
        st.thread_count = 1
        st.options = {"preset": "veryfast", "crf": str(crf)}
        for t in range(T):
            for p in st.encode(av.VideoFrame.from_ndarray(frames[t], format="rgb24")):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    return buf.getvalue()


def write_mp4(path: str | Path, frames: np.ndarray, fps: float = 8.0) -> None:
    """Encode and write `path` via temp file + rename."""
    data = encode_mp4(frames, fps)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_mp4(path: str | Path) -> np.ndarray:
    """Decode an mp4 -> uint8 [T, H, W, 3] (used by tests and sanity checks)."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
