"""Relation channels of the language module (modules/language/relations.py, config.relations):
values on hand-made slot rows, zero-initialised projectors that keep a trained module's outputs,
save/load and init_from round trips, and one-line errors for bad configs and bus layouts."""

from __future__ import annotations

import math

import pytest
import torch

from cogarch.bus import LatentBus, Message
from cogarch.errors import ConfigError
from cogarch.modules.language.adapters import BusInputError
from cogarch.modules.language.config import LanguageConfig
from cogarch.modules.language.model import LanguageModule
from cogarch.modules.language.relations import (IDENT, NEIGHBOUR_PX, RADII, SPEED_LOG2, SPEED_WIDTH, STEP_PX, relation_width,
                                                 slot_relations)
from cogarch.modules.language.train import Config, build_module

TEXTS = ["Question: Does the red cube collide with the blue sphere? Answer: yes",
         "Question: Is the red cube moving at the end of the video? Answer: no"] * 10


def row(ident: list[int], xy: tuple[float, float], v: tuple[float, float], gate: float = 1.0) -> torch.Tensor:
    """One 18-D object row (perception's layout): one-hot colour/shape/material, visible, x, y, vx, vy; x gate."""
    r = torch.zeros(18)
    r[ident] = 1.0
    r[13] = 1.0
    r[14:16] = torch.tensor(xy)
    r[16:18] = torch.tensor(v)
    return r * gate


RED_CUBE, BLUE_SPHERE = [0, 8, 11], [1, 9, 12]


def clip_rows() -> torch.Tensor:
    """[1, 3 steps x 3 slots, 18]: a red cube moving at 1 unit/s (1/32 in the rows); a blue sphere
    (gate 0.5) 41 px away, then 1.3 px (touching), then 36 px away again; slot 2 empty."""
    steps = []
    for t, sphere in enumerate([(0.95, 0.95), (0.52, 0.5), (0.9, 0.1)]):
        steps += [row(RED_CUBE, (0.5, 0.5), (1 / 32, 0.0)), row(BLUE_SPHERE, sphere, (0.0, 0.0), gate=0.5), torch.zeros(18)]
    return torch.stack(steps)[None]


def test_relation_channels_on_known_rows():
    S, R, I = len(SPEED_LOG2), len(RADII), IDENT
    assert relation_width() == S + R + 2 * I + R * I == 107
    rel = slot_relations(clip_rows(), 3).reshape(3, 3, relation_width())  # [T', K, C]
    bumps, near = rel[..., :S], rel[..., S:S + R]
    now, first = rel[..., S + R:S + R + I], rel[..., S + R + I:S + R + 2 * I]
    met = rel[..., S + R + 2 * I:].reshape(3, 3, R, I)
    # speed: the cube's 1 unit/s peaks on the log2 = 0 bump (ungated); the still sphere sits below every bump
    one = SPEED_LOG2.index(0.0)
    assert torch.allclose(bumps[:, 0, one], torch.exp(torch.tensor(-(math.log2(1 + 2 ** -4) / SPEED_WIDTH) ** 2)).expand(3))
    assert int(bumps[0, 0].argmax()) == one and bumps[:, 1].max() < 0.05 * 0.5 + 1e-6
    assert torch.equal(rel[:, 2], torch.zeros(3, relation_width()))  # an empty slot gets nothing
    # contact at step 1 only: 1.28 px apart, well inside every radius; the sphere's gate 0.5 weights the pair
    d1 = 64 * 0.02
    step = torch.sigmoid((torch.tensor(RADII) - d1) / STEP_PX)
    assert torch.allclose(near[1, 0], 0.5 * step, atol=1e-5)  # the cube (gate 1) sees the sphere (0.5)
    assert torch.allclose(near[1, 1], 0.5 * step, atol=1e-5)  # the sphere (0.5) sees the cube (1)
    assert near[0, 0].max() < 0.5 * 0.05 and near[2, 0].max() < 0.5 * 0.05  # 36-41 px: no radius reached
    blue = torch.zeros(I)
    blue[BLUE_SPHERE] = 1.0  # ungated: the sphere's identity, not its half-gated row
    close = 0.5 * torch.sigmoid(torch.tensor((NEIGHBOUR_PX - d1) / STEP_PX))
    assert torch.allclose(now[1, 0], close * blue, atol=1e-5)  # who the cube touches now: the blue sphere
    assert now[2, 0].max() < 0.01  # ... and no one at step 2,
    assert first[0].abs().max() < 1e-6  # whom it touched first: no one yet at step 0, the sphere from step 1 on
    assert torch.allclose(first[1, 0], close * blue, atol=1e-5) and torch.allclose(first[2, 0], close * blue, atol=1e-5)
    assert torch.allclose(met[2, 0], 0.5 * step[:, None] * blue, atol=1e-5)  # though it has met it, at every radius
    assert met[0, 0].max() < 0.01
    with pytest.raises(ValueError, match="slots"):
        slot_relations(clip_rows(), 2)


def test_first_touch_is_the_first_and_only_counts_while_visible():
    """`first` holds whom a slot touched first, once, through later touches of others; a slot's own
    absence (a zero row sits at the origin) never counts as a touch; speeds are read ungated."""
    S, R, I = len(SPEED_LOG2), len(RADII), IDENT
    GREEN_CYL = [2, 10, 11]
    cube = lambda: row(RED_CUBE, (0.5, 0.5), (2 / 32, 0.0), gate=0.8)  # 2 units/s (row() applies the gate)
    far = (0.95, 0.95)
    steps = [(far, far), ((0.52, 0.5), far), ((0.51, 0.5), far), (far, (0.5, 0.52))]  # blue at 1-2, green at 3
    rows = []
    for blue_xy, green_xy in steps:
        rows += [cube(), row(BLUE_SPHERE, blue_xy, (0.0, 0.0)), row(GREEN_CYL, green_xy, (0.0, 0.0))]
    rel = slot_relations(torch.stack(rows)[None], 3).reshape(4, 3, relation_width())
    first = rel[:, 0, S + R + I:S + R + 2 * I]
    blue, green = torch.zeros(I), torch.zeros(I)
    blue[BLUE_SPHERE], green[GREEN_CYL] = 1.0, 1.0
    assert first[0].abs().max() < 1e-6
    at1 = first[1]
    assert at1 @ blue > 0.7 * 3 * 0.8 and at1 @ green < 1e-3  # blue, times the cube's gate 0.8
    assert torch.allclose(first[2], at1) and torch.allclose(first[3], at1)  # held: not re-added at step 2, not green at 3
    now = rel[:, 0, S + R:S + R + I]
    assert now[3] @ green > 0.7 * 3 * 0.8  # ... although green is who it touches now
    assert int(rel[0, 0, :S].argmax()) == SPEED_LOG2.index(1.0)  # log2(2 units/s) = 1, not the gated 1.6
    # a slot absent at step 0 (zero row, at the origin after ungating) beside an object 2.6 px from
    # the origin has touched no one when it appears far away at step 1
    absent = torch.stack([torch.zeros(18), row(BLUE_SPHERE, (0.03, 0.03), (0.0, 0.0)),
                          row(RED_CUBE, (0.6, 0.6), (0.0, 0.0)), row(BLUE_SPHERE, (0.03, 0.03), (0.0, 0.0))])[None]
    rel = slot_relations(absent, 2).reshape(2, 2, relation_width())
    assert rel[:, 0, S + R + I:S + R + 2 * I].abs().max() < 1e-6
    if torch.cuda.is_available():  # nothing assumes CPU (CI has no GPU)
        assert torch.allclose(slot_relations(absent.cuda(), 2).cpu(), slot_relations(absent, 2), atol=1e-5)
    assert slot_relations(absent.double(), 2).dtype == torch.float64


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory, write_tiny_lm):
    return write_tiny_lm(tmp_path_factory.mktemp("rel_lm"), TEXTS)


def objects_bus() -> LatentBus:
    bus = LatentBus()
    bus.publish(Message("objects", "perception", clip_rows(), time=torch.arange(3).repeat_interleave(3).float()[None]))
    return bus


def scores(m: LanguageModule) -> list[float]:
    return m.score_choices(objects_bus(), "Does the red cube collide with the blue sphere?", ["yes", "no"])


def test_added_relations_start_at_the_same_outputs_and_round_trip(lm_dir, tmp_path):
    torch.manual_seed(1)
    m = LanguageModule.build(LanguageConfig(base_lm=lm_dir, kind_dims={"objects": 18}, pool="none", lora_dropout=0.0))
    assert len(m.adapter.rel) == 0
    before = scores(m)
    m.add_relations(["objects"])
    assert m.config.relations == ["objects"] and m.adapter.rel["objects"].fc1.in_features == relation_width()
    assert scores(m) == before  # zero-initialised last layer: nothing changes until it trains
    with torch.no_grad():
        torch.nn.init.normal_(m.adapter.rel["objects"].fc2.weight, std=0.5)
    after = scores(m)
    assert after != before
    m.save_pretrained(tmp_path / "rel")
    back = LanguageModule.from_pretrained(tmp_path / "rel")
    assert back.config.relations == ["objects"] and scores(back) == after
    # continuing a module without relations: model.relations adds them (zero-initialised)
    m0 = LanguageModule.build(LanguageConfig(base_lm=lm_dir, kind_dims={"objects": 18}, pool="none", lora_dropout=0.0))
    m0.save_pretrained(tmp_path / "plain")
    cfg = Config(init_from=str(tmp_path / "plain"), model=LanguageConfig(relations=["objects"]))
    cfg.validate()  # the preset's pooling (time_mean) is replaced by the saved config's: not an error here
    cont = build_module(cfg)
    assert cont.config.relations == ["objects"] and scores(cont) == scores(LanguageModule.from_pretrained(tmp_path / "plain"))
    assert all(p.requires_grad for p in cont.adapter.rel.parameters())
    # a blind LM reads no bus: a round's model.relations leaves it unchanged (no projectors, no config error
    # although its saved pooling would not allow them)
    blind = Config(init_from=str(tmp_path / "plain"), blind=True, model=LanguageConfig(relations=["objects", "forecast"]))
    blind.validate()
    b = build_module(blind)
    assert b.config.relations == [] and len(b.adapter.rel) == 0
    fresh = Config(blind=True, model=LanguageConfig(base_lm=lm_dir, kind_dims={"objects": 18}, pool="time_mean", relations=["objects"]))
    fresh.validate()
    assert build_module(fresh).config.relations == []


def test_relation_config_and_bus_errors(lm_dir):
    with pytest.raises(ConfigError, match="relations: 'objects' needs pool_per_kind.objects=none"):
        LanguageConfig(kind_dims={"objects": 18}, pool="time_mean", relations=["objects"]).validate()
    with pytest.raises(ConfigError, match="not a kind the module reads"):
        LanguageConfig(kind_dims={"objects": 18}, pool="none", relations=["forecast"]).validate()
    with pytest.raises(ConfigError, match="repeats"):
        LanguageConfig(kind_dims={"objects": 18}, pool="none", relations=["objects", "objects"]).validate()
    with pytest.raises(ConfigError, match="'percept' is 8 wide"):
        LanguageModule.build(LanguageConfig(base_lm=lm_dir, kind_dims={"percept": 8}, pool="none", relations=["percept"]))
    m = LanguageModule.build(LanguageConfig(base_lm=lm_dir, kind_dims={"objects": 18}, pool="none", relations=["objects"]))
    m2 = LanguageModule.build(LanguageConfig(base_lm=lm_dir, kind_dims={"objects": 18, "percept": 18}, pool="none",
                                             pool_per_kind={"percept": "grid"}))
    with pytest.raises(ConfigError, match="needs pool_per_kind.percept=none"):
        m2.add_relations(["percept"])
    assert m2.config.relations == [] and len(m2.adapter.rel) == 0  # checked before anything changed
    bus = LatentBus()
    bus.publish(Message("objects", "perception", clip_rows()))  # no per-step times
    with pytest.raises(BusInputError, match="relations need slot rows"):
        m.score_choices(bus, "Is the red cube moving at the end of the video?", ["yes", "no"])
    bus = LatentBus()
    bus.publish(Message("objects", "perception", clip_rows(), time=torch.tensor([[0.0, 1, 0, 1, 2, 2, 0, 1, 2]])))
    with pytest.raises(BusInputError, match="time-major"):
        m.score_choices(bus, "Is the red cube moving at the end of the video?", ["yes", "no"])
