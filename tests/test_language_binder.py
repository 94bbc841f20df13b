"""Slot binder of the language module (modules/language/binder.py, config.binder): read-outs on
hand-made rows, binding learned from answers alone on a toy task, the prefix's dependence on the
question, save/load and init_from round trips, blind mode, and one-line errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cogarch.bus import LatentBus, Message
from cogarch.errors import ConfigError
from cogarch.modules.language.adapters import BusInputError
from cogarch.modules.language.binder import PAIR_WIDTH, ROLE_WIDTH, SlotBinder
from cogarch.modules.language.config import LanguageConfig
from cogarch.modules.language.model import LanguageModule, encode_pair, format_prompt
from cogarch.modules.language.relations import IDENT, NEIGHBOUR_PX, RADII, STEP_PX
from cogarch.modules.language.scoring import answer_many
from cogarch.modules.language.train import Config, build_module

from tests.test_language_relations import BLUE_SPHERE, RED_CUBE, TEXTS, clip_rows

Q = "Does the red cube collide with the blue sphere?"


def test_readouts_of_a_given_selection_on_known_rows():
    """clip_rows: a red cube (slot 0) and a half-visible blue sphere (slot 1) that touch at step 1 only."""
    binder = SlotBinder(text_dim=8)
    w = torch.zeros(1, 3, 3)
    w[0, 0, 0] = w[0, 1, 1] = w[0, 2, 2] = 1.0  # role r = slot r
    tok, is_pair, w_out = binder(clip_rows(), 3, torch.zeros(1, 2, 8), torch.ones(1, 2, dtype=torch.bool), w=w)
    assert tok.shape == (1, 6, ROLE_WIDTH + PAIR_WIDTH) and is_pair.tolist() == [False] * 3 + [True] * 3
    assert torch.equal(w_out, w)
    red, blue = torch.zeros(IDENT), torch.zeros(IDENT)
    red[RED_CUBE], blue[BLUE_SPHERE] = 1.0, 1.0
    assert torch.allclose(tok[0, 0, :IDENT], red) and torch.allclose(tok[0, 1, :IDENT], blue)  # ungated identity
    assert torch.allclose(tok[0, 1, IDENT:IDENT + 3], torch.tensor([0.5, 0.9, 0.1]))  # gate, x, y at the last step
    assert tok[0, :3, ROLE_WIDTH:].abs().max() == 0 and tok[0, 3:, :ROLE_WIDTH].abs().max() == 0
    R = len(RADII)
    step = 0.5 * torch.sigmoid((torch.tensor(RADII) - 64 * 0.02) / STEP_PX)  # 1.28 px apart at step 1, gates 1 x 0.5
    cube_sphere = tok[0, 3, ROLE_WIDTH:]
    assert torch.allclose(cube_sphere[:R], step, atol=1e-5)  # closest: max over steps
    assert torch.allclose(cube_sphere[R:2 * R], step / 3, atol=5e-3)  # mean over the 3 steps (36-41 px apart at the others)
    assert cube_sphere[2 * R:3 * R].max() < 0.01  # apart again at the last step
    assert float(cube_sphere[-1]) == pytest.approx(1 / 3)  # first touch at step 1 of 3
    assert torch.allclose(tok[0, 4, ROLE_WIDTH:ROLE_WIDTH + 3 * R], torch.zeros(3 * R)) and float(tok[0, 4, -1]) == 1.0  # cube / empty: never
    assert torch.sigmoid(torch.tensor((NEIGHBOUR_PX - 1.28) / STEP_PX)) * 0.5 > 0.25  # (the touch passed TOUCH)
    # the binder in bfloat16 (a module cast as a whole) on bfloat16 rows and text: same read-outs, to bf16 rounding
    text = torch.randn(1, 2, 8)
    ref = binder(clip_rows(), 3, text, torch.ones(1, 2, dtype=torch.bool))[0]
    half = binder.to(torch.bfloat16)(clip_rows().bfloat16(), 3, text.bfloat16(), torch.ones(1, 2, dtype=torch.bool))[0]
    assert half.dtype == torch.bfloat16 and torch.allclose(half.float(), ref.detach(), atol=0.03)


def test_roles_pick_in_turn():
    """Every role gets the same summary u (to_ident's weight zeroed, its bias = u) that prefers slot 0
    over slot 1 over the empty slot 2: role 0 takes slot 0, and slot 0, taken, is closed to role 1,
    which moves to slot 1, so the pair (0, 1) gets weight that the same pick twice would not give it."""
    binder = SlotBinder(text_dim=8)
    ident = torch.zeros(1, 3, IDENT)
    ident[0, 0, RED_CUBE], ident[0, 1, BLUE_SPHERE] = 1.0, 1.0
    u = torch.zeros(IDENT)
    u[RED_CUBE[0]], u[BLUE_SPHERE[0]] = 4.0, 2.0  # red 4, blue 2
    with torch.no_grad():
        binder.to_ident.weight.zero_()
        binder.to_ident.bias.copy_(u)
    w = binder.select(ident, torch.tensor([[1.0, 1.0, 1e-6]]), torch.randn(1, 5, 8), torch.ones(1, 5, dtype=torch.bool))[0].detach()
    p = torch.softmax(torch.tensor([4.0, 2.0, -9.21]), 0)  # one role alone: log(presence) clamps at 1e-4
    assert torch.allclose(w[0], p, atol=1e-3)
    assert float(w[1, 1]) > 0.45 > 0.15 > float(w[0, 1])  # role 1 moves to the open slot
    off = lambda a, b: float(a.sum() * b.sum() - (a * b).sum())  # weight off the diagonal: two different slots
    assert off(w[0], w[1]) > 0.45 > 0.25 > off(p, p)


def test_first_token_is_the_slot_role_0_touched_first(lm_dir, tmp_path):
    """binder_first: one more role-like token, the slot role 0 touched first (earliest contact, ties
    share, nothing when nothing was touched); added to a trained binder module by init_from with its
    index row at zero and the others kept; saved and loaded with it."""
    from cogarch.modules.language.binder import first_pick, first_touched

    touch = torch.zeros(1, 4, 3, 3)
    touch[0, 1, 0, 2] = touch[0, 1, 2, 0] = touch[0, 2, 0, 1] = touch[0, 2, 1, 0] = 1.0  # 0-2 at step 1, 0-1 at step 2
    assert first_touched(touch, torch.tensor([[1.0, 0, 0]])).tolist() == [[0, 0, 1]]
    assert first_touched(touch, torch.tensor([[0, 1.0, 0]])).tolist() == [[1, 0, 0]]
    touch[0, 1, 0, 1] = 1.0  # 0 meets 1 and 2 at step 1: they share
    assert first_touched(touch, torch.tensor([[1.0, 0, 0]])).tolist() == [[0, 0.5, 0.5]]
    assert first_touched(torch.zeros(1, 4, 3, 3), torch.tensor([[1.0, 0, 0]])).tolist() == [[0, 0, 0]]
    # clip_rows: the red cube (slot 0) touches the blue sphere (slot 1) at step 1
    w = torch.eye(3)[None]
    tok, is_pair, _ = SlotBinder(text_dim=8, first=True)(clip_rows(), 3, torch.zeros(1, 2, 8), torch.ones(1, 2, dtype=torch.bool), w=w)
    plain = SlotBinder(text_dim=8)(clip_rows(), 3, torch.zeros(1, 2, 8), torch.ones(1, 2, dtype=torch.bool), w=w)[0]
    assert tok.shape == (1, 7, ROLE_WIDTH + PAIR_WIDTH) and is_pair.tolist() == [False] * 4 + [True] * 3
    assert torch.equal(tok[0, 3], plain[0, 1])  # the first token reads slot 1 as role 1 does
    assert torch.equal(tok[0, :3], plain[0, :3]) and torch.equal(tok[0, 4:], plain[0, 3:])
    assert first_pick(clip_rows(), 3, w[:, 0]).tolist() == [[0, 1, 0]]  # the weights the token read, as evidence
    assert first_pick(clip_rows(), 3, w[:, 2]).tolist() == [[0, 0, 0]]  # the empty slot touched nothing
    # init_from: a binder module gains the first token
    m = LanguageModule.build(LanguageConfig(base_lm=lm_dir, kind_dims={"objects": 18}, pool="none", lora_dropout=0.0, binder=["objects"]))
    m.save_pretrained(tmp_path / "b")
    cont = build_module(Config(init_from=str(tmp_path / "b"), stage=2, model=LanguageConfig(binder=["objects"], binder_first=True)))
    old, new = m.adapter.bind_index.weight, cont.adapter.bind_index.weight
    assert cont.config.binder_first and cont.adapter.binder.first and new.shape[0] == 7
    assert torch.equal(new[:3], old[:3]) and torch.equal(new[4:], old[3:]) and new[3].abs().max() == 0
    ids = cont.tokenizer(Q)["input_ids"]
    assert cont.prefix(objects_bus(), 1, prompts=[ids])[0].shape[1] == 9 + 7
    cont.save_pretrained(tmp_path / "first")
    back = LanguageModule.from_pretrained(tmp_path / "first")
    assert back.config.binder_first and scores(back) == scores(cont)
    # evidence (`ask --explain`): the roles' picks, then the slot the first token reads. Role 0 made to
    # take the red cube (slot 0), which touches the blue sphere (slot 1) at step 1.
    with torch.no_grad():
        back.adapter.binder.to_ident.weight.zero_()
        back.adapter.binder.to_ident.bias.zero_()
        back.adapter.binder.to_ident.bias[list(RED_CUBE)] = 20.0
    picks = back.binder_picks(objects_bus(), Q)
    assert [p["role"] for p in picks] == [0, 1, 2, "first"] and picks[0]["slot"] == 0
    assert picks[-1] == {"role": "first", "kind": "objects", "slot": 1, "weight": 1.0}
    assert all(p["role"] != "first" for p in m.binder_picks(objects_bus(), Q))  # without the token: roles only
    assert back.adapter.first_picks(dict(objects=objects_bus().latest("objects")), torch.zeros(1, 3, 4)) == []  # picks of 4 slots: not these rows
    # one entry per kind read, in prefix order (forecast first): a forecast whose objects never meet reads nothing
    two = LanguageModule.build(LanguageConfig(base_lm=lm_dir, kind_dims={"objects": 18, "forecast": 18}, pool="none",
                                              binder=["objects", "forecast"], binder_first=True))
    two.adapter.binder.load_state_dict(back.adapter.binder.state_dict())
    apart = clip_rows()
    apart[:, 1::3, 14:16] = 0.45  # the sphere (gate 0.5, so x, y = 0.9 ungated) far from the cube at every step
    bus = objects_bus()
    bus.publish(Message("forecast", "world_model", apart, time=bus.latest("objects").time + 3))
    assert [(p["kind"], p["slot"]) for p in two.binder_picks(bus, Q) if p["role"] == "first"] == [("forecast", None), ("objects", 1)]
    # binder_check counts how often the first token reads the answer's slot: right for the clip whose
    # answer is the object slot 1 (made fully visible here), wrong for the one whose answer is slot 0
    from datasets import Dataset, DatasetDict

    from cogarch.evals.bench.binder_check import check
    from cogarch.evals.world.vocab import COLORS, MATERIALS, SHAPES
    from cogarch.modules.language.data import write_shard

    name = lambda c, s, m: f"{list(COLORS)[c]} {list(MATERIALS)[m - 11]} {list(SHAPES)[s - 8]}"
    rows = clip_rows()
    rows[:, 1::3] *= 2  # slot 1 at gate 1 (rows are x gate), so the name lookup sees it
    write_shard(tmp_path / "f", "val", ["c0", "c1"], {"objects": {"tokens": rows.expand(2, -1, -1), "time": objects_bus().latest("objects").time.expand(2, -1)}})
    qs = [{"qid": f"c{i}_q", "clip_id": f"c{i}", "template": "desc_first_hit", "question": f"Which object does the {name(*RED_CUBE)} hit first?",
           "choices": [name(*BLUE_SPHERE), name(*RED_CUBE)], "answer_index": i} for i in (0, 1)]
    DatasetDict({"val": Dataset.from_list(qs)}).save_to_disk(str(tmp_path / "questions"))
    back.save_pretrained(tmp_path / "first_red")
    got = check(str(tmp_path / "first_red"), str(tmp_path), str(tmp_path / "f"), "val", slots=3, template="desc_first_hit")
    assert (got["n"], got["role0_named"], got["first_objects_answer"], got["first_objects_none"]) == (2, 100.0, 50.0, 0.0)
    # no binder to add it to: one-line errors; a blind LM ignores it
    with pytest.raises(ConfigError, match="binder_first needs a slot binder"):
        LanguageConfig(binder_first=True).validate()
    LanguageModule.build(LanguageConfig(base_lm=lm_dir, kind_dims={"objects": 18}, pool="none")).save_pretrained(tmp_path / "plain")
    with pytest.raises(ConfigError, match="binder_first: this language module has no slot binder"):
        build_module(Config(init_from=str(tmp_path / "plain"), stage=2, model=LanguageConfig(binder_first=True)))
    assert build_module(Config(init_from=str(tmp_path / "plain"), blind=True, model=LanguageConfig(binder_first=True))).adapter.binder is None


def toy_batch(g: torch.Generator, n: int):
    """n clips of 3 slots x 4 steps: three objects of distinct random colours (random shape and
    material) at fixed places; one pair (random slots) comes within 2 px at step 2. The question names
    two objects by (colour, shape, material) word ids: the pair that met, or another pair, half and
    half; the answer is whether THOSE two met. Rows [n, 12, 18], word ids [n, 9], answers [n]."""
    colours = torch.rand(n, 8, generator=g).argsort(-1)[:, :3]  # [n, 3] distinct
    shapes, mats = torch.randint(0, 3, (n, 3), generator=g), torch.randint(0, 2, (n, 3), generator=g)
    ident = torch.zeros(n, 3, 13)
    ident.scatter_(2, torch.stack([colours, 8 + shapes, 11 + mats], -1), 1.0)
    xy = torch.tensor([[0.2, 0.2], [0.8, 0.2], [0.5, 0.8]]).expand(n, 4, 3, 2).clone()
    order = torch.rand(n, 3, generator=g).argsort(-1)  # slots a, b meet; c does not
    a, b = order[:, 0], order[:, 1]
    i = torch.arange(n)
    xy[i, 2, b] = xy[i, 2, a] + torch.tensor([2 / 64, 0.0])
    y = (torch.rand(n, generator=g) < 0.5).long()
    p = torch.where(y.bool(), a, order[:, 2])  # named: (a, b) or (c, b)
    q = b
    rows = torch.cat([ident[:, None].expand(n, 4, 3, 13), torch.ones(n, 4, 3, 1), xy, torch.zeros(n, 4, 3, 2)], -1)
    name = lambda k: torch.stack([1 + colours[i, k], 9 + shapes[i, k], 12 + mats[i, k]], -1)  # word ids 1..13
    swap = torch.rand(n, generator=g) < 0.5  # either object may be named first
    first, second = torch.where(swap[:, None], name(q), name(p)), torch.where(swap[:, None], name(p), name(q))
    words = torch.cat([torch.full((n, 1), 14), first, torch.full((n, 1), 15), second, torch.full((n, 1), 16)], 1)  # "does X with Y ?"
    return rows.reshape(n, 12, 18), words, y


def test_binding_is_learned_from_answers_alone():
    """A reader that gets only the binder's tokens learns WHICH pair the question names (the answer
    depends on it: only one pair of three meets) from the answers, with no slot label."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    words_emb = nn.Embedding(17, 32)
    binder = SlotBinder(text_dim=32, roles=2, width=32)
    head = nn.Sequential(nn.Linear(PAIR_WIDTH, 32), nn.GELU(), nn.Linear(32, 2))
    params = [*words_emb.parameters(), *binder.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, 3e-3)
    test_rows, test_words, test_y = toy_batch(torch.Generator().manual_seed(99), 256)

    def logits(r, wd):
        tok, _, _ = binder(r, 3, words_emb(wd), torch.ones_like(wd, dtype=torch.bool))
        return head(tok[:, 2, ROLE_WIDTH:])  # the one pair token of two roles

    with torch.no_grad():
        before = float((logits(test_rows, test_words).argmax(-1) == test_y).float().mean())
    for _ in range(400):
        r, wd, y = toy_batch(g, 32)
        loss = nn.functional.cross_entropy(logits(r, wd), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float((logits(test_rows, test_words).argmax(-1) == test_y).float().mean())
    # one pair always meets, and half the questions name it: without binding, chance (50 %)
    assert after > 0.9 and before < 0.65


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory, write_tiny_lm):
    return write_tiny_lm(tmp_path_factory.mktemp("bind_lm"), TEXTS)


def objects_bus() -> LatentBus:
    bus = LatentBus()
    bus.publish(Message("objects", "perception", clip_rows(), time=torch.arange(3).repeat_interleave(3).float()[None]))
    return bus


def scores(m: LanguageModule, q: str = Q) -> list[float]:
    return m.score_choices(objects_bus(), q, ["yes", "no"])


def test_module_binder_prefix_round_trip_and_init_from(lm_dir, tmp_path):
    torch.manual_seed(1)
    cfg = LanguageConfig(base_lm=lm_dir, kind_dims={"objects": 18}, pool="none", lora_dropout=0.0, binder=["objects"])
    m = LanguageModule.build(cfg)
    with torch.no_grad():
        nn.init.normal_(m.adapter.bind_proj["objects"].fc2.weight, std=0.5)
    ids = lambda q: m.tokenizer(q)["input_ids"]
    bus = objects_bus()
    p1, mask1 = m.prefix(bus, 1, prompts=[ids(Q)])
    p2, _ = m.prefix(bus, 1, prompts=[ids("Does the blue sphere collide with the red cube?")])
    assert p1.shape[1] == 9 + 6 and bool(mask1.all())  # 9 slot rows + 3 roles + 3 pairs
    assert torch.equal(p1[:, :9], p2[:, :9]) and not torch.allclose(p1[:, 9:], p2[:, 9:])  # only the binder's tokens hear the question
    pb, _ = m.prefix(bus, 1, blind=True, prompts=[ids(Q)])
    assert pb.shape[1] == 0  # blind: no bus, no binder
    two, _ = m.prefix(bus, 1, prompts=[ids(Q), ids("Is the red cube moving at the end of the video?")])
    assert two.shape[0] == 2 and torch.allclose(two[:1], p1, atol=1e-6)  # a bus of batch 1 shared by two prompts
    assert len(answer_many(m, bus, [Q, "Is the red cube moving?"], max_new_tokens=3)) == 2
    picks = m.binder_picks(bus, Q, ["yes", "no"])
    assert [p["role"] for p in picks] == [0, 1, 2] and all(0 <= p["slot"] < 3 and 0 < p["weight"] <= 1 for p in picks)
    mc_prompt = encode_pair(m.tokenizer, format_prompt(m.config, Q, ["yes", "no"]), None, m.config)[0]
    w = m._binder(dict(objects=bus.latest("objects")), [mc_prompt])[1][0]
    assert [p["slot"] for p in picks] == w.argmax(-1).tolist()  # the prompt as multiple-choice scoring builds it
    assert m.binder_picks(LatentBus(), Q) == [] and LanguageModule.build(LanguageConfig(base_lm=lm_dir, kind_dims={"objects": 18})).binder_picks(bus, Q) == []
    before = scores(m)
    m.save_pretrained(tmp_path / "bind")
    back = LanguageModule.from_pretrained(tmp_path / "bind")
    assert back.config.binder == ["objects"] and scores(back) == before
    # continuing a module without a binder: model.binder adds it (zero-initialised projector, trainable)
    m0 = LanguageModule.build(LanguageConfig(base_lm=lm_dir, kind_dims={"objects": 18}, pool="none", lora_dropout=0.0))
    m0.save_pretrained(tmp_path / "plain")
    cont = build_module(Config(init_from=str(tmp_path / "plain"), stage=2, model=LanguageConfig(binder=["objects"])))
    assert cont.config.binder == ["objects"] and cont.adapter.bind_proj["objects"].fc2.weight.detach().abs().max() == 0
    assert all(p.requires_grad for p in cont.adapter.binder.parameters())
    blind = build_module(Config(init_from=str(tmp_path / "plain"), blind=True, model=LanguageConfig(binder=["objects"])))
    assert blind.config.binder == [] and blind.adapter.binder is None


def test_binder_init_and_freeze(lm_dir, tmp_path):
    """binder_init loads pretrained binder weights into a round's module, freeze_binder keeps them out of
    training; a module without a binder, a missing or foreign file are one-line config errors; a blind
    LM ignores both (a recipe's round applies to it unchanged)."""
    from safetensors.torch import save_file

    LanguageModule.build(LanguageConfig(base_lm=lm_dir, kind_dims={"objects": 18}, pool="none", lora_dropout=0.0)).save_pretrained(tmp_path / "plain")
    m = LanguageModule.build(LanguageConfig(base_lm=lm_dir, kind_dims={"objects": 18}, pool="none", binder=["objects"]))
    torch.manual_seed(5)
    pre = SlotBinder(m.lm.get_input_embeddings().weight.shape[1])
    save_file(pre.state_dict(), str(tmp_path / "binder.safetensors"))
    cfg = lambda **kw: Config(init_from=str(tmp_path / "plain"), stage=2, model=LanguageConfig(binder=["objects"]), **kw)
    frozen = build_module(cfg(binder_init=str(tmp_path / "binder.safetensors"), freeze_binder=True))
    for (name, p), q in zip(frozen.adapter.binder.named_parameters(), pre.parameters()):
        assert torch.equal(p, q) and not p.requires_grad, name
    assert all(p.requires_grad for p in frozen.adapter.bind_proj.parameters())  # its projector still trains
    loose = build_module(cfg(binder_init=str(tmp_path / "binder.safetensors")))
    assert all(p.requires_grad for p in loose.adapter.binder.parameters())
    with pytest.raises(ConfigError, match="no slot binder"):
        build_module(Config(init_from=str(tmp_path / "plain"), stage=2, freeze_binder=True))
    with pytest.raises(ConfigError, match="binder_init: no file"):
        cfg(binder_init=str(tmp_path / "missing.safetensors")).validate()
    save_file(SlotBinder(8).state_dict(), str(tmp_path / "other.safetensors"))  # another LM's width
    with pytest.raises(ConfigError, match="not this module's binder"):
        build_module(cfg(binder_init=str(tmp_path / "other.safetensors")))
    (tmp_path / "junk.safetensors").write_text("not a safetensors file")
    with pytest.raises(ConfigError, match="not this module's binder"):
        build_module(cfg(binder_init=str(tmp_path / "junk.safetensors")))
    blind = Config(init_from=str(tmp_path / "plain"), blind=True, binder_init=str(tmp_path / "missing.safetensors"), freeze_binder=True)
    blind.validate()
    assert build_module(blind).adapter.binder is None


def test_binder_pretrain_writes_weights_a_round_loads(lm_dir, tmp_path, capsys):
    """evals/bench/binder_pretrain.py on a synthetic desc_collide suite (toy_batch's clips, the
    questions in words): per-template accuracies and binder picks in its JSON, weights that
    binder_init loads into a module reading the same LM; one-line errors for bad arguments."""
    import json

    from datasets import Dataset, DatasetDict

    from cogarch.errors import UserError
    from cogarch.evals.bench.binder_pretrain import main
    from cogarch.evals.world.vocab import COLORS, MATERIALS, SHAPES
    from cogarch.modules.language.data import write_shard

    colours, shapes, mats = list(COLORS), list(SHAPES), list(MATERIALS)
    qs = {}
    for split, n, seed in (("train", 96, 0), ("val", 24, 1), ("test", 24, 2)):
        rows, words, y = toy_batch(torch.Generator().manual_seed(seed), n)
        name = lambda w: f"{colours[int(w[0]) - 1]} {mats[int(w[2]) - 12]} {shapes[int(w[1]) - 9]}"
        ids = [f"{split}{i:03d}" for i in range(n)]
        write_shard(tmp_path / "f", split, ids, {"objects": {"tokens": rows, "time": torch.arange(4).repeat_interleave(3).float().expand(n, 12)}})
        qs[split] = [{"qid": f"{c}_q", "clip_id": c, "template": "desc_collide", "choices": ["yes", "no"],
                      "question": f"Does the {name(words[i, 1:4])} collide with the {name(words[i, 5:8])}?",
                      "answer": "yes" if int(y[i]) else "no"} for i, c in enumerate(ids)]
    DatasetDict({s: Dataset.from_list(r) for s, r in qs.items()}).save_to_disk(str(tmp_path / "questions"))
    m = LanguageModule.build(LanguageConfig(base_lm=lm_dir, kind_dims={"objects": 18}, pool="none", lora_dropout=0.0))
    m.save_pretrained(tmp_path / "lang")
    args = ["--language", str(tmp_path / "lang"), "--data", str(tmp_path), "--features", str(tmp_path / "f"),
            "--templates", "desc_collide", "--slots", "3", "--steps", "20", "--every", "10"]
    assert main([*args, "--out", str(tmp_path / "b.safetensors")]) == 0
    res = json.loads((tmp_path / "b.json").read_text())
    assert res["steps"] == 20 and set(res["per_template"]["desc_collide"]) == {"train", "val", "test"}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("b.")) == ["b.json", "b.safetensors"]  # scratch run gone
    picks = res["binder_picks"]["desc_collide"]
    assert set(picks) == {"train", "val", "test"} and all(0 <= v <= 100 for v in picks.values())
    # a curriculum: continue from those weights; one step at lr 1e-12 leaves the binder (and every pick) as it was
    assert main([*args, "--init", str(tmp_path / "b.safetensors"), "--lr", "1e-12", "--steps", "1", "--out", str(tmp_path / "b2.safetensors")]) == 0
    from safetensors.torch import load_file

    b, b2 = load_file(str(tmp_path / "b.safetensors")), load_file(str(tmp_path / "b2.safetensors"))
    assert b.keys() == b2.keys() and all(torch.allclose(b[k], v, atol=1e-8) for k, v in b2.items())
    assert json.loads((tmp_path / "b2.json").read_text())["binder_picks"]["desc_collide"] == picks
    with pytest.raises(UserError, match="init .*not a binder"):
        main([*args, "--init", str(tmp_path / "questions" / "dataset_dict.json"), "--out", str(tmp_path / "b3.safetensors")])
    with pytest.raises(UserError, match="kinds must be slot-row kinds"):
        main([*args, "--kinds", "percept", "--out", str(tmp_path / "b3.safetensors")])
    assert not (tmp_path / "b3.safetensors").exists()
    own = LanguageConfig(binder=["objects"], binder_text="own")  # the pretraining's default: its own token table
    cont = build_module(Config(init_from=str(tmp_path / "lang"), stage=2, model=own,
                               binder_init=str(tmp_path / "b.safetensors"), freeze_binder=True))
    assert cont.config.binder_text == "own" and cont.adapter.binder.word.num_embeddings == len(cont.tokenizer)
    saved = load_file(str(tmp_path / "b.safetensors"))
    assert all(torch.equal(saved[k], v) for k, v in cont.adapter.binder.state_dict().items())
    # binder_check: the saved module's picks against the named pair, counted over the split's questions
    from cogarch.evals.bench.binder_check import check

    cont.save_pretrained(tmp_path / "with_binder")
    got = check(str(tmp_path / "with_binder"), str(tmp_path), str(tmp_path / "f"), "val", slots=3)
    assert got["n"] == 24 and 0 <= got["named"] <= got["role0_named"] <= 100 and 0 < got["mean_top_weight"] <= 1
    with pytest.raises(UserError, match="no slot binder"):
        check(str(tmp_path / "lang"), str(tmp_path), str(tmp_path / "f"), "val", slots=3)
    with pytest.raises(ConfigError, match="not this module's binder"):  # an own-table binder into an LM-embedding one
        build_module(Config(init_from=str(tmp_path / "lang"), stage=2, model=LanguageConfig(binder=["objects"]),
                            binder_init=str(tmp_path / "b.safetensors")))
    with pytest.raises(UserError, match="safetensors"):
        main([*args, "--out", str(tmp_path / "b.pt")])
    # the module's own entry point: `cogarch train language-binder` (the generic trainer) exports the
    # binder, the reader and what they were trained on; the reader reloads with the same answers
    from cogarch.cli import main as cli_main
    from cogarch.modules.language.binder_train import load_reader

    # no slots given: read off the rows (3 per step here), as the module does
    common = [f"language={tmp_path / 'lang'}", f"data_dir={tmp_path}", f"features_dir={tmp_path / 'f'}"]
    assert cli_main(["train", "language-binder", "--config", "configs/language/binder_tiny.yaml", *common, "trainer.max_steps=4",
                     f"trainer.out_dir={tmp_path / 'run'}", "trainer.progress=false"]) == 0
    final = tmp_path / "run" / "final"
    assert sorted(p.name for p in final.iterdir()) == ["binder.safetensors", "binder_config.json", "reader.safetensors"]
    reader, meta = load_reader(final, LanguageModule.from_pretrained(tmp_path / "lang"))
    assert meta["answers"] == ["no", "yes"] and meta["templates"] == ["desc_collide"] and reader.out.out_features == 2
    assert meta["slots"] == 3 and reader.slots == 3
    assert all(torch.equal(v, reader.binder.state_dict()[k]) for k, v in load_file(str(final / "binder.safetensors")).items())
    capsys.readouterr()  # what came before (dataset progress bars)
    for bad, msg in (("templates=[desc_nothing]", "no desc_nothing questions"), ("kinds=[percept]", "kinds must be slot-row kinds"),
                     ("language=", "language: name the saved language folder"), ("width=6", "width must be a positive multiple of 4"),
                     ("slots=4", "slots=4, but the 'objects' rows of")):
        assert cli_main(["train", "language-binder", "--config", "configs/language/binder_tiny.yaml", *common, bad,
                         f"trainer.out_dir={tmp_path / 'bad'}"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert msg in err[-1] and "Traceback" not in "".join(err) and not (tmp_path / "bad" / "final").exists()


def test_binder_with_its_own_token_table(lm_dir, tmp_path):
    """binder_text own: the binder embeds the prompt's token ids itself (the LM's embeddings are not
    read: changing them changes nothing the binder says); saved and loaded with its table."""
    m = LanguageModule.build(LanguageConfig(base_lm=lm_dir, kind_dims={"objects": 18}, pool="none", lora_dropout=0.0,
                                            binder=["objects"], binder_text="own"))
    assert m.adapter.binder.word.num_embeddings == m.lm.get_input_embeddings().weight.shape[0]
    with torch.no_grad():
        nn.init.normal_(m.adapter.bind_proj["objects"].fc2.weight, std=0.5)
    before = m.binder_picks(objects_bus(), Q), m._binder({"objects": objects_bus().latest("objects")}, [[5, 6, 7]])[0]
    with torch.no_grad():
        m.lm.get_input_embeddings().weight.mul_(3.0)
    after = m.binder_picks(objects_bus(), Q), m._binder({"objects": objects_bus().latest("objects")}, [[5, 6, 7]])[0]
    assert before[0] == after[0] and torch.allclose(before[1], after[1])
    m.save_pretrained(tmp_path / "own")
    back = LanguageModule.from_pretrained(tmp_path / "own")
    assert back.config.binder_text == "own" and torch.equal(back.adapter.binder.word.weight, m.adapter.binder.word.weight)
    with pytest.raises(ConfigError, match="binder_text must be lm or own"):
        LanguageConfig(binder_text="words").validate()


def test_binder_config_and_bus_errors(lm_dir):
    with pytest.raises(ConfigError, match="binder: 'forecast' is not a kind"):
        LanguageConfig(kind_dims={"objects": 18}, binder=["forecast"]).validate()
    with pytest.raises(ConfigError, match="binder has repeats"):
        LanguageConfig(kind_dims={"objects": 18}, binder=["objects", "objects"]).validate()
    with pytest.raises(ConfigError, match="binder_roles"):
        LanguageConfig(binder_roles=1).validate()
    with pytest.raises(ConfigError, match="'percept' is 8 wide"):
        LanguageModule.build(LanguageConfig(base_lm=lm_dir, kind_dims={"percept": 8}, binder=["percept"]))
    m = LanguageModule.build(LanguageConfig(base_lm=lm_dir, kind_dims={"objects": 18}, pool="none", binder=["objects"]))
    bus = LatentBus()
    bus.publish(Message("objects", "perception", clip_rows()))  # no per-step times
    with pytest.raises(BusInputError, match="the binder needs slot rows"):
        m.score_choices(bus, Q, ["yes", "no"])


def test_explain_names_the_binders_picks():
    """`cogarch ask --explain` prints the binder's picks with the object each slot was seen as, and the
    slot its first token reads (binder_first) per kind."""
    from cogarch.ask import _format_evidence

    ev = {"binder": [{"role": 0, "slot": 2, "weight": 0.97, "object": "red metal sphere"},
                     {"role": 1, "slot": 5, "weight": 0.6, "object": None}]}
    (line,) = _format_evidence(ev)
    assert line.endswith("role 0: red metal sphere (slot 2, weight 0.97); role 1: an unseen slot (slot 5, weight 0.60)")
    ev["binder"] += [{"role": "first", "kind": "objects", "slot": 3, "weight": 1.0, "object": "blue rubber cube"},
                     {"role": "first", "kind": "forecast", "slot": None, "weight": 0.0, "object": None}]
    (line,) = _format_evidence(ev)
    assert line.endswith("; first touched by role 0 in objects: blue rubber cube (slot 3); first touched by role 0 in forecast: nothing")
