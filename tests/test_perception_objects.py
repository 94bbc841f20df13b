"""Perception's object slots (modules/perception/objects.py, objects_train.py): set targets from the
simulator's annotations, Hungarian matching, the published token layout, training through the generic
trainer (loss goes down), the exported folder's round trip, and the language adapter's per-kind pooling."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from cogarch.bus import LatentBus
from cogarch.errors import ConfigError, UserError
from cogarch.modules.perception.config import PerceptionConfig, vjepa2_mask_sets
from cogarch.modules.perception.model import PerceptionModule
from cogarch.modules.perception.objects import ObjectHead, clip_targets, match, set_loss
from cogarch.modules.perception.objects_train import Config, collate, load_with_head, make_job

T, S = 4, 32
VOCAB = (["red", "blue", "green"], ["cube", "sphere"], ["rubber", "metal"])


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _track(xs, ys, vis):
    return {"pos": [[x, y] for x, y in zip(xs, ys)], "vel": [[8.0, 0.0]] * len(xs), "visible": vis}


def _clip(i: int):
    """A red cube moving right; a blue sphere (clips with odd i) or a green cube standing still."""
    frames = np.full((T, S, S, 3), 200, np.uint8)
    xs = [4.0 + 2 * t for t in range(T)]
    second = ("blue", "sphere") if i % 2 else ("green", "cube")
    rgb = (42, 75, 215) if i % 2 else (40, 160, 60)
    for t in range(T):
        frames[t, 12:18, int(xs[t]):int(xs[t]) + 6] = (173, 35, 35)
        frames[t, 2:8, 22:28] = rgb
    objects = [{"id": 0, "color": "red", "shape": "cube", "material": "rubber"},
               {"id": 1, "color": second[0], "shape": second[1], "material": "metal"}]
    ann = {"observed_frames": T, "num_frames": T,
           "tracks": {"0": _track(xs, [15.0] * T, [1] * T), "1": _track([25.0] * T, [5.0] * T, [1] * T)}}
    return frames, ann, objects


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory, write_clip_suite):
    return write_clip_suite(tmp_path_factory.mktemp("objclips"), {"train": [_clip(i) for i in range(8)],
                                                                  "val": [_clip(i) for i in range(2)]})


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = PerceptionConfig(img_size=S, num_frames=T, patch_size=8, tubelet_size=2, hidden_size=48, depth=2,
                           num_heads=2, pred_hidden_size=24, pred_depth=2, pred_num_heads=2,
                           masks=vjepa2_mask_sets(), min_context=2, object_colors=list(VOCAB[0]),
                           object_shapes=list(VOCAB[1]), object_materials=list(VOCAB[2]))
    path = tmp_path_factory.mktemp("enc") / "perception"
    PerceptionModule(cfg).save_pretrained(path)
    return path


def test_clip_targets_from_annotations():
    _, ann, objects = _clip(1)
    y = clip_targets(objects, ann, 2, VOCAB)
    assert y["color"].tolist() == [0, 1] and y["shape"].tolist() == [0, 1] and y["material"].tolist() == [0, 1]
    # step t' is read at the last frame of its tubelet: frames 1 and 3
    assert torch.allclose(y["pos"][0, :, 0], torch.tensor([6.0, 10.0]) / 64) and y["pos"].shape == (2, 2, 2)
    assert torch.allclose(y["vel"][0, 0], torch.tensor([8.0, 0.0]) / 32)
    ann["tracks"]["1"]["visible"] = [0, 0, 0, 0]  # never seen: not a target
    assert clip_targets(objects, ann, 2, VOCAB)["color"].tolist() == [0]
    ann["tracks"]["1"]["visible"] = [0, 0, 0, 1]  # seen only in the last frame: visible at step 1 only
    assert clip_targets(objects, ann, 2, VOCAB)["visible"][1].tolist() == [0.0, 1.0]
    # the encoder reads only the first frames_seen frames: truth is taken there, not over all observed
    y2 = clip_targets(objects, ann, 1, VOCAB, frames_seen=2)
    assert torch.allclose(y2["pos"][0, 0, 0], torch.tensor(6.0 / 64)) and y2["color"].tolist() == [0]  # frame 1
    objects[0]["color"] = "purple"
    with pytest.raises(ValueError, match="purple"):
        clip_targets(objects, ann, 2, VOCAB)


def _perfect_output(y: dict, order: list[int], K: int) -> dict:
    """Slot order[m] predicts object m exactly (confident logits); other slots predict nothing."""
    M, Tn = y["color"].numel(), y["visible"].shape[1]
    out = {"exist": torch.full((1, K), -8.0), "color": torch.zeros(1, K, 3), "shape": torch.zeros(1, K, 2),
           "material": torch.zeros(1, K, 2), "visible": torch.full((1, K, Tn), -8.0),
           "pos": torch.zeros(1, K, Tn, 2), "vel": torch.zeros(1, K, Tn, 2)}
    for m in range(M):
        k = order[m]
        out["exist"][0, k] = 8.0
        for key in ("color", "shape", "material"):
            out[key][0, k, y[key][m]] = 8.0
        out["visible"][0, k] = y["visible"][m] * 16 - 8
        out["pos"][0, k], out["vel"][0, k] = y["pos"][m], y["vel"][m]
    return out


def test_hungarian_matching_finds_the_permutation_and_loss_is_minimal():
    _, ann, objects = _clip(1)
    y = clip_targets(objects, ann, 2, VOCAB)
    out = _perfect_output(y, order=[3, 1], K=4)
    (slots, objs), = match(out, [y])
    assert dict(zip(objs.tolist(), slots.tolist())) == {0: 3, 1: 1}
    loss, metrics = set_loss(out, [y])
    assert float(loss) < 0.01 and metrics["color_acc"] == 1.0 and metrics["count_acc"] == 1.0
    shuffled = _perfect_output(y, order=[1, 3], K=4)  # the same set in other slots: same loss
    assert abs(float(set_loss(shuffled, [y])[0]) - float(loss)) < 1e-6
    wrong = _perfect_output(y, order=[3, 1], K=4)
    wrong["color"][0, 3] = wrong["color"][0, 3].roll(1)
    assert float(set_loss(wrong, [y])[0]) > float(loss) + 1.0


def test_published_tokens_layout_and_gating():
    _, ann, objects = _clip(0)
    y = clip_targets(objects, ann, 2, VOCAB)
    out = _perfect_output(y, order=[0, 2], K=3)
    rows, time = ObjectHead.tokens(out)
    assert rows.shape == (1, 2 * 3, 3 + 2 + 2 + 5) and time.tolist() == [[0, 0, 0, 1, 1, 1]]
    step1_slot2 = rows[0, 3 + 2]  # time-major: step 1, slot 2 = object 1 (green cube, metal)
    assert [step1_slot2[:3].argmax().item(), step1_slot2[3:5].argmax().item(), step1_slot2[5:7].argmax().item()] == [2, 0, 1]
    assert abs(float(step1_slot2[7]) - 1.0) < 1e-3  # visible
    assert torch.allclose(step1_slot2[8:10], y["pos"][1, 1], atol=1e-3)
    assert float(rows[0, 1].abs().max()) < 1e-3  # an empty slot is a zero row, as in the oracle

    # `ask --explain` names the seen objects and where they were first and last seen
    from cogarch.api import objects_evidence
    from cogarch.bus import Message

    msg = Message("objects", "perception", rows, time=time,
                  meta={"slots": 3, "colors": VOCAB[0], "shapes": VOCAB[1], "materials": VOCAB[2]})
    ev = objects_evidence(msg)
    assert [(d["color"], d["material"], d["shape"]) for d in ev] == [("red", "rubber", "cube"), ("green", "metal", "cube")]
    assert ev[0]["steps"] == [0, 1] and ev[0]["first_xy"] == [6.0, 15.0] and ev[0]["last_xy"] == [10.0, 15.0]


def _row(color: int, shape: int, material: int, xy: tuple[float, float], gate: float = 1.0) -> torch.Tensor:
    ident = torch.zeros(7)
    ident[color], ident[3 + shape], ident[5 + material] = 1.0, 1.0, 1.0
    return torch.cat([ident, torch.tensor([1.0, xy[0] / 64, xy[1] / 64, 0.0, 0.0])]) * gate


def test_forecast_evidence_names_where_objects_go_and_predicted_contacts():
    """`ask --explain` over an object world model's forecast: the red cube is predicted to reach
    the green sphere at future step 2, then to leave the view; the sphere stays."""
    from cogarch.api import forecast_objects_evidence
    from cogarch.bus import Message

    red = lambda xy, g=1.0: _row(0, 0, 0, xy, g)  # noqa: E731
    green = lambda xy, g=1.0: _row(2, 1, 1, xy, g)  # noqa: E731
    seen = torch.stack([torch.stack([red((10, 10)), green((40, 10))]), torch.stack([red((20, 10)), green((40, 10))])])
    fut = torch.stack([torch.stack([red((30, 10)), green((40, 10))]), torch.stack([red((36, 10)), green((40, 10))]),
                       torch.stack([red((70, 10), 0.1), green((40, 10))])])  # [H=3, K=2, 12]
    meta = {"slots": 2, "canvas": 64.0, "colors": VOCAB[0], "shapes": VOCAB[1], "materials": VOCAB[2]}
    objects = Message("objects", "perception", seen.reshape(1, 4, 12), meta=meta)
    forecast = Message("forecast", "world_model", fut.reshape(1, 6, 12), meta={"grid": [3, 2], "source": "objects"})
    ev = forecast_objects_evidence(forecast, objects)
    by = {d["object"]: d for d in ev["objects"]}
    assert set(by) == {"red rubber cube", "green metal sphere"}
    assert by["red rubber cube"]["leaves_view"] and by["red rubber cube"]["predicted_xy"] == [36.0, 10.0]
    assert by["red rubber cube"]["last_predicted_step"] == 2 and by["green metal sphere"]["last_predicted_step"] == 3
    assert not by["green metal sphere"]["leaves_view"] and by["green metal sphere"]["predicted_xy"] == [40.0, 10.0]
    assert ev["contacts"] == [{"objects": ["red rubber cube", "green metal sphere"], "step": 2}]
    # two objects already together when the clip ends are not a predicted contact
    seen[-1, 0] = red((38, 10))
    objects = Message("objects", "perception", seen.reshape(1, 4, 12), meta=meta)
    assert forecast_objects_evidence(forecast, objects)["contacts"] == []


def test_step_readout_reads_only_its_own_step():
    """head.step_layers > 0: given the slot vectors, step t's track depends on step t's tokens
    only (so a sudden change at one step is not smoothed over the clip); 0 keeps v8's clip-level
    track, which reads no token at all once the slots exist."""
    torch.manual_seed(0)
    grid = (4, 2, 2)
    head = ObjectHead(16, grid, slots=3, hidden=16, layers=1, heads=2, blocks=0, classes=(3, 2, 2), step_layers=1)
    s = torch.randn(2, 3, 16)
    x = torch.randn(2, 4 * 2 * 2, 16, requires_grad=True)
    tr = head.read_tracks(s, x)
    assert tr.shape == (2, 3, 4, 5)
    tr[:, :, 2].sum().backward()
    g = x.grad.view(2, 4, 4, 16).abs().sum(dim=(0, 2, 3))  # per step
    assert float(g[2]) > 0 and float(g[[0, 1, 3]].sum()) == 0.0
    clip = ObjectHead(16, grid, slots=3, hidden=16, layers=1, heads=2, blocks=0, classes=(3, 2, 2))
    assert clip.read_tracks(s, x).shape == (2, 3, 4, 5) and not hasattr(clip, "step_decoder")
    assert head(torch.randn(2, 16, 16))["pos"].shape == (2, 3, 4, 2)


def test_pixel_branch_reads_each_steps_own_frames():
    """head.pixels > 0: a CNN map of the frames is added to the tokens at the patch grid. Step t's
    memory depends on the frames of step t's tubelet only, and the map changes the slots; a head
    with the branch refuses to run without frames or with frames of the wrong shape."""
    torch.manual_seed(0)
    grid, tubelet, patch = (4, 2, 2), 2, 8
    head = ObjectHead(16, grid, slots=3, hidden=16, layers=1, heads=2, blocks=0, classes=(3, 2, 2),
                      pixels=4, patch=patch, tubelet=tubelet)
    assert len([m for m in head.stem if isinstance(m, torch.nn.Conv2d)]) == 4  # log2(8) stride-2 convs + 1x1
    x = torch.zeros(2, 16, 16)
    frames = torch.randn(2, 8, 3, 16, 16, requires_grad=True)
    mem = head.with_pixels(x, frames)
    assert mem.shape == (2, 16, 16)
    mem.view(2, 4, 4, 16)[:, 1].sum().backward()  # step 1 reads frames 2 and 3
    g = frames.grad.abs().sum(dim=(0, 2, 3, 4))
    assert float(g[2]) > 0 and float(g[3]) > 0 and float(g[[0, 1, 4, 5, 6, 7]].sum()) == 0.0
    # One token (t', h', w') on a non-square grid reads only its tubelet's frames, near its patch:
    # map cell j spans pixels 8j-7 .. 8j+7 (three stride-2 3x3 convolutions, padding 1).
    wide = ObjectHead(16, (2, 2, 3), slots=3, hidden=16, layers=1, heads=2, blocks=0, classes=(3, 2, 2),
                      pixels=4, patch=patch, tubelet=tubelet)
    f = torch.randn(1, 4, 3, 16, 24, requires_grad=True)
    wide.with_pixels(torch.zeros(1, 12, 16), f).view(1, 2, 2, 3, 16)[0, 1, 1, 2].sum().backward()
    g = f.grad[0].abs().sum(dim=1)  # [T, H, W]
    assert float(g[:2].sum()) == 0.0 and float(g[2:].sum()) > 0  # step 1 = frames 2, 3
    rows, cols = g[2:].sum(dim=(0, 2)).nonzero().flatten(), g[2:].sum(dim=(0, 1)).nonzero().flatten()
    assert int(rows.min()) >= 1 and int(rows.max()) <= 15 and int(cols.min()) >= 9 and int(cols.max()) <= 23
    tokens = torch.randn(2, 16, 16)
    with torch.no_grad():
        a, b = head(tokens, frames), head(tokens, frames + 1.0)
    assert not torch.allclose(a["exist"], b["exist"])
    with pytest.raises(ValueError, match="pass the clip's frames"):
        head(tokens)
    with pytest.raises(ValueError, match="expected"):
        head(tokens, frames[:, :6])
    with pytest.raises(ConfigError, match="power-of-two"):
        PerceptionConfig(object_slots=2, object_pixels=4, img_size=48, patch_size=12).validate()
    # a one-frame clip fills its tubelet by repetition, in the pixel branch as in the encoder
    cfg = PerceptionConfig(img_size=16, num_frames=2, patch_size=8, tubelet_size=2, hidden_size=16, depth=1,
                           num_heads=2, pred_hidden_size=12, pred_depth=1, pred_num_heads=2, masks=vjepa2_mask_sets(),
                           min_context=1, object_slots=2, object_hidden=16, object_heads=2, object_layers=1, object_pixels=4)
    one = PerceptionModule(cfg).eval()
    bus, image = LatentBus(), torch.rand(1, 1, 3, 16, 16)
    one.step(bus, frames=image)
    bus2 = LatentBus()
    one.step(bus2, frames=image.repeat(1, 2, 1, 1, 1))
    assert torch.allclose(bus.latest("objects").tokens, bus2.latest("objects").tokens, atol=1e-6)


@pytest.mark.parametrize("pixels", [0, 8])
def test_train_objects_loss_goes_down_and_export_publishes_objects(clips_dir, encoder_dir, tmp_path, pixels):
    from cogarch.train import fit

    cfg = Config(encoder=str(encoder_dir))
    cfg.head.slots, cfg.head.hidden, cfg.head.layers, cfg.head.heads, cfg.head.step_layers = 3, 32, 2, 2, 1
    cfg.head.pixels = pixels
    cfg.data.data_dir, cfg.data.progress = str(clips_dir), False
    cfg.trainer.out_dir, cfg.trainer.max_steps, cfg.trainer.batch_size = str(tmp_path / "run"), 80, 8
    cfg.trainer.log_every, cfg.trainer.ckpt_every, cfg.trainer.seed = 10, 0, 0
    cfg.optim.lr, cfg.optim.warmup_steps = 3e-3, 5
    cfg.validate()
    job = make_job(cfg)
    frozen = {k: v.clone() for k, v in job.model.perception.target_encoder.state_dict().items()}
    losses = []
    batch = next(iter(torch.utils.data.DataLoader(job.dataset, batch_size=8, collate_fn=job.collate_fn)))
    with torch.no_grad():
        losses.append(float(job.model(batch)[0]))
    final = fit(job, cfg)
    with torch.no_grad():
        losses.append(float(job.model(batch)[0]))
    assert losses[1] < 0.6 * losses[0], losses
    for k, v in job.model.perception.target_encoder.state_dict().items():
        assert torch.equal(v, frozen[k]), f"the encoder must stay frozen ({k})"

    loaded = PerceptionModule.from_pretrained(final).eval()
    assert loaded.config.object_slots == 3 and loaded.config.object_step_layers == 1
    assert loaded.config.object_pixels == pixels and (loaded.objects.pixels > 0) == (pixels > 0)
    assert loaded.writes == ("percept", "objects")
    from cogarch.modules.perception.data import ClipDataset

    frames = torch.stack([ClipDataset(clips_dir, "val", T, S, normalize=False)[i] for i in range(2)])
    bus = LatentBus()
    loaded.step(bus, frames=frames)
    msg = bus.latest("objects")
    assert msg.tokens.shape == (2, 2 * 3, 12) and msg.meta["colors"] == list(VOCAB[0])
    bus2 = LatentBus()
    job.model.perception.eval().step(bus2, frames=frames)
    assert torch.allclose(bus2.latest("objects").tokens, msg.tokens, atol=1e-6)  # save/load round trip
    # training reads cached fp16 tokens (and frames) of the normalised clips; `publish` must see the same
    raw = torch.stack([ClipDataset(clips_dir, "train", T, S, normalize=False)[i] for i in range(2)])
    cached = collate([job.dataset[i] for i in range(2)])
    with torch.no_grad():
        out = loaded.objects(cached["tokens"].float(), cached["frames"].float() if pixels else None)
    bus3 = LatentBus()
    loaded.step(bus3, frames=raw)
    assert torch.allclose(ObjectHead.tokens(out)[0], bus3.latest("objects").tokens, atol=2e-2)
    assert bus.latest("percept") is not None


def test_objects_config_errors(encoder_dir, tmp_path):
    with pytest.raises(UserError, match="encoder="):
        load_with_head(Config().encoder)
    with pytest.raises(ConfigError, match="evaluation split"):
        c = Config(encoder=str(encoder_dir))
        c.data.split = "test"
        c.validate()
    with pytest.raises(UserError, match="not found"):
        load_with_head(str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="object_hidden"):
        PerceptionConfig(object_slots=2, object_hidden=30, object_heads=4).validate()
    with pytest.raises(ConfigError, match="object_heads"):
        PerceptionConfig(object_slots=2, object_heads=0).validate()
    for key, bad in (("heads", 0), ("hidden", 0), ("heads", 3)):
        c = Config(encoder=str(encoder_dir))
        setattr(c.head, key, bad)
        with pytest.raises(ConfigError, match="head"):
            c.validate()


def test_language_adapter_keeps_object_slots_apart():
    from cogarch.bus import Message
    from cogarch.modules.language.adapters import BusAdapter
    from cogarch.modules.language.config import LanguageConfig

    cfg = LanguageConfig(kind_dims={"percept": 8, "objects": 12}, pool="grid", grid=2, max_tokens=8,
                         pool_per_kind={"objects": "none"})
    cfg.validate()
    ad = BusAdapter(cfg, lm_hidden=16)
    B, Tn, K = 2, 4, 3
    percept = Message("percept", "perception", torch.randn(B, Tn * 16, 8),
                      time=torch.arange(Tn).repeat_interleave(16).expand(B, -1))
    objects = Message("objects", "perception", torch.randn(B, Tn * K, 12),
                      time=torch.arange(Tn).repeat_interleave(K).expand(B, -1))
    prefix, mask = ad({"percept": percept, "objects": objects})
    assert prefix.shape[1] == 8 + Tn * K  # percept pooled to its cap; every slot token kept
    with pytest.raises(ConfigError, match="pool_per_kind.objects"):
        LanguageConfig(pool_per_kind={"objects": "bogus"}).validate()
