"""Helpers of the reliability tests: input generators and pack/store editing (no fixtures).

A plain module with a unique name, so that test files import it directly (importing `conftest`
by name is fragile: another folder's conftest may own that name).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534  # the unprivileged uid the permission cases run as


def encode(path: Path, frames: list[np.ndarray], fps: float = 8, codec: str = "libx264", pix: str = "yuv420p",
           opts: dict | None = None, pts_ms: list[int] | None = None) -> Path:
    """Write uint8 [H, W, 3] frames with PyAV; `pts_ms` gives variable-rate timestamps (ms)."""
    opts = {"bf": "0", **(opts or {})}  # no B-frames: dts == pts, so VFR timestamps stay exact in mp4
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps, options=opts)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = pix
        if pts_ms is not None:
            s.codec_context.time_base = Fraction(1, 1000)
        for i, a in enumerate(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24")
            if pts_ms is not None:
                f.pts, f.time_base = pts_ms[i], Fraction(1, 1000)
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    return path


def _bar(i: int, n: int = 64) -> np.ndarray:
    a = np.zeros((n, n, 3), np.uint8)
    x = (i * 2) % n
    a[:, x : x + 8] = (255, 64, 32)
    return a


def long_clip(path: Path, minutes: int) -> Path:
    """A `minutes`-long 64x64 30 fps H.264 clip in well under a second: one 10 s segment is
    encoded (keyframe every second), then its packets are re-muxed with shifted timestamps."""
    seg = path.with_name(".segment.mp4")
    encode(seg, [_bar(i) for i in range(300)], fps=30, opts={"g": "30", "preset": "ultrafast"})
    with av.open(str(seg)) as src:
        ins = src.streams.video[0]
        packets = [p for p in src.demux(ins) if p.size]
        seg_ticks = round(10 / ins.time_base)
        with av.open(str(path), "w") as out:
            os_ = out.add_stream_from_template(ins)
            for k in range(minutes * 6):
                for p in packets:
                    if k:
                        p.pts, p.dts = p.pts + seg_ticks, p.dts + seg_ticks
                    p.stream = os_
                    out.mux(p)
    seg.unlink()
    return path


def audio_clip(path: Path, fmt: str) -> Path:
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("aac", rate=16000)
        for i in range(8):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            fr.sample_rate, fr.pts = 16000, i * 1024
            c.mux(s.encode(fr))
        c.mux(s.encode(None))
    return path


def clone_pack(master: Path, dst: Path) -> Path:
    """Hard-link copy of `master` (cheap); edit files only through `replace_file`."""
    shutil.copytree(master, dst, copy_function=os.link)
    return dst


def replace_file(path: Path, data: bytes | str) -> None:
    """Write a new inode (never through a hard link into the master pack)."""
    if path.exists() or path.is_symlink():
        path.unlink()
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def newer_schema_store(folder: Path) -> Path:
    """A real memory store (created by the store code), then marked as schema version + 1."""
    from cogarch.modules.memory.config import MemoryConfig
    from cogarch.modules.memory.store import SCHEMA_VERSION, DB_NAME, EpisodeStore

    with EpisodeStore(MemoryConfig(store=str(folder))):
        pass
    db = sqlite3.connect(str(folder / DB_NAME))
    with db:
        db.execute("UPDATE info SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.close()
    return folder
