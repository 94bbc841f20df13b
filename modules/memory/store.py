"""Persistent episodic store: SQLite (WAL) is the source of truth, a usearch HNSW index is a cache.

Layout of a store folder:

    <store>/episodes.sqlite (+ -wal, -shm)   episodes, float32 embeddings as BLOBs, forget log
    <store>/index/ann.usearch                HNSW graph (Malkov & Yashunin 2018) over embeddings
    <store>/index/state.json                 last rowid + forget seq the index includes, CRC, params
    <store>/.index.lock                      flock: one index saver at a time, readers share

Crash safety (why each piece is there):
- An episode is committed by one SQLite transaction in WAL mode; a process killed mid-write
  leaves either the whole row or nothing, and readers never block the writer (and vice versa).
- The index is only a cache of rows `id <= last_rowid`. It is saved into a temp folder and renamed
  into place (cogarch.fsutil.atomic_dir) together with its state.json, under an exclusive flock,
  and its CRC32 is checked on load. A missing, stale, corrupt or foreign index self-heals: rows
  newer than `last_rowid` are added and `forgotten` entries newer than `forget_seq` are removed on
  every sync; anything unreadable is rebuilt from SQLite.
- Ids are AUTOINCREMENT, so a forgotten id is never reused and a stale index entry can never
  alias a newer episode; hits are joined back to SQLite, so a stale entry can never be returned.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import sqlite3
import threading
import time
import uuid
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from usearch.index import Index

from cogarch.errors import CheckpointError, UserError
from cogarch.fsutil import atomic_dir
from cogarch.modules.memory.config import MemoryConfig
from cogarch.modules.memory.episode import Episode, Hit, to_blob, from_blob

SCHEMA_VERSION = 1
DB_NAME = "episodes.sqlite"
INDEX_DIR = "index"
INDEX_FILE = "ann.usearch"
STATE_FILE = "state.json"
LOCK_FILE = ".index.lock"

_DDL = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS episodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    clip_hash TEXT NOT NULL,
    clip_path TEXT NOT NULL DEFAULT '',
    question TEXT NOT NULL DEFAULT '',
    answer TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    embedding BLOB NOT NULL,
    steps BLOB,
    n_steps INTEGER NOT NULL DEFAULT 0,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS episodes_clip_hash ON episodes(clip_hash);
CREATE TABLE IF NOT EXISTS forgotten (seq INTEGER PRIMARY KEY AUTOINCREMENT, episode_id INTEGER NOT NULL);
"""
_COLS = "id, clip_hash, clip_path, question, answer, created, embedding, n_steps, meta"


class EpisodeStore:
    """Open (or create) the store at `cfg.store`. Use as a context manager, or call close()."""

    def __init__(self, cfg: MemoryConfig, *, create: bool = True, read_only: bool = False, adopt: bool = False) -> None:
        """adopt=True (tools such as the CLI): take metric and index parameters from the store itself."""
        cfg.validate()
        self.cfg = cfg
        self.path = Path(cfg.store).expanduser()
        self.read_only = read_only
        self._lock = threading.RLock()
        self._index: Index | None = None
        self._last_rowid = 0  # highest episode id the in-memory index includes
        self._forget_seq = 0  # highest forget-log seq applied to the in-memory index
        self._unsaved = 0  # index changes since the last save
        self._db = self._connect(create and not read_only)
        info = dict(self._db.execute("SELECT key, value FROM info").fetchall())
        self.uuid = info["uuid"]
        self.metric = info["metric"]
        self.dim = int(info.get("dim", "0"))
        if adopt:
            self.cfg = cfg = replace(cfg, metric=self.metric, **_saved_index_params(self.path / INDEX_DIR / STATE_FILE))
        if self.metric != cfg.metric:
            raise CheckpointError(f"memory store {str(self.path)!r} uses metric {self.metric!r}, config says {cfg.metric!r}")
        if cfg.dim and self.dim and cfg.dim != self.dim:
            raise CheckpointError(f"memory store {str(self.path)!r} holds {self.dim}-d embeddings, config says dim={cfg.dim}")

    # ------------------------------------------------------------------------------ opening

    def _connect(self, create: bool) -> sqlite3.Connection:
        db_file = self.path / DB_NAME
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"memory store {str(self.path)!r} is a file, not a store folder")
        if not db_file.is_file():
            if not create:
                raise CheckpointError(f"memory store not found: {str(self.path)!r} has no {DB_NAME}")
            if self.path.is_dir() and any(p.name != LOCK_FILE for p in self.path.iterdir()):
                raise CheckpointError(f"{str(self.path)!r} is not empty and not a memory store; choose another folder")
            self.path.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(str(db_file), timeout=30.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout=30000")
            # Identify the file before changing anything in it (journal mode, tables): a foreign
            # SQLite database or a store of a newer schema is refused and left byte-for-byte as is.
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "info" not in tables and (tables or not create):
                db.close()
                raise CheckpointError(f"{str(db_file)!r} is not a cogarch memory store (no info table)")
            if "info" in tables:
                self._check_version(db)
            db.execute("PRAGMA journal_mode=WAL")  # readers never block the one writer
            db.execute(f"PRAGMA synchronous={self.cfg.synchronous.upper()}")
            if "info" not in tables:  # IMMEDIATE: two processes creating one store serialise here
                with _tx(db, immediate=True):
                    for stmt in filter(str.strip, _DDL.split(";")):
                        db.execute(stmt)
                    new = {"schema_version": str(SCHEMA_VERSION), "uuid": uuid.uuid4().hex,
                           "metric": self.cfg.metric, "dim": str(self.cfg.dim)}
                    db.executemany("INSERT OR IGNORE INTO info(key, value) VALUES (?, ?)", list(new.items()))
                self._check_version(db)
        except sqlite3.DatabaseError as e:
            raise CheckpointError(f"memory store {str(db_file)!r} is unreadable ({e})") from None
        return db

    def _check_version(self, db: sqlite3.Connection) -> None:
        row = db.execute("SELECT value FROM info WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row and str(row[0]).isdigit() else -1
        if version > SCHEMA_VERSION:
            db.close()
            raise CheckpointError(
                f"memory store {str(self.path)!r} has schema {version}, newer than this cogarch reads (<= {SCHEMA_VERSION}); upgrade cogarch"
            )
        if version < 1:
            db.close()
            raise CheckpointError(f"memory store {str(self.path)!r} has no valid schema_version")

    def close(self) -> None:
        """Save the index cache if it changed (writer only), then close SQLite."""
        with self._lock:
            if self._db is None:
                return
            if self._index is not None and self._unsaved and not self.read_only:
                self.save_index()
            self._db.close()
            self._db = None  # type: ignore[assignment]

    def __enter__(self) -> "EpisodeStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM episodes").fetchone()[0])

    # ------------------------------------------------------------------------------ writing

    def add(
        self,
        embedding: np.ndarray,
        *,
        clip_hash: str,
        clip_path: str = "",
        question: str = "",
        answer: str = "",
        steps: np.ndarray | None = None,
        meta: dict | None = None,
        created: float | None = None,
    ) -> int:
        """Commit one episode (embedding [D], steps [T, D] optional); returns its id once durable."""
        return self.add_many(
            np.asarray(embedding, dtype=np.float32)[None], [clip_hash], clip_paths=[clip_path],
            questions=[question], answers=[answer], steps=[steps], metas=[meta or {}], created=created,
        )[0]

    def add_many(
        self,
        embeddings: np.ndarray,
        clip_hashes: Sequence[str],
        *,
        clip_paths: Sequence[str] | None = None,
        questions: Sequence[str] | None = None,
        answers: Sequence[str] | None = None,
        steps: Sequence[np.ndarray | None] | None = None,
        metas: Sequence[dict] | None = None,
        created: float | None = None,
    ) -> list[int]:
        """Commit N episodes (embeddings [N, D]) in ONE transaction: all of them or none."""
        self._writable()
        emb = np.asarray(embeddings, dtype=np.float32)
        n = len(clip_hashes)
        if emb.ndim != 2 or emb.shape[0] != n:
            raise ValueError(f"embeddings must be [N={n}, D], got {emb.shape}")
        if not np.isfinite(emb).all():
            raise ValueError("embeddings contain NaN or inf")
        emb = self._prepare(emb)
        now = time.time() if created is None else float(created)
        rows = []
        for i in range(n):
            st = None if steps is None else steps[i]
            if st is not None:
                st = np.asarray(st, dtype=np.float32)
                if st.ndim != 2 or st.shape[1] != emb.shape[1]:
                    raise ValueError(f"steps must be [T, {emb.shape[1]}], got {st.shape}")
                st = self._prepare(st)
            rows.append((
                str(clip_hashes[i]), str((clip_paths or [""] * n)[i] or ""), str((questions or [""] * n)[i] or ""),
                str((answers or [""] * n)[i] or ""), now, to_blob(emb[i]), None if st is None else to_blob(st),
                0 if st is None else len(st), json.dumps((metas or [{}] * n)[i] or {}, sort_keys=True),
            ))
        with self._lock:
            with _tx(self._db, immediate=True):
                self._fix_dim(emb.shape[1])
                ids = []
                for r in rows:
                    c = self._db.execute(
                        "INSERT INTO episodes(clip_hash, clip_path, question, answer, created, embedding, steps, n_steps, meta)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", r)
                    ids.append(int(c.lastrowid))
            self._ensure_index()  # also picks up our rows (and any other writer's) by rowid
            self._maybe_save()
        return ids

    def forget(self, episode_id: int) -> bool:
        """Delete an episode from SQLite and the index; False if there is no such id."""
        self._writable()
        with self._lock:
            with _tx(self._db, immediate=True):
                gone = self._db.execute("DELETE FROM episodes WHERE id = ?", (int(episode_id),)).rowcount
                if gone:
                    self._db.execute("INSERT INTO forgotten(episode_id) VALUES (?)", (int(episode_id),))
            if gone:
                self._ensure_index()
                self._maybe_save()
            return bool(gone)

    def _writable(self) -> None:
        if self.read_only:
            raise UserError(f"memory store {str(self.path)!r} was opened read-only")

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        if self.metric == "cos":  # store unit vectors: cosine == dot product, exactly re-rankable
            x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
        return x.astype(np.float32, copy=False)

    def _fix_dim(self, d: int) -> None:
        if self.dim == 0:
            stored = int(self._db.execute("SELECT value FROM info WHERE key='dim'").fetchone()[0])
            if stored == 0:
                self._db.execute("UPDATE info SET value = ? WHERE key = 'dim'", (str(d),))
                stored = d
            self.dim = stored
        if d != self.dim:
            raise CheckpointError(
                f"memory store {str(self.path)!r} holds {self.dim}-d embeddings, got {d}-d (use another --store, or forget/rebuild)"
            )

    # ------------------------------------------------------------------------------ reading

    def get(self, episode_id: int, with_steps: bool = False) -> Episode | None:
        row = self._db.execute(f"SELECT {_COLS} FROM episodes WHERE id = ?", (int(episode_id),)).fetchone()
        if row is None:
            return None
        ep = self._episode(row)
        if with_steps and ep.n_steps:
            blob = self._db.execute("SELECT steps FROM episodes WHERE id = ?", (ep.id,)).fetchone()[0]
            ep = Episode(**{**ep.__dict__, "steps": from_blob(blob).reshape(ep.n_steps, -1)})
        return ep

    def find_hash(self, prefix: str) -> list[Episode]:
        """Episodes whose clip hash starts with `prefix` (a full hash or >= 8 hex chars), oldest first."""
        pat = prefix.lower().replace("%", "").replace("_", "") + "%"
        rows = self._db.execute(f"SELECT {_COLS} FROM episodes WHERE clip_hash LIKE ? ORDER BY id", (pat,))
        return [self._episode(r) for r in rows]

    def list(self, limit: int | None = None) -> list[Episode]:
        """Episodes, newest first."""
        q = f"SELECT {_COLS} FROM episodes ORDER BY id DESC" + ("" if limit is None else f" LIMIT {int(limit)}")
        return [self._episode(r) for r in self._db.execute(q)]

    def search(self, query: np.ndarray, k: int) -> list[Hit] | list[list[Hit]]:
        """Top-k nearest episodes to query [D] (→ list[Hit]) or queries [Q, D] (→ one list each)."""
        q = np.asarray(query, dtype=np.float32)
        single = q.ndim == 1
        q = np.atleast_2d(q)
        if q.ndim != 2 or not np.isfinite(q).all():
            raise ValueError(f"query must be a finite [D] or [Q, D] array, got shape {np.shape(query)}")
        with self._lock:
            self._ensure_index()
            n = 0 if self._index is None else len(self._index)  # None: nothing was ever written
            if n == 0 or k < 1:
                return [] if single else [[] for _ in q]
            if q.shape[1] != self.dim:
                raise CheckpointError(f"memory store {str(self.path)!r} holds {self.dim}-d embeddings, query is {q.shape[1]}-d")
            q = self._prepare(q)
            want = min(n, max(k * self.cfg.rerank, k))
            m = self._index.search(q, want, exact=n < self.cfg.exact_below, threads=1)  # type: ignore[union-attr]
            keys = np.atleast_2d(m.keys)  # usearch returns Matches (no .counts) for a single query
            counts = np.atleast_1d(m.counts) if hasattr(m, "counts") else np.array([len(m.keys)])
            all_ids = sorted({int(x) for i in range(len(q)) for x in keys[i, : counts[i]]})
            by_id = {}
            for chunk in range(0, len(all_ids), 900):  # SQLite's bound-parameter limit
                part = all_ids[chunk : chunk + 900]
                sql = f"SELECT {_COLS} FROM episodes WHERE id IN ({','.join('?' * len(part))})"
                by_id.update({int(r[0]): self._episode(r) for r in self._db.execute(sql, part)})
        out = []
        for i in range(len(q)):
            eps = [by_id[int(x)] for x in keys[i, : counts[i]] if int(x) in by_id]
            if not eps:
                out.append([])
                continue
            e = np.stack([ep.embedding for ep in eps])  # [C, D] exact float32 from SQLite
            s = -((e - q[i]) ** 2).sum(-1) if self.metric == "l2sq" else e @ q[i]
            order = np.argsort(-s, kind="stable")[:k]  # exact re-rank of the ANN candidates
            out.append([Hit(eps[j], float(s[j])) for j in order])
        return out[0] if single else out

    def _episode(self, r: tuple) -> Episode:
        emb = from_blob(r[6])
        if self.dim and emb.shape[0] != self.dim:
            raise CheckpointError(f"memory store {str(self.path)!r}: episode {r[0]} has a corrupt embedding")
        return Episode(int(r[0]), r[1], r[2], r[3], r[4], float(r[5]), emb, int(r[7]), json.loads(r[8] or "{}"))

    # ------------------------------------------------------------------------------ the index cache

    def _new_index(self) -> Index:
        return Index(
            ndim=self.dim, metric=self.metric, dtype=self.cfg.index_dtype, connectivity=self.cfg.connectivity,
            expansion_add=self.cfg.expansion_add, expansion_search=self.cfg.expansion_search,
        )

    def _state_wanted(self) -> dict:
        c = self.cfg
        return {"uuid": self.uuid, "dim": self.dim, "metric": self.metric, "dtype": c.index_dtype,
                "connectivity": c.connectivity, "expansion_add": c.expansion_add}

    def _ensure_index(self) -> None:
        """Load the index cache (or start empty) on first use, then catch up with SQLite."""
        if self._index is None:
            if self.dim == 0:
                self.dim = int(self._db.execute("SELECT value FROM info WHERE key='dim'").fetchone()[0])
                if self.dim == 0:
                    return  # nothing was ever written: nothing to index
            self._index, self._last_rowid, self._forget_seq = self._load_cached()
        self._sync()

    def _load_cached(self) -> tuple[Index, int, int]:
        candidates = [self.path / INDEX_DIR] + sorted(self.path.glob(f".{INDEX_DIR}.old-*"))
        with self._flock(exclusive=False):
            for folder in candidates:
                try:
                    state = json.loads((folder / STATE_FILE).read_text())
                    f = folder / INDEX_FILE
                    if any(state.get(k) != v for k, v in self._state_wanted().items()):
                        continue  # built with other parameters or for another store: rebuild
                    if f.stat().st_size != state["size"] or _crc32(f) != state["crc32"]:
                        continue
                    index = Index.restore(str(f))
                    if index is None or index.ndim != self.dim or len(index) != state["count"]:
                        continue
                    index.expansion_search = self.cfg.expansion_search
                    return index, int(state["last_rowid"]), int(state["forget_seq"])
                except (OSError, ValueError, RuntimeError, KeyError, TypeError):
                    continue  # missing / truncated / corrupt: fall through to a rebuild
        # Rebuild from SQLite: every live row is added by _sync; forgets before now are moot.
        seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM forgotten").fetchone()[0]
        self._unsaved += 1
        return self._new_index(), 0, int(seq)

    def _sync(self) -> None:
        """Add rows newer than the index, remove episodes forgotten since (one read snapshot)."""
        with _tx(self._db):
            forgot = self._db.execute(
                "SELECT seq, episode_id FROM forgotten WHERE seq > ? ORDER BY seq", (self._forget_seq,)).fetchall()
            cur = self._db.execute("SELECT id, embedding FROM episodes WHERE id > ? ORDER BY id", (self._last_rowid,))
            while batch := cur.fetchmany(8192):
                keys = np.fromiter((r[0] for r in batch), dtype=np.uint64, count=len(batch))
                vecs = np.frombuffer(b"".join(r[1] for r in batch), dtype="<f4").reshape(len(batch), self.dim)
                self._index.add(keys, vecs, threads=0 if len(batch) > 256 else 1)  # type: ignore[union-attr]
                self._last_rowid = int(keys[-1])
                self._unsaved += len(batch)
        if forgot:
            ids = [int(e) for _, e in forgot if self._index.contains(int(e))]  # type: ignore[union-attr]
            if ids:
                self._index.remove(np.asarray(ids, dtype=np.uint64))  # type: ignore[union-attr]
            self._forget_seq = int(forgot[-1][0])
            self._unsaved += len(forgot)

    def _maybe_save(self) -> None:
        n = len(self._index) if self._index is not None else 0
        if self._unsaved >= max(self.cfg.index_save_every, int(self.cfg.index_save_fraction * n)):
            self.save_index()

    def save_index(self) -> None:
        """Write the index cache atomically with the rowid / forget seq it includes."""
        self._writable()
        with self._lock:
            if self._index is None:
                return
            with self._flock(exclusive=True):
                with atomic_dir(self.path / INDEX_DIR) as tmp:
                    self._index.save(str(tmp / INDEX_FILE))
                    f = tmp / INDEX_FILE
                    state = {**self._state_wanted(), "last_rowid": self._last_rowid, "forget_seq": self._forget_seq,
                             "count": len(self._index), "size": f.stat().st_size, "crc32": _crc32(f),
                             "schema_version": SCHEMA_VERSION, "saved": time.time()}
                    (tmp / STATE_FILE).write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
                for stale in [*self.path.glob(f".{INDEX_DIR}.tmp-*"), *self.path.glob(f".{INDEX_DIR}.old-*")]:  # killed savers' leftovers
                    shutil.rmtree(stale, ignore_errors=True)
            self._unsaved = 0

    def rebuild(self) -> int:
        """Drop the index cache and rebuild it from SQLite (the source of truth); returns its size."""
        self._writable()
        with self._lock:
            if self.dim == 0:
                self._ensure_index()
            if self.dim == 0:
                return 0
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM forgotten").fetchone()[0]
            self._index, self._last_rowid, self._forget_seq = self._new_index(), 0, int(seq)
            self._sync()
            self.save_index()
            return len(self._index)

    @contextlib.contextmanager
    def _flock(self, exclusive: bool) -> Iterator[None]:
        mode = "a" if not self.read_only or (self.path / LOCK_FILE).exists() else None
        if mode is None:  # read-only opener of a store whose lock file is missing: nothing to share
            yield
            return
        with open(self.path / LOCK_FILE, mode) as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _tx(db: sqlite3.Connection, immediate: bool = False) -> Iterator[None]:
    """One transaction; IMMEDIATE takes the write lock up front (no upgrade deadlocks)."""
    db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            crc = zlib.crc32(chunk, crc)
    return crc


def _saved_index_params(state_file: Path) -> dict:
    """Index parameters recorded with the saved index cache ({} if there is none readable)."""
    try:
        st = json.loads(state_file.read_text())
        return {"index_dtype": str(st["dtype"]), "connectivity": int(st["connectivity"]), "expansion_add": int(st["expansion_add"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
