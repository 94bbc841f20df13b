"""Perception <-> transformers V-JEPA 2 format: import a stock VJEPA2Model folder, export ours so that
stock `VJEPA2Model.from_pretrained` reproduces our encoder and predictor outputs."""

from __future__ import annotations

import pytest
import torch
from transformers import VJEPA2Model

from cogarch.errors import CheckpointError
from cogarch.modules.perception.config import PerceptionConfig, to_hf_config, vjepa2_mask_sets
from cogarch.modules.perception.hf_interop import export_hf, load_hf_pretrained
from cogarch.modules.perception.masking import MaskCollator
from cogarch.modules.perception.model import PerceptionModule, gather_tokens


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # micro tensors; avoids OpenMP spin-waits on a shared machine
    yield
    torch.set_num_threads(n)


def micro() -> PerceptionConfig:
    return PerceptionConfig(img_size=32, num_frames=4, patch_size=8, tubelet_size=2, hidden_size=48, depth=2,
                            num_heads=2, pred_hidden_size=24, pred_depth=2, pred_num_heads=2,
                            masks=vjepa2_mask_sets(), min_context=2)


def _compare(ours: PerceptionModule, stock: VJEPA2Model, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 3, 32, 32, generator=g)
    with torch.no_grad():
        mine = ours.encode(x, normalized=True)
        theirs = stock(x, skip_predictor=True).last_hidden_state
        assert mine.shape == theirs.shape == (2, 32, 48)
        assert torch.allclose(mine, theirs, atol=1e-5)
        b = MaskCollator(ours.config, g)(list(x))
        ci, ti = b["masks_enc"][1], b["masks_pred"][1]
        # stock predictor: encoder on the full clip, context gathered afterwards, mask token 1
        ref = stock(x, context_mask=[ci], target_mask=[ti]).predictor_output.last_hidden_state
        pred = ours.predict(gather_tokens(mine, ci), ci, ti, mask_index=1)
        assert torch.allclose(pred, ref, atol=1e-5)


def test_export_loads_in_stock_transformers(tmp_path):
    torch.manual_seed(0)
    model = PerceptionModule(micro()).eval()
    with torch.no_grad():  # make target, context and predictor all distinct and non-trivial
        for p in list(model.target_encoder.parameters()) + list(model.predictor.parameters()):
            p.add_(torch.randn_like(p) * 0.02)
    export_hf(model, tmp_path / "hf")
    stock, info = VJEPA2Model.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    _compare(model, stock.eval(), seed=1)
    # the exported encoder is the EMA target, not the context encoder
    ctx_w = model.encoder.layer[0].attention.query.weight
    assert not torch.allclose(stock.encoder.layer[0].attention.query.weight, ctx_w)


def test_import_stock_folder(tmp_path):
    torch.manual_seed(1)
    stock = VJEPA2Model(to_hf_config(micro())).eval()
    with torch.no_grad():
        stock.predictor.embeddings.mask_tokens.normal_(0, 0.02)
    stock.save_pretrained(tmp_path / "stock")
    ours = load_hf_pretrained(tmp_path / "stock").eval()
    assert ours.config.hidden_size == 48 and ours.config.pred_depth == 2 and ours.config.num_frames == 4
    for a, b in zip(ours.encoder.state_dict().values(), ours.target_encoder.state_dict().values()):
        assert torch.equal(a, b)  # context and target both start from the released encoder
    _compare(ours, stock, seed=2)
    # and back out again: a second export reloads to the same weights
    export_hf(ours, tmp_path / "again")
    again = VJEPA2Model.from_pretrained(tmp_path / "again").eval()
    for (k, v), (k2, v2) in zip(stock.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k


def test_import_errors(tmp_path):
    with pytest.raises(CheckpointError):
        load_hf_pretrained(tmp_path)  # no config.json
    to_hf_config(micro()).save_pretrained(tmp_path / "noweights")
    with pytest.raises(CheckpointError):
        load_hf_pretrained(tmp_path / "noweights")
