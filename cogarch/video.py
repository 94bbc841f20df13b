"""Video in and out: decode a clip to a small float tensor, probe it, hash it, write mp4/gif.

Public API:
    read_clip(path, num_frames=16, fps=None, size=64, start_s=0.0, *, folder_fps=30.0,
              stats=None) -> torch.Tensor                  # [T, 3, H, W] float32 in [0, 1]
    normalize(frames, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor
    probe(path, *, folder_fps=30.0) -> VideoInfo
    clip_hash(path) -> str                                   # sha256 hex, streamed
    write_mp4(path, frames, fps, *, crf=18, preset="medium") -> None;  write_gif(path, frames, fps)
        (both defined in cogarch/video_write.py, re-exported here)

Inputs: whatever FFmpeg demuxes via PyAV (mp4, webm, avi, mkv, gif, ...); a folder of frames
(png/jpg/jpeg/bmp/webp, natural name order so frame2 < frame10, hidden files skipped, timed at
`folder_fps`); or one image, accepted as a 1-frame clip (a still is a degenerate video).

Sampling is by presentation time, so variable-frame-rate clips come out right: target time t
selects the frame on screen at t (the last frame with timestamp <= t).
  fps=None: targets at the centres of T equal segments of [start_s, end] (TSN segment sampling,
    Wang et al. 2016): on a constant-rate n-frame clip frame floor((i + 0.5) n / T); T == n
    returns every frame. fps=f: targets start_s + k/f; past the end the last frame repeats.
A clip shorter than T frames (e.g. one frame) repeats frames to reach T.

Memory is O(T) small frames at any length: decoding streams, keeps only frames on screen at a
target, scales each kept frame in swscale before it becomes an array (no full-size RGB 4K frame
exists), stops right after the last target, and seeks to the keyframe before a target more than
`_SEEK_MIN_GAP_S` ahead (a seek that overshoots redoes the pass sequentially; one that makes no
progress turns seeking off, so results never depend on seeking). Targets come from metadata
(stream/container duration, frames / rate), else from one demux-only packet scan.

Every user-side failure (missing, empty, truncated, unreadable, not a video, audio only) raises
`cogarch.errors.VideoError` with one line "<path>: <problem>"; no PyAV error escapes as such.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import av
import numpy as np
import torch

from cogarch.errors import VideoError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
DEFAULT_FOLDER_FPS = 30.0
_SEEK_MIN_GAP_S = 2.0  # seek only across gaps where skipping decode clearly pays (GOPs: 1-10 s)
_Interp = av.video.reformatter.Interpolation
# swscale's default 4:2:0 -> RGB path upsamples chroma crudely (measured 39.6 dB on a smooth
# yuv420p round trip, max error 12/255); full-resolution chroma + accurate rounding gives
# 50.3 dB (max error 4), a small cost paid on kept frames only.
_EXACT_CHROMA = _Interp.ACCURATE_RND | _Interp.FULL_CHR_H_INT | _Interp.FULL_CHR_H_INP
Size = int | tuple[int, int] | None


@dataclass(frozen=True)
class VideoInfo:
    """Metadata from `probe` (no decoding). frames is exact when `frames_exact`, else estimated
    as round(duration_s * fps); fps is the average rate (0.0 when the file gives none); width x
    height is the coded size (read_clip applies a display rotation, probe does not decode)."""

    frames: int
    fps: float
    duration_s: float
    width: int
    height: int
    codec: str
    frames_exact: bool = True


def _err(path: Any, problem: str) -> VideoError:
    # One line, always: FFmpeg messages occasionally carry newlines.
    return VideoError(f"{os.fspath(path)}: {' '.join(str(problem).split())}")


def _msg(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def _os_err(path: Any, e: OSError, what: str) -> VideoError:
    if isinstance(e, FileNotFoundError):
        return _err(path, "no such file or directory")
    if isinstance(e, PermissionError):
        return _err(path, f"permission denied ({what})")
    return _err(path, f"{what} ({_msg(e)})")


def _check_path(path: Any) -> Path:
    """Stat and open-test `path`, turning OS-level problems into one-line VideoErrors."""
    p = Path(os.fspath(path))
    try:
        if p.is_dir():
            os.listdir(p)
            return p
        if p.stat().st_size == 0:
            raise _err(path, "empty file (0 bytes)")
        open(p, "rb").close()  # readable? (root aside, a chmod 000 file fails here)
    except OSError as e:
        raise _os_err(path, e, "cannot read") from None
    return p


def _natural_key(name: str) -> list:
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", name)]


def _image_sources(p: Path) -> list[Path] | None:
    """Frame files when `p` is a folder or a single image; None when PyAV should open it."""
    if not p.is_dir():
        return [p] if p.suffix.lower() in IMAGE_EXTS else None
    names = sorted((n for n in os.listdir(p) if n.lower().endswith(IMAGE_EXTS)
                    and not n.startswith(".")), key=_natural_key)
    if not names:
        raise _err(p, f"folder has no image frames ({'/'.join(IMAGE_EXTS)})")
    return [p / n for n in names]


def _load_image(f: Path, header_only: bool = False) -> Any:
    from PIL import Image  # local: only image inputs need PIL

    try:
        with Image.open(f) as im:
            if header_only:
                return im.width, im.height, (im.format or "image").lower()
            rgb = np.asarray(im.convert("RGB"))  # palette/gray/alpha -> RGB (alpha dropped)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise _err(f, f"not a readable image ({_msg(e)})") from None
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")


def _resize_plan(w: int, h: int, size: Size) -> tuple[int, int, int, int, int, int]:
    """(scaled_w, scaled_h, crop_top, crop_left, out_h, out_w): int s -> shorter side s, centre
    crop s x s; (H, W) -> aspect-keeping cover of H x W, centre crop; None -> native size."""
    if size is None:
        return w, h, 0, 0, h, w
    oh, ow = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    s = max(oh / h, ow / w)
    sw, sh = max(ow, round(w * s)), max(oh, round(h * s))
    return sw, sh, (sh - oh) // 2, (sw - ow) // 2, oh, ow


def _to_rgb(frame: av.VideoFrame, size: Size) -> np.ndarray:
    """Scale in swscale (before any full-size RGB array exists), apply the display rotation,
    centre crop -> [H, W, 3] uint8."""
    # Phone clips store a display matrix; FFmpeg gives its angle counterclockwise (rot90's sense).
    k = round((frame.rotation or 0) / 90) % 4
    w, h = (frame.height, frame.width) if k % 2 else (frame.width, frame.height)
    sw, sh, top, left, oh, ow = _resize_plan(w, h, size)
    # AREA averages when shrinking (no aliasing on 4K -> 64); BICUBIC when enlarging.
    interp = _Interp.AREA if sw * sh < w * h else _Interp.BICUBIC
    arr = frame.reformat(width=sh if k % 2 else sw, height=sw if k % 2 else sh, format="rgb24",
                         interpolation=interp | _EXACT_CHROMA).to_ndarray()
    arr = np.rot90(arr, k) if k else arr
    return np.ascontiguousarray(arr[top : top + oh, left : left + ow])


@dataclass
class _Timing:
    origin: float  # presentation time of the stream start, seconds
    duration: float | None
    rate: float | None
    frames: int | None  # from the container index, None when absent
    width: int = 0
    height: int = 0
    codec: str = ""


def _open(p: Path) -> tuple[Any, Any]:
    """Open a container and its first video stream, or raise a one-line VideoError."""
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except av.error.PermissionError:
        raise _err(p, "permission denied") from None
    except av.error.InvalidDataError:
        raise _err(p, "not a video file (unrecognised format or corrupt/truncated data)") from None
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise _err(p, f"cannot open as video ({_msg(e)})") from None
    # Cover art in an audio file is a 1-frame "video" stream flagged attached_pic: not a video.
    video = [s for s in container.streams.video
             if not s.disposition & av.stream.Disposition.attached_pic]
    if not video:
        kinds = sorted({"cover art" if s.type == "video" else s.type
                        for s in container.streams}) or ["no streams"]
        container.close()
        raise _err(p, f"not a video file (no video stream; found {', '.join(kinds)})")
    return container, video[0]


def _timing(p: Path, scan: bool) -> _Timing:
    """Stream timing from metadata. With `scan`, a demux-only packet pass (no decoding) fills a
    missing duration (or a frame count that no rate can estimate)."""
    container, s = _open(p)
    try:
        tb, cc = s.time_base, s.codec_context
        rate = s.average_rate or s.guessed_rate or s.base_rate
        tm = _Timing(float(s.start_time * tb) if s.start_time is not None and tb else 0.0, None,
                     float(rate) if rate else None, s.frames if s.frames and s.frames > 0 else None,
                     cc.width, cc.height, cc.name)
        if s.duration and tb:
            tm.duration = float(s.duration * tb)
        elif container.duration:
            tm.duration = container.duration / av.time_base
        elif tm.frames and tm.rate:
            tm.duration = tm.frames / tm.rate
        if not scan or (tm.duration is not None and (tm.frames or tm.rate)):
            return tm
        count, t0, t1 = 0, math.inf, -math.inf
        for pkt in container.demux(s):
            if pkt.size:
                count += 1
                if pkt.pts is not None and tb:
                    t0 = min(t0, float(pkt.pts * tb))
                    t1 = max(t1, float((pkt.pts + (pkt.duration or 0)) * tb))
    except (av.error.FFmpegError, OSError) as e:
        raise _err(p, f"corrupt or truncated video data ({_msg(e)})") from None
    finally:
        container.close()
    if count == 0:
        raise _err(p, "no video frames in the stream")
    tm.frames = tm.frames or count  # one packet per video frame
    if tm.duration is None:
        tm.duration = t1 - t0 if t1 > t0 else count / (tm.rate or DEFAULT_FOLDER_FPS)
    return tm


def probe(path: str | os.PathLike, *, folder_fps: float = DEFAULT_FOLDER_FPS) -> VideoInfo:
    """Metadata of a clip, frames folder or image without decoding it (see module docstring)."""
    p = _check_path(path)
    files = _image_sources(p)
    if files is not None:
        w, h, fmt = _load_image(files[0], header_only=True)
        return VideoInfo(len(files), float(folder_fps), len(files) / folder_fps, w, h, fmt)
    tm = _timing(p, scan=True)
    dur = float(tm.duration or 0.0)
    exact = tm.frames is not None
    frames = tm.frames if exact else max(1, round(dur * (tm.rate or 0.0)))
    fps = tm.rate or (frames / dur if dur else 0.0)
    return VideoInfo(int(frames), float(fps), dur, tm.width, tm.height, tm.codec, exact)


# ---------------------------------------------------------------------------------- sampling


def _targets(num: int, fps: float | None, start_s: float, duration: float | None) -> list[float]:
    """Target presentation times (s, relative to stream start), ascending."""
    if fps is not None:
        return [start_s + k / fps for k in range(num)]
    span = max(0.0, (duration or 0.0) - start_s)
    return [start_s + (i + 0.5) * span / num for i in range(num)]


class _SeekFailed(Exception):
    """A seek landed after its target; the caller redoes the pass sequentially."""


class _Picker:
    """Gives target k the last frame with time <= t_k + tol (tol: timestamp rounding), or the
    first frame if t_k precedes all; converts each kept frame once (size=None: first fixes H, W)."""

    def __init__(self, targets: Sequence[float], tol: float, size: Size):
        self.targets, self.tol, self.size = list(targets), tol, size
        self.out: list[np.ndarray] = []
        self.prev: Any = None  # last decoded frame; _src/_arr: last converted frame and its array
        self._src = self._arr = None

    @property
    def done(self) -> bool:
        return len(self.out) >= len(self.targets)

    def _keep(self, frame: Any) -> None:
        if frame is not self._src:
            size = self.size if self.size is not None or not self.out else self.out[0].shape[:2]
            self._src, self._arr = frame, _to_rgb(frame, size)
        self.out.append(self._arr)  # type: ignore[arg-type]

    def push(self, frame: Any, t: float) -> None:
        while not self.done and self.targets[len(self.out)] + self.tol < t:
            self._keep(self.prev if self.prev is not None else frame)
        self.prev = frame

    def finish(self) -> list[np.ndarray] | None:
        """Targets past the last frame get the last frame (padding); None if nothing decoded."""
        while self.prev is not None and not self.done:
            self._keep(self.prev)
        return self.out if self.done else None


def _decode_pass(p: Path, targets: list[float], tm: _Timing, size: Size, allow_seek: bool,
                 stats: dict) -> list[np.ndarray] | None:
    container, stream = _open(p)
    tb = stream.time_base
    period = 1.0 / tm.rate if tm.rate else 0.04
    goals = [tm.origin + t for t in targets]
    rq = stream.average_rate or stream.guessed_rate
    # Timestamps are exact when a frame lasts whole ticks (mp4 1/15360 or avi 1/30 at 30 fps);
    # else (mkv 1 ms ticks at 30 fps) pts and duration are rounded to ticks: allow one tick.
    exact = not tb or not rq or (1 / (rq * tb)).denominator == 1
    picker = _Picker(goals, 1e-6 if exact else min(float(tb) + 1e-6, 0.25 / float(rq)), size)
    pos, last_t, seeked_from, gen = tm.origin, None, None, None
    try:
        while not picker.done:
            goal = goals[len(picker.out)]
            if allow_seek and tb and goal - pos > _SEEK_MIN_GAP_S:
                if gen is not None:
                    gen.close()
                try:
                    container.seek(int(goal / tb), stream=stream, backward=True)
                except (av.error.FFmpegError, OSError, ValueError):
                    raise _SeekFailed from None
                gen, picker.prev, seeked_from = None, None, pos
                stats["seeks"] += 1
            if gen is None:
                gen = container.decode(stream)
            try:
                frame = next(gen, None)
            except (av.error.FFmpegError, OSError) as e:
                where = f" near t={last_t - tm.origin:.2f}s" if last_t is not None else ""
                raise _err(p, f"corrupt or truncated video data{where} ({_msg(e)})") from None
            if frame is None:
                break
            stats["decoded"] += 1
            t = float(frame.time) if frame.time is not None else (
                last_t + period if last_t is not None else tm.origin)
            if seeked_from is not None:
                if t > goal + picker.tol:
                    raise _SeekFailed  # landed after the target: that frame is unreachable
                if t <= seeked_from + picker.tol:
                    allow_seek = False  # keyframes too sparse for seeking to move us forward
                seeked_from = None
            picker.push(frame, t)
            pos = last_t = t
        return picker.finish()
    finally:
        if gen is not None:
            gen.close()
        container.close()


def _stack(frames: list[np.ndarray]) -> torch.Tensor:
    """list of [H, W, 3] uint8 -> [T, 3, H, W] float32 in [0, 1]."""
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def read_clip(path: str | os.PathLike, num_frames: int = 16, fps: float | None = None,
              size: Size = 64, start_s: float = 0.0, *, folder_fps: float = DEFAULT_FOLDER_FPS,
              stats: dict | None = None) -> torch.Tensor:
    """Decode `num_frames` frames of a clip -> float32 tensor [T, 3, H, W] in [0, 1].

    path: video file, folder of image frames, or single image (1-frame clip, repeated).
    fps: None samples uniformly over [start_s, end]; a rate samples start_s + k/fps, padding with
    the last frame past the end. size: int -> shorter side resized then centre-cropped to size x
    size; (H, W) -> cover-resize then centre crop; None -> native size.
    folder_fps: frame rate given to frames folders and images. stats: a dict that receives
    {"decoded": frames out of the decoder (all passes), "seeks": n, "sequential_fallback": bool}.
    Raises VideoError (one line naming the file) for every unreadable input or bad argument.
    """
    sizes = [] if size is None else [size] if isinstance(size, int) else list(size)
    if (not isinstance(num_frames, (int, np.integer)) or num_frames < 1
            or (fps is not None and not 0 < fps < math.inf) or not 0 <= start_s < math.inf
            or (size is not None and (len(sizes) not in (1, 2) or min(sizes) < 1))):
        raise _err(path, "bad arguments: need num_frames >= 1, fps > 0 or None, start_s >= 0, "
                   f"size > 0 or (H, W) or None (got num_frames={num_frames!r}, fps={fps!r}, "
                   f"size={size!r}, start_s={start_s!r})")
    st = stats if stats is not None else {}
    st.update(decoded=0, seeks=0, sequential_fallback=False)
    p = _check_path(path)
    files = _image_sources(p)
    tm = _Timing(0.0, len(files) / folder_fps, folder_fps, len(files)) if files else \
        _timing(p, scan=fps is None)
    if start_s > 0 and tm.duration is not None and start_s >= tm.duration:
        raise _err(p, f"start_s={start_s:.2f}s is past the end of the clip ({tm.duration:.2f}s)")
    targets = _targets(num_frames, fps, start_s, tm.duration)
    if files:
        # Random access is free: load only the file on screen at each target (same rule).
        idx = [min(len(files) - 1, math.floor(t * folder_fps + 1e-6)) for t in targets]
        cache: dict[int, np.ndarray] = {}
        for i in idx:
            if i not in cache:  # size=None: the first frame fixes the shape
                hw = size if size is not None or not cache else next(iter(cache.values())).shape[:2]
                cache[i], st["decoded"] = _to_rgb(_load_image(files[i]), hw), st["decoded"] + 1
        return _stack([cache[i] for i in idx])
    try:
        frames = _decode_pass(p, targets, tm, size, True, st)
    except _SeekFailed:
        st["sequential_fallback"] = True
        frames = _decode_pass(p, targets, tm, size, False, st)
    if frames is None:
        raise _err(p, "no decodable video frames")
    return _stack(frames)


def normalize(frames: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """(frames - mean) / std per channel; frames [..., 3, H, W] in [0, 1] (ImageNet defaults)."""
    if frames.dim() < 3 or frames.shape[-3] != len(mean) or len(mean) != len(std):
        raise ValueError(f"normalize expects [..., {len(mean)}, H, W], got {tuple(frames.shape)}")
    m = torch.as_tensor(mean, dtype=frames.dtype, device=frames.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=frames.dtype, device=frames.device).view(-1, 1, 1)
    return (frames - m) / s


def clip_hash(path: str | os.PathLike) -> str:
    """sha256 hex of the clip's bytes, streamed in 1 MiB chunks (clip identity for memory); for a
    frames folder over (name, size, bytes) of each frame in order. Content is not validated."""
    p = _check_path(path)
    h = hashlib.sha256()
    for f in _image_sources(p) if p.is_dir() else [p]:  # type: ignore[union-attr]
        try:
            if p.is_dir():
                h.update(f"{f.name}\0{f.stat().st_size}\0".encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError as e:
            raise _os_err(f, e, "cannot read") from None
    return h.hexdigest()


# The writers live in cogarch/video_write.py (imported last: it imports helpers from this module).
from cogarch.video_write import write_gif, write_mp4  # noqa: E402,F401
