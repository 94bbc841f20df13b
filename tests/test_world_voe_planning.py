"""voe matched pairs (differ only in the violated object after the violation frame) and the
planning suite / TablePushEnv semantics."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from datasets import load_from_disk

from cogarch.errors import UserError
from cogarch.evals.world.common import SPLITS
from cogarch.evals.world.generate import generate
from cogarch.evals.world.planning_env import TablePushEnv
from cogarch.evals.world.planning import env_from_row
from cogarch.evals.world.video import read_mp4
from cogarch.evals.world.voe import VIOLATIONS

TRACK_KEYS = ("pos", "vel", "angle", "present")


@pytest.fixture(scope="module")
def voe(tmp_path_factory):
    out = tmp_path_factory.mktemp("voe") / "voe"
    generate("voe", 40, out, seed=1, workers=1, progress=False)
    return out, load_from_disk(str(out / "clips")), load_from_disk(str(out / "questions"))


def test_voe_pairs_differ_only_in_violated_object_after_violation(voe):
    out, clips, qs = voe
    seen = Counter()
    for sp in SPLITS:
        rows = {r["clip_id"]: r for r in clips[sp]}
        pairs = {}
        for q in qs[sp]:
            assert q["question"] == "" and q["choices"] == [] and q["answer_index"] == -1
            assert q["category"] in VIOLATIONS and q["pair_id"]
            pairs.setdefault(q["pair_id"], {})[q["answer"]] = q
        for pid, pq in pairs.items():
            assert set(pq) == {"possible", "impossible"}
            ep, ei = json.loads(pq["possible"]["extra"]), json.loads(pq["impossible"]["extra"])
            assert ep["possible"] is True and ei["possible"] is False
            assert ep["violation_frame"] == ei["violation_frame"] and pq["possible"]["category"] == pq["impossible"]["category"]
            f, vid = ei["violation_frame"], str(ei["violated_obj"])
            rp, ri = rows[pq["possible"]["clip_id"]], rows[pq["impossible"]["clip_id"]]
            assert rp["objects"] == ri["objects"]
            ap, ai = json.loads(rp["annotations"]), json.loads(ri["annotations"])
            assert ap["voe"]["violation"] == pq["possible"]["category"] and ai["voe"]["violation_frame"] == f
            assert set(ap["tracks"]) == set(ai["tracks"])
            differs = False
            for oid in ap["tracks"]:
                for k in TRACK_KEYS:
                    a, b = np.array(ap["tracks"][oid][k]), np.array(ai["tracks"][oid][k])
                    assert np.array_equal(a[:f], b[:f]), (pid, oid, k)          # identical before f
                    if oid != vid:
                        assert np.array_equal(a, b), (pid, oid, k)              # others never change
                    elif not np.array_equal(a[f:], b[f:]):
                        differs = True
            assert differs, pid                                                  # the violation is real
            seen[pq["possible"]["category"]] += 1
            # The rendered videos differ too, and are identical before the violation frame.
            vp, vi = read_mp4(out / rp["video"]), read_mp4(out / ri["video"])
            assert vp.shape == vi.shape and rp["num_frames"] == rp["observed_frames"] == vp.shape[0]
            assert np.abs(vp[:f].astype(int) - vi[:f]).max() <= 2      # codec noise only
            assert np.abs(vp[f:].astype(int) - vi[f:]).max() > 40 or pq["possible"]["category"] == "permanence"
    assert set(seen) == set(VIOLATIONS)


def test_voe_permanence_object_vanishes_while_hidden(voe):
    _, clips, qs = voe
    n = 0
    for sp in SPLITS:
        rows = {r["clip_id"]: r for r in clips[sp]}
        for q in qs[sp]:
            if q["category"] != "permanence" or q["answer"] != "impossible":
                continue
            ann = json.loads(rows[q["clip_id"]]["annotations"])
            f, tr = ann["voe"]["violation_frame"], ann["voe"]["violated_obj"]
            t = ann["tracks"][str(tr)]
            assert t["in_view"][f - 1] == 1 or t["visible"][f - 1] == 0
            assert t["visible"][f] == 0 and sum(t["present"][f:]) == 0
            n += 1
    assert n >= 1


def test_env_reset_step_success_and_bounds():
    env = TablePushEnv(seed=3, obstacles=False, goal_distance="near", size=64)
    obs = env.reset()
    assert obs["frame"].shape == (64, 64, 3) and obs["frame"].dtype == np.uint8
    assert obs["state"].shape == (4,) and np.allclose(obs["state"][2:], 0)
    assert not env.success()
    # A huge action is clipped to a_max: one step moves at most a_max * time of k frames.
    obs2, done, info = env.step([1e6, 0.0])
    assert np.hypot(*info["action"]) == pytest.approx(env.a_max)
    dt = env.action_every / env.fps
    assert 0 < obs2["state"][0] - obs["state"][0] <= env.a_max * dt + 1e-4
    # A greedy controller (velocity toward the goal) reaches it; done flips with success.
    env.reset()
    done, steps = False, 0
    while not done:
        x, y, vx, vy = env.state()
        _, done, info = env.step([env.goal[0] - x - vx, env.goal[1] - y - vy])
        steps += 1
    assert env.success() and steps < env.max_steps and info["distance"] <= env.goal[2]
    # Without actions nothing moves and the episode ends at max_steps, unsuccessful.
    env.reset()
    for _ in range(env.max_steps - 1):
        assert env.step([0.0, 0.0])[1] is False
    assert env.step([0.0, 0.0])[1] is True and not env.success()


def test_env_clone_restore_and_determinism():
    a = TablePushEnv(seed=7, obstacles=True, goal_distance="far")
    b = TablePushEnv(seed=7, obstacles=True, goal_distance="far")
    a.reset(), b.reset()
    assert np.array_equal(a.render(), b.render()) and a.goal == b.goal
    assert len(a.scene.statics) >= 1
    acts = np.random.default_rng(0).uniform(-20, 20, size=(6, 2))
    for u in acts[:3]:
        a.step(u)
    snap = a.clone_state()
    ra = [a.step(u)[0]["state"] for u in acts[3:]]
    a.restore_state(snap)
    rb = [a.step(u)[0]["state"] for u in acts[3:]]
    assert all(np.allclose(x, y, atol=1e-3) for x, y in zip(ra, rb))
    with pytest.raises(UserError):
        TablePushEnv(goal_distance="middle")
    with pytest.raises(UserError):
        a.step([float("nan"), 0.0])


def test_planning_episodes_schema(tmp_path):
    s = generate("planning", 12, tmp_path / "pl", seed=2, workers=1, progress=False)
    ep = load_from_disk(str(tmp_path / "pl" / "episodes"))
    cols = ["episode_id", "split", "seed", "video", "frames", "actions", "states", "goal", "obstacles", "success", "env"]
    assert s["clips"] == 12
    for sp in SPLITS:
        assert ep[sp].column_names == cols
    for r in ep["train"]:
        acts, states, goal = json.loads(r["actions"]), json.loads(r["states"]), json.loads(r["goal"])
        assert len(states) == len(acts) + 1 and all(np.hypot(*a) <= 25.0 + 1e-3 for a in acts)
        assert set(goal) == {"x", "y", "r"}
        assert r["frames"] == 1 + 2 * len(acts) == read_mp4(tmp_path / "pl" / r["video"]).shape[0]
        assert r["success"] == (np.hypot(states[-1][0] - goal["x"], states[-1][1] - goal["y"]) <= goal["r"] + 1e-2)
    for r in ep["test_ood"]:
        assert len(json.loads(r["obstacles"])) >= 2
    # env_from_row rebuilds the stored table: replaying the stored actions gives the stored states.
    for r in list(ep["train"]) + list(ep["test_ood"]):
        env = env_from_row(r)
        states = json.loads(r["states"])
        assert np.allclose(env.state(), states[0], atol=1e-2)
        for a, st in zip(json.loads(r["actions"]), states[1:]):
            env.step(a)
            assert np.allclose(env.state(), st, atol=0.05)
        assert env.success() == r["success"] and len(env.frames) == r["frames"]
        goal = json.loads(r["goal"])
        assert (float(env.goal[0]), float(env.goal[1])) == (goal["x"], goal["y"])
