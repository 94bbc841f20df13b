"""Write uint8 frames to an H.264 mp4 with PyAV (libx264, yuv420p), atomically.

The file is encoded into memory and written via temp file + os.replace, so a reader never sees a
half-written clip. One encoder thread per clip (generation parallelises over clips instead), the
yuv420p conversion done in numpy and the x264 "ultrafast" preset together make the bytes a pure
function of the frames (same seed -> same mp4), which we check in tests/test_world_physqa.py.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import av
import numpy as np


def rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> uint8 [H*3/2, W] planar yuv420p (BT.601 limited range).

    Done in numpy rather than by libswscale inside the encoder: we measured that path to be
    run-to-run nondeterministic on some clips, which broke "same seed -> same video bytes".
    """
    f = frame.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    H, W = r.shape
    # Chroma from the 2x2-averaged RGB (the usual 4:2:0 siting, centred between samples).
    q = f.reshape(H // 2, 2, W // 2, 2, 3).mean(axis=(1, 3))
    r2, g2, b2 = q[..., 0], q[..., 1], q[..., 2]
    u = 128.0 + (-37.797 * r2 - 74.203 * g2 + 112.0 * b2) / 255.0
    v = 128.0 + (112.0 * r2 - 93.786 * g2 - 18.214 * b2) / 255.0
    out = np.concatenate([y.ravel(), u.ravel(), v.ravel()])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(H * 3 // 2, W)


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
        # "ultrafast": we measured preset veryfast to give run-to-run different bytes for the same
        # frames on some clips (differing by process, not by call); ultrafast was stable.
        st.options = {"preset": "ultrafast", "crf": str(crf)}
        for t in range(T):
            vf = av.VideoFrame.from_ndarray(rgb_to_yuv420p(frames[t]), format="yuv420p")
            for p in st.encode(vf):
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
