"""`cogarch memory list|search|forget|rebuild --store DIR`: inspect and manage an episodic store.

The lead's CLI parses arguments and calls `run(...)`; errors are `cogarch.errors.UserError`
subclasses (one line, exit 2). What `search TARGET` searches by (decision):

1. `embed_fn` given (the perception encoder) and TARGET is a readable clip → embed the clip and
   search by that embedding: finds the clip *and* similar clips, even a re-encoded copy.
2. Otherwise TARGET is resolved to a *stored* embedding, never a made-up one:
   - an existing clip path → its content hash (sha256 of the bytes) → the newest episode of that
     clip → search by its stored embedding (a re-encoded copy has another hash: not found);
   - all digits → episode id (if no such episode and >= 8 digits: a clip-hash prefix);
   - >= 8 hex characters → a clip-hash prefix (must name one clip).
   Anything else, or a clip not in the store, is a UserError that says an encoder is needed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from cogarch.errors import UserError
from cogarch.modules.memory.config import MemoryConfig
from cogarch.modules.memory.episode import Episode
from cogarch.modules.memory.store import EpisodeStore

ACTIONS = ("list", "search", "forget", "rebuild")
LIST_SHOWN = 100  # plain `list` prints the newest 100 episodes; --json prints all


def run(
    action: str,
    store: str,
    target: str | None = None,
    k: int = 5,
    as_json: bool = False,
    embed_fn: Callable[[str], np.ndarray] | None = None,
) -> int:
    """Run one memory action against the store folder `store`; prints results, returns 0."""
    if action not in ACTIONS:
        raise UserError(f"unknown memory action {action!r}; choose one of {', '.join(ACTIONS)}")
    if action in ("search", "forget") and not target:
        raise UserError(f"cogarch memory {action} needs a target ({'a clip, episode id or clip hash' if action == 'search' else 'an episode id'})")
    if k < 1:
        raise UserError(f"-k must be >= 1, got {k}")
    read_only = action in ("list", "search")
    with EpisodeStore(MemoryConfig(store=store), create=False, read_only=read_only, adopt=True) as st:
        if action == "list":
            return _list(st, as_json)
        if action == "search":
            return _search(st, str(target), k, as_json, embed_fn)
        if action == "forget":
            return _forget(st, str(target), as_json)
        t0 = time.perf_counter()
        n = st.rebuild()
        _emit(as_json, {"rebuilt": n, "seconds": round(time.perf_counter() - t0, 3)},
              f"rebuilt the index of {st.path} from SQLite: {n} episodes in {time.perf_counter() - t0:.2f} s")
        return 0


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _short(text: str, n: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _line(ep: Episode, score: float | None = None) -> str:
    s = "" if score is None else f"{score:7.4f}  "
    clip = Path(ep.clip_path).name if ep.clip_path else "-"
    return f"{s}#{ep.id:<6} {_when(ep.created)}  {ep.clip_hash[:12]}  {_short(clip, 24):<24}  Q: {_short(ep.question)}  A: {_short(ep.answer, 30)}"


def _emit(as_json: bool, obj: object, text: str) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True) if as_json else text)


def _list(st: EpisodeStore, as_json: bool) -> int:
    total = len(st)
    if as_json:
        print(json.dumps([e.summary() for e in st.list()], indent=2, sort_keys=True))
        return 0
    if total == 0:
        print(f"memory store {st.path} is empty")
        return 0
    shown = st.list(limit=LIST_SHOWN)
    print(f"{total} episodes in {st.path} (newest first)")
    for ep in shown:
        print(_line(ep))
    if total > len(shown):
        print(f"... {total - len(shown)} older episodes not shown (use --json for all)")
    return 0


def resolve_query(st: EpisodeStore, target: str, embed_fn: Callable[[str], np.ndarray] | None) -> tuple[np.ndarray, str]:
    """(query embedding [D], how it was obtained) for `search TARGET`; see the file docstring."""
    path = Path(target).expanduser()
    if embed_fn is not None and path.exists():
        q = np.asarray(embed_fn(str(path)), dtype=np.float32).reshape(-1)
        return q, f"embedding of {path.name} from the perception encoder"
    if path.exists():
        from cogarch.video import clip_hash

        h = clip_hash(path)
        eps = st.find_hash(h)
        if not eps:
            raise UserError(f"clip {target!r} (sha256 {h[:12]}) is not in the memory store, and no encoder was given to embed it")
        return eps[-1].embedding, f"stored embedding of episode #{eps[-1].id} (same clip content {h[:12]})"
    if target.isdigit():
        ep = st.get(int(target))
        if ep is not None:
            return ep.embedding, f"stored embedding of episode #{ep.id}"
        if len(target) < 8:
            raise UserError(f"no episode #{target} in memory store {str(st.path)!r}")
    t = target.lower()  # an all-digit string of >= 8 characters that is no id may be a hash prefix
    if len(t) >= 8 and all(c in "0123456789abcdef" for c in t):
        eps = st.find_hash(t)
        clips = {e.clip_hash for e in eps}
        if len(clips) > 1:
            raise UserError(f"clip hash prefix {target!r} matches {len(clips)} different clips; give more characters")
        if eps:
            return eps[-1].embedding, f"stored embedding of episode #{eps[-1].id} (clip {eps[-1].clip_hash[:12]})"
        raise UserError(f"no episode with a clip hash starting {target!r} in memory store {str(st.path)!r}")
    raise UserError(f"search target {target!r} is not a clip file, an episode id or a clip hash prefix (>= 8 hex characters)")


def _search(st: EpisodeStore, target: str, k: int, as_json: bool, embed_fn: Callable[[str], np.ndarray] | None) -> int:
    q, how = resolve_query(st, target, embed_fn)
    if st.dim and q.shape[0] != st.dim:
        raise UserError(f"the encoder gives {q.shape[0]}-d embeddings but memory store {str(st.path)!r} holds {st.dim}-d ones")
    hits = st.search(q, k)
    if as_json:
        print(json.dumps({"query": how, "hits": [{**h.episode.summary(), "score": h.score} for h in hits]}, indent=2, sort_keys=True))
        return 0
    print(f"top {len(hits)} of {len(st)} episodes by {how}:")
    for h in hits:
        print(_line(h.episode, h.score))
    return 0


def _forget(st: EpisodeStore, target: str, as_json: bool) -> int:
    if not target.isdigit():
        raise UserError(f"forget takes an episode id (see `cogarch memory list`), got {target!r}")
    if not st.forget(int(target)):
        raise UserError(f"no episode #{target} in memory store {str(st.path)!r}")
    _emit(as_json, {"forgotten": int(target)}, f"forgot episode #{target}")
    return 0
