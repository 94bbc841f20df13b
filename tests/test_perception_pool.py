"""Perception's `pool_grid` option: each step's patch grid is average-pooled, order stays time-major."""

from __future__ import annotations

import torch

from cogarch.bus import LatentBus
from cogarch.modules.perception.config import vjepa_tiny
from cogarch.modules.perception.model import PerceptionModule


def test_pool_grid_publishes_pooled_time_major_tokens() -> None:
    torch.manual_seed(0)
    cfg = vjepa_tiny()
    cfg.depth, cfg.pred_depth, cfg.pool_grid = 1, 1, 4
    model = PerceptionModule(cfg).eval()
    frames = torch.rand(2, 16, 3, 64, 64)
    msg = model.publish(LatentBus(), frames)
    assert msg.tokens.shape == (2, 8 * 16, 192) and msg.meta["grid"] == [8, 4, 4]
    assert torch.equal(msg.time[0], torch.arange(8).repeat_interleave(16))
    full = model.encode(frames).view(2, 8, 8, 8, 192)  # [B, T', H', W', D]
    pooled = msg.tokens.view(2, 8, 4, 4, 192)
    # cell (1, 2) of the 4x4 grid = mean of patch rows 2-3, columns 4-5 of the 8x8 grid
    assert torch.allclose(pooled[:, :, 1, 2], full[:, :, 2:4, 4:6].mean((2, 3)), atol=1e-5)
