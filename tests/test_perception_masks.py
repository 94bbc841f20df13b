"""Perception masking: V-JEPA multi-block 3-D mask statistics, disjointness, full-time blocks, collate."""

from __future__ import annotations

import torch

from cogarch.modules.perception.config import MaskSetConfig, ijepa_tiny, vjepa_tiny
from cogarch.modules.perception.masking import MaskCollator, sample_block_size, sample_mask_set, sample_target_union


def test_block_size_matches_scale_and_aspect():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        t, h, w = sample_block_size((8, 8, 8), MaskSetConfig(num_blocks=8, spatial_scale=[0.15, 0.15]), g)
        assert t == 8  # temporal_scale 1.0: every block spans all time steps
        assert 6 <= h * w <= 12 and 0.5 <= h / w <= 2.0  # ~0.15 * 64 = 9.6 tokens, ar in [0.75, 1.5]
        t, h, w = sample_block_size((8, 8, 8), MaskSetConfig(num_blocks=2, spatial_scale=[0.7, 0.7]), g)
        assert h < 8 and w < 8 and h * w >= 30  # strictly inside the frame, ~0.7 * 64 = 44.8


def test_blocks_span_all_frames():
    g = torch.Generator().manual_seed(1)
    union = sample_target_union(16, (8, 8, 8), (8, 3, 3), 8, g)  # [B, T, H, W]
    assert union.any()
    assert torch.equal(union, union[:, :1].expand_as(union))  # same spatial pattern at every t


def test_mask_ratio_disjoint_sorted_equal_counts():
    cfg = vjepa_tiny()
    col = MaskCollator(cfg, torch.Generator().manual_seed(0))
    N = cfg.num_tokens
    ratios = [[], []]
    out = col([torch.zeros(16, 3, 64, 64) for _ in range(2)])
    assert out["frames"].shape == (2, 16, 3, 64, 64) and len(out["masks_enc"]) == len(out["masks_pred"]) == 2
    for _ in range(40):
        masks_enc, masks_pred = col.sample(8)
        for i, (c, t) in enumerate(zip(masks_enc, masks_pred)):
            assert c.dtype == torch.long and c.shape[0] == 8 and t.shape[0] == 8
            assert c.shape[1] >= cfg.min_context
            for cb, tb in zip(c, t):
                assert not set(cb.tolist()) & set(tb.tolist())  # context and target disjoint
                assert torch.all(cb[1:] > cb[:-1]) and torch.all(tb[1:] > tb[:-1])  # sorted, unique
                assert int(cb.max()) < N and int(tb.max()) < N
            ratios[i].append(1.0 - c.shape[1] / N)
    short, long_ = sum(ratios[0]) / 40, sum(ratios[1]) / 40
    # Long-range set (2 x 0.7): ~90% masked as in V-JEPA; short-range (8 x 0.15 union) masks ~74% on
    # an 8x8 grid (blocks overlap); the same numbers the reference sampler gives for these settings.
    assert 0.86 <= long_ <= 0.95, long_
    assert 0.66 <= short <= 0.82, short
    assert 0.78 <= (short + long_) / 2 <= 0.88


def test_mask_sampling_is_seeded():
    cfg = vjepa_tiny()
    a = sample_mask_set(4, cfg.grid, cfg.masks[0], 4, torch.Generator().manual_seed(7))
    b = sample_mask_set(4, cfg.grid, cfg.masks[0], 4, torch.Generator().manual_seed(7))
    c = sample_mask_set(4, cfg.grid, cfg.masks[0], 4, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not (a[0].shape == c[0].shape and torch.equal(a[0], c[0]))


def test_image_mode_masks_and_dict_samples():
    cfg = ijepa_tiny()
    assert cfg.grid == (1, 8, 8)
    col = MaskCollator(cfg, torch.Generator().manual_seed(0))
    out = col([{"frames": torch.zeros(1, 3, 64, 64), "index": torch.tensor(i), "name": f"c{i}"} for i in range(4)])
    assert out["index"].tolist() == [0, 1, 2, 3] and out["name"] == ["c0", "c1", "c2", "c3"]
    for c, t in zip(out["masks_enc"], out["masks_pred"]):
        assert int(torch.cat([c, t], 1).max()) < 64


def test_future_set_predicts_the_next_steps_from_the_past():
    cfg = vjepa_tiny()  # grid 8 x 8 x 8
    mset = MaskSetConfig(future=2)
    P = 64
    g = torch.Generator().manual_seed(3)
    cuts = set()
    for _ in range(60):
        c, t = sample_mask_set(3, cfg.grid, mset, cfg.min_context, g)
        cut = c.shape[1] // P
        assert c.shape[1] == cut * P and 1 <= cut <= 7
        assert torch.equal(c, torch.arange(cut * P).expand(3, -1))  # every token of steps < cut
        assert torch.equal(t, torch.arange(cut * P, min(8, cut + 2) * P).expand(3, -1))  # the next 2 steps
        cuts.add(cut)
    assert cuts == set(range(1, 8))  # every cut is drawn


def test_future_set_validation():
    import pytest

    from cogarch.errors import ConfigError

    cfg = vjepa_tiny()
    cfg.masks = [MaskSetConfig(future=-1)]
    with pytest.raises(ConfigError, match=r"masks\[0\]\.future"):
        cfg.validate()
    cfg = vjepa_tiny()
    cfg.masks, cfg.num_frames = [MaskSetConfig(future=1)], 2
    with pytest.raises(ConfigError, match="future mask sets"):
        cfg.validate()
