"""physqa suite: on-disk schema, determinism, answer balance, re-simulated counterfactuals, splits."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
import pytest
from datasets import load_from_disk

from cogarch.errors import UserError
from cogarch.evals.world import generate as gen
from cogarch.evals.world.common import BALANCE_SLACK, SPLITS, balance
from cogarch.evals.world.physqa import recompute_counterfactual, resimulate_events
from cogarch.evals.world.sim import scene_from_json
from cogarch.evals.world.truth import events_hash
from cogarch.evals.world.video import read_mp4
from cogarch.evals.world.vocab import OOD_COMBOS

CLIP_COLS = ["clip_id", "split", "family", "seed", "video", "num_frames", "observed_frames", "fps",
             "width", "height", "objects", "annotations"]
Q_COLS = ["qid", "clip_id", "video", "category", "template", "question", "choices", "answer",
          "answer_index", "pair_id", "extra"]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("pq") / "physqa"
    summary = gen.generate("physqa", 60, out, seed=0, workers=1, progress=False)
    return out, summary, load_from_disk(str(out / "clips")), load_from_disk(str(out / "questions"))


def test_schema_and_manifest(suite):
    out, summary, clips, qs = suite
    assert list(clips) == list(SPLITS) and list(qs) == list(SPLITS)
    for sp in SPLITS:
        assert clips[sp].column_names == CLIP_COLS
        assert qs[sp].column_names == Q_COLS
    man = json.loads((out / "manifest.json").read_text())
    assert {"suite", "n", "seed", "generator_version", "splits", "config"} <= set(man)
    assert man["suite"] == "physqa" and man["n"] == 60 and man["generator_version"] == 2
    assert man["splits"] == {sp: len(clips[sp]) for sp in SPLITS} == summary["splits"]
    assert summary["clips"] == 60 and summary["clips_per_s"] > 0
    row = clips["train"][0]
    frames = read_mp4(out / row["video"])
    assert frames.shape == (row["num_frames"], 64, 64, 3) and row["num_frames"] == row["observed_frames"] == 16
    ann = json.loads(row["annotations"])
    assert ann["num_frames"] == 32 and ann["observed_frames"] == 16
    for tr in ann["tracks"].values():
        assert len(tr["pos"]) == len(tr["vel"]) == len(tr["visible"]) == len(tr["in_view"]) == 32
    cats = Counter(c for sp in SPLITS for c in qs[sp]["category"])
    assert set(cats) == {"descriptive", "explanatory", "predictive", "counterfactual"}
    for sp in SPLITS:
        for q in qs[sp]:
            assert q["video"] == f"videos/{q['clip_id']}.mp4"
            if q["choices"]:
                assert q["choices"][q["answer_index"]] == q["answer"] and len(set(q["choices"])) == len(q["choices"])
            else:
                assert q["answer_index"] == -1 and q["answer"]


def test_answers_balanced_per_template(suite):
    _, _, _, qs = suite
    for sp in SPLITS:
        by_t = defaultdict(Counter)
        for t, a in zip(qs[sp]["template"], qs[sp]["answer"]):
            by_t[t][a] += 1
        for t, cnt in by_t.items():
            k, total = len(cnt), sum(cnt.values())
            assert k >= 2, (sp, t, cnt)
            assert max(cnt.values()) / total <= 1 / k + BALANCE_SLACK + 1e-9, (sp, t, cnt)


def test_balance_rejection_sampling_unit():
    rng = np.random.default_rng(0)
    rows = [{"template": "yn", "answer": "no"}] * 90 + [{"template": "yn", "answer": "yes"}] * 10
    rows += [{"template": "c", "answer": a} for a in "aaaaaaaaaaaaaabbbbbbcc"]
    rows += [{"template": "one", "answer": "x"}] * 5
    kept = balance([dict(r, i=i) for i, r in enumerate(rows)], rng)
    yn = Counter(r["answer"] for r in kept if r["template"] == "yn")
    assert yn == {"yes": 10, "no": 12}                        # 12/22 = 54.5% <= 55%
    c = Counter(r["answer"] for r in kept if r["template"] == "c")
    assert max(c.values()) / sum(c.values()) <= 1 / len(c) + BALANCE_SLACK
    assert not any(r["template"] == "one" for r in kept)      # a one-answer template is a prior
    assert [r["i"] for r in kept] == sorted(r["i"] for r in kept)


def test_counterfactual_answers_come_from_resimulation(suite):
    _, _, clips, qs = suite
    n_checked = n_which = 0
    for sp in SPLITS:
        by_clip = {r["clip_id"]: r for r in clips[sp]}
        for q in qs[sp]:
            extra = json.loads(q["extra"])
            row = by_clip[q["clip_id"]]
            ann = json.loads(row["annotations"])
            objs = json.loads(row["objects"])
            scene = scene_from_json(ann["scene"], objs)
            O = row["observed_frames"]
            if q["template"] == "expl_which":
                # Every candidate was re-simulated away; the answer is the unique one whose
                # removal prevents the collision.
                resp = []
                for t in extra["tested"]:
                    assert events_hash(resimulate_events(scene, t["removed"], O)) == t["resim_hash"]
                    cf = recompute_counterfactual(scene, dict(extra, removed=t["removed"]), "expl_which", O)
                    assert (cf == "yes") == t["prevents"]
                    resp += [t["removed"]] if t["prevents"] else []
                name = {o["id"]: f"{o['color']} {o['material']} {o['shape']}" for o in objs}
                assert len(resp) == 1 and q["answer"] == name[resp[0]] and q["answer"] in q["choices"]
                n_which += 1
                continue
            if q["category"] != "counterfactual" and q["template"] != "expl_responsible":
                continue
            assert recompute_counterfactual(scene, extra, q["template"], O) == q["answer"]
            assert events_hash(resimulate_events(scene, extra["removed"], O)) == extra["resim_hash"]
            assert extra["removed"] in {o["id"] for o in objs}
            n_checked += 1
    assert n_checked >= 20 and n_which >= 2


def test_splits_disjoint_and_ood_combos(suite):
    _, _, clips, qs = suite
    ids = [set(clips[sp]["clip_id"]) for sp in SPLITS]
    seeds = [set(clips[sp]["seed"]) for sp in SPLITS]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not ids[i] & ids[j] and not seeds[i] & seeds[j]
        assert set(qs[SPLITS[i]]["clip_id"]) <= ids[i]
    for sp in SPLITS:
        for row in clips[sp]:
            combos = {(o["color"], o["shape"]) for o in json.loads(row["objects"])}
            held = combos & set(OOD_COMBOS)
            assert bool(held) == (sp == "test_ood"), (sp, combos)
            if sp == "test_ood":
                assert row["observed_frames"] == 24 and json.loads(row["annotations"])["num_frames"] == 48


def test_determinism_across_runs_and_workers(tmp_path):
    a = gen.generate("physqa", 8, tmp_path / "a", seed=5, workers=1, progress=False)
    gen.generate("physqa", 8, tmp_path / "b", seed=5, workers=2, progress=False)
    gen.generate("physqa", 8, tmp_path / "c", seed=6, workers=1, progress=False)
    ca, cb, cc = (load_from_disk(str(tmp_path / x / "clips"))["train"] for x in "abc")
    assert ca["annotations"] == cb["annotations"] and ca["annotations"] != cc["annotations"]
    qa, qb = (load_from_disk(str(tmp_path / x / "questions"))["train"] for x in "ab")
    assert qa["question"] == qb["question"] and qa["answer"] == qb["answer"]
    for v in ca["video"]:
        assert (tmp_path / "a" / v).read_bytes() == (tmp_path / "b" / v).read_bytes()
    assert a["clips"] == 8


def test_user_errors_and_atomicity(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="unknown suite"):
        gen.generate("nope", 4, tmp_path / "x", progress=False)
    with pytest.raises(UserError, match="positive"):
        gen.generate("physqa", 0, tmp_path / "x", progress=False)
    with pytest.raises(UserError, match="unknown generate option"):
        gen.generate("physqa", 4, tmp_path / "x", progress=False, colour=1)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f.txt").write_text("keep")
    with pytest.raises(UserError, match="not empty"):
        gen.generate("physqa", 4, tmp_path / "full", progress=False)

    def boom(task):
        raise RuntimeError("worker died")

    monkeypatch.setattr(gen, "_run_task", boom)
    with pytest.raises(RuntimeError):
        gen.generate("physqa", 4, tmp_path / "full", workers=1, progress=False, overwrite=True)
    # Nothing half-written: the old folder is intact and no temp folder is left behind.
    assert (tmp_path / "full" / "f.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_train_per_template_adds_train_questions_only(suite, tmp_path):
    """train_per_template=3: more questions on the same train clips; the other splits are byte-equal."""
    _, _, clips, qs = suite
    out = tmp_path / "physqa3"
    gen.generate("physqa", 60, out, seed=0, workers=1, progress=False, train_per_template=3)
    clips3, qs3 = load_from_disk(str(out / "clips")), load_from_disk(str(out / "questions"))
    for sp in SPLITS:
        assert clips3[sp].to_list() == clips[sp].to_list()
        if sp != "train":
            assert qs3[sp].to_list() == qs[sp].to_list()
    assert len(qs3["train"]) > 2 * len(qs["train"])
    assert set(qs3["train"]["clip_id"]) <= set(clips["train"]["clip_id"])
    assert json.loads((out / "manifest.json").read_text())["config"]["train_per_template"] == 3
    with pytest.raises(UserError, match="train_per_template"):
        gen.generate("physqa", 4, tmp_path / "bad", train_per_template=-1)
