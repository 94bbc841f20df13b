"""Perception data path and probe: ClipDataset over a clips DatasetDict (schema of the generated
suites), frame cache, probe targets from ground-truth JSON, make_job, and an end-to-end probe run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cogarch.errors import ConfigError, UserError
from cogarch.modules.perception.config import IMAGENET_MEAN, IMAGENET_STD, PerceptionConfig, vjepa2_mask_sets
from cogarch.modules.perception.data import ClipDataset
from cogarch.modules.perception.probe import Config as ProbeConfig
from cogarch.modules.perception.probe import clip_targets, run
from cogarch.modules.perception.train import Config, DataConfig, make_job

T, S = 4, 32


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _track(xs, ys, vis=None):
    n = len(xs)
    vel = [[(xs[min(i + 1, n - 1)] - xs[max(i - 1, 0)]) * 4.0, (ys[min(i + 1, n - 1)] - ys[max(i - 1, 0)]) * 4.0] for i in range(n)]
    v = vis if vis is not None else [1] * n
    return {"pos": [[x, y] for x, y in zip(xs, ys)], "vel": vel, "angle": [0.0] * n, "present": [1] * n,
            "in_view": v, "visible": v}


def _clip(i: int, dx: float, collide_at: int) -> tuple[np.ndarray, dict, list]:
    """A red square moving by dx px/frame and a still blue one; frames uint8 [T, S, S, 3]."""
    frames = np.full((T, S, S, 3), 200, np.uint8)
    xs = [4.0 + dx * t for t in range(T + 4)]  # annotations cover future frames too
    for t in range(T):
        x = int(xs[t])
        frames[t, 12:18, x:x + 6] = (173, 35, 35)
        frames[t, 2:8, 24:30] = (42, 75, 215)
    objects = [{"id": 0, "color": "red", "shape": "cube", "material": "rubber"},
               {"id": 1, "color": "blue", "shape": "cube", "material": "metal"}]
    ann = {"observed_frames": T, "num_frames": T + 4,
           "tracks": {"0": _track(xs, [15.0] * (T + 4)), "1": _track([27.0] * (T + 4), [5.0] * (T + 4))},
           "events": [{"type": "collision", "frame": collide_at, "a": 0, "b": 1},
                      {"type": "collision", "frame": 0, "a": 1, "b": "wall0"}]}
    return frames, ann, objects


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory, write_clip_suite):
    def dx(i: int) -> float:
        return (1.0 + i % 3) * (1 if i % 2 else -1) if i else 2.0

    return write_clip_suite(tmp_path_factory.mktemp("clips"), {
        split: [_clip(i, dx=dx(i), collide_at=1 if i % 2 else 10) for i in range(n)]
        for split, n in (("train", 6), ("val", 2), ("test", 2))})


def micro() -> PerceptionConfig:
    return PerceptionConfig(img_size=S, num_frames=T, patch_size=8, tubelet_size=2, hidden_size=48, depth=2,
                            num_heads=2, pred_hidden_size=24, pred_depth=2, pred_num_heads=2,
                            masks=vjepa2_mask_sets(), min_context=2)


def test_clip_dataset_frames_normalised_and_cached(clips_dir):
    raw = ClipDataset(clips_dir, "train", T, S, normalize=False)
    norm = ClipDataset(clips_dir, "train", T, S)
    cached = ClipDataset(clips_dir, "train", T, S, cache=True, cache_workers=0)
    x, y, z = raw[1], norm[1], cached[1]
    assert x.shape == (T, 3, S, S) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(y, (x - mean) / std, atol=1e-6)
    assert torch.allclose(z, y, atol=1e-5)  # the uint8 cache is lossless for 8-bit video
    assert abs(float(x[0, 0, 14, 6]) - 173 / 255) < 0.1  # the red square is where we drew it
    assert len(list((clips_dir / ".cache" / "perception").glob("*.npy"))) == 1
    item = ClipDataset(clips_dir, "val", T, S, with_index=True)[1]
    assert item["index"].item() == 1 and item["frames"].shape == (T, 3, S, S)


def test_clip_dataset_errors(clips_dir, tmp_path):
    with pytest.raises(UserError, match="no clips/"):
        ClipDataset(tmp_path, "train")
    with pytest.raises(UserError, match="no split"):
        ClipDataset(clips_dir, "nope")


def test_clip_targets_from_ground_truth():
    _, ann, objects = _clip(0, dx=2.0, collide_at=10)
    lab = clip_targets(objects, ann, T)
    assert lab == {"num_objects": "2", "num_moving": "1", "fastest_color": "red", "direction": "E", "collision": "no"}
    _, ann, objects = _clip(1, dx=-3.0, collide_at=1)
    lab = clip_targets(objects, ann, T)
    assert lab["direction"] == "W" and lab["collision"] == "yes"  # object-object collision inside the clip
    ann["tracks"]["1"]["visible"] = [0] * (T + 4)
    assert clip_targets(objects, ann, T)["num_objects"] == "1"


def test_make_job_and_one_step(clips_dir):
    cfg = Config(model=micro(), data=DataConfig(data_dir=str(clips_dir), cache=False))
    cfg.trainer.max_steps = 40
    job = make_job(cfg)
    assert len(job.dataset) == 6 and job.model.config.ema_steps == 0  # constant EMA: no schedule
    batch = job.collate_fn([job.dataset[i] for i in range(3)])
    loss, metrics = job.model(batch)
    loss.backward()
    assert torch.isfinite(loss) and "loss_m1" in metrics and "target_rank" in metrics
    cfg.model.ema_start, cfg.model.ema_end = 0.99, 0.999
    assert make_job(cfg).model.config.ema_steps == 40  # linear schedule spans the run


def test_probe_end_to_end(clips_dir, tmp_path):
    from cogarch.modules.perception.model import PerceptionModule

    torch.manual_seed(0)
    PerceptionModule(micro()).save_pretrained(tmp_path / "enc")
    cfg = ProbeConfig(encoder=str(tmp_path / "enc"), data_dir=str(clips_dir), epochs=2, batch_size=4,
                      pooler_heads=2, out=str(tmp_path / "res.json"))
    out = run(cfg)
    res = json.loads(out.read_text())
    assert set(res["targets"]) == {"num_objects", "num_moving", "fastest_color", "direction", "collision"}
    assert res["n"] == {"train": 6, "val": 2, "test": 2} and res["feature_shape"] == [32, 48]
    for r in res["targets"].values():
        assert 0.0 <= r["test"] <= 1.0 and 0.0 < r["chance_majority"] <= 1.0 and r["epoch"] in (0, 1)
        # the per-clip record agrees with the reported accuracy (it feeds the paired comparison)
        assert len(r["test_correct"]) == 2 and r["test_correct"].count("1") / 2 == pytest.approx(r["test"])
    # another encoder's probe on the same clips pairs with it clip by clip
    from cogarch.evals.bench.probe_compare import compare, mcnemar, pooled_sign_test

    torch.manual_seed(1)
    PerceptionModule(micro()).save_pretrained(tmp_path / "enc1")
    other = run(ProbeConfig(encoder=str(tmp_path / "enc1"), data_dir=str(clips_dir), epochs=1, batch_size=4,
                            pooler_heads=2, out=str(tmp_path / "other.json")))
    lines = compare([str(out)], [str(other)], ("trained", "random"))
    assert sum(line.startswith("| direction") for line in lines) == 2  # its paired row and its mean row
    means = [line for line in lines if " of 1 |" in line]
    assert [m.split(" | ")[0] for m in means] == ["| num_objects", "| num_moving", "| fastest_color", "| direction",
                                                   "| collision"]
    assert all(m.endswith("| — |") for m in means)  # one seed pair: no seed-level test
    assert mcnemar("1100", "0000") == (2, 0, 0.5) and mcnemar("10", "01")[2] == 1.0
    # pooled over two seeds: clip 0 is right 2/2 under A, 0/2 under B; clip 1 ties (0/2); clip 2: 1/2 vs 2/2
    assert pooled_sign_test(["101", "100"], ["001", "001"])[:2] == (1, 1)
    with pytest.raises(UserError):
        compare([str(out)], [], ("a", "b"))
    (tmp_path / "bad.json").write_text(json.dumps({"targets": []}))
    with pytest.raises(UserError, match="not a probe results JSON"):
        compare([str(tmp_path / "bad.json")], [str(out)], ("a", "b"))
    from cogarch.evals.bench.probe_compare import seed_level_p

    assert seed_level_p([0.6, 0.7], [0.5, 0.55]) is not None and seed_level_p([0.6], [0.5]) is None
    with pytest.raises(UserError):
        run(ProbeConfig(encoder=str(tmp_path / "missing"), data_dir=str(clips_dir)))


@pytest.mark.parametrize("grid", [(1, 4, 4), None])
def test_probe_positions_read_where(grid):
    """A target that depends only on WHERE a token sits: the sin-cos position code makes it
    learnable; the plain pooler is permutation-invariant and stays at chance."""
    from cogarch.modules.perception.probe import MultiQueryProbe

    g = torch.Generator().manual_seed(0)
    n, N, D = 256, 16, 16
    where = torch.randint(0, N, (n,), generator=g)
    x = 0.1 * torch.randn(n, N, D, generator=g)
    mark = torch.tensor([1.0, -1.0]).repeat(D // 2)  # zero-mean, so the pooler's LayerNorm keeps it
    x[torch.arange(n), where] += mark  # one marked token; its content says nothing about its place
    y = (where % 4 < 2).long()  # left half of the 4x4 grid
    torch.manual_seed(0)
    probe = MultiQueryProbe(D, 2, [2], grid)
    opt = torch.optim.Adam(probe.parameters(), lr=1e-2)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(probe(x[:192])[0], y[:192])
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = float((probe(x[192:])[0].argmax(-1) == y[192:]).float().mean())
    if grid:
        assert acc > 0.9
    else:
        assert acc < 0.7


def test_pixel_baseline_is_the_encoders_input():
    """encoder=pixels: each token is the tubelet the encoder embeds, in the encoder's token order,
    so the tubelet embedding (a stride = kernel Conv3d) is exactly a linear map of it."""
    from cogarch.modules.perception.model import PerceptionModule
    from cogarch.modules.perception.probe import PixelTubelets

    torch.manual_seed(0)
    model = PerceptionModule(micro()).eval()
    c = model.config
    frames = torch.randn(2, c.num_frames, 3, c.img_size, c.img_size)
    pix = PixelTubelets(c).encode(frames)  # [B, N, tt*3*p*p]
    emb = model.target_encoder.embeddings(frames)  # [B, N, D]
    proj = model.target_encoder.embeddings.patch_embeddings.proj
    w = proj.weight.permute(0, 2, 1, 3, 4).reshape(proj.weight.shape[0], -1)  # [D, tt*C*p*p]
    assert pix.shape[:2] == emb.shape[:2] == (2, c.grid[0] * c.grid[1] * c.grid[2])
    torch.testing.assert_close(pix @ w.T + proj.bias, emb, atol=1e-5, rtol=1e-5)


def test_probe_blocks_see_all_tokens():
    """blocks=1: a self-attention block before the pooler; every token reaches every target's logits."""
    from cogarch.modules.perception.probe import MultiQueryProbe

    torch.manual_seed(0)
    probe = MultiQueryProbe(16, 2, [3, 2], (2, 2, 2), blocks=1)
    assert len(probe.blocks) == 1
    x = torch.randn(4, 8, 16, requires_grad=True)
    logits = probe(x)
    assert [tuple(lg.shape) for lg in logits] == [(4, 3), (4, 2)]
    logits[0][0].sum().backward()
    assert x.grad[0].abs().sum(-1).gt(0).all() and x.grad[1:].abs().sum() == 0  # clips stay independent
    with pytest.raises(ConfigError):
        ProbeConfig(blocks=-1).validate()


def test_probe_feature_cache_reuses_features_and_keys_the_encoder(clips_dir, tmp_path, monkeypatch):
    import cogarch.modules.perception.probe as probe_mod

    cfg = dict(data_dir=str(clips_dir), epochs=1, batch_size=4, pooler_heads=2, random_arch="tiny",
               cache_dir=str(tmp_path / "cache"), encode_batch=2, max_clips=2, progress=False)
    first = json.loads(run(ProbeConfig(encoder="random", seed=0, out=str(tmp_path / "a.json"), **cfg)).read_text())
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 3  # train, val, test

    def no_extract(*a, **k):
        raise AssertionError("features should come from the cache")

    monkeypatch.setattr(probe_mod, "extract", no_extract)
    again = json.loads(run(ProbeConfig(encoder="random", seed=0, out=str(tmp_path / "b.json"), **cfg)).read_text())
    assert {t: r["test_correct"] for t, r in again["targets"].items()} == \
        {t: r["test_correct"] for t, r in first["targets"].items()}
    # another random init is another encoder: it must not hit the seed-0 cache
    with pytest.raises(AssertionError, match="from the cache"):
        run(ProbeConfig(encoder="random", seed=1, out=str(tmp_path / "c.json"), **cfg))


def test_probe_cache_key_follows_the_data_and_the_encoder_files(clips_dir, tmp_path):
    import shutil

    from cogarch.modules.perception.model import PerceptionModule
    from cogarch.modules.perception.probe import _cache_file

    data = tmp_path / "data"
    shutil.copytree(clips_dir, data)
    PerceptionModule(micro()).save_pretrained(tmp_path / "enc")
    cfg = ProbeConfig(encoder=str(tmp_path / "enc"), data_dir=str(data), cache_dir=str(tmp_path / "cache"))
    key = _cache_file(cfg, "train")
    assert _cache_file(cfg, "train") == key and _cache_file(cfg, "val") != key
    state = data / "clips" / "train" / "state.json"
    state.write_text(state.read_text() + " ")  # regenerated data: the split's files change
    assert _cache_file(cfg, "train") != key
    key = _cache_file(cfg, "train")
    (tmp_path / "enc" / "config.json").write_text((tmp_path / "enc" / "config.json").read_text() + "\n")
    assert _cache_file(cfg, "train") != key  # a reconfigured encoder misses too


def test_voe_suite_gives_possible_clips_in_windows(tmp_path, clips_dir):
    """A VoE suite trains perception on its possible clips only, each 32-frame clip as 3 windows
    of 16 consecutive frames (starts 0, 8, 16), cached or not."""
    from datasets import load_from_disk

    from cogarch.evals.world.generate import generate
    from cogarch.video import read_clip

    root = tmp_path / "voe"
    generate("voe", 12, root, seed=1, workers=1, progress=False)
    qs = load_from_disk(str(root / "questions"))["train"]
    possible = {c for c, e in zip(qs["clip_id"], qs["extra"]) if json.loads(e)["possible"]}
    n_train = len(load_from_disk(str(root / "clips"))["train"])
    assert 0 < len(possible) < n_train
    ds = ClipDataset(root, "train", 16, 32, normalize=False, windows=True, possible_only=True)
    assert set(ds.rows["clip_id"]) == possible  # no impossible clip
    assert len(ds) == 3 * len(possible)  # every clip has 32 frames -> windows at 0, 8, 16
    whole = read_clip(root / ds.rows[0]["video"], num_frames=32, fps=8.0, size=32)
    for k, start in enumerate((0, 8, 16)):
        assert torch.allclose(ds[k], whole[start:start + 16], atol=1e-6)
        assert ds.row(k)["clip_id"] == ds.rows[0]["clip_id"] and ds.start(k) == start
    # Labels are indexed from frame 0: a later window refuses them instead of misaligning targets.
    assert ds.annotations(0)["num_frames"] == 32 and ds.objects(0)
    for read in (ds.annotations, ds.objects):
        with pytest.raises(ValueError, match="starting at frame 8"):
            read(1)
    cached = ClipDataset(root, "train", 16, 32, normalize=False, windows=True, possible_only=True, cache=True,
                         cache_workers=0)
    assert len(cached) == len(ds) and torch.allclose(cached[4], ds[4], atol=1e-5)
    assert len(ClipDataset(root, "train", 16, 32)) == n_train  # probes and the object head read every clip
    assert len(ClipDataset(root, "train", 16, 32, possible_only=True)) == len(possible)  # one sample per clip
    # Two selections of equal size share no cache file: possible-only never reads an impossible clip's frames
    kw = dict(normalize=False, max_clips=2, cache=True, cache_workers=0)
    every, only = ClipDataset(root, "train", 16, 32, **kw), ClipDataset(root, "train", 16, 32, possible_only=True, **kw)
    assert every._cache_file != only._cache_file
    assert set(only.rows["clip_id"]) <= possible and set(every.rows["clip_id"]) - possible
    for i in range(2):
        assert torch.allclose(only[i], ClipDataset(root, "train", 16, 32, possible_only=True, normalize=False)[i], atol=1e-5)
    # make_job trains on both folders: physqa-like clips plus the VoE suite's possible windows
    # (T = 4 frames here: a 32-frame clip gives 15 half-overlapping windows)
    cfg = Config(model=micro(), data=DataConfig(data_dir=str(clips_dir), cache=False, extra_dirs=[str(root)], windows=True))
    job = make_job(cfg)
    assert len(job.dataset) == len(ClipDataset(clips_dir, "train", T, S)) + 15 * len(possible)
    assert job.dataset[len(job.dataset) - 1].shape == (T, 3, S, S)
    with pytest.raises(ConfigError, match="extra_dirs repeats"):
        Config(model=micro(), data=DataConfig(data_dir=str(clips_dir), extra_dirs=[str(clips_dir) + "/"])).validate()
