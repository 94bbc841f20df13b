"""MemoryModule on the bus (recall shape, working memory, save/load), re-encoded clip retrieval
through PyAV + a fixed random encoder, and the `cogarch memory` CLI functions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cogarch.bus import LatentBus, Message
from cogarch.config import load_config
from cogarch.errors import CheckpointError, UserError
from cogarch.modules.memory import MemoryConfig, MemoryModule, WorkingMemory, pool_tokens
from cogarch.modules.memory.cli import run
from cogarch.video import clip_hash, read_clip, write_mp4

D = 32


def percept(tokens: torch.Tensor, steps: int | None = None) -> Message:
    """A percept message; tokens [B, N, D], time index = token // (N / steps) when steps is given."""
    B, N, _ = tokens.shape
    t = None if steps is None else (torch.arange(N) // (N // steps))[None].expand(B, N)
    return Message("percept", "perception", tokens, time=t)


def test_default_yaml_matches_schema():
    assert load_config(MemoryConfig, "configs/memory/default.yaml") == MemoryConfig()


def test_pooling_honours_the_padding_mask():
    tokens = torch.tensor([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])  # [1, 3, 2]; the last is padding
    mask = torch.tensor([[True, True, False]])
    torch.testing.assert_close(pool_tokens(tokens, mask), torch.tensor([[2.0, 2.0]]))
    torch.testing.assert_close(pool_tokens(tokens, mask, "max"), torch.tensor([[3.0, 4.0]]))
    mem = MemoryModule(MemoryConfig(store="unused"))
    msg = Message("percept", "perception", tokens, mask=mask)
    torch.testing.assert_close(mem.pool(msg), torch.tensor([[2.0, 2.0]]) / 8**0.5)  # L2-normalised for cos


def test_recall_message_shape_and_contents(tmp_path):
    g = torch.Generator().manual_seed(0)
    mem = MemoryModule(MemoryConfig(store=str(tmp_path / "s"), k=4))
    assert (mem.name, mem.reads, mem.writes) == ("memory", ("percept",), ("recall",))
    bus = LatentBus(record=True)
    bus.publish(percept(torch.randn(2, 12, D, generator=g), steps=3))
    mem.step(bus)  # store does not exist yet: recall is all padding and nothing is created
    r = bus.latest("recall")
    assert r.tokens.shape == (2, 4, D) and r.mask.shape == (2, 4) and not r.mask.any()
    assert not (tmp_path / "s").exists()
    clips = [torch.randn(1, 12, D, generator=g) for _ in range(6)]
    ids = [mem.write_episode(None, percept(c, steps=3), f"q{i}", f"a{i}", clip_hash=f"{i:064x}") for i, c in enumerate(clips)]
    assert ids == [1, 2, 3, 4, 5, 6]
    ep = mem.store().get(3, with_steps=True)
    assert ep.steps.shape == (3, D) and ep.question == "q2"
    bus.clear()
    query = torch.cat([clips[2], clips[5]]) + 0.01 * torch.randn(2, 12, D, generator=g)
    bus.publish(percept(query, steps=3))
    mem.step(bus)
    r = bus.latest("recall")
    assert (r.kind, r.source, r.tokens.shape, r.time.shape) == ("recall", "memory", (2, 4, D), (2, 4))
    assert r.mask.all() and (r.time >= 0).all()
    assert [row[0] for row in r.meta["episode_ids"]] == [3, 6]
    for row in r.meta["scores"]:
        assert row == sorted(row, reverse=True) and row[0] > 0.99
    pooled = mem.pool(clips[2])[0]
    torch.testing.assert_close(r.tokens[0, 0], pooled, atol=1e-5, rtol=0)  # recalled embedding = stored one
    assert abs(float(r.tokens[0, 0].norm()) - 1.0) < 1e-5
    mem.close()


def test_working_memory_bounded_and_on_the_bus(tmp_path):
    wm = WorkingMemory(capacity=3)
    bus = LatentBus()
    for i in range(5):
        bus.publish(Message("surprise", "world_model", torch.full((1, 2, 1), float(i))))
    assert wm.observe(bus) == 5 and wm.observe(bus) == 0  # each message recorded once
    recent = wm.recent("surprise")
    assert [float(e.summary[0, 0]) for e in recent] == [4.0, 3.0, 2.0] and len(wm) == 3
    assert all(e.t > 0 for e in recent)
    mem = MemoryModule(MemoryConfig(store=str(tmp_path / "s"), k=2, working_slots=2, working_capacity=4))
    g = torch.Generator().manual_seed(1)
    seen = []
    for _ in range(3):  # three passes ("asks"); the bus is cleared between them
        bus = LatentBus()
        p = torch.randn(1, 8, D, generator=g)
        seen.append(p.mean(dim=1)[0])
        bus.publish(percept(p))
        mem.step(bus)
    r = bus.latest("recall")
    assert r.tokens.shape == (1, 4, D) and r.meta["n_working"] == 2
    assert r.mask[0].tolist() == [False, False, True, True]  # no episodes yet; two earlier passes
    torch.testing.assert_close(r.tokens[0, 2], seen[1])  # newest earlier pass first ...
    torch.testing.assert_close(r.tokens[0, 3], seen[0])  # ... the current pass is not echoed back
    assert "recall" not in mem.working.kinds()


def test_save_and_load_config(tmp_path):
    cfg = MemoryConfig(store=str(tmp_path / "s"), k=7, connectivity=8, working_kinds=["percept", "forecast"])
    MemoryModule(cfg).save_pretrained(tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert meta["module"] == "memory" and meta["config"]["k"] == 7
    back = MemoryModule.from_pretrained(tmp_path / "ck")
    assert back.config == cfg
    assert MemoryModule.from_pretrained(tmp_path / "ck", store="/elsewhere").config.store == "/elsewhere"
    with pytest.raises(CheckpointError):
        MemoryModule.from_pretrained(tmp_path / "missing")
    disabled = MemoryModule(MemoryConfig(store=str(tmp_path / "d"), enabled=False))
    assert disabled.write_episode(None, torch.randn(1, 4, D), clip_hash="x") is None
    assert not (tmp_path / "d").exists()


# ----------------------------------------------------------------------------- real clips


def _clip_frames(seed: int, t: int = 8, size: int = 32) -> torch.Tensor:
    """[T, 3, H, W] in [0, 1]: a coloured square moving over a shared gray background."""
    rng = np.random.default_rng(seed)
    frames = torch.full((t, 3, size, size), 0.5)
    colour = torch.tensor(rng.uniform(0, 1, 3), dtype=torch.float32)
    x, y = rng.integers(0, size - 10, 2)
    vx, vy = rng.integers(-2, 3, 2)
    for i in range(t):
        xi, yi = int(np.clip(x + vx * i, 0, size - 10)), int(np.clip(y + vy * i, 0, size - 10))
        frames[i, :, yi : yi + 10, xi : xi + 10] = colour[:, None, None]
    return frames


class RandomEncoder:
    """Fixed (seeded) random projection of 8x8 RGB patches → tokens [1, T*16, D] with a time index."""

    def __init__(self, seed: int = 0) -> None:
        self.w = torch.randn(3 * 8 * 8, D, generator=torch.Generator().manual_seed(seed)) / 8.0

    def __call__(self, frames: torch.Tensor) -> Message:
        T = frames.shape[0]
        patches = frames.unfold(2, 8, 8).unfold(3, 8, 8)  # [T, 3, 4, 4, 8, 8]
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(T, 16, -1)  # [T, 16, 192]
        tokens = torch.tanh((patches - 0.5) @ self.w).reshape(1, T * 16, D)
        return Message("percept", "perception", tokens, time=torch.arange(T).repeat_interleave(16)[None])


def test_reencoded_clip_is_recalled_first(tmp_path, capsys):
    enc = RandomEncoder()
    mem = MemoryModule(MemoryConfig(store=str(tmp_path / "s"), k=3, exact_below=0))
    paths = []
    for s in range(6):
        p = tmp_path / f"clip{s}.mp4"
        write_mp4(p, _clip_frames(s), fps=8, crf=18)
        paths.append(p)
        mem.write_episode(p, enc(read_clip(p, num_frames=8, size=32)), f"what moves in clip {s}?", "a square")
    # Re-encode clip 0: decode, write again at a much lower quality, add pixel noise.
    again = tmp_path / "clip0_reencoded.mp4"
    write_mp4(again, read_clip(paths[0], num_frames=8, size=32), fps=8, crf=40)
    assert clip_hash(again) != clip_hash(paths[0])
    frames = read_clip(again, num_frames=8, size=32)
    frames = (frames + 0.03 * torch.randn(frames.shape, generator=torch.Generator().manual_seed(9))).clamp(0, 1)
    bus = LatentBus()
    bus.publish(enc(frames))
    mem.step(bus)
    r = bus.latest("recall")
    assert r.meta["episode_ids"][0][0] == 1 and r.meta["clip_hashes"][0][0] == clip_hash(paths[0])
    assert r.meta["scores"][0][0] > r.meta["scores"][0][1] + 1e-3
    mem.close()
    embed = lambda path: mem.pool(enc(read_clip(path, num_frames=8, size=32)))[0].numpy()  # noqa: E731
    capsys.readouterr()
    assert run("search", str(tmp_path / "s"), str(again), k=2, as_json=True, embed_fn=embed) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hits"][0]["id"] == 1 and "perception encoder" in out["query"]


def test_cli_actions(tmp_path, capsys):
    store = str(tmp_path / "s")
    mem = MemoryModule(MemoryConfig(store=store))
    g = torch.Generator().manual_seed(3)
    clip = tmp_path / "c.mp4"
    write_mp4(clip, _clip_frames(1), fps=8)
    xs = [torch.randn(1, 6, D, generator=g) for _ in range(4)]
    for i, x in enumerate(xs):
        mem.write_episode(clip if i == 2 else None, x, f"question {i}", f"answer {i}", clip_hash=None if i == 2 else f"{i:x}" * 64)
    mem.close()
    capsys.readouterr()
    assert run("list", store, as_json=True) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in listed] == [4, 3, 2, 1] and listed[1]["clip_hash"] == clip_hash(clip)
    run("search", store, str(clip), k=2, as_json=True)  # no encoder: by the clip's content hash
    out = json.loads(capsys.readouterr().out)
    assert out["hits"][0]["id"] == 3 and "episode #3" in out["query"]
    run("search", store, "2", k=1, as_json=True)  # by episode id
    assert json.loads(capsys.readouterr().out)["hits"][0]["id"] == 2
    run("search", store, "3" * 10, k=1, as_json=True)  # by clip-hash prefix
    assert json.loads(capsys.readouterr().out)["hits"][0]["id"] == 4
    run("forget", store, "2")
    assert "forgot episode #2" in capsys.readouterr().out
    run("rebuild", store)
    assert "3 episodes" in capsys.readouterr().out
    run("list", store)
    assert "3 episodes in" in capsys.readouterr().out
    other = tmp_path / "other.mp4"
    write_mp4(other, _clip_frames(2), fps=8)
    for args, msg in [
        (("forget", store, "2"), "no episode #2"),
        (("search", store, str(other)), "no encoder"),
        (("search", store, "hello"), "not a clip file"),
        (("search", store, None), "needs a target"),
        (("sort", store), "unknown memory action"),
        (("list", str(tmp_path / "none")), "not found"),
    ]:
        with pytest.raises(UserError, match=msg):
            run(*args)
