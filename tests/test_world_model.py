"""World model tests: block-causal mask (via gradients), action conditioning, rollout/surprise
shapes, bus messages, learning on a predictable latent process, save/load, and the leakage rule of
the training data loader (no impossible VoE clip, no eval-split clip)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from cogarch.bus import LatentBus, Message
from cogarch.errors import CheckpointError, ConfigError, UserError
from cogarch.modules.world_model import WorldModel, WorldModelConfig, block_causal_mask
from cogarch.modules.world_model.train import Config, DataConfig, FeatureWindows, make_job, read_shards


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny(**kw) -> WorldModel:
    torch.manual_seed(0)
    cfg = WorldModelConfig(latent_dim=8, hidden_dim=16, depth=2, heads=2, max_steps=8, max_patches=4, **kw)
    return WorldModel(cfg).eval()


def test_mask_pattern():
    m = block_causal_mask(3, 2)
    assert m.shape == (6, 6)
    assert m[0, 1] and m[1, 0]  # same step: full attention
    assert m[2, 0] and not m[0, 2]  # later step sees earlier, not the reverse
    assert m.sum() == 4 + 8 + 12  # step t sees (t+1)*2 keys per query, 2 queries per step


@pytest.mark.parametrize("action_dim,to_tokens", [(0, False), (2, False), (2, True)])
def test_no_step_sees_the_future_gradients(action_dim, to_tokens):
    wm = tiny(action_dim=action_dim, action_to_tokens=to_tokens)
    z = torch.randn(1, 5, 3, 8, requires_grad=True)
    a = torch.randn(1, 5, 2, requires_grad=True) if action_dim else None
    out = wm.predict(z, a)  # [1, 5, 3, 8]
    for t in range(5):
        grads = torch.autograd.grad(out[:, t].sum(), [z] + ([a] if a is not None else []), retain_graph=True)
        gz = grads[0][0].abs().sum(dim=(1, 2))  # per input step
        assert torch.all(gz[t + 1 :] == 0), f"output {t} depends on future latents"
        assert torch.all(gz[: t + 1] > 0), f"output {t} ignores its past"
        if a is not None:
            ga = grads[1][0].abs().sum(dim=1)
            assert torch.all(ga[t + 1 :] == 0) and ga[t] > 0


def test_action_conditioning_changes_predictions():
    wm = tiny(action_dim=2)
    z = torch.randn(2, 3, 8)
    a1, a2 = torch.zeros(2, 4, 2), torch.ones(2, 4, 2)
    r1, r2 = wm.rollout(z, 4, actions=a1), wm.rollout(z, 4, actions=a2)
    assert r1.shape == (2, 4, 8)
    assert (r1 - r2).abs().mean() > 1e-3
    # an unconditioned model ignores actions entirely
    wm0 = tiny()
    assert torch.equal(wm0.rollout(z, 2, actions=a1[:, :2]), wm0.rollout(z, 2, actions=a2[:, :2]))


def test_change_weighted_loss():
    """change_weight=0 is plain L1; > 0 weights tokens by their true change, so an error on the
    one token that moves costs more than the same error on a static token."""
    torch.manual_seed(0)
    target, prev = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 4, 8)
    prev[:, :, 1:] = target[:, :, 1:]  # only token 0 changes
    on_moving, on_static = target.clone(), target.clone()
    on_moving[:, :, 0] += 1.0
    on_static[:, :, 1] += 1.0
    plain, weighted = tiny(), tiny(change_weight=4.0)
    assert torch.allclose(plain._loss(on_moving, target, prev), (on_moving - target).abs().mean())
    assert torch.allclose(plain._loss(on_moving, target, prev), plain._loss(on_static, target, prev))
    # weights: moving token 1 + 4 * 4 = 17, static tokens 1 -> weighted mean over 17 + 3 = 20
    assert torch.allclose(weighted._loss(on_moving, target, prev), torch.tensor(17 / 20))
    assert torch.allclose(weighted._loss(on_static, target, prev), torch.tensor(1 / 20))
    l2 = tiny(loss="l2")
    twice = target.clone()
    twice[:, :, 0] += 2.0
    assert torch.allclose(l2._loss(twice, target, prev), torch.tensor(4.0 / 4))  # (2^2 on 1 of 4 tokens)
    with pytest.raises(ConfigError, match="loss"):
        WorldModelConfig(loss="huber").validate()
    with pytest.raises(ConfigError, match="change_weight"):
        WorldModelConfig(change_weight=-1).validate()
    with pytest.raises(ConfigError, match="action_to_tokens"):
        WorldModelConfig(action_to_tokens=True).validate()


def test_rollout_sliding_window_and_surprise_shapes():
    wm = tiny()
    z = torch.randn(2, 6, 4, 8)
    assert wm.rollout(z, 5).shape == (2, 5, 4, 8)  # 6 + 5 > max_steps=8: sliding window
    s, v = wm.surprise(torch.randn(2, 11, 8))  # longer than max_steps
    assert s.shape == (2, 11) and s[:, 0].eq(0).all() and s[:, 1:].gt(0).all()
    assert v[0].tolist() == [False, False] + [True] * 9
    with pytest.raises(UserError, match="latent width"):
        wm.rollout(torch.randn(1, 2, 7), 1)


def test_step_publishes_forecast_and_surprise():
    wm = tiny()
    bus = LatentBus()
    B, T, P, D = 2, 5, 4, 8
    tok = torch.randn(B, T * P, D)
    time = torch.arange(T).repeat_interleave(P).float().mul(2).expand(B, -1)  # frame index, tubelet 2
    bus.publish(Message("percept", "perception", tok, time=time, meta={"grid": [T, 2, 2]}))
    wm.step(bus)
    fc, sp = bus.latest("forecast"), bus.latest("surprise")
    assert fc.tokens.shape == (B, 4 * P, D) and fc.time[0, ::P].tolist() == [10.0, 12.0, 14.0, 16.0]
    assert sp.tokens.shape == (B, T, 1) and sp.time[0].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert 2 <= sp.meta["peak_step"][0] < T
    # per-step surprise equals the model's own teacher-forced L1 error
    s, _ = wm.surprise(tok.reshape(B, T, P, D))
    assert torch.allclose(sp.tokens[..., 0], s)


def test_object_world_model_reads_slots_and_keeps_units(tmp_path):
    """source=objects: reads the `objects` message (K slot rows per step), publishes a forecast of
    rows in the same units (no layer norm), and a source it does not know is a config error."""
    wm = tiny(source="objects", normalize=False)
    assert wm.reads == ("objects",)
    B, T, K, D = 2, 5, 3, 8
    rows = torch.rand(B, T * K, D)
    time = torch.arange(T).repeat_interleave(K).float().expand(B, -1)
    bus = LatentBus()
    bus.publish(Message("percept", "perception", torch.randn(B, T * 4, D), meta={"grid": [T, 2, 2]}))
    bus.publish(Message("objects", "perception", rows, time=time, meta={"grid": [T, 2, 2], "slots": K}))
    wm.step(bus)
    fc, sp = bus.latest("forecast"), bus.latest("surprise")
    assert fc.tokens.shape == (B, 4 * K, D) and fc.meta["grid"] == [4, K] and fc.meta["source"] == "objects"
    z = rows.reshape(B, T, K, D)
    assert torch.equal(wm.normalize(z), z)  # rows keep their units
    s, _ = wm.surprise(z)
    assert torch.allclose(sp.tokens[..., 0], s)
    # surprise is the L1 error in the rows' own units: a row that jumps makes its step surprising
    jump = z.clone()
    jump[:, 3, 0, :2] += 5.0  # far beyond any error of the untrained predictor: the error must rise
    assert bool((wm.surprise(jump)[0][:, 3] > s[:, 3]).all())
    wm.save_pretrained(tmp_path / "owm")
    back = WorldModel.from_pretrained(tmp_path / "owm")
    assert back.reads == ("objects",) and not back.config.normalize
    with pytest.raises(ConfigError, match="source"):
        WorldModelConfig(source="pixels").validate()


def test_constant_velocity_base_on_chosen_dims(tmp_path):
    """extrapolate_dims: with the network's output zeroed, a rollout continues those dims at
    constant velocity and holds the others (copy-last); the first step has no velocity to use.
    It must be a residual model, and the dims must exist."""
    wm = tiny(source="objects", normalize=False, extrapolate_dims=[1, 2])
    torch.nn.init.zeros_(wm.out_proj.weight)
    torch.nn.init.zeros_(wm.out_proj.bias)
    t = torch.arange(4, dtype=torch.float32)
    z = torch.zeros(1, 4, 1, 8)
    z[..., 0, 0], z[..., 0, 1], z[..., 0, 2] = 3.0 * t, 2.0 * t, -0.5 * t  # dim 0 moves but is not extrapolated
    with torch.no_grad():
        fut = wm.rollout(z, 3)[0, :, 0]  # [3, 8]
        pred = wm.predict(z)[0, :, 0]
    assert torch.allclose(fut[:, 1], torch.tensor([8.0, 10.0, 12.0]))
    assert torch.allclose(fut[:, 2], torch.tensor([-2.0, -2.5, -3.0]))
    assert torch.allclose(fut[:, 0], torch.full((3,), 9.0))  # copy-last off the chosen dims
    assert torch.equal(pred[0], z[0, 0, 0])  # t = 0: nothing to extrapolate from
    # surprise of a clip that moves at constant velocity is zero on the chosen dims only
    still = z.clone()
    still[..., 0] = 0.0
    with torch.no_grad():
        s, _ = wm.surprise(still)
    assert torch.allclose(s[:, 2:], torch.zeros(1, 2)) and float(s[0, 1]) > 0  # step 1 was predicted by copy
    wm.save_pretrained(tmp_path / "cv")  # the mask is rebuilt from the saved config
    back = WorldModel.from_pretrained(tmp_path / "cv")
    assert torch.equal(back.extrap_mask, wm.extrap_mask) and back.config.extrapolate_dims == [1, 2]
    with pytest.raises(ConfigError, match="residual"):
        WorldModelConfig(latent_dim=8, extrapolate_dims=[1], residual=False).validate()
    with pytest.raises(ConfigError, match="outside"):
        WorldModelConfig(latent_dim=8, extrapolate_dims=[8]).validate()


def test_learns_predictable_dynamics_and_beats_copy_last():
    """Latents rotate by a fixed angle each step: learnable, and copy-last is wrong at every step."""
    torch.manual_seed(0)
    wm = WorldModel(WorldModelConfig(latent_dim=8, hidden_dim=32, depth=1, heads=2, max_steps=8, rollout_steps=2))
    c, s = math.cos(0.6), math.sin(0.6)
    rot = torch.eye(8)
    rot[:2, :2] = torch.tensor([[c, -s], [s, c]])

    def batch(n):
        zs = [torch.randn(n, 8)]
        for _ in range(5):
            zs.append(zs[-1] @ rot.T)
        return torch.stack(zs, 1)  # [n, 6, 8]

    opt = torch.optim.AdamW(wm.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        loss, _ = wm({"latents": batch(16)})
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.4 * losses[0]
    wm.eval()
    z = batch(64)
    zn = wm.normalize(z)
    with torch.no_grad():
        pred = wm.rollout(z[:, :3], 3)
    for h in range(3):
        l_model = (pred[:, h] - zn[:, 3 + h]).abs().mean()
        l_copy = (zn[:, 2] - zn[:, 3 + h]).abs().mean()
        assert l_model < 0.75 * l_copy, f"horizon {h + 1}: model {l_model:.3f} vs copy-last {l_copy:.3f}"


def test_save_load_round_trip(tmp_path):
    wm = tiny(action_dim=2)
    wm.save_pretrained(tmp_path / "wm")
    back = WorldModel.from_pretrained(tmp_path / "wm")
    z, a = torch.randn(1, 3, 8), torch.randn(1, 2, 2)
    assert torch.equal(wm.rollout(z, 2, actions=a), back.rollout(z, 2, actions=a))
    assert back.config == wm.config
    with pytest.raises(CheckpointError):
        WorldModel.from_pretrained(tmp_path / "missing")


def _write_shard(path, suite, splits, extras, T=6, D=8, actions=False):
    n = len(splits)
    tensors = {"latents": torch.arange(n, dtype=torch.float32)[:, None, None].expand(n, T, D).contiguous()}
    if actions:
        tensors["actions"] = torch.zeros(n, T, 2)
    meta = {"clip_ids": json.dumps([f"{suite}{i}" for i in range(n)]), "splits": json.dumps(splits),
            "extras": json.dumps(extras), "suite": suite}
    save_file(tensors, str(path), metadata=meta)


def test_training_data_excludes_impossible_and_eval_clips(tmp_path):
    _write_shard(
        tmp_path / "voe.safetensors", "voe",
        ["train", "train", "train", "val", "test", "test_ood"],
        [{"possible": True}, {"possible": False}, {}, {"possible": True}, {"possible": True}, {"possible": True}],
    )
    _write_shard(tmp_path / "physqa.safetensors", "physqa", ["train", "test", "train"], [{}, {}, {"possible": False}])
    shards = read_shards(tmp_path)
    ds = FeatureWindows(shards, ["train"], window=0, stride=1, max_steps=8)
    # allowed: voe0 (possible train) and physqa0 (train, no VoE flag); never voe1 (impossible), voe2
    # (VoE clip without a possible flag), eval-split clips, or a clip flagged impossible elsewhere.
    assert sorted(ds.clip_ids) == ["physqa0", "voe0"]
    seen = {float(ds[i]["latents"][0, 0]) for i in range(len(ds))}
    assert seen == {0.0}  # row 0 of each shard only
    with pytest.raises(ConfigError, match="evaluation split"):
        Config(data=DataConfig(features_dir=str(tmp_path), train_splits=["train", "test"])).validate()


def test_make_job_builds_dataset_and_trains_one_step(tmp_path):
    _write_shard(tmp_path / "p.safetensors", "planning", ["train"] * 3 + ["test"], [{}] * 4, T=6, actions=True)
    cfg = Config(model=WorldModelConfig(latent_dim=8, hidden_dim=16, depth=1, heads=2, max_steps=8, action_dim=2),
                 data=DataConfig(features_dir=str(tmp_path), window=4, window_stride=2))
    job = make_job(cfg)
    assert len(job.dataset) == 3 * 2  # 3 train clips x windows starting at 0, 2
    batch = job.collate_fn([job.dataset[i] for i in range(4)])
    assert batch["latents"].shape == (4, 4, 8) and batch["actions"].shape == (4, 4, 2)
    loss, metrics = job.model(batch)
    loss.backward()
    assert torch.isfinite(loss) and "loss_rollout" in metrics
    with pytest.raises(UserError, match="not found"):
        make_job(Config(data=DataConfig(features_dir=str(tmp_path / "nope"))))


def test_position_target_trains_the_head_on_true_latents_only():
    """position_weight > 0: the head learns from the TRUE latents; the term on the predictions
    sends gradient to the predictions (the world model) but not to the head."""
    wm = tiny(position_weight=1.0)
    head = wm.position_head
    torch.manual_seed(1)
    pred = torch.randn(2, 3, 4, 8, requires_grad=True)
    target, pos = torch.randn(2, 3, 4, 8), torch.rand(2, 3, 2)
    wm._position_loss(pred, target, pos).backward()
    both = [p.grad.clone() for p in head.parameters()]
    assert pred.grad.abs().sum() > 0
    head.zero_grad()
    (head(target) - pos).abs().mean().backward()
    for g_both, p in zip(both, head.parameters()):
        torch.testing.assert_close(g_both, p.grad)
    # Through the full objective: the batch's positions are read and logged; missing ones are an error.
    z = torch.randn(2, 5, 4, 8)
    loss, metrics = wm.train()({"latents": z, "positions": torch.rand(2, 5, 2)})
    assert torch.isfinite(loss) and metrics["loss_position"] > 0
    with pytest.raises(UserError, match="positions"):
        wm({"latents": z})
    assert tiny().position_head is None


def test_position_head_learns_where_the_object_is():
    """The soft-argmax head reads a marked token's slot: anchors become the slots' positions."""
    torch.manual_seed(0)
    wm = tiny(position_weight=1.0)
    head = wm.position_head
    where = torch.randint(0, 4, (256,))
    z = 0.1 * torch.randn(256, 4, 8)
    z[torch.arange(256), where, 0] += 3.0
    slot_xy = torch.tensor([[0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.9]])
    opt = torch.optim.Adam(head.parameters(), lr=3e-2)
    for _ in range(300):
        loss = (head(z) - slot_xy[where]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float((head(z) - slot_xy[where]).abs().mean()) < 0.05


def test_forecast_readout_rules():
    """evals/bench/forecast_readout.py's fixed rule (a diagnostic of what the forecast carries)."""
    from cogarch.evals.bench.forecast_readout import readout, slot_of

    names = [["red", "green"], ["cube", "sphere"], ["rubber", "metal"]]
    ident = torch.tensor([[0.9, 0.1, 0.8, 0.2, 0.7, 0.3], [0.1, 0.9, 0.3, 0.7, 0.2, 0.8], [0.9, 0.1, 0.9, 0.1, 0.9, 0.1]])
    present = torch.tensor([True, True, False])
    assert slot_of("red rubber cube", ident, names, present) == 0  # slot 2 matches better but is absent
    assert slot_of("green metal sphere", ident, names, present) == 1
    assert slot_of("blue metal sphere", ident, names, present) == -1
    xy = torch.tensor([[[10.0, 10.0], [40.0, 10.0], [60.0, 60.0]], [[30.0, 10.0], [40.0, 10.0], [60.0, 60.0]],
                       [[70.0, 10.0], [40.0, 10.0], [60.0, 60.0]]])  # [H=3, K=3, 2]
    inside = ((xy >= 0) & (xy <= 64)).all(-1)
    slots = {"a": 0, "b": 1, "choices": [2, 1]}
    assert readout("pred_exit", [], slots, xy, inside, 10.0) == "yes"
    assert readout("pred_exit", [], {"a": 1}, xy, inside, 10.0) == "no"
    assert readout("pred_collide", [], slots, xy, inside, 10.0) == "no"  # 10 px apart: not within
    assert readout("pred_collide", [], slots, xy, inside, 12.0) == "yes"
    assert readout("pred_next_hit", ["far one", "near one"], slots, xy, inside, 12.0) == "near one"


def test_slot_readout_rules():
    """evals/bench/slot_readout.py's fixed rules on observed rows (a diagnostic of what the slots carry)."""
    from cogarch.evals.bench.slot_readout import names_in, readout, true_rows

    # three objects over T=3 steps: A moves right into B (contact at the last step), C leaves the canvas
    xy = torch.tensor([[[10.0, 10.0], [40.0, 10.0], [50.0, 50.0]], [[25.0, 10.0], [40.0, 10.0], [60.0, 60.0]],
                       [[33.0, 10.0], [40.0, 10.0], [70.0, 60.0]]])
    on = ((xy >= 0) & (xy <= 64)).all(-1)
    speed = torch.tensor([64.0, 0.5, 80.0])
    kinds = {"shape": ["cube", "cube", "sphere"], "material": ["rubber", "metal", "metal"]}
    ids = {"red rubber cube": 0, "blue metal cube": 1, "green metal sphere": 2}

    def ask(template: str, q: str, choices: list[str] = (), contact: float = 10.0) -> str:
        return readout(template, q, list(choices), lambda n: ids.get(n, -1), xy, on, speed, kinds, contact)

    assert ask("desc_count", "How many cubes are there?") == "2"
    assert ask("desc_count", "How many metal objects are there?") == "2"
    assert ask("desc_moving_end", "Is the red rubber cube moving at the end of the video?") == "yes"
    assert ask("desc_moving_end", "Is the blue metal cube moving at the end of the video?") == "no"  # 0.5 < MOVING_SPEED
    assert ask("desc_moving_end", "Is the green metal sphere moving at the end of the video?") == "no"  # off the canvas
    assert ask("desc_exit", "Does the green metal sphere leave the scene?") == "yes"
    assert ask("desc_exit", "Does the red rubber cube leave the scene?") == "no"
    assert ask("desc_collide", "Does the red rubber cube collide with the blue metal cube?") == "yes"  # 7 px
    assert ask("desc_collide", "Does the red rubber cube collide with the blue metal cube?", contact=5.0) == "no"
    assert ask("desc_count_collisions", "How many pairs of objects collide?") == "1"
    assert ask("desc_first_hit", "Which object does the red rubber cube hit first?",
               ["green metal sphere", "blue metal cube"]) == "blue metal cube"
    assert ask("desc_which_moving", "Which object is still moving at the end of the video?",
               ["blue metal cube", "red rubber cube", "green metal sphere"]) == "red rubber cube"
    assert ask("desc_which_exits", "Which object leaves the scene?",
               ["red rubber cube", "green metal sphere"]) == "green metal sphere"
    assert ask("desc_exit", "Does the purple rubber cube leave the scene?") == "?"  # not among the slots
    ids["purple rubber cube"] = 0  # two names found on one slot: no answer (not a distance of 0)
    assert ask("desc_collide", "Does the red rubber cube collide with the purple rubber cube?") == "?"
    assert names_in("desc_collide", "Does the a b c collide with the d e f?") == ["a b c", "d e f"]
    # the simulator's tracks at the end of each latent step (16 observed frames, 8 steps: frames 1, 3, ..., 15)
    objects = [{"id": 4, "color": "red", "material": "rubber", "shape": "cube"}]
    track = {"pos": [[float(f), 5.0] for f in range(20)], "in_view": [True] * 15 + [False] * 5,
             "vel": [[3.0, 4.0]] * 20}
    t_xy, t_on, t_speed, t_kinds, t_find = true_rows(objects, {"tracks": {"4": track}, "observed_frames": 16}, 8)
    assert t_xy[:, 0, 0].tolist() == [1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0]
    assert t_on[:, 0].tolist() == [True] * 7 + [False] and float(t_speed[0]) == 5.0
    assert t_find("red rubber cube") == 0 and t_find("blue rubber cube") == -1 and t_kinds["shape"] == ["cube"]
