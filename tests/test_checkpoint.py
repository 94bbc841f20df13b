"""Checkpoint files: exact round trips (weights, optimizer, scheduler, RNG), atomicity, rotation,
and one-line errors for truncated or corrupt checkpoints."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from cogarch.checkpoint import (
    LATEST_NAME,
    MODEL_FILE,
    checkpoint_root,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    resume_point,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from cogarch.errors import CheckpointError, UserError


def _trained(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))

    def f(s: int) -> float:
        return 1.0 / (1 + s)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, f)
    for _ in range(3):
        model(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    return model, opt, sched


def _save(out, step, model, opt, sched, keep_last=2):
    return save_checkpoint(out, step, model.state_dict(), opt.state_dict(), sched.state_dict(), [rng_state()],
                           {"epoch": 0, "batch_in_epoch": step}, keep_last=keep_last)


def test_optimizer_and_scheduler_round_trip_is_exact(tmp_path):
    model, opt, sched = _trained()
    path = _save(tmp_path, 3, model, opt, sched)
    ck = load_checkpoint(path)
    assert ck.step == 3 and ck.state["batch_in_epoch"] == 3
    model2, opt2, sched2 = _trained(seed=1)  # different weights and moments
    model2.load_state_dict(ck.model)
    opt2.load_state_dict(ck.optimizer)
    sched2.load_state_dict(ck.scheduler)
    assert sched2.last_epoch == 3 and sched2.get_last_lr() == sched.get_last_lr()
    x = torch.randn(7, 4)
    for m, o, s in ((model, opt, sched), (model2, opt2, sched2)):  # one more identical step each
        m(x).pow(2).mean().backward()
        o.step()
        s.step()
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)
    st = opt2.state_dict()["state"][0]
    assert torch.equal(st["exp_avg_sq"], opt.state_dict()["state"][0]["exp_avg_sq"])
    assert opt2.param_groups[0]["betas"][0] == 0.8


def test_rng_round_trip():
    state = json.loads(json.dumps(rng_state()))  # must survive JSON
    first = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(state)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == again[0] and first[1] == again[1] and torch.equal(first[2], again[2])


def test_tied_weights_are_saved(tmp_path):
    emb = torch.nn.Embedding(5, 3)
    state = {"emb.weight": emb.weight.data, "head.weight": emb.weight.data}  # shared storage
    path = save_checkpoint(tmp_path, 1, state, None, {}, [rng_state()], {"epoch": 0, "batch_in_epoch": 0})
    ck = load_checkpoint(path)
    assert torch.equal(ck.model["emb.weight"], ck.model["head.weight"])
    assert ck.optimizer == {}


def test_rotation_and_latest_pointer(tmp_path):
    model, opt, sched = _trained()
    for step in (10, 20, 30, 40):
        _save(tmp_path, step, model, opt, sched, keep_last=2)
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == ["step_00000030", "step_00000040"]
    assert (checkpoint_root(tmp_path) / LATEST_NAME).read_text().strip() == "step_00000040"
    assert not [p for p in checkpoint_root(tmp_path).iterdir() if p.name.startswith(".")]


def test_leftover_temp_folder_is_ignored(tmp_path):
    model, opt, sched = _trained()
    _save(tmp_path, 20, model, opt, sched)
    # What a SIGKILL during a write leaves behind: a dot-named temp folder with partial files.
    junk = checkpoint_root(tmp_path) / ".step_00000030.tmp-abc123"
    junk.mkdir()
    (junk / MODEL_FILE).write_bytes(b"\x00\x01partial")
    assert latest_checkpoint(tmp_path).name == "step_00000020"
    assert load_checkpoint(latest_checkpoint(tmp_path)).step == 20
    _save(tmp_path, 30, model, opt, sched)  # the next save (main process) sweeps the leftover
    assert not junk.exists() and latest_checkpoint(tmp_path).name == "step_00000030"


def test_failed_write_leaves_nothing(tmp_path):
    model, opt, sched = _trained()
    _save(tmp_path, 10, model, opt, sched)
    with pytest.raises(TypeError):  # an object JSON cannot hold, discovered mid-write
        save_checkpoint(tmp_path, 20, model.state_dict(), None, {"bad": object()}, [rng_state()], {})
    assert sorted(p.name for p in checkpoint_root(tmp_path).iterdir()) == [LATEST_NAME, "step_00000010"]
    assert (checkpoint_root(tmp_path) / LATEST_NAME).read_text().strip() == "step_00000010"


def test_truncated_weights_give_checkpoint_error(tmp_path):
    model, opt, sched = _trained()
    path = _save(tmp_path, 5, model, opt, sched)
    f = path / MODEL_FILE
    f.write_bytes(f.read_bytes()[:-7])
    with pytest.raises(CheckpointError, match="truncated") as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value) and MODEL_FILE in str(e.value)


def test_corrupt_same_size_weights_give_checkpoint_error(tmp_path):
    model, opt, sched = _trained()
    path = _save(tmp_path, 5, model, opt, sched)
    f = path / MODEL_FILE
    data = bytearray(f.read_bytes())
    data[8:16] = b"{garbage"  # same size, broken safetensors JSON header
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_corrupt_state_json_gives_checkpoint_error(tmp_path):
    model, opt, sched = _trained()
    path = _save(tmp_path, 5, model, opt, sched)
    (path / "state.json").write_text('{"step": 5, "fi')
    with pytest.raises(CheckpointError, match="state.json"):
        load_checkpoint(path)


def test_resume_point_policy(tmp_path):
    assert resume_point(tmp_path, resume=True, is_main=True) is None  # nothing yet: start fresh
    model, opt, sched = _trained()
    _save(tmp_path, 7, model, opt, sched)
    with pytest.raises(UserError, match="--resume"):
        resume_point(tmp_path, resume=False, is_main=True)
    assert resume_point(tmp_path, resume=True, is_main=True).step == 7
