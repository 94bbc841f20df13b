"""Video in and out: decode a clip to a small float tensor, probe it, hash it, write mp4/gif.

Public API (everything the CLI and the modules need):

    read_clip(path, num_frames=16, fps=None, size=64, start_s=0.0, *,
              folder_fps=30.0, stats=None) -> torch.Tensor   # [T, 3, H, W] float32 in [0, 1]
    normalize(frames, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor
    probe(path, *, folder_fps=30.0) -> VideoInfo
    clip_hash(path) -> str                                    # sha256 hex, streamed
    write_mp4(path, frames, fps, *, crf=18, preset="medium") -> None
    write_gif(path, frames, fps) -> None

Inputs: anything FFmpeg demuxes through PyAV (mp4, webm, avi, mkv, gif, ...), a folder of image
frames (png/jpg/jpeg/bmp/webp, natural sort by name, so frame2 < frame10; hidden files skipped;
timed at `folder_fps`), or a single image, which is a 1-frame clip (decision: an image is a
valid degenerate video, so `cogarch ask photo.png ...` works instead of failing).

Sampling works on *presentation time*, which makes variable-frame-rate clips come out right:
a target time t selects the frame on screen at t (the last frame whose timestamp is <= t).
  * fps=None: T targets at the centres of T equal segments of [start_s, duration] (the TSN
    segment-sampling rule, Wang et al. 2016); on a constant-rate clip of n frames, this picks
    frame floor((i + 0.5) * n / T), and T == n returns every frame.
  * fps=f: targets start_s + k / f, k = 0..T-1; past the end the last frame repeats.
A clip with fewer frames than T (e.g. 1 frame) repeats frames to reach T.

Memory is O(T) small frames whatever the clip length: the decoder is streamed, a frame is kept
only if it is the one on screen at a target, each kept frame is scaled down by swscale
(`VideoFrame.reformat`) before it becomes a numpy array (a 4K frame never exists as RGB at full
size), decoding stops right after the last target, and when the next target is more than
`_SEEK_MIN_GAP_S` ahead the demuxer seeks to the keyframe before it. Seeking that overshoots or
does not move forward falls back to plain sequential decoding, so results never depend on it.
Targets come from container metadata (stream duration, container duration, frame count x rate);
when none exists, one packet scan (demux only, no decoding) measures the duration.

Every failure that is the user's (missing, empty, truncated, unreadable, not a video, audio
only) raises `cogarch.errors.VideoError` with one line "<path>: <problem>"; PyAV errors never
escape as such.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Sequence

import av
import numpy as np
import torch

from cogarch.errors import VideoError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
DEFAULT_FOLDER_FPS = 30.0
# Seek only across gaps where skipping decode clearly pays; typical GOPs are 1-10 s.
_SEEK_MIN_GAP_S = 2.0

Size = int | tuple[int, int] | None


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learns from metadata (no full decode).

    frames: frame count; exact from the container index when `frames_exact`, else estimated as
    round(duration_s * fps). fps: average rate (0.0 when the file gives none).
    """

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


def _av_msg(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def _natural_key(name: str) -> list:
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def _check_path(path: Any) -> Path:
    """Stat and open-test `path`, turning OS-level problems into one-line VideoErrors."""
    p = Path(os.fspath(path))
    try:
        st = p.stat()
    except FileNotFoundError:
        raise _err(path, "no such file or directory") from None
    except PermissionError:
        raise _err(path, "permission denied") from None
    except OSError as e:
        raise _err(path, f"cannot access ({e.strerror or e})") from None
    if p.is_dir():
        return p
    if st.st_size == 0:
        raise _err(path, "empty file (0 bytes)")
    try:
        with open(p, "rb"):
            pass
    except PermissionError:
        raise _err(path, "permission denied (cannot read)") from None
    except OSError as e:
        raise _err(path, f"cannot read ({e.strerror or e})") from None
    return p


def _folder_frames(p: Path) -> list[Path]:
    try:
        names = [n for n in os.listdir(p) if not n.startswith(".")]
    except PermissionError:
        raise _err(p, "permission denied (cannot list folder)") from None
    except OSError as e:
        raise _err(p, f"cannot list folder ({e.strerror or e})") from None
    files = sorted((n for n in names if n.lower().endswith(IMAGE_EXTS)), key=_natural_key)
    if not files:
        raise _err(p, f"folder has no image frames ({'/'.join(IMAGE_EXTS)})")
    return [p / n for n in files]


def _image_sources(p: Path) -> list[Path] | None:
    """Frame files when `p` is a folder or a single image, None when it should go to PyAV."""
    if p.is_dir():
        return _folder_frames(p)
    if p.suffix.lower() in IMAGE_EXTS:
        return [p]
    return None


def _load_image(f: Path) -> av.VideoFrame:
    from PIL import Image  # local: only image inputs need PIL

    try:
        with Image.open(f) as im:
            rgb = np.asarray(im.convert("RGB"))  # palette/gray/alpha -> RGB (alpha dropped)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise _err(f, f"not a readable image ({_av_msg(e)})") from None
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")


# ---------------------------------------------------------------------------------- resizing


def _resize_plan(w: int, h: int, size: Size) -> tuple[int, int, int, int, int, int]:
    """(scaled_w, scaled_h, crop_top, crop_left, out_h, out_w) for one source size.

    int s: shorter side -> s, then centre crop s x s. (H, W): scale to cover H x W keeping the
    aspect ratio, then centre crop. None: native size.
    """
    if size is None:
        return w, h, 0, 0, h, w
    oh, ow = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    s = max(oh / h, ow / w)
    sw, sh = max(ow, round(w * s)), max(oh, round(h * s))
    return sw, sh, (sh - oh) // 2, (sw - ow) // 2, oh, ow


_Interp = av.video.reformatter.Interpolation
# swscale's default 4:2:0 -> RGB path upsamples chroma crudely (measured 39.6 dB on a smooth
# yuv420p round trip, max error 12/255); full-resolution chroma interpolation plus accurate
# rounding gives 50.3 dB (max error 4) for a small cost paid only on kept frames.
_EXACT_CHROMA = _Interp.ACCURATE_RND | _Interp.FULL_CHR_H_INT | _Interp.FULL_CHR_H_INP


def _to_rgb(frame: av.VideoFrame, size: Size) -> np.ndarray:
    """Scale (swscale, before any full-size RGB array exists) and centre crop -> [H, W, 3] uint8."""
    sw, sh, top, left, oh, ow = _resize_plan(frame.width, frame.height, size)
    # AREA averages when shrinking (no aliasing on 4K -> 64); BICUBIC when enlarging.
    interp = _Interp.AREA if sw * sh < frame.width * frame.height else _Interp.BICUBIC
    arr = frame.reformat(width=sw, height=sh, format="rgb24",
                         interpolation=interp | _EXACT_CHROMA).to_ndarray()
    return np.ascontiguousarray(arr[top : top + oh, left : left + ow])


# ---------------------------------------------------------------------------------- probing


@dataclass
class _Timing:
    origin: float  # presentation time of the stream start, seconds
    duration: float | None
    rate: float | None
    frames: int | None


def _open(p: Path) -> tuple[Any, Any]:
    """Open a container and its first video stream, or raise a one-line VideoError."""
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except av.error.PermissionError:
        raise _err(p, "permission denied") from None
    except av.error.InvalidDataError:
        raise _err(p, "not a video file (unrecognised format or corrupt/truncated data)") from None
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise _err(p, f"cannot open as video ({_av_msg(e)})") from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        container.close()
        raise _err(p, f"not a video file (no video stream; found {', '.join(kinds)})")
    return container, container.streams.video[0]


def _timing(container: Any, stream: Any) -> _Timing:
    tb = stream.time_base
    origin = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    rate_f = float(rate) if rate else None
    frames = stream.frames if stream.frames and stream.frames > 0 else None
    duration = None
    if stream.duration and tb:
        duration = float(stream.duration * tb)
    elif container.duration:
        duration = container.duration / av.time_base
    elif frames and rate_f:
        duration = frames / rate_f
    return _Timing(origin, duration, rate_f, frames)


def _scan_packets(p: Path) -> tuple[int, float | None]:
    """Demux (no decode) the whole video stream: (packet count, duration s). Fallback only."""
    container, stream = _open(p)
    count, end, origin = 0, None, None
    tb = stream.time_base
    try:
        for pkt in container.demux(stream):
            if pkt.size == 0:
                continue
            count += 1
            if pkt.pts is not None and tb:
                t0 = float(pkt.pts * tb)
                origin = t0 if origin is None else min(origin, t0)
                t1 = t0 + float((pkt.duration or 0) * tb)
                end = t1 if end is None else max(end, t1)
    except (av.error.FFmpegError, OSError) as e:
        raise _err(p, f"corrupt or truncated video data ({_av_msg(e)})") from None
    finally:
        container.close()
    dur = (end - origin) if end is not None and origin is not None and end > origin else None
    return count, dur


def probe(path: str | os.PathLike, *, folder_fps: float = DEFAULT_FOLDER_FPS) -> VideoInfo:
    """Metadata of a clip, frames folder or image without decoding it (see module docstring)."""
    p = _check_path(path)
    files = _image_sources(p)
    if files is not None:
        from PIL import Image

        try:
            with Image.open(files[0]) as im:  # header only
                w, h, fmt = im.width, im.height, (im.format or "image").lower()
        except (OSError, ValueError) as e:
            raise _err(files[0], f"not a readable image ({_av_msg(e)})") from None
        n = len(files)
        return VideoInfo(n, float(folder_fps), n / folder_fps, w, h, fmt, True)
    container, stream = _open(p)
    try:
        tm = _timing(container, stream)
        w, h = stream.codec_context.width, stream.codec_context.height
        codec = stream.codec_context.name
    finally:
        container.close()
    frames, exact, dur = tm.frames, tm.frames is not None, tm.duration
    if frames is None and dur and tm.rate:
        frames = max(1, round(dur * tm.rate))
    if frames is None or dur is None:
        count, scanned = _scan_packets(p)
        if count == 0:
            raise _err(p, "no video frames in the stream")
        frames, exact = (count, True) if frames is None else (frames, exact)
        dur = dur if dur is not None else (scanned or count / (tm.rate or DEFAULT_FOLDER_FPS))
    fps = tm.rate or (frames / dur if dur else 0.0)
    return VideoInfo(int(frames), float(fps), float(dur), int(w), int(h), codec, exact)


# ---------------------------------------------------------------------------------- sampling


def _targets(num: int, fps: float | None, start_s: float, duration: float | None) -> list[float]:
    """Target presentation times (s, relative to stream start), ascending."""
    if fps is not None:
        return [start_s + k / fps for k in range(num)]
    span = max(0.0, (duration or 0.0) - start_s)
    return [start_s + (i + 0.5) * span / num for i in range(num)]


class _SeekFailed(Exception):
    """Seeking misbehaved on this file; the caller redoes the pass sequentially."""


class _Picker:
    """Assigns the frame on screen at each target time; converts each kept frame once.

    Target k gets the last frame with time <= t_k + tol (tol absorbs timestamp rounding to the
    stream time base), or the first frame when t_k precedes every frame.
    """

    def __init__(self, targets: Sequence[float], tol: float, size: Size):
        self.targets, self.tol, self.size = list(targets), tol, size
        self.out: list[np.ndarray | None] = [None] * len(self.targets)
        self.k, self.prev = 0, None
        self._conv_src, self._conv_arr = None, None
        self._hw: tuple[int, int] | None = None

    @property
    def done(self) -> bool:
        return self.k >= len(self.targets)

    def _convert(self, frame: av.VideoFrame) -> np.ndarray:
        if frame is not self._conv_src:
            # size=None still needs one output shape: the first kept frame fixes it.
            size = self.size if self.size is not None else self._hw
            self._conv_arr, self._conv_src = _to_rgb(frame, size), frame
            self._hw = self._hw or self._conv_arr.shape[:2]
        return self._conv_arr

    def push(self, frame: av.VideoFrame, t: float) -> None:
        while not self.done and self.targets[self.k] + self.tol < t:
            self.out[self.k] = self._convert(self.prev if self.prev is not None else frame)
            self.k += 1
        self.prev = frame

    def finish(self) -> list[np.ndarray] | None:
        """Targets past the last frame get the last frame (padding); None if nothing decoded."""
        if self.prev is None:
            return None
        while not self.done:
            self.out[self.k] = self._convert(self.prev)
            self.k += 1
        return self.out  # type: ignore[return-value]


def _decode_pass(
    p: Path, targets: list[float], tm: _Timing, size: Size, allow_seek: bool, stats: dict
) -> list[np.ndarray] | None:
    container, stream = _open(p)
    tb = stream.time_base
    period = 1.0 / tm.rate if tm.rate else 0.04
    tol = min(float(tb) + 1e-6 if tb else 1e-6, 0.25 * period)
    abs_targets = [tm.origin + t for t in targets]
    picker = _Picker(abs_targets, tol, size)
    pos, last_t, seeked_from = tm.origin, None, None
    gen: Iterator | None = None
    try:
        while not picker.done:
            goal = abs_targets[picker.k]
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
                raise _err(p, f"corrupt or truncated video data{where} ({_av_msg(e)})") from None
            if frame is None:
                break
            stats["decoded"] += 1
            t = float(frame.time) if frame.time is not None else (
                last_t + period if last_t is not None else tm.origin)
            if seeked_from is not None:
                if t > goal + picker.tol:
                    raise _SeekFailed  # landed after the target: cannot recover that frame
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


def _validate_args(p: Any, num_frames: int, fps: float | None, size: Size, start_s: float) -> None:
    if not isinstance(num_frames, int) or num_frames < 1:
        raise _err(p, f"num_frames must be an integer >= 1 (got {num_frames!r})")
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise _err(p, f"fps must be > 0 (got {fps!r})")
    if not (start_s >= 0 and math.isfinite(start_s)):
        raise _err(p, f"start_s must be >= 0 (got {start_s!r})")
    sizes = [] if size is None else [size] if isinstance(size, int) else list(size)
    if size is not None and (len(sizes) not in (1, 2) or any(int(s) < 1 for s in sizes)):
        raise _err(p, f"size must be a positive int or (H, W) (got {size!r})")


def _stack(frames: list[np.ndarray]) -> torch.Tensor:
    """list of [H, W, 3] uint8 -> [T, 3, H, W] float32 in [0, 1]."""
    arr = torch.from_numpy(np.stack(frames))  # [T, H, W, 3] uint8
    return arr.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def read_clip(
    path: str | os.PathLike,
    num_frames: int = 16,
    fps: float | None = None,
    size: Size = 64,
    start_s: float = 0.0,
    *,
    folder_fps: float = DEFAULT_FOLDER_FPS,
    stats: dict | None = None,
) -> torch.Tensor:
    """Decode `num_frames` frames of a clip -> float32 tensor [T, 3, H, W] in [0, 1].

    path: video file, folder of image frames, or single image (1-frame clip, repeated).
    fps: None samples uniformly over [start_s, end]; a rate samples start_s + k/fps, padding
    with the last frame past the end. size: int -> shorter side resized then centre-cropped to
    size x size; (H, W) -> cover-resize then centre crop; None -> native size.
    folder_fps: frame rate assigned to frames folders and images.
    stats: if a dict is given it receives {"decoded": frames out of the decoder, "seeks": n,
    "sequential_fallback": bool} so callers and tests can see the early stop.
    Raises VideoError (one line naming the file) for every unreadable input.
    """
    _validate_args(path, num_frames, fps, size, start_s)
    st = stats if stats is not None else {}
    st.update(decoded=0, seeks=0, sequential_fallback=False)
    p = _check_path(path)
    files = _image_sources(p)
    if files is not None:
        dur = len(files) / folder_fps
        if start_s > 0 and start_s >= dur:
            raise _err(p, f"start_s={start_s:.2f}s is past the end of the clip ({dur:.2f}s)")
        targets = _targets(num_frames, fps, start_s, dur)
        # Random access is free here: index of the frame on screen at t, same rule as video.
        idx = [min(len(files) - 1, int(math.floor(t * folder_fps + 1e-6))) for t in targets]
        cache: dict[int, np.ndarray] = {}
        hw: Size = size
        for i in idx:
            if i not in cache:
                cache[i] = _to_rgb(_load_image(files[i]), hw)
                hw = hw if hw is not None else cache[i].shape[:2]
                st["decoded"] += 1
        return _stack([cache[i] for i in idx])

    container, stream = _open(p)
    try:
        tm = _timing(container, stream)
    finally:
        container.close()
    if fps is None and tm.duration is None:
        count, tm.duration = _scan_packets(p)
        if count == 0:
            raise _err(p, "no video frames in the stream")
        if tm.duration is None:
            tm.duration = count / (tm.rate or DEFAULT_FOLDER_FPS)
    if start_s > 0 and tm.duration is not None and start_s >= tm.duration:
        raise _err(p, f"start_s={start_s:.2f}s is past the end of the clip ({tm.duration:.2f}s)")
    targets = _targets(num_frames, fps, start_s, tm.duration)
    try:
        frames = _decode_pass(p, targets, tm, size, True, st)
    except _SeekFailed:
        st["sequential_fallback"] = True  # "decoded" keeps counting: it is the total work
        frames = _decode_pass(p, targets, tm, size, False, st)
    if frames is None:
        raise _err(p, "no decodable video frames")
    return _stack(frames)


def normalize(
    frames: torch.Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """(frames - mean) / std per channel; frames [..., 3, H, W] in [0, 1] (ImageNet defaults)."""
    if frames.dim() < 3 or frames.shape[-3] != len(mean) or len(mean) != len(std):
        raise ValueError(f"normalize expects [..., {len(mean)}, H, W], got {tuple(frames.shape)}")
    m = torch.as_tensor(mean, dtype=frames.dtype, device=frames.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=frames.dtype, device=frames.device).view(-1, 1, 1)
    return (frames - m) / s


# ---------------------------------------------------------------------------------- identity


def clip_hash(path: str | os.PathLike) -> str:
    """sha256 hex of the clip's bytes, streamed in 1 MiB chunks (memory module clip identity).

    For a frames folder: sha256 over (name, size, bytes) of each frame in sampling order.
    """
    p = _check_path(path)
    h = hashlib.sha256()
    files = _folder_frames(p) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(f"{f.name}\0{f.stat().st_size}\0".encode())
        try:
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError as e:
            raise _err(f, f"cannot read ({e.strerror or e})") from None
    return h.hexdigest()


# ---------------------------------------------------------------------------------- writing


def _frames_uint8(frames: Any) -> np.ndarray:
    """uint8 [T,H,W,3] numpy or float [T,3,H,W] tensor in [0,1] (also uint8 / 1-channel) -> [T,H,W,3]."""
    if isinstance(frames, torch.Tensor):
        x = frames.detach().cpu()
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"frames tensor must be [T, 3, H, W], got {tuple(x.shape)}")
        if x.dtype != torch.uint8:
            x = (x.float().clamp(0, 1) * 255.0).round().to(torch.uint8)
        arr = x.permute(0, 2, 3, 1).numpy()
    else:
        arr = np.asarray(frames)
        if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
            raise ValueError(f"frames array must be [T, H, W, 3], got {arr.shape}")
        if arr.dtype != np.uint8:
            arr = (np.clip(arr.astype(np.float32), 0, 1) * 255.0).round().astype(np.uint8)
    if arr.shape[0] < 1:
        raise ValueError("frames must hold at least one frame")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr)


@contextlib.contextmanager
def _atomic_file(path: str | os.PathLike, suffix: str) -> Iterator[str]:
    """Yield a temp path beside `path`; it replaces `path` only if the block succeeds."""
    final = Path(os.fspath(path))
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.tmp-", suffix=suffix, dir=final.parent)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_mp4(
    path: str | os.PathLike, frames: Any, fps: float, *, crf: int = 18, preset: str = "medium"
) -> None:
    """Write H.264 (libx264, yuv420p, faststart) mp4 atomically (temp file + os.replace).

    frames: uint8 numpy [T, H, W, 3] or float tensor [T, 3, H, W] in [0, 1]. yuv420p needs even
    sizes, so an odd H or W is padded by one replicated edge row/column (output (H+1) or (W+1)).
    """
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be > 0, got {fps!r}")
    arr = _frames_uint8(frames)
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
                f.pts = i
                f.time_base = Fraction(1) / rate
                out.mux(s.encode(f))
            out.mux(s.encode(None))


def write_gif(path: str | os.PathLike, frames: Any, fps: float) -> None:
    """Write an animated, looping GIF atomically (Pillow, adaptive palette per frame).

    GIF stores delays in 1/100 s, so 1/fps is rounded to 10 ms; identical consecutive frames may
    be merged by Pillow into one longer frame (timing is preserved, the frame count is not).
    """
    from PIL import Image

    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be > 0, got {fps!r}")
    arr = _frames_uint8(frames)
    ims = [Image.fromarray(a) for a in arr]
    delay = max(10, int(round(100.0 / fps)) * 10)
    with _atomic_file(path, ".gif") as tmp:
        ims[0].save(tmp, format="GIF", save_all=True, append_images=ims[1:],
                    duration=delay, loop=0)
