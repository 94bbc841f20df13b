"""Fixtures of the reliability tests: the bad-input corpus, generated once per session.

Everything the corpus feeds to `cogarch` is built here from scratch (PyAV, Pillow, SQLite, a copy
of the shipped default pack) -- nothing is downloaded or checked in. The fork-server CLI runner
(`cli_runner.py`) runs the real CLI in a fresh child process per case.

Inputs (session `corpus` folder):
    good.mp4        16 frames 32x32 H.264, the clip every non-video case uses
    zero.mp4 text.mp4 random.mp4 trunc_data.mp4 trunc_head.mp4 audio.m4a audio.mp4
    image_as.mp4 corrupt.png empty_dir/ no_frames_dir/               -> must fail (exit 2)
    uhd.mp4 (3840x2160) odd.mp4 (33x19, yuv444p) gray.mp4 (luma only) vfr.mp4 (irregular pts)
    one_frame.mp4 still.png long.mp4 (20 min, 36 000 frames)         -> must be answered
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_runner import CliRunner  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534
LONG_MINUTES = 20


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


def _audio(path: Path, fmt: str) -> Path:
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("aac", rate=16000)
        for i in range(8):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            fr.sample_rate, fr.pts = 16000, i * 1024
            c.mux(s.encode(fr))
        c.mux(s.encode(None))
    return path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    noise = lambda h, w: rng.integers(0, 255, (h, w, 3), dtype=np.uint8)  # noqa: E731
    good = encode(d / "good.mp4", [noise(32, 32) for _ in range(16)])
    data = good.read_bytes()
    (d / "zero.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("this is not a video, it is a note renamed to .mp4\n" * 40)
    (d / "random.mp4").write_bytes(rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    (d / "trunc_head.mp4").write_bytes(data[:600])  # cut inside the header
    # faststart (index first) then the frame data cut at 40%: the index promises frames that are gone
    from cogarch.video import write_mp4

    write_mp4(d / "fast.mp4", np.stack([noise(32, 32) for _ in range(20)]), fps=10)
    fast = (d / "fast.mp4").read_bytes()
    (d / "trunc_data.mp4").write_bytes(fast[: int(len(fast) * 0.4)])
    (d / "fast.mp4").unlink()
    _audio(d / "audio.m4a", "mp4")
    shutil.copy(d / "audio.m4a", d / "audio.mp4")
    Image.fromarray(noise(32, 32)).save(d / "still.png")
    shutil.copy(d / "still.png", d / "image_as.mp4")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 40)
    (d / "empty_dir").mkdir()
    (d / "no_frames_dir").mkdir()
    (d / "no_frames_dir" / "notes.txt").write_text("no frames here\n")
    # tolerated inputs
    uhd = np.zeros((2160, 3840, 3), np.uint8)
    uhd[:, 1920:] = 255
    encode(d / "uhd.mp4", [uhd] * 4, opts={"preset": "ultrafast"})
    encode(d / "odd.mp4", [noise(19, 33) for _ in range(8)], pix="yuv444p")
    encode(d / "gray.mp4", [np.repeat(noise(32, 32)[..., :1], 3, 2) for _ in range(8)], pix="gray")
    encode(d / "vfr.mp4", [noise(32, 32) for _ in range(8)], fps=30, pts_ms=[0, 10, 200, 230, 800, 810, 1500, 2400])
    encode(d / "one_frame.mp4", [noise(32, 32)])
    long_clip(d / "long.mp4", LONG_MINUTES)
    return d


@pytest.fixture(scope="session")
def unreadable_clip(corpus):
    """A valid clip that user `nobody` may not read, in a folder `nobody` can traverse.

    The tests run as root, which reads anything, so the case drops to uid 65534 (see
    cli_runner); pytest's own tmp folders are 0700, hence a separate /tmp folder."""
    d = Path(tempfile.mkdtemp(prefix="cogarch-perm-"))
    os.chmod(d, 0o755)
    f = d / "locked.mp4"
    shutil.copy(corpus / "good.mp4", f)
    os.chmod(f, 0)
    yield f
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def unreadable_pack(master_pack, corpus):
    """A world-readable pack copy (outside pytest's 0700 tmp) whose world-model weights only
    root may read: `nobody` must get a one-line permission error, not a traceback."""
    d = Path(tempfile.mkdtemp(prefix="cogarch-perm-"))
    os.chmod(d, 0o755)
    pack = d / "pack"
    shutil.copytree(master_pack, pack)
    for p in [pack, *pack.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    os.chmod(pack / "world_model" / "model.safetensors", 0o600)
    shutil.copy(corpus / "good.mp4", d / "clip.mp4")  # a clip `nobody` can read
    os.chmod(d / "clip.mp4", 0o644)
    yield pack
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def master_pack(tmp_path_factory) -> Path:
    """A private copy of the shipped default pack; cases hard-link to it and replace files."""
    from cogarch.assets import default_pack_path

    src = default_pack_path()
    assert src is not None, "the default pack must ship (cogarch/assets/default_pack)"
    dst = tmp_path_factory.mktemp("master") / "pack"
    shutil.copytree(src, dst)
    return dst


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


@pytest.fixture(scope="session")
def physqa_suite(cli, tmp_path_factory) -> Path:
    """A 4-clip physics-world suite, generated by the CLI itself (for `cogarch eval` cases)."""
    d = tmp_path_factory.mktemp("suite") / "physqa"
    res = cli.run(["generate", "--suite", "physqa", "--n", "4", "--out", str(d), "--workers", "1"], cwd=d.parent)
    assert res.rc == 0, res.stderr[-2000:]
    return d


@pytest.fixture(scope="session")
def cli(tmp_path_factory):
    runner = CliRunner(tmp_path_factory.mktemp("cli"))
    yield runner
    runner.close()
