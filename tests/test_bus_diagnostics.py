"""Diagnostics that tell whether the language module reads the video: the clip-swap control of
`ablate_kinds --swap-clips` (cogarch.evalglue.partner_clip) and the bus_info probe's AUROC."""

import numpy as np
import pytest
import torch

from cogarch.errors import UserError
from cogarch.evalglue import partner_clip
from cogarch.evals.bench.bus_info import AttentiveProbe, auroc


def test_partner_clip_is_a_fixed_derangement(tmp_path):
    names = ["c.mp4", "a.mp4", "b.mp4", "notes.txt"]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    clips = [str(tmp_path / n) for n in ("a.mp4", "b.mp4", "c.mp4")]
    partners = [partner_clip(c) for c in clips]
    assert partners == [clips[1], clips[2], clips[0]]  # next in sorted order, cyclic; never itself
    assert sorted(partners) == sorted(clips)  # a permutation of the split's clips
    assert partner_clip(clips[0]) == partners[0]  # deterministic


def test_partner_clip_needs_two_clips(tmp_path):
    (tmp_path / "only.mp4").write_bytes(b"x")
    with pytest.raises(UserError, match="at least two"):
        partner_clip(str(tmp_path / "only.mp4"))


def test_auroc_known_values():
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    perfect = np.array([[0.9, 0.1], [0.8, 0.7], [0.1, 0.2], [0.2, 0.9]])
    assert auroc(perfect, y) == pytest.approx(1.0)
    assert auroc(-perfect, y) == pytest.approx(0.0)
    half = np.array([[0.9, 0.5], [0.1, 0.5], [0.8, 0.5], [0.2, 0.5]])  # column 0: 2 of 4 pairs right
    assert auroc(half[:, :1], y[:, :1]) == pytest.approx(0.5)


def test_attentive_probe_learns_a_token_feature():
    # Label = whether any token has feature 0 > 1: the probe must attend, not average.
    torch.manual_seed(0)
    x = torch.randn(256, 16, 8)
    y = (x[..., 0] > 1.5).any(1).float()[:, None]
    net = AttentiveProbe(8, 1, queries=2, width=16)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    first = None
    for _ in range(150):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.6 * first
    assert auroc(net(x).detach().numpy(), y.numpy()) > 0.85
