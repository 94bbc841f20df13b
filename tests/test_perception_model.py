"""Perception model: context encoder sees only context tokens, EMA only via update(), loss goes down,
fused RoPE == stock VJEPA2 layers, I-JEPA shapes, bus publishing, save/load, collapse monitors."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from cogarch.bus import LatentBus
from cogarch.errors import UserError
from cogarch.modules.perception.config import PerceptionConfig, vjepa2_mask_sets
from cogarch.modules.perception.masking import MaskCollator
from cogarch.modules.perception.model import PerceptionModule

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def micro(**kw) -> PerceptionConfig:
    # 4 frames x 32 px, patch 8, tubelet 2 -> 2 x 4 x 4 = 32 tokens
    base = dict(img_size=32, num_frames=4, patch_size=8, tubelet_size=2, hidden_size=48, depth=2, num_heads=2,
                pred_hidden_size=24, pred_depth=2, pred_num_heads=2, masks=vjepa2_mask_sets(), min_context=2,
                ema_start=0.99, ema_end=0.99, monitor_every=1, monitor_tokens=256, collapse_min_rank=2.0)
    base.update(kw)
    return PerceptionConfig(**base)


def batch_for(cfg: PerceptionConfig, B: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(B, cfg.num_frames, 3, cfg.img_size, cfg.img_size, generator=g)
    return MaskCollator(cfg, g)(list(frames))


def pixel_mask(cfg: PerceptionConfig, idx: torch.Tensor) -> torch.Tensor:
    """[T, H, W] bool: pixels of the tubelets whose flat token index is in idx [n]."""
    T_, H_, W_ = cfg.grid
    tok = torch.zeros(T_ * H_ * W_, dtype=torch.bool)
    tok[idx] = True
    tok = tok.view(T_, H_, W_)
    p, t = cfg.patch_size, cfg.tubelet_size
    return tok.repeat_interleave(t, 0).repeat_interleave(p, 1).repeat_interleave(p, 2)


def test_context_encoder_ignores_masked_pixels():
    torch.manual_seed(0)
    cfg = micro()
    model = PerceptionModule(cfg).eval()
    b = batch_for(cfg)
    frames, enc = b["frames"], b["masks_enc"]
    ref = model.encode_context(frames, enc)
    for i, ctx_idx in enumerate(enc):
        perturbed = frames.clone()
        for s in range(frames.shape[0]):
            visible = pixel_mask(cfg, ctx_idx[s])  # [T, H, W]
            noise = torch.randn_like(perturbed[s]) * 5.0
            perturbed[s] = torch.where(visible[:, None], perturbed[s], perturbed[s] + noise)
        out = model.encode_context(perturbed, enc)
        assert torch.equal(out[i], ref[i])  # bit-identical: masked pixels never enter the context
        # ...whereas the full-clip (target) encoder does see them: the test can fail.
        assert not torch.allclose(model.encode_target(perturbed), model.encode_target(frames))
    # and perturbing one visible tubelet does change the context features
    hit = frames.clone()
    hit[0] += pixel_mask(cfg, enc[0][0, :1])[:, None].float() * 3.0
    assert not torch.allclose(model.encode_context(hit, enc)[0][0], ref[0][0])


def test_fused_rope_matches_stock_layers():
    torch.manual_seed(1)
    cfg = micro()
    model = PerceptionModule(cfg)
    with torch.no_grad():
        for p in model.predictor.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    b = batch_for(cfg, seed=3)
    fused, _ = model(b)
    model.config.fused_rope = False
    stock, _ = model(b)
    assert torch.allclose(fused, stock, atol=1e-5), (float(fused), float(stock))


def test_ema_only_in_update_and_schedule():
    torch.manual_seed(2)
    cfg = micro(ema_start=0.998, ema_end=1.0, ema_steps=100)
    model = PerceptionModule(cfg)
    assert [model.momentum(s) for s in (0, 50, 100, 400)] == pytest.approx([0.998, 0.999, 1.0, 1.0])
    assert PerceptionModule(micro(ema_start=0.99925, ema_end=0.99925)).momentum(10_000) == 0.99925
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    tgt0 = {k: v.clone() for k, v in model.target_encoder.state_dict().items()}
    assert not any(p.requires_grad for p in model.target_encoder.parameters())
    loss, _ = model(batch_for(cfg))
    loss.backward()
    opt.step()
    for k, v in model.target_encoder.state_dict().items():
        assert torch.equal(v, tgt0[k])  # forward / backward / optimizer never touch the target
    ctx = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    assert any(not torch.equal(ctx[k], tgt0[k]) for k in ctx)
    model.update(50)  # m = 0.999
    for k, v in model.target_encoder.state_dict().items():
        assert torch.allclose(v, 0.999 * tgt0[k] + 0.001 * ctx[k], atol=1e-7)


def test_loss_decreases_on_tiny_config():
    torch.manual_seed(3)
    cfg = micro()
    model = PerceptionModule(cfg)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    # Smooth, static clips (low-res colour fields upsampled): masked regions are predictable.
    g = torch.Generator().manual_seed(5)
    low = torch.rand(4, 1, 3, 4, 4, generator=g)
    frames = torch.nn.functional.interpolate(low.flatten(0, 1), size=(32, 32), mode="bilinear").view(4, 1, 3, 32, 32)
    b = MaskCollator(cfg, g)(list(frames.expand(4, 4, 3, 32, 32)))
    losses = []
    for step in range(1, 16):
        loss, metrics = model(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.update(step)
        losses.append(float(loss.detach()))
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses
    assert metrics["target_std"] > 0.05 and metrics["target_rank"] > 2.0


def test_variance_covariance_terms_values_and_training_effect():
    from cogarch.modules.perception.model import variance_covariance

    g = torch.Generator().manual_seed(0)
    white = torch.randn(4, 512, 16, generator=g) * 2.0  # std 2 > 1, uncorrelated
    v, c = variance_covariance([white])
    assert float(v) == 0.0 and float(c) < 0.2
    const = torch.ones(4, 512, 16)  # every token the same: full variance penalty, no covariance
    v, c = variance_covariance([const])
    assert float(v) == pytest.approx(0.99, abs=1e-3) and float(c) == 0.0
    line = torch.randn(4, 512, 1, generator=g) * torch.ones(1, 1, 16) * 2  # 16 copies of one feature
    assert float(variance_covariance([line])[1]) > 10 * float(variance_covariance([white])[1])
    # In a training step the terms join the loss and training lowers them.
    torch.manual_seed(3)
    cfg = micro(var_weight=1.0, cov_weight=0.04)
    model = PerceptionModule(cfg)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    b = batch_for(cfg, B=4, seed=1)
    first = None
    for step in range(1, 11):
        loss, metrics = model(b)
        first = first or metrics["loss_var"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.update(step)
    assert metrics["loss_var"] < first
    with pytest.raises(Exception, match="var_weight"):
        micro(var_weight=-1.0).validate()


def test_collapse_monitor_warns():
    cfg = micro()
    model = PerceptionModule(cfg)
    h = torch.ones(2, 32, 48) + 1e-4 * torch.randn(2, 32, 48)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = model.collapse_monitors(h, [h])
    assert out["target_std"] < 0.01 and any("collapse" in str(w.message) for w in rec)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = model.collapse_monitors(torch.randn(2, 32, 48), [torch.randn(2, 32, 48)])
    assert not rec and out["context_rank"] > 20
    # a healthy target with a collapsed context encoder (every token on one line) still warns
    line = torch.randn(2, 32, 1) * torch.randn(1, 1, 48)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = model.collapse_monitors(torch.randn(2, 32, 48), [line])
    assert out["context_rank"] < 1.5 and any("context-encoder" in str(w.message) for w in rec)


def test_image_mode_shapes():
    cfg = micro(num_frames=1, tubelet_size=1)
    model = PerceptionModule(cfg)
    b = batch_for(cfg, B=3)
    assert b["frames"].shape == (3, 1, 3, 32, 32)
    loss, _ = model(b)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert model.encode(torch.rand(3, 1, 3, 32, 32)).shape == (3, 16, 48)


def test_publish_percept_and_pooling():
    cfg = micro()
    model = PerceptionModule(cfg).eval()
    frames = torch.rand(2, 4, 3, 32, 32)
    bus = LatentBus()
    msg = model.publish(bus, frames)
    assert bus.latest("percept") is msg and msg.source == "perception"
    assert msg.tokens.shape == (2, 32, 48) and msg.meta["grid"] == [2, 4, 4]
    assert msg.time[0].tolist() == [0] * 16 + [1] * 16
    assert torch.allclose(msg.tokens, model.encode(frames))
    pooled = PerceptionModule(dataclasses.replace(cfg, pool_per_step=True))
    pooled.load_state_dict(model.state_dict())
    m2 = pooled.eval().publish(LatentBus(), frames)
    assert m2.tokens.shape == (2, 2, 48) and m2.time.tolist() == [[0, 1], [0, 1]]
    assert torch.allclose(m2.tokens[:, 1], msg.tokens[:, 16:].mean(1), atol=1e-6)
    with pytest.raises(UserError):
        model.step(bus)
    with pytest.raises(UserError):
        model.encode(torch.rand(2, 4, 3, 16, 16))


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(4)
    model = PerceptionModule(micro())
    model.update(7)
    model.save_pretrained(tmp_path / "p")
    assert (tmp_path / "p" / "config.json").is_file() and (tmp_path / "p" / "model.safetensors").is_file()
    loaded = PerceptionModule.from_pretrained(tmp_path / "p")
    assert loaded.config == model.config and loaded._step == 7
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    x = torch.rand(2, 4, 3, 32, 32)
    assert torch.equal(model.eval().encode(x), loaded.eval().encode(x))



def test_inference_only_export_encodes_identically(tmp_path):
    torch.manual_seed(5)
    model = PerceptionModule(micro())
    with torch.no_grad():  # make the EMA target differ from the context encoder, as after training
        for p in model.target_encoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.update(3)
    model.save_pretrained(tmp_path / "full")
    model.save_pretrained(tmp_path / "inf", inference_only=True)
    full_b = (tmp_path / "full" / "model.safetensors").stat().st_size
    inf_b = (tmp_path / "inf" / "model.safetensors").stat().st_size
    assert inf_b < 0.5 * full_b  # target encoder only: no context encoder, no predictor
    loaded = PerceptionModule.from_pretrained(tmp_path / "inf")
    assert loaded._step == 3
    x = torch.rand(2, 4, 3, 32, 32)
    assert torch.equal(model.eval().encode(x), loaded.eval().encode(x))
    bus_a, bus_b = LatentBus(), LatentBus()
    model.step(bus_a, x)
    loaded.step(bus_b, x)
    assert torch.equal(bus_a.latest("percept").tokens, bus_b.latest("percept").tokens)
    # The context encoder restarts from the target weights, so training can continue from it.
    for (ka, a), (kb, b) in zip(loaded.encoder.state_dict().items(), loaded.target_encoder.state_dict().items()):
        assert ka == kb and torch.equal(a, b), ka
