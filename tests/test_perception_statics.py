"""Perception's static slots (modules/perception/objects.py): targets from a scene's walls / floor /
ramps / ledges / occluder, Hungarian matching of static slots, the 27-wide published layout (the VoE
oracle's), training from two suites (loss goes down, export round trip), the capacity error, and the
uniform frame sampling the object head trains with (ClipDataset(uniform=True))."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cogarch.bus import LatentBus, Message
from cogarch.errors import ConfigError, UserError
from cogarch.evals.world.vocab import STATIC_KINDS, static_elements
from cogarch.modules.perception.config import PerceptionConfig, vjepa2_mask_sets
from cogarch.modules.perception.model import PerceptionModule
from cogarch.modules.perception.objects import ObjectHead, clip_targets, set_loss, static_loss

T, S = 4, 32
VOCAB = (["red", "blue"], ["cube", "sphere"], ["rubber", "metal"])
N_ID = 2 + 2 + 2

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _clip(i: int, occluder: bool):
    """A red cube moving right over a floor; with `occluder`, a pink screen on the right too."""
    frames = np.full((T, S, S, 3), 200, np.uint8)
    frames[:, 26:28, :] = (35, 35, 40)  # the floor
    if occluder:
        frames[:, 8:24, 20:28] = (236, 150, 160)
    xs = [4.0 + 2 * t + i % 3 for t in range(T)]
    for t in range(T):
        frames[t, 20:26, int(xs[t]):int(xs[t]) + 6] = (173, 35, 35)
    track = {"pos": [[x + 3, 23.0] for x in xs], "vel": [[16.0, 0.0]] * T, "visible": [1] * T}
    scene = {"statics": [{"kind": "floor", "a": [-10.0, 27.0], "b": [42.0, 27.0]}],
             "occluder": [20.0, 8.0, 28.0, 24.0] if occluder else None}
    ann = {"observed_frames": T, "num_frames": T, "tracks": {"0": track}, "scene": scene}
    return frames, ann, [{"id": 0, "color": "red", "shape": "cube", "material": "rubber"}]


def test_static_targets_layout_and_matching():
    _, ann, objects = _clip(0, occluder=True)
    assert static_elements(ann["scene"]) == [("floor", [-10.0, 27.0, 42.0, 27.0]), ("occluder", [20.0, 8.0, 28.0, 24.0])]
    y = clip_targets(objects, ann, 2, VOCAB, static_kinds=STATIC_KINDS)
    assert y["static_kind"].tolist() == [1, 4]
    assert torch.allclose(y["static_box"][1], torch.tensor([20.0, 8.0, 28.0, 24.0]) / 64)
    assert "static_kind" not in clip_targets(objects, ann, 2, VOCAB)  # a head without static slots
    with pytest.raises(ValueError, match="trampoline"):
        static_elements({"statics": [{"kind": "trampoline", "a": [0, 0], "b": [1, 1]}]})

    # A head's output that predicts the two elements exactly, in static slots 2 and 0 of 3.
    torch.manual_seed(0)
    head = ObjectHead(16, (2, 2, 2), 2, 16, 1, 2, 0, (2, 2, 2), statics=3, static_kinds=len(STATIC_KINDS))
    out = {k: v.detach() for k, v in head(torch.randn(1, 8, 16)).items()}
    assert out["static_box"].shape == (1, 3, 4) and out["static_kind"].shape == (1, 3, 5)
    out["static_exist"] = torch.tensor([[8.0, -8.0, 8.0]])
    out["static_kind"] = torch.full((1, 3, 5), -8.0)
    out["static_kind"][0, 2, 1] = out["static_kind"][0, 0, 4] = 8.0
    out["static_box"][0, 2], out["static_box"][0, 0] = y["static_box"][0], y["static_box"][1]
    loss, m = static_loss(out, [y])
    assert float(loss) < 0.01 and m["static_kind_acc"] == 1.0 and m["static_count_acc"] == 1.0
    out["static_box"][0, 0, 0] += 0.5  # one coordinate 32 px off: 5 x 0.5 / 4 coordinates / 2 elements
    assert abs(float(static_loss(out, [y])[0]) - float(loss) - 0.3125) < 1e-3

    # Published rows: K object rows then S static rows per step, 18-style object columns then the
    # static columns; a static row repeats at every step, scaled by p(exist); empty slots are zero.
    rows, time = ObjectHead.tokens(out)
    width = N_ID + 5 + len(STATIC_KINDS) + 4
    assert rows.shape == (1, 2 * (2 + 3), width) and time.tolist() == [[0] * 5 + [1] * 5]
    r = rows[0].view(2, 5, width)
    assert float(r[:, :2, N_ID + 5 :].abs().max()) == 0.0  # object rows: no static columns
    assert float(r[:, 2:, : N_ID + 5].abs().max()) == 0.0  # static rows: no object columns
    assert torch.equal(r[0, 2:], r[1, 2:])
    assert int(r[0, 4, N_ID + 5 : N_ID + 10].argmax()) == 1  # slot 2 is the floor
    assert torch.allclose(r[0, 4, N_ID + 10 :], y["static_box"][0] * torch.sigmoid(torch.tensor(8.0)))
    assert float(r[0, 3].abs().max()) < 1e-3  # static slot 1 predicts nothing

    # `ask --explain` reads the object columns; the static rows (zero gate there) are not objects.
    from cogarch.api import objects_evidence

    out["exist"] = torch.tensor([[8.0, -8.0]])
    out["visible"] = torch.full((1, 2, 2), 8.0)
    rows, time = ObjectHead.tokens(out)
    msg = Message("objects", "perception", rows, time=time,
                  meta={"slots": 5, "colors": VOCAB[0], "shapes": VOCAB[1], "materials": VOCAB[2]})
    assert [d["slot"] for d in objects_evidence(msg)] == [0]


@pytest.fixture(scope="module")
def suites(tmp_path_factory, write_clip_suite):
    root = tmp_path_factory.mktemp("statics")
    a = write_clip_suite(root / "a", {"train": [_clip(i, occluder=False) for i in range(6)]})
    b = write_clip_suite(root / "b", {"train": [_clip(i, occluder=True) for i in range(6)],
                                      "val": [_clip(1, occluder=True)]})
    torch.manual_seed(0)
    cfg = PerceptionConfig(img_size=S, num_frames=T, patch_size=8, tubelet_size=2, hidden_size=48, depth=2,
                           num_heads=2, pred_hidden_size=24, pred_depth=2, pred_num_heads=2,
                           masks=vjepa2_mask_sets(), min_context=2, object_colors=list(VOCAB[0]),
                           object_shapes=list(VOCAB[1]), object_materials=list(VOCAB[2]))
    PerceptionModule(cfg).save_pretrained(root / "enc")
    return a, b, root / "enc"


def test_train_static_slots_from_two_suites(suites, tmp_path):
    from cogarch.modules.perception.data import ClipDataset
    from cogarch.modules.perception.objects_train import Config, make_job
    from cogarch.train import fit

    a, b, enc = suites
    cfg = Config(encoder=str(enc))
    cfg.head.slots, cfg.head.hidden, cfg.head.layers, cfg.head.heads, cfg.head.statics = 2, 32, 2, 2, 3
    cfg.head.pixels = 8  # a random encoder's tokens barely tell the screen apart (0.07 of their std)
    cfg.data.data_dir, cfg.data.extra_dirs, cfg.data.progress = str(a), [str(b)], False
    cfg.trainer.out_dir, cfg.trainer.max_steps, cfg.trainer.batch_size = str(tmp_path / "run"), 400, 6
    cfg.trainer.log_every, cfg.trainer.ckpt_every, cfg.trainer.seed = 20, 0, 0
    cfg.optim.lr, cfg.optim.warmup_steps = 3e-3, 5
    cfg.validate()
    job = make_job(cfg)
    assert len(job.dataset) == 12  # both suites' train clips
    assert [len(job.dataset[i][1]["static_kind"]) for i in (0, 6)] == [1, 2]  # floor; floor + occluder
    batch = next(iter(torch.utils.data.DataLoader(job.dataset, batch_size=12, collate_fn=job.collate_fn)))
    with torch.no_grad():
        before = static_loss(job.model.perception.objects(batch["tokens"].float(), batch["frames"].float()), batch["targets"])[0]
    final = fit(job, cfg)
    with torch.no_grad():
        out = job.model.perception.objects(batch["tokens"].float(), batch["frames"].float())
        after, m = static_loss(out, batch["targets"])
    assert float(after) < 0.5 * float(before), (float(before), float(after))
    assert m["static_count_acc"] == 1.0  # one element on suite a's clips, two on b's

    loaded = PerceptionModule.from_pretrained(final).eval()
    assert loaded.config.object_statics == 3 and loaded.config.object_static_kinds == list(STATIC_KINDS)
    frames = torch.stack([ClipDataset(b, "val", T, S, normalize=False)[0]])
    bus = LatentBus()
    loaded.step(bus, frames=frames)
    msg = bus.latest("objects")
    assert msg.tokens.shape == (1, 2 * (2 + 3), N_ID + 5 + 9)
    assert msg.meta["slots"] == 5 and msg.meta["statics"] == 3 and msg.meta["object_slots"] == 2
    bus2 = LatentBus()
    job.model.perception.eval().step(bus2, frames=frames)
    assert torch.allclose(bus2.latest("objects").tokens, msg.tokens, atol=1e-6)  # save/load round trip

    # the held-out score (evals/bench/objects.py) reports the static slots beside the objects
    from cogarch.evals.bench.objects import score

    res = score(str(final), str(b), "val")
    assert res["clips"] == 1 and res["static_elements"] == 2 and res["static_count_acc"] == 1.0
    assert res["static_kind_acc"] == 1.0 and 0 <= res["static_box_err_px"] < 16
    assert res["hidden_frac"] == 0.0 and res["visible_acc_hidden"] is None  # the cube never hides

    cfg.head.statics = 1  # suite b's clips show two static elements: refused before any encoding
    with pytest.raises(ConfigError, match="2 static elements but head.statics=1"):
        make_job(cfg)
    with pytest.raises(ConfigError, match="object_statics"):
        PerceptionConfig(object_slots=0, object_statics=2).validate()
    with pytest.raises(ConfigError, match="object_static_kinds"):
        PerceptionConfig(object_slots=2, object_statics=2, object_static_kinds=["wall", "wall"]).validate()
    with pytest.raises(ConfigError, match="object_static_kinds"):
        PerceptionConfig(object_slots=2, object_statics=2, object_static_kinds=["trampoline"]).validate()


def test_uniform_sampling_reads_the_whole_clip(tmp_path, write_clip_suite):
    """The head trains on clips read as feature encoding reads them: frames spread over the clip."""
    from cogarch.modules.perception.data import ClipDataset

    frames = np.zeros((8, S, S, 3), np.uint8)
    for t in range(8):
        frames[t] = 30 * t  # frame t has grey level 30 t
    root = write_clip_suite(tmp_path / "long", {"train": [(frames, {"observed_frames": 8, "num_frames": 8}, [])]})
    first = ClipDataset(root, "train", 4, S, normalize=False)[0]
    spread = ClipDataset(root, "train", 4, S, normalize=False, uniform=True)[0]
    level = lambda x: [round(float(f.mean()) * 255 / 30) for f in x]  # noqa: E731
    assert level(first) == [0, 1, 2, 3] and level(spread) == [1, 3, 5, 7]
    with pytest.raises(UserError, match="uniform"):
        ClipDataset(root, "train", 4, S, uniform=True, windows=True)
    # ... and its truth is taken at the frames so read: 4 of 8 frames are 1, 3, 5, 7; 2 steps end on 3 and 7
    track = {"pos": [[float(t), 0.0] for t in range(8)], "vel": [[0.0, 0.0]] * 8, "visible": [1] * 8}
    ann = {"observed_frames": 8, "num_frames": 8, "tracks": {"0": track}}
    y = clip_targets([{"id": 0, "color": "red", "shape": "cube", "material": "rubber"}], ann, 2, VOCAB, spread=(8, 4))
    assert torch.allclose(y["pos"][0, :, 0] * 64, torch.tensor([3.0, 7.0]))
    y48 = clip_targets([{"id": 0, "color": "red", "shape": "cube", "material": "rubber"}],
                       {"observed_frames": 48, "num_frames": 48, "tracks": {"0": {**track, "pos": [[float(t), 0.0] for t in range(48)],
                                                                                "vel": [[0.0, 0.0]] * 48, "visible": [1] * 48}}},
                       8, VOCAB, spread=(48, 16))  # a test_ood VoE clip: read_clip's frames 4, 10, ..., 46
    assert (y48["pos"][0, :, 0] * 64).round().tolist() == [4.0, 10.0, 16.0, 22.0, 28.0, 34.0, 40.0, 46.0]
