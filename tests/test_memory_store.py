"""Episodic store: round trip, exact top-k, persistence, forget, rebuild, self-healing index cache,
schema versioning, a concurrent reader process, and SIGKILL of a writer process mid-write (the
child processes: tests/memory_children.py)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time

import numpy as np
import pytest

from cogarch.errors import CheckpointError, UserError
from cogarch.modules.memory.config import MemoryConfig
from cogarch.modules.memory.store import INDEX_DIR, INDEX_FILE, STATE_FILE, EpisodeStore

from tests import memory_children as children
from tests.memory_children import D, vec_for


def cfg_at(path, **kw) -> MemoryConfig:
    return MemoryConfig(store=str(path), **kw)


def test_round_trip_and_exact_topk(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, D)).astype(np.float32)
    steps = rng.standard_normal((3, D)).astype(np.float32)
    t0 = time.time()
    # exact_below=0 forces the HNSW path even on a tiny store.
    with EpisodeStore(cfg_at(tmp_path / "s", exact_below=0)) as st:
        assert st.search(x[0], 5) == [] and len(st) == 0  # created, nothing written yet
        ids = st.add_many(x, [f"h{i}" for i in range(40)], questions=[f"q{i}" for i in range(40)])
        eid = st.add(x[0] * 3.0, clip_hash="abc", clip_path="/c.mp4", question="Q?", answer="A.", steps=steps, meta={"fps": 8})
        assert ids == list(range(1, 41)) and eid == 41 and len(st) == 41
        ep = st.get(eid, with_steps=True)
        assert (ep.clip_hash, ep.clip_path, ep.question, ep.answer, ep.meta) == ("abc", "/c.mp4", "Q?", "A.", {"fps": 8})
        assert t0 <= ep.created <= time.time()
        np.testing.assert_allclose(ep.embedding, x[0] / np.linalg.norm(x[0]), atol=1e-6)  # cos: unit vectors
        np.testing.assert_allclose(ep.steps, steps / np.linalg.norm(steps, axis=1, keepdims=True), atol=1e-6)
        json.dumps(ep.summary())
        # top-k against exact cosine over all 41 stored vectors
        allx = np.concatenate([x, x[:1]])
        unit = allx / np.linalg.norm(allx, axis=1, keepdims=True)
        for qi in range(5):
            q = rng.standard_normal(D).astype(np.float32)
            s = unit @ (q / np.linalg.norm(q))
            want = np.argsort(-s, kind="stable")[:5] + 1
            hits = st.search(q, 5)
            same = {41: 1}  # episode 41 stores x[0] again: an exact tie with episode 1
            assert [same.get(h.episode.id, h.episode.id) for h in hits] == [same.get(int(i), int(i)) for i in want]
            np.testing.assert_allclose([h.score for h in hits], s[want - 1], atol=1e-5)
        batch = st.search(x[:3], 2)
        assert [b[0].episode.id for b in batch] in ([1, 2, 3], [41, 2, 3])  # x[0] is stored twice


def test_persistence_forget_rebuild(tmp_path):
    cfg = cfg_at(tmp_path / "s", exact_below=0)
    with EpisodeStore(cfg) as st:
        for i in range(30):
            st.add(vec_for(f"e{i}"), clip_hash=f"h{i}", answer=str(i))
        assert st.forget(5) and not st.forget(5) and not st.forget(999)
    state = json.loads((tmp_path / "s" / INDEX_DIR / STATE_FILE).read_text())
    assert state["last_rowid"] == 30 and state["count"] == 29  # the cache was saved on close
    with EpisodeStore(cfg) as st:
        assert len(st) == 29 and st.get(5) is None and st.get(6).answer == "5"
        assert st.search(vec_for("e3"), 1)[0].episode.id == 4
        assert 5 not in [h.episode.id for h in st.search(vec_for("e4"), 29)]
        shutil.rmtree(tmp_path / "s" / INDEX_DIR)
        assert st.rebuild() == 29
        assert st.add(vec_for("new"), clip_hash="n") == 31  # AUTOINCREMENT: forgotten ids never reused
    assert json.loads((tmp_path / "s" / INDEX_DIR / STATE_FILE).read_text())["count"] == 30


@pytest.mark.parametrize("damage", ["missing", "corrupt", "stale"])
def test_index_cache_self_heals(tmp_path, damage):
    cfg = cfg_at(tmp_path / "s", exact_below=0)
    with EpisodeStore(cfg) as st:
        for i in range(20):
            st.add(vec_for(f"e{i}"), clip_hash=f"h{i}")
    old = tmp_path / "old_index"
    shutil.copytree(tmp_path / "s" / INDEX_DIR, old)
    with EpisodeStore(cfg) as st:
        for i in range(20, 26):
            st.add(vec_for(f"e{i}"), clip_hash=f"h{i}")
        st.forget(3)
    idx = tmp_path / "s" / INDEX_DIR
    if damage == "missing":
        shutil.rmtree(idx)
    elif damage == "corrupt":
        data = bytearray((idx / INDEX_FILE).read_bytes())
        data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
        (idx / INDEX_FILE).write_bytes(bytes(data))
    else:  # an index saved before 6 adds and a forget
        shutil.rmtree(idx)
        shutil.copytree(old, idx)
    with EpisodeStore(cfg, read_only=True) as st:
        assert st.search(vec_for("e25"), 1)[0].episode.id == 26
        assert 3 not in [h.episode.id for h in st.search(vec_for("e2"), 25)]
        assert len(st._index) == len(st) == 25


def test_newer_schema_and_mismatches_are_one_line_errors(tmp_path):
    with EpisodeStore(cfg_at(tmp_path / "s")) as st:
        st.add(vec_for("a"), clip_hash="a")
        with pytest.raises(CheckpointError, match="holds 16-d"):
            st.add(np.ones(8, np.float32), clip_hash="b")
    db = sqlite3.connect(tmp_path / "s" / "episodes.sqlite")
    db.execute("UPDATE info SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(CheckpointError, match="schema 99, newer") as e:
        EpisodeStore(cfg_at(tmp_path / "s"))
    assert "\n" not in str(e.value)
    with pytest.raises(CheckpointError, match="not found"):
        EpisodeStore(cfg_at(tmp_path / "nope"), create=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(CheckpointError, match="not empty"):
        EpisodeStore(cfg_at(tmp_path / "junk"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "episodes.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(CheckpointError, match="unreadable"):
        EpisodeStore(cfg_at(tmp_path / "bad"))
    with EpisodeStore(cfg_at(tmp_path / "t", metric="ip")):
        pass
    with pytest.raises(CheckpointError, match="metric"):
        EpisodeStore(cfg_at(tmp_path / "t"))
    with EpisodeStore(cfg_at(tmp_path / "t"), adopt=True, read_only=True) as st:
        assert st.metric == "ip"
        with pytest.raises(UserError, match="read-only"):
            st.add(vec_for("a"), clip_hash="a")


# ----------------------------------------------------------------------------- processes
# The child processes live in tests/memory_children.py and start from a forkserver (why: its docstring).


def test_sigkill_during_writes_keeps_every_committed_episode(tmp_path):
    store = str(tmp_path / "s")
    committed: dict[int, str] = {}
    rng = np.random.default_rng(123)
    for it in range(12):
        p, r = children.start(children.writer, store, it)
        time.sleep(float(rng.uniform(0.05, 0.35)))
        p.kill()  # SIGKILL
        p.join()
        out = children.read_all(r)
        r.close()
        assert "error" not in out, out
        for line in out.splitlines():  # each report is one write() < PIPE_BUF: never torn
            i, tag = line.split()
            committed[int(i)] = tag
        with EpisodeStore(MemoryConfig(store=store, exact_below=0)) as st:
            assert st._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            for i, tag in committed.items():
                ep = st.get(i)
                assert ep is not None and ep.clip_hash == tag, f"iteration {it}: committed episode {i} lost"
                np.testing.assert_allclose(ep.embedding, vec_for(tag), atol=1e-6)
            batches: dict[str, int] = {}
            for (meta,) in st._db.execute("SELECT meta FROM episodes"):
                b = json.loads(meta).get("batch")
                if b:
                    batches[b] = batches.get(b, 0) + 1
            assert all(n == 3 for n in batches.values()), "a multi-row transaction was half-committed"
            if committed:
                last = max(committed)
                assert st.search(vec_for(committed[last]), 3)[0].episode.id == last
                assert len(st._index) == len(st)
    assert len(committed) >= 12  # the writer made progress between kills


def test_concurrent_reader_process_while_writer_appends(tmp_path):
    store = str(tmp_path / "s")
    n_final = 120
    with EpisodeStore(MemoryConfig(store=store, exact_below=0)) as st:
        st.add(vec_for("c0"), clip_hash="c0")
        p, r = children.start(children.reader, store, n_final)
        for i in range(1, n_final):
            st.add(vec_for(f"c{i}"), clip_hash=f"c{i}")
            if i % 10 == 0:
                time.sleep(0.02)  # give the reader turns mid-stream
    p.join(60)
    out = children.read_all(r, timeout=0.1)
    r.close()
    assert "error" not in out, out
    counts = [int(x) for x in out.split() if x.isdigit()]
    assert counts == sorted(counts) and counts[-1] == n_final, counts[-5:]
    assert any(1 <= c < n_final for c in counts), "the reader never read while the writer was appending"
    assert f"final c{n_final - 1}" in out and p.exitcode == 0
