"""Child processes of tests/test_memory_store.py: a writer killed mid-write and a concurrent reader.

They start from a forkserver (cogarch.train.worker_context), not from os.fork() of the pytest
process: pytest has run threaded tests by then (the serve tests, video decoding), and a child forked
from a multi-threaded parent can deadlock on a lock some other thread held at the fork. With av
18.1.1 that happened (docs/benchmarks.md, twenty-fourth session). The forkserver is a fresh
single-threaded process with the store's modules preloaded, so a child starts in milliseconds.
"""

from __future__ import annotations

import os
import select
import time
import zlib

import numpy as np

from cogarch.modules.memory.config import MemoryConfig
from cogarch.modules.memory.store import EpisodeStore
from cogarch.train import worker_context

D = 16
CTX = worker_context(("numpy", "cogarch.modules.memory.store", __name__))
READY = b"ready\n"


def vec_for(tag: str, dim: int = D) -> np.ndarray:
    """Deterministic unit vector from a tag: the parent can check what a child process wrote."""
    v = np.random.default_rng(zlib.crc32(tag.encode())).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def _run(fn, conn, *args) -> None:
    """In the child: say ready, run fn(write_fd, *args), report any error on the pipe; never returns."""
    fd = conn.fileno()
    code = 0
    try:
        os.write(fd, READY)
        fn(fd, *args)
    except BaseException as e:  # report, never fall back into multiprocessing's own handling
        os.write(fd, f"error {type(e).__name__}: {e}\n".encode())
        code = 1
    finally:
        os._exit(code)


def start(fn, *args, timeout: float = 60.0):
    """Start fn(write_fd, *args) in a child process; returns (process, read end) once the child runs."""
    r, w = CTX.Pipe(duplex=False)
    p = CTX.Process(target=_run, args=(fn, w, *args), daemon=True)
    p.start()
    w.close()
    if not select.select([r.fileno()], [], [], timeout)[0] or os.read(r.fileno(), len(READY)) != READY:
        p.kill()
        p.join()
        r.close()
        raise RuntimeError(f"child {fn.__name__} did not start within {timeout} s")
    return p, r


def read_all(r, timeout: float = 0.0) -> str:
    """Everything the child wrote so far (until EOF, or until nothing arrives within `timeout`)."""
    out = b""
    while select.select([r.fileno()], [], [], timeout)[0]:
        chunk = os.read(r.fileno(), 65536)
        if not chunk:
            break
        out += chunk
    return out.decode()


def writer(w: int, store: str, seed: int) -> None:
    # Tiny save interval so kills also land inside index saves, not only inside SQLite commits.
    st = EpisodeStore(MemoryConfig(store=store, index_save_every=3, index_save_fraction=0.0, exact_below=0))
    rng = np.random.default_rng(seed)
    for j in range(100_000):
        if rng.random() < 0.3:  # a 3-row transaction: all or nothing
            tags = [f"{seed}-{j}-{b}" for b in range(3)]
            ids = st.add_many(np.stack([vec_for(t) for t in tags]), tags, metas=[{"batch": tags[0]}] * 3)
        else:
            tags = [f"{seed}-{j}"]
            ids = [st.add(vec_for(tags[0]), clip_hash=tags[0])]
        os.write(w, "".join(f"{i} {t}\n" for i, t in zip(ids, tags)).encode())  # only after COMMIT


def reader(w: int, store: str, n_final: int) -> None:
    st = EpisodeStore(MemoryConfig(store=store, exact_below=0), read_only=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        n = len(st)
        for h in st.search(vec_for(f"c{max(n - 1, 0)}"), 3):  # every hit must be a consistent row
            if not np.allclose(h.episode.embedding, vec_for(h.episode.clip_hash), atol=1e-6):
                raise AssertionError(f"inconsistent episode {h.episode.id}")
        os.write(w, f"{n}\n".encode())
        if n == n_final:
            top = st.search(vec_for(f"c{n_final - 1}"), 1)[0]
            os.write(w, f"final {top.episode.clip_hash}\n".encode())
            return
        time.sleep(0.005)
