"""Tests for cogarch.video: frame selection by value, resize/crop, formats, early stop, errors.

Every fixture is generated in tmp_path with PyAV/Pillow; frame i carries its index in its pixel
values, so a test checks *which* frames were sampled, not only how many.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from cogarch import video as V
from cogarch.errors import VideoError

STEP = 8  # brightness step per frame index (index <= 31)


def _gray(i: int, h: int = 16, w: int = 16) -> np.ndarray:
    return np.full((h, w, 3), i * STEP, np.uint8)


def _encode(path, frames, fps=30, codec="libx264", pix="yuv420p", opts=None, pts_ms=None):
    """Write uint8 [H, W, 3] frames with PyAV; pts_ms gives variable-rate timestamps (ms)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps, options=opts or {})
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
    return Path(path)


def _indices(x: torch.Tensor) -> list[int]:
    """Frame index back from brightness: [T, 3, H, W] in [0, 1] -> T ints."""
    return [round(v * 255 / STEP) for v in x.mean(dim=(1, 2, 3)).tolist()]


def _bits(i: int) -> np.ndarray:
    """16x16 frame showing the 12-bit index i as a 4x4 grid of black/white 4-px blocks."""
    g = np.array([(i >> b) & 1 for b in range(16)], np.uint8).reshape(4, 4) * 255
    return np.repeat(np.repeat(g, 4, 0), 4, 1)[:, :, None].repeat(3, 2)


def _unbits(x: torch.Tensor) -> list[int]:
    blocks = x.mean(1).reshape(x.shape[0], 4, 4, 4, 4).mean(dim=(2, 4)) > 0.5  # [T, 4, 4]
    w = torch.tensor([1 << b for b in range(16)]).reshape(4, 4)
    return (blocks.long() * w).sum(dim=(1, 2)).tolist()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0**2 / max(mse, 1e-12))


@pytest.fixture
def mp4_30(tmp_path):
    return _encode(tmp_path / "clip.mp4", [_gray(i) for i in range(30)], fps=30, opts={"crf": "10"})


@pytest.fixture(scope="module")
def long_mp4(tmp_path_factory):
    # 3000 frames = 100 s at 30 fps, keyframe every 30 frames.
    p = tmp_path_factory.mktemp("long") / "long.mp4"
    return _encode(p, [_bits(i) for i in range(3000)], fps=30,
                   opts={"crf": "10", "g": "30", "preset": "ultrafast"})


# ------------------------------------------------------------------------------ selection


def test_uniform_picks_segment_centres(mp4_30):
    x = V.read_clip(mp4_30, num_frames=10, size=None)
    assert x.shape == (10, 3, 16, 16) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert _indices(x) == [math.floor((i + 0.5) * 3) for i in range(10)]
    # T == n returns every frame, in order.
    assert _indices(V.read_clip(mp4_30, num_frames=30, size=None)) == list(range(30))


def test_fps_sampling_vs_uniform_and_padding(mp4_30):
    # Targets land exactly on frame timestamps: the tolerance must pick that frame, not the one before.
    assert _indices(V.read_clip(mp4_30, 5, fps=10, size=None, start_s=0.2)) == [6, 9, 12, 15, 18]
    # Past the end of the 1 s clip the last frame repeats.
    got = _indices(V.read_clip(mp4_30, 8, fps=10, size=None, start_s=0.5))
    assert got == [15, 18, 21, 24, 27, 29, 29, 29]
    # uniform with start_s covers [start_s, end] only
    assert _indices(V.read_clip(mp4_30, 3, size=None, start_s=0.5)) == [17, 22, 27]
    with pytest.raises(VideoError, match="clip.mp4: start_s=2.00s is past the end"):
        V.read_clip(mp4_30, 3, fps=10, start_s=2.0)


@pytest.mark.parametrize("ext,codec,pix", [
    ("mp4", "libx264", "yuv420p"), ("webm", "libvpx", "yuv420p"), ("avi", "mpeg4", "yuv420p"),
    ("mkv", "ffv1", "yuv444p"), ("gif", "gif", "gray"),
])
def test_container_formats(tmp_path, ext, codec, pix):
    opts = {"qscale": "2"} if codec == "mpeg4" else {"crf": "4", "b": "0"} if codec == "libvpx" else {}
    p = _encode(tmp_path / f"c.{ext}", [_gray(i) for i in range(20)], fps=10, codec=codec, pix=pix,
                opts=opts)
    assert _indices(V.read_clip(p, 5, size=None)) == [2, 6, 10, 14, 18]
    assert _indices(V.read_clip(p, 5, fps=5, size=None)) == [0, 2, 4, 6, 8]
    # targets 3/4 of a frame in: a coarse time base (avi 1/10 s) must not round them up
    assert _indices(V.read_clip(p, 8, size=None)) == [1, 3, 6, 8, 11, 13, 16, 18]
    info = V.probe(p)
    assert (info.frames, info.width, info.height) == (20, 16, 16)
    assert info.fps == pytest.approx(10.0) and info.duration_s == pytest.approx(2.0, abs=0.05)


def test_no_duration_metadata_and_nonzero_start_time(tmp_path):
    # Raw H.264 has no duration or frame count: one packet scan measures them (FFmpeg assumes
    # 25 fps for raw streams). MPEG-TS starts its clock at 0.2 s: targets are relative to it.
    raw = _encode(tmp_path / "raw.h264", [_gray(i) for i in range(20)], fps=10)
    assert V.probe(raw) == V.VideoInfo(20, 25.0, 0.8, 16, 16, "h264", True)
    assert _indices(V.read_clip(raw, 5, size=None)) == [2, 6, 10, 14, 18]
    ts = _encode(tmp_path / "c.ts", [_gray(i) for i in range(20)], fps=10)
    assert _indices(V.read_clip(ts, 5, fps=5, size=None)) == [0, 2, 4, 6, 8]
    assert _indices(V.read_clip(ts, 5, size=None)) == [2, 6, 10, 14, 18]


def test_variable_frame_rate_uses_presentation_time(tmp_path):
    pts = [0, 100, 150, 400, 900]  # ms
    p = _encode(tmp_path / "vfr.mkv", [_gray(i) for i in range(5)], fps=10, codec="ffv1",
                pix="yuv444p", pts_ms=pts)
    got = _indices(V.read_clip(p, 10, fps=10, size=None))
    assert got == [0, 1, 2, 2, 3, 3, 3, 3, 3, 4]


def test_frames_folder_natural_order_and_folder_fps(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(12):  # unpadded names: lexicographic order would put frame_10 before frame_2
        ext = "jpg" if i == 5 else "png"
        Image.fromarray(_gray(i)[:, :, 0], mode="L").save(d / f"frame_{i}.{ext}", quality=100)
    (d / "notes.txt").write_text("not a frame")
    (d / ".hidden.png").write_bytes(b"junk")
    st: dict = {}
    x = V.read_clip(d, 4, size=None, stats=st)
    assert _indices(x) == [1, 4, 7, 10] and st["decoded"] == 4  # only the selected files
    assert torch.equal(x[:, 0], x[:, 2])  # grayscale -> identical channels
    assert _indices(V.read_clip(d, 3, fps=10, size=None, folder_fps=20)) == [0, 2, 4]
    info = V.probe(d, folder_fps=20)
    assert (info.frames, info.fps, info.duration_s, info.width, info.codec) == (12, 20.0, 0.6, 16, "png")


def test_single_image_and_one_frame_video_repeat(tmp_path):
    img = tmp_path / "photo.png"
    Image.fromarray(_gray(7, 9, 13)).save(img)
    x = V.read_clip(img, 6, size=None)
    assert x.shape == (6, 3, 9, 13) and _indices(x) == [7] * 6
    assert V.probe(img).frames == 1
    one = _encode(tmp_path / "one.mp4", [_gray(9)], fps=25, opts={"crf": "10"})
    assert _indices(V.read_clip(one, 4, size=None)) == [9] * 4
    assert _indices(V.read_clip(one, 3, fps=10, size=None)) == [9] * 3


def test_resize_shorter_side_and_center_crop(tmp_path):
    # 24 x 40 frame: red bands on the outer 8 columns each side, green centre.
    a = np.zeros((24, 40, 3), np.uint8)
    a[:, :8, 0] = a[:, 32:, 0] = 255
    a[:, 8:32, 1] = 255
    p = _encode(tmp_path / "wide.mkv", [a] * 3, codec="ffv1", pix="bgr0")
    x = V.read_clip(p, 2, size=16)
    assert x.shape == (2, 3, 16, 16)
    # shorter side 24 -> 16 scales width to 27; the 16-wide centre crop keeps only green.
    assert x[:, 1, :, 2:14].min() > 0.95 and x[:, 0, :, 2:14].max() < 0.05
    y = V.read_clip(p, 2, size=(8, 40))  # cover 8 x 40 -> scale 1.0, crop rows
    assert y.shape == (2, 3, 8, 40)
    assert y[0, 0, :, 0].min() > 0.95 and y[0, 1, :, 20].min() > 0.95
    native = V.read_clip(p, 1, size=None)
    assert native.shape == (1, 3, 24, 40) and torch.allclose(native[0].permute(1, 2, 0) * 255,
                                                             torch.from_numpy(a).float(), atol=1)


def test_odd_dimensions_grayscale_stream(tmp_path):
    p = _encode(tmp_path / "odd.mkv", [_gray(i, 15, 17) for i in range(8)], codec="ffv1", pix="gray")
    x = V.read_clip(p, 4, size=None)
    assert x.shape == (4, 3, 15, 17)
    assert _indices(x) == [1, 3, 5, 7]
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    assert V.read_clip(p, 4, size=(5, 7)).shape == (4, 3, 5, 7)


@pytest.fixture(scope="module")
def uhd_mkv(tmp_path_factory):
    a = np.zeros((2160, 3840, 3), np.uint8)
    a[:, 1920:] = 255  # right half white
    p = tmp_path_factory.mktemp("uhd") / "uhd.mkv"
    return _encode(p, [a] * 6, codec="mjpeg", pix="yuvj420p", opts={"q:v": "10"})


def test_display_rotation_is_applied(tmp_path):
    a = np.zeros((16, 32, 3), np.uint8)
    a[:, :8] = 255  # white band on the left of the stored frame
    p = tmp_path / "phone.mp4"
    V.write_mp4(p, np.stack([a] * 3), fps=10)
    # Patch the track header matrix to a 90-degree rotation, as phones write it (tkhd v0:
    # the 3x3 16.16 matrix starts 40 bytes after the box type).
    d = bytearray(p.read_bytes())
    i = d.find(b"tkhd") + 44
    d[i : i + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    p.write_bytes(bytes(d))
    x = V.read_clip(p, 2, size=None)
    assert x.shape == (2, 3, 32, 16)  # displayed portrait: rotated 90 degrees clockwise
    assert x[:, :, :7].min() > 0.9 and x[:, :, 9:].max() < 0.1  # the band is now on top
    assert V.read_clip(p, 2, size=(12, 6)).shape == (2, 3, 12, 6)


def test_4k_frames_are_downscaled(uhd_mkv):
    x = V.read_clip(uhd_mkv, 2, size=(16, 32))
    assert x.shape == (2, 3, 16, 32)
    assert x[:, :, :, :15].max() < 0.05 and x[:, :, :, 17:].min() > 0.95


def test_4k_peak_memory_is_bounded(uhd_mkv):
    # Fresh interpreter: peak RSS growth while reading 6 frames of 4K. Keeping full-size RGB
    # frames costs 6 x 24.9 MB (measured 226 MB with to_ndarray on every frame); swscale-first
    # downscaling measured 49 MB (decoder buffers).
    code = (
        "import resource, sys, torch; from cogarch import video as V\n"
        "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "x = V.read_clip(sys.argv[1], 6, size=64)\n"
        "assert x.shape == (6, 3, 64, 64)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - r0) / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(uhd_mkv)], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip()) < 100.0, out.stdout


# ------------------------------------------------------------------------------ long clips


def test_long_video_fps_sampling_stops_early(long_mp4):
    st: dict = {}
    x = V.read_clip(long_mp4, 16, fps=30, size=None, stats=st)
    assert _unbits(x) == list(range(16))
    assert st["decoded"] <= 20, st  # 3000 frames in the file; early stop after frame 16


def test_long_video_seeks_to_start(long_mp4):
    st: dict = {}
    x = V.read_clip(long_mp4, 8, fps=15, size=None, start_s=60.0, stats=st)
    assert _unbits(x) == [1800 + 2 * k for k in range(8)]
    assert st["seeks"] >= 1 and st["decoded"] <= 30 + 16, st  # at most one GOP before target


def test_long_video_uniform_matches_sequential(long_mp4, monkeypatch):
    want = [math.floor((i + 0.5) * 3000 / 16) for i in range(16)]
    st: dict = {}
    x = V.read_clip(long_mp4, 16, size=None, stats=st)
    assert _unbits(x) == want
    assert st["seeks"] >= 10 and st["decoded"] < 16 * 31, st
    monkeypatch.setattr(V, "_SEEK_MIN_GAP_S", float("inf"))  # plain sequential decode
    st2: dict = {}
    y = V.read_clip(long_mp4, 16, size=None, stats=st2)
    assert torch.equal(x, y) and st2["seeks"] == 0 and st2["decoded"] > 2900


def test_seek_failure_retries_sequentially(long_mp4, monkeypatch):
    # A seek that lands past its target raises _SeekFailed inside the pass; read_clip must redo
    # the pass without seeking and still return the right frames.
    real_pass = V._decode_pass

    def overshooting_pass(p, targets, tm, size, allow_seek, stats):
        if allow_seek:
            stats["decoded"] += 5
            raise V._SeekFailed
        return real_pass(p, targets, tm, size, allow_seek, stats)

    monkeypatch.setattr(V, "_decode_pass", overshooting_pass)
    st: dict = {}
    x = V.read_clip(long_mp4, 4, fps=1, size=None, start_s=10.0, stats=st)
    assert _unbits(x) == [300, 330, 360, 390] and st["sequential_fallback"] is True
    assert st["decoded"] > 5 + 390  # the sequential pass decoded from the start


def test_seek_without_progress_disables_seeking(tmp_path):
    # GIF has no index: a seek lands on the first frame, which must not loop or pick wrong frames.
    gif = _encode(tmp_path / "long.gif", [_gray(i % 32) for i in range(80)], fps=10, codec="gif",
                  pix="gray")
    st: dict = {}
    x = V.read_clip(gif, 3, size=None, stats=st)
    assert _indices(x) == [13 % 32, 40 % 32, 66 % 32], st
    # one seek (landing on frame 0 again), then seeking is off: 14 + 69 frames decoded
    assert st["seeks"] == 1 and st["decoded"] <= 80 + 14 and not st["sequential_fallback"], st


# ------------------------------------------------------------------------------ errors


def _assert_one_line(exc: pytest.ExceptionInfo, name: str, words: str) -> None:
    msg = str(exc.value)
    assert isinstance(exc.value, VideoError)
    assert "\n" not in msg and msg.startswith(str(name)) and words in msg, msg


def test_error_cases_one_line(tmp_path, mp4_30):
    cases: dict[Path, str] = {}
    cases[tmp_path / "missing.mp4"] = "no such file"
    empty_dir = tmp_path / "empty_dir"
    empty_dir.mkdir()
    (empty_dir / "readme.txt").write_text("x")
    cases[empty_dir] = "folder has no image frames"
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(b"")
    cases[zero] = "empty file"
    text = tmp_path / "text.mp4"
    text.write_text("this is not a video\n" * 50)
    cases[text] = "not a video file"
    trunc = tmp_path / "trunc.mp4"  # moov atom at the end: cut in half, the index is gone
    trunc.write_bytes(mp4_30.read_bytes()[: mp4_30.stat().st_size // 2])
    cases[trunc] = "not a video file"
    fast = tmp_path / "fast.mp4"  # faststart: index present, data cut -> decode error
    V.write_mp4(fast, np.random.default_rng(0).integers(0, 255, (20, 32, 32, 3), np.uint8), 10)
    (tmp_path / "fast_trunc.mp4").write_bytes(fast.read_bytes()[: fast.stat().st_size // 2])
    cases[tmp_path / "fast_trunc.mp4"] = "corrupt or truncated"
    for name in ["audio.m4a", "song_with_cover.m4a"]:
        with av.open(str(tmp_path / name), "w", format="mp4") as c:
            s = c.add_stream("aac", rate=16000)
            if "cover" in name:  # album art: a 1-frame mjpeg stream flagged attached_pic
                v = c.add_stream("mjpeg", rate=1)
                v.width, v.height, v.pix_fmt = 8, 8, "yuvj420p"
                v.disposition = av.stream.Disposition.attached_pic
                c.mux(v.encode(av.VideoFrame.from_ndarray(_gray(3, 8, 8), format="rgb24")))
                c.mux(v.encode(None))
            for i in range(8):
                fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                                layout="mono")
                fr.sample_rate, fr.pts = 16000, i * 1024
                c.mux(s.encode(fr))
            c.mux(s.encode(None))
    cases[tmp_path / "audio.m4a"] = "not a video file (no video stream; found audio)"
    cases[tmp_path / "song_with_cover.m4a"] = "no video stream; found audio, cover art"
    badpng = tmp_path / "bad.png"
    badpng.write_bytes(b"\x89PNG not really")
    cases[badpng] = "not a readable image"
    for path, words in cases.items():
        with pytest.raises(VideoError) as e:
            V.read_clip(path, 4)
        _assert_one_line(e, path, words)
        if path != badpng and path != tmp_path / "fast_trunc.mp4":  # probe reads no frames
            with pytest.raises(VideoError) as e:
                V.probe(path)
            _assert_one_line(e, path, words)
    for bad in [dict(num_frames=0), dict(fps=-1.0), dict(size=0), dict(start_s=-1.0)]:
        with pytest.raises(VideoError, match="clip.mp4: "):
            V.read_clip(mp4_30, **{"num_frames": 2, **bad})


def test_unreadable_file_permission(mp4_30):
    d = Path(tempfile.mkdtemp(prefix="cogarch-perm-"))  # /tmp: traversable by an unprivileged uid
    try:
        os.chmod(d, 0o755)
        f = d / "locked.mp4"
        shutil.copy(mp4_30, f)
        os.chmod(f, 0)
        if os.geteuid() == 0:  # root reads anything: drop the effective uid to `nobody` meanwhile
            try:
                os.seteuid(65534)
            except PermissionError:
                pytest.skip("root without CAP_SETUID: cannot make a file unreadable")
        try:
            with pytest.raises(VideoError) as e:
                V.read_clip(f, 2)
        finally:
            if os.getuid() == 0:
                os.seteuid(0)
        _assert_one_line(e, f, "permission denied")
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------------------ probe / hash / io


def test_probe_metadata(mp4_30, tmp_path):
    assert V.probe(mp4_30) == V.VideoInfo(30, 30.0, 1.0, 16, 16, "h264", True)
    webm = _encode(tmp_path / "w.webm", [_gray(i) for i in range(12)], fps=12, codec="libvpx")
    info = V.probe(webm)  # matroska has no frame count: estimated from duration x rate
    assert (info.frames, info.frames_exact, info.codec) == (12, False, "vp8")


def test_clip_hash(mp4_30, tmp_path):
    assert V.clip_hash(mp4_30) == hashlib.sha256(mp4_30.read_bytes()).hexdigest()
    other = tmp_path / "other.mp4"
    other.write_bytes(mp4_30.read_bytes()[:-1] + b"\x00")
    assert V.clip_hash(other) != V.clip_hash(mp4_30)
    d = tmp_path / "fr"
    d.mkdir()
    for i in range(3):
        Image.fromarray(_gray(i)).save(d / f"{i}.png")
    h1 = V.clip_hash(d)
    os.rename(d / "2.png", d / "3.png")  # same bytes, different frame names -> different clip
    assert h1 != V.clip_hash(d) and len(h1) == 64
    with pytest.raises(VideoError, match="nope.mp4: no such file"):
        V.clip_hash(tmp_path / "nope.mp4")


def test_normalize():
    x = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    y = V.normalize(x)
    m = torch.tensor(V.IMAGENET_MEAN).view(3, 1, 1)
    s = torch.tensor(V.IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(y * s + m, x, atol=1e-6)
    assert torch.allclose(V.normalize(x, (0.5,) * 3, (0.5,) * 3), x * 2 - 1)
    with pytest.raises(ValueError):
        V.normalize(torch.rand(2, 4, 4, 4))


def _smooth_clip(t: int, h: int, w: int) -> np.ndarray:
    """Natural-image-like content: colour gradients plus a soft bright blob moving right."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = []
    for i in range(t):
        blob = 150 * np.exp(-((xx - 4 - 2 * i) ** 2 + (yy - h / 2) ** 2) / (2 * (w / 8) ** 2))
        a = np.stack([xx * 200 / w + blob * 0.3, yy * 200 / h + blob * 0.3, 40 + 4 * i + blob], -1)
        frames.append(np.clip(a, 0, 255).astype(np.uint8))
    return np.stack(frames)


def test_write_mp4_round_trip_uint8(tmp_path):
    src = _smooth_clip(12, 32, 48)
    out = tmp_path / "sub" / "rt.mp4"
    V.write_mp4(out, src, fps=12)
    assert sorted(os.listdir(out.parent)) == ["rt.mp4"]  # no temp file left behind
    info = V.probe(out)
    assert (info.frames, info.width, info.height, info.codec) == (12, 48, 32, "h264")
    back = V.read_clip(out, 12, size=None)
    got = (back.permute(0, 2, 3, 1) * 255).round().byte().numpy()
    assert _psnr(got, src) > 38.0  # a wrong colour matrix or frame order falls far below


def test_write_mp4_float_tensor_odd_size_is_padded(tmp_path):
    src = _smooth_clip(6, 31, 45)
    ten = torch.from_numpy(src).permute(0, 3, 1, 2).float() / 255
    out = tmp_path / "odd.mp4"
    V.write_mp4(out, ten, fps=6)
    back = V.read_clip(out, 6, size=None)
    assert back.shape == (6, 3, 32, 46)
    assert _psnr((back[:, :, :31, :45].permute(0, 2, 3, 1) * 255).round().byte().numpy(), src) > 38


def test_write_failure_keeps_old_file(tmp_path):
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"old")
    with pytest.raises(ValueError):
        V.write_mp4(out, np.zeros((2, 8, 8), np.uint8), fps=10)
    assert out.read_bytes() == b"old" and os.listdir(tmp_path) == ["keep.mp4"]


def test_write_gif_round_trip(tmp_path):
    out = tmp_path / "anim.gif"
    V.write_gif(out, np.stack([_gray(i) for i in range(6)]), fps=10)
    assert _indices(V.read_clip(out, 6, size=None)) == list(range(6))
    assert _indices(V.read_clip(out, 3, fps=5, size=None)) == [0, 2, 4]


def test_written_clip_gets_the_umask_mode_not_mkstemps_0600(tmp_path):
    """A generated clip must be readable by whoever can read a normally written file."""
    import os

    from cogarch.fsutil import _umask

    out = tmp_path / "m.mp4"
    V.write_mp4(out, np.zeros((2, 16, 16, 3), np.uint8), 10)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~_umask()
