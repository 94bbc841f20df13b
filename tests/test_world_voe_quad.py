"""voe quadruplets (generate option voe_design=quad): two possible and two impossible clips per
group, balanced so that every frame, trajectory and scene element occurs equally often among
the possible and the impossible clips; each impossible clip really breaks its law."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
from datasets import load_from_disk

from cogarch.errors import UserError
from cogarch.evals.bench.world_model import voe_eval
from cogarch.evals.world.common import SPLITS
from cogarch.evals.world.generate import generate
from cogarch.evals.world.video import read_mp4
from cogarch.evals.world.voe import VIOLATIONS


@pytest.fixture(scope="module")
def quads(tmp_path_factory):
    out = tmp_path_factory.mktemp("voeq") / "voeq"
    # 50 groups: 35 train, 5 per eval split, so every type is built in the 48-frame test_ood split too.
    summary = generate("voe", 200, out, seed=3, workers=2, progress=False, voe_design="quad")
    assert summary["clips"] == 200 and json.loads((out / "manifest.json").read_text())["config"]["voe_design"] == "quad"
    clips, qs = load_from_disk(str(out / "clips")), load_from_disk(str(out / "questions"))
    groups = []
    for sp in SPLITS:
        rows = {r["clip_id"]: r for r in clips[sp]}
        by: dict[str, dict] = {}
        for q in qs[sp]:
            e = json.loads(q["extra"])
            ann = json.loads(rows[q["clip_id"]]["annotations"])
            by.setdefault(q["pair_id"], {})[e["role"]] = {"q": q, "extra": e, "ann": ann, "split": sp,
                                                          "objects": json.loads(rows[q["clip_id"]]["objects"]),
                                                          "video": out / q["video"]}
        groups += list(by.values())
    return groups


def _hero(c):
    return c["ann"]["tracks"][str(c["extra"]["violated_obj"])]


def test_quads_have_two_possible_and_two_impossible_clips_of_one_type(quads):
    assert len(quads) == 50
    for sp in SPLITS:
        assert {g["P1"]["q"]["category"] for g in quads if g["P1"]["split"] == sp} == set(VIOLATIONS)
    for g in quads:
        assert sorted(g) == ["I1", "I2", "P1", "P2"]
        assert {r: g[r]["q"]["answer"] for r in g} == {"P1": "possible", "P2": "possible",
                                                       "I1": "impossible", "I2": "impossible"}
        assert len({g[r]["q"]["category"] for r in g}) == 1
        assert len({g[r]["extra"]["violation_frame"] for r in g}) == 1
        # The hero never touches another object, so every other object moves alike in all four.
        hero = str(g["P1"]["extra"]["violated_obj"])
        for oid, tr in g["P1"]["ann"]["tracks"].items():
            if oid != hero:
                for r in ("P2", "I1", "I2"):
                    assert g[r]["ann"]["tracks"][oid]["pos"] == tr["pos"]


def test_quads_balance_frames_trajectories_and_scene_elements(quads):
    """Per frame, the hero's state over {P1, P2} equals that over {I1, I2} (as multisets), and so
    do the scenes' static elements: no per-frame statistic separates possible from impossible."""
    for g in quads:
        T = len(_hero(g["P1"])["pos"])
        for t in range(T):
            def state(r):
                h = _hero(g[r])
                return (tuple(h["pos"][t]), h["present"][t])
            assert Counter(map(state, ("P1", "P2"))) == Counter(map(state, ("I1", "I2"))), (g["P1"]["q"]["qid"], t)
        statics = lambda r: json.dumps(g[r]["ann"]["scene"]["statics"], sort_keys=True)  # noqa: E731
        assert Counter(map(statics, ("P1", "P2"))) == Counter(map(statics, ("I1", "I2")))


def test_quad_videos_match_frame_for_frame_on_spliced_types(quads):
    """permanence / continuity / inertia: each impossible frame is a possible clip's frame."""
    n = 0
    for g in quads:
        if g["P1"]["q"]["category"] not in ("permanence", "continuity", "inertia"):
            continue
        v = {r: read_mp4(g[r]["video"]).astype(np.float32) for r in g}
        f = g["P1"]["extra"]["violation_frame"]
        # the worst single frame's mean error (codec noise only), not an average over frames
        err = lambda a, b, s: float(np.abs(v[a][s] - v[b][s]).mean(axis=(1, 2, 3)).max())  # noqa: E731
        before, after = slice(0, f), slice(f, None)
        assert err("I1", "P1", before) < 1.0 and err("I1", "P2", after) < 1.0
        assert err("I2", "P2", before) < 1.0 and err("I2", "P1", after) < 1.0
        assert err("P1", "P2", slice(None)) > 2.0          # the two possible clips do differ
        n += 1
    assert n == 30


def test_each_impossible_clip_breaks_its_law(quads):
    for g in quads:
        kind, f = g["P1"]["q"]["category"], g["P1"]["extra"]["violation_frame"]
        h = {r: _hero(g[r]) for r in g}
        names = {r: [s["name"] for s in g[r]["ann"]["scene"]["statics"]] for r in g}
        if kind == "permanence":
            assert sum(h["P1"]["visible"][f:]) > 0 and sum(h["P2"]["present"]) == 0
            assert h["I1"]["visible"][f] == 0 and sum(h["I1"]["present"][f:]) == 0 and h["I1"]["present"][0] == 1
            assert h["I2"]["visible"][f] == 0 and sum(h["I2"]["present"][:f]) == 0 and sum(h["I2"]["visible"][f:]) > 0
        elif kind == "continuity":
            jump = np.array(g["P1"]["extra"]["jump"])
            step = np.array(h["I1"]["pos"][f]) - np.array(h["I1"]["pos"][f - 1])
            lawful = np.array(h["P1"]["pos"][f]) - np.array(h["P1"]["pos"][f - 1])
            assert np.allclose(step - lawful, jump, atol=0.02) and np.hypot(*jump) >= 8
            for r in ("I1", "I2"):                       # the jump happens out of sight
                assert h[r]["visible"][f - 1] == 0 and h[r]["visible"][f] == 0
        elif kind == "inertia":
            a, b = np.array(h["I1"]["vel"][f - 1]), np.array(h["I1"]["vel"][f])
            turn = math.atan2(a[0] * b[1] - a[1] * b[0], a @ b)
            assert abs(abs(turn) - abs(g["P1"]["extra"]["turn"])) < 0.15 and abs(turn) > math.pi / 4
            assert h["P2"]["angle"] == h["P1"]["angle"]      # the body does not spin at the turn
            for r in ("I1", "I2"):                           # and the turn is seen
                assert all(h[r]["in_view"][t] for t in (f - 1, f, f + 1))
        elif kind == "solidity":
            assert names["P1"] == names["I1"] and "wall0" in names["P1"] and "wall0" not in names["P2"] + names["I2"]
            assert h["I1"]["pos"] == h["P2"]["pos"] and h["I2"]["pos"] == h["P1"]["pos"] != h["P2"]["pos"]
            v0, v1 = np.array(h["P1"]["vel"][f - 1]), np.array(h["P1"]["vel"][min(f + 1, len(h["P1"]["vel"]) - 1)])
            assert v0 @ v1 < 0                               # P1 rebounds off the wall ...
            wall = next(s for s in g["P1"]["ann"]["scene"]["statics"] if s["name"] == "wall0")
            a, b = np.array(wall["a"]), np.array(wall["b"])
            side = lambda p: np.sign((b - a)[0] * (p[1] - a[1]) - (b - a)[1] * (p[0] - a[0]))  # noqa: E731
            path = h["I1"]["pos"]
            assert side(path[0]) != side(path[-1])           # ... and I1 ends up beyond it
            assert not [e for e in g["I2"]["ann"]["events"] if e.get("b") == "wall0"]
        else:  # gravity
            assert "shelf0" in names["P1"] and "shelf0" in names["I2"] and "shelf0" not in names["P2"] + names["I1"]
            ys = lambda r: np.array(h[r]["pos"])[:, 1]  # noqa: E731
            assert np.ptp(ys("P1")) < 0.5 and np.ptp(ys("I1")) < 0.5      # rests / floats
            assert ys("P2")[-1] - ys("P2")[0] > 5 and h["I2"]["pos"] == h["P2"]["pos"]
            shelf = next(s for s in g["P1"]["ann"]["scene"]["statics"] if s["name"] == "shelf0")
            assert ys("I2")[-1] > shelf["a"][1]              # it ends below the shelf it fell through
            assert not [e for e in g["I1"]["ann"]["events"] if e.get("b") == "shelf0"]


def test_edited_paths_keep_clear_of_other_objects_and_match_the_objects_row(quads):
    from cogarch.evals.world.scenes import outer_radius

    for g in quads:
        for r in g:
            radius = {o["id"]: outer_radius(o["shape"]) for o in g[r]["objects"]}
            hero = g[r]["extra"]["violated_obj"]
            h = g[r]["ann"]["tracks"][str(hero)]
            spec = next(o for o in g[r]["objects"] if o["id"] == hero)
            if h["present"][0]:                              # the objects row is frame 0 of the clip
                assert np.allclose([spec["x"], spec["y"]], h["pos"][0], atol=0.01)
            for oid, tr in g[r]["ann"]["tracks"].items():
                if int(oid) == hero:
                    continue
                d = np.linalg.norm(np.array(tr["pos"]) - np.array(h["pos"]), axis=-1)
                both = np.array(tr["present"], bool) & np.array(h["present"], bool)
                assert (d[both] >= radius[hero] + radius[int(oid)]).all(), (g[r]["q"]["qid"], oid)


def test_quads_are_deterministic(tmp_path):
    rows = []
    for k in range(2):
        generate("voe", 8, tmp_path / str(k), seed=5, workers=1, progress=False, voe_design="quad")
        rows.append(load_from_disk(str(tmp_path / str(k) / "clips"))["train"].to_list())
    assert rows[0] == rows[1] and len(rows[0]) == 8  # 2 groups, both in train (fewer than 4 units)


def test_voe_eval_scores_every_cross_comparison_of_a_group():
    rows = [{"clip_id": c, "category": "gravity", "pair_id": "g", "extra": {"possible": p}}
            for c, p in (("p1", True), ("p2", True), ("i1", False), ("i2", False))]
    # impossible 3 and 1 vs possible 2 and 0: 3>2, 3>0, 1<2, 1>0 -> 3 of 4.
    res = voe_eval(rows, {"p1": 2.0, "p2": 0.0, "i1": 3.0, "i2": 1.0})
    assert res["gravity"]["pairwise_acc"] == 0.75 and res["gravity"]["pairs"] == 1


def test_voe_design_option_is_checked(tmp_path):
    with pytest.raises(UserError, match="voe_design"):
        generate("voe", 8, tmp_path / "x", workers=1, progress=False, voe_design="triple")
    assert not (tmp_path / "x").exists()
