"""`cogarch serve`: a web page and a JSON API over ONE loaded pack.

    from cogarch.serve import create_app, serve, ServeLimits
    app = create_app(pack=None, limits=ServeLimits())   # a FastAPI app (uvicorn, TestClient, ...)
    serve(pack=None, host="127.0.0.1", port=8000)        # what `cogarch serve` runs

Routes: `GET /` (the page, cogarch/assets/serve/index.html: inline JS/CSS, no CDN), `GET /healthz`,
`GET /v1/info`, `POST /v1/clips` (upload or pick an example once -> `clip_id`), `POST /v1/ask`
(multipart: a `clip` file, or a `clip_id`, or an `example` name, plus one or more `question`
fields -> `answers`), `GET /v1/clips/{clip_id}/frames.png`, `GET /openapi.json`. Swagger UI and
ReDoc are switched off: FastAPI serves them from a CDN, and nothing may be fetched at run time.

Answers come from exactly the `cogarch ask` path (`Cogarch.observe` then `Cogarch.ask`, with
`explain=True` for the evidence): the language model answers; nothing here fills a template.

Safety, and why each piece is there:
- The request body is counted as it streams in; past `max_upload_bytes` the request ends with 413
  (a Content-Length over the cap is refused before a byte is read; chunked bodies are caught by
  the count). Multipart parts spool to anonymous temp files, our copy goes to a fresh
  `tempfile.TemporaryDirectory` and is deleted in `finally` whatever happens.
- No text from a request reaches the filesystem: the uploaded file is saved as `upload<ext>` with
  `<ext>` chosen from a fixed set, a `clip_id` is a sha256 hex digest used only as a dict key,
  and an `example` name is looked up in a dict built at start-up from the bundled clips.
- Clip duration is probed (no decode) before the model sees it: too long or not a video -> 422
  with the one-line VideoError message (the temp path replaced by the client's file name).
- ONE worker thread owns the model, so concurrent requests queue in arrival order (torch modules
  and the bus are not meant to be driven from two threads, and on a small CPU two forward passes
  at once are no faster than one after the other); past `max_pending` waiting jobs -> 503.
  Batching across requests was not done: answers are generated token by token with a per-clip
  soft prefix, and on the 2-core target serial execution already saturates the cores.
- Bound to 127.0.0.1 by default, and then only loopback Host headers are served: a web page
  elsewhere cannot reach the local server through DNS rebinding.
- Decoded clips (the bus after perception / world model / memory / cost) sit in a bounded LRU
  keyed by content hash, so several questions about one clip never re-upload or re-encode.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import io
import math
import os
import re
import socket
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cogarch.errors import UserError

UPLOAD_EXTS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif")
FORM_SLACK_BYTES = 64 * 1024  # multipart headers + question fields on top of the clip itself
MAX_PIXELS = 7680 * 4320  # 8K: past this a single decoded frame alone is a memory hazard
LOOPBACK = ("127.0.0.1", "localhost", "::1")
CLIP_ID = re.compile(r"^[0-9a-f]{64}$")
PAGE = Path(__file__).resolve().parent / "assets" / "serve" / "index.html"
# The page may only talk to this server: the browser itself then refuses any outside fetch.
PAGE_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; "
            "script-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'self'")


@dataclass
class ServeLimits:
    """What one request may cost the server."""

    max_upload_bytes: int = 32 * 1024 * 1024
    max_duration_s: float = 120.0
    max_questions: int = 8  # per request
    cache_clips: int = 32  # encoded clips kept for follow-up questions (LRU)
    max_pending: int = 32  # model jobs queued at once; more -> 503

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1 or not 0 < self.max_duration_s < math.inf:
            raise UserError("serve limits: max upload size and max duration must be > 0")
        if min(self.max_questions, self.cache_clips, self.max_pending) < 1:
            raise UserError("serve limits: max_questions, cache_clips and max_pending must be >= 1")


class _TooLarge(Exception):
    pass


class Busy(Exception):
    pass


class NotFound(Exception):
    """An unknown clip_id or example name (404)."""


@dataclass
class Clip:
    """One encoded clip in the cache."""

    clip_id: str  # sha256 of the bytes
    name: str  # display only (the client's file name, sanitised) -- never a path
    source: str  # "upload" | "example"
    obs: Any  # cogarch.api.Observation
    frames_png: bytes
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"clip_id": self.clip_id, "name": self.name, "source": self.source, **self.info,
                "frames_url": f"/v1/clips/{self.clip_id}/frames.png"}


class ClipCache:
    """A bounded LRU of encoded clips, keyed by content hash (thread-safe)."""

    def __init__(self, size: int) -> None:
        self.size, self._d, self._lock = size, collections.OrderedDict(), threading.Lock()

    def get(self, clip_id: str) -> Clip | None:
        with self._lock:
            c = self._d.get(clip_id)
            if c is not None:
                self._d.move_to_end(clip_id)
            return c

    def put(self, clip: Clip) -> None:
        with self._lock:
            self._d[clip.clip_id] = clip
            self._d.move_to_end(clip.clip_id)
            while len(self._d) > self.size:
                self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)


class ModelWorker:
    """One thread owns the model; `run` queues a job on it (FIFO) and awaits the result."""

    def __init__(self, max_pending: int) -> None:
        self.max_pending, self.pending = max_pending, 0  # `pending` is touched on the event loop only
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cogarch-model")

    async def run(self, fn, *args):
        if self.pending >= self.max_pending:
            raise Busy()
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        finally:
            self.pending -= 1


def display_name(filename: str | None) -> str:
    """The client's file name for messages: last path component, printable, <= 80 chars."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = "".join(c for c in base if c.isprintable()).strip()[:80]
    return base or "upload"


def _suffix(filename: str | None) -> str:
    ext = os.path.splitext(display_name(filename))[1].lower()
    return ext if ext in UPLOAD_EXTS else ".bin"  # FFmpeg probes content; the suffix is a hint


def _finite(x: Any) -> Any:
    """JSON has no NaN/inf: map them to null, recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def frames_strip_png(frames) -> bytes:
    """frames [T, 3, H, W] in [0, 1] -> one PNG, the T frames side by side."""
    from PIL import Image

    T, _, H, W = frames.shape
    strip = frames.clamp(0, 1).mul(255).round().byte().permute(2, 0, 3, 1).reshape(H, T * W, 3)
    buf = io.BytesIO()
    Image.fromarray(strip.numpy()).save(buf, format="PNG")
    return buf.getvalue()


class Service:
    """The model, the clip cache and the worker thread; the routes in create_app call into it."""

    def __init__(self, model, limits: ServeLimits, tmp_root: str | None = None) -> None:
        from cogarch.assets import example_clips

        self.model, self.limits, self.tmp_root = model, limits, tmp_root
        self.cache = ClipCache(limits.cache_clips)
        self.worker = ModelWorker(limits.max_pending)
        self.examples = {p.name: p for p in example_clips()}
        self._example_ids: dict[str, str] = {}
        self.model_name = Path(model.path).name

    # -- runs on the model thread ---------------------------------------------------------------
    def _encode(self, path: Path, clip_id: str, name: str, source: str) -> Clip:
        from cogarch.errors import VideoError
        from cogarch.video import probe

        try:
            info = probe(path)
            if info.width * info.height > MAX_PIXELS:
                raise VideoError(f"{path}: frames are {info.width}x{info.height}; the limit is 7680x4320")
            if info.duration_s > self.limits.max_duration_s:
                raise VideoError(f"{path}: clip is {info.duration_s:.1f} s long; the limit is "
                                 f"{self.limits.max_duration_s:g} s")
            obs = self.model.observe(path)
        except VideoError as e:  # the message names our temp path: name the client's file instead
            raise VideoError(str(e).replace(str(path), name)) from None
        obs.clip, obs.clip_hash = name, clip_id
        meta = {"frames": int(obs.frames.shape[0]), "duration_s": round(info.duration_s, 3),
                "fps": round(info.fps, 3), "width": info.width, "height": info.height,
                "encode_ms": {k: round(v, 1) for k, v in obs.timings_ms.items()}}
        return Clip(clip_id, name, source, obs, frames_strip_png(obs.frames), meta)

    def _answer(self, clip: Clip, questions: list[str]) -> list[dict[str, Any]]:
        out = []
        for q in questions:
            a = self.model.ask(clip.obs, q, explain=True)
            d = a.to_json()
            d["timings_ms"] = {k: round(v, 1) for k, v in d["timings_ms"].items()}
            out.append(_finite(d))
        return out

    # -- runs on the event loop -----------------------------------------------------------------
    async def clip_from_upload(self, upload) -> Clip:
        name = display_name(upload.filename)
        with tempfile.TemporaryDirectory(prefix="cogarch-serve-", dir=self.tmp_root) as tmp:
            dest = Path(tmp) / f"upload{_suffix(upload.filename)}"
            h, n = hashlib.sha256(), 0
            with open(dest, "wb") as f:
                while chunk := await upload.read(1 << 20):
                    n += len(chunk)
                    if n > self.limits.max_upload_bytes:
                        raise _TooLarge()
                    h.update(chunk)
                    f.write(chunk)
            if n == 0:
                raise UserError(f"{name}: empty file (0 bytes)")
            clip_id = h.hexdigest()
            hit = self.cache.get(clip_id)
            if hit is not None:  # same bytes, maybe another name: never echo someone else's file name
                return dataclasses.replace(hit, name=name, source="upload")
            clip = await self.worker.run(self._encode, dest, clip_id, name, "upload")
        self.cache.put(clip)
        return clip

    async def clip_from_example(self, name: str) -> Clip:
        path = self.examples.get(name)
        if path is None:
            raise NotFound(f"no bundled example named {name[:80]!r}; see /v1/info for the list")
        from cogarch.video import clip_hash

        clip_id = self._example_ids.get(name) or self._example_ids.setdefault(name, clip_hash(path))
        hit = self.cache.get(clip_id)
        if hit is not None:
            return hit
        clip = await self.worker.run(self._encode, path, clip_id, name, "example")
        self.cache.put(clip)
        return clip

    def clip_by_id(self, clip_id: str) -> Clip:
        clip = self.cache.get(clip_id) if CLIP_ID.match(clip_id) else None
        if clip is None:
            raise NotFound(f"unknown clip_id (the server keeps the last {self.limits.cache_clips} "
                              "clips; upload it again)")
        return clip

    async def answer(self, clip: Clip, questions: list[str]) -> list[dict[str, Any]]:
        return await self.worker.run(self._answer, clip, questions)

    def info(self) -> dict[str, Any]:
        from cogarch import __version__

        m = self.model
        return {"version": __version__, "model": self.model_name, "modules": list(m.arch.order),
                "created": m.meta.get("created"), "num_frames": m.num_frames, "img_size": m.img_size,
                "examples": sorted(self.examples), "limits": asdict(self.limits),
                "cached_clips": len(self.cache)}


def create_app(pack: str | os.PathLike | None = None, limits: ServeLimits | None = None, *,
               model=None, tmp_root: str | None = None, allowed_hosts: tuple[str, ...] | None = LOOPBACK):
    """The FastAPI app. `model`: an already loaded `cogarch.api.Cogarch` (else `load(pack)`);
    `tmp_root`: where upload temp folders are made (default: the system temp folder);
    `allowed_hosts`: Host header names served (None: any) -- loopback names by default, so a web
    page elsewhere cannot reach a local server through DNS rebinding."""
    from cogarch.api import load

    _need_serve_deps()
    from cogarch.serve_api import build_app

    service = Service(model if model is not None else load(pack), limits or ServeLimits(), tmp_root)
    return build_app(service, allowed_hosts)


def _need_serve_deps() -> None:
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"cogarch serve needs {', '.join(missing)}: pip install 'cogarch[serve]'")


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind + listen before the pack loads, so a busy port is one line and exit 2, not a traceback."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be 0..65535, got {port}")
    try:
        family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise UserError(f"cannot resolve --host {host!r} ({e.strerror})") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # reuse TIME_WAIT, never a live listener
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def serve(pack: str | os.PathLike | None = None, host: str = "127.0.0.1", port: int = 8000,
          limits: ServeLimits | None = None, log_level: str = "info") -> int:
    """Bind, load the pack once, serve until Ctrl-C. Returns 0."""
    _need_serve_deps()
    import uvicorn

    sock = bind_socket(host, port)
    try:
        loopback = host in LOOPBACK
        app = create_app(pack, limits, allowed_hosts=LOOPBACK if loopback else None)
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        print(f"cogarch serve: model {app.state.service.info()['model']} at http://{shown}:{bound}/ "
              f"(API: /v1/ask, schema: /openapi.json; Ctrl-C stops)", flush=True)
        if not loopback:
            print(f"cogarch serve: warning: listening on {host}: anyone who can reach this machine can "
                  "use the model (there is no authentication)", flush=True)
        uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False)).run(sockets=[sock])
    finally:
        sock.close()
    return 0
