"""The eval runner on small generated-format suites written here (layout: docs/vocabulary.md).

Baseline rows are checked against values computed by hand from the fixture; a test-double Scorer
checks acc vs acc_norm, VoE pair accuracy / AUROC and the output files.
"""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from cogarch.errors import NotBuiltError, UserError
from cogarch.evals.suites.schema import DataError
from cogarch.evals import runner
from cogarch.evals.report import format_table
from cogarch.evals.runner import run_eval, select_limit


def _features():
    import datasets

    return datasets.Features({
        "qid": datasets.Value("string"), "clip_id": datasets.Value("string"),
        "video": datasets.Value("string"), "category": datasets.Value("string"),
        "template": datasets.Value("string"), "question": datasets.Value("string"),
        "choices": datasets.Sequence(datasets.Value("string")), "answer": datasets.Value("string"),
        "answer_index": datasets.Value("int64"), "pair_id": datasets.Value("string"),
        "extra": datasets.Value("string"),
    })


def q(qid, cat, tmpl, question, choices=(), answer=None, idx=-1, pair="", extra=None, clip=None):
    choices = list(choices)
    if choices:
        answer = choices[idx]
    clip = clip or f"clip_{qid}"
    return {"qid": qid, "clip_id": clip, "video": f"videos/{clip}.mp4", "category": cat,
            "template": tmpl, "question": question, "choices": choices, "answer": answer,
            "answer_index": idx if choices else -1, "pair_id": pair,
            "extra": json.dumps(extra or {})}


def write_suite(root, suite, splits, videos=False):
    import datasets

    dd = datasets.DatasetDict({s: datasets.Dataset.from_list(rows, features=_features())
                               for s, rows in splits.items()})
    dd.save_to_disk(str(root / "questions"))
    (root / "manifest.json").write_text(json.dumps({
        "suite": suite, "n": 0, "seed": 0, "generator_version": 1,
        "splits": {s: len(r) for s, r in splits.items()}, "config": {}}))
    if videos:
        (root / "videos").mkdir(exist_ok=True)
        for rows in splits.values():
            for r in rows:
                # Exporters copy bytes; nothing here decodes them.
                (root / r["video"]).write_bytes(f"mp4 bytes of {r['clip_id']}".encode())
    return root


YN = ["yes", "no"]
NY = ["no", "yes"]
LONG = ["no", "yes, they collide"]

PHYSQA = {
    "train": [
        q("t1", "descriptive", "color", "What color?", answer="red"),
        q("t2", "descriptive", "color", "What color?", answer="red"),
        q("t3", "descriptive", "color", "What color?", answer="blue"),
        q("t4", "predictive", "collide", "Will they collide?", YN, idx=1),
        q("t5", "predictive", "collide", "Will they collide?", YN, idx=1),
        q("t6", "predictive", "collide", "Will they collide?", NY, idx=1),
    ],
    "val": [q("v1", "descriptive", "color", "What color?", answer="red")],
    "test": [
        q("a1", "descriptive", "color", "What color is the ball?", answer="red"),
        q("a2", "descriptive", "color", "What color is the cube?", answer="blue"),
        q("a3", "descriptive", "color", "What color is the box?", answer="Red."),
        q("b1", "predictive", "collide", "Will A hit B?", YN, idx=1),   # prior "no" -> right
        q("b2", "predictive", "collide", "Will A hit C?", NY, idx=1),   # prior "no" -> idx 0, wrong
        q("b3", "predictive", "collide", "Will B hit C?", LONG, idx=1),  # prior "no" -> wrong
        q("c1", "counterfactual", "cf", "Without A, would B move?", YN, idx=0, pair="P"),
        q("c2", "counterfactual", "cf", "Without A, would C move?", ["yes", "no", "maybe"],
          idx=1, pair="P"),
    ],
    "test_ood": [q("o1", "descriptive", "color", "What color?", answer="green")],
}


@pytest.fixture(scope="module")
def physqa_dir(tmp_path_factory):
    return write_suite(tmp_path_factory.mktemp("physqa"), "physqa", PHYSQA, videos=True)


class KnowsAnswers:
    """Test double: prefers the true option by 0.5 nats/char (so only acc_norm sees it) and
    returns the true open answer except for one question."""

    name = "double"

    def __init__(self, truth: dict[str, str], open_wrong: str = "", surprise=None):
        self.truth, self.open_wrong, self.surprise_of = truth, open_wrong, surprise or {}
        self.videos = []

    def loglik(self, video, question, choices):
        self.videos.append(video)
        t = self.truth[question]
        return [(-len(c) * (0.5 if c == t else 1.0), len(c)) for c in choices]

    def generate(self, video, question):
        return "nothing" if question == self.open_wrong else f"the {self.truth[question]}"

    def surprise(self, video):
        return self.surprise_of[video.rsplit("/", 1)[-1]]


def test_prior_and_chance_rows_match_hand_computation(physqa_dir, tmp_path):
    res = run_eval("physqa", "baseline:prior", data=physqa_dir, output=tmp_path / "o")
    m = res["metrics"]
    # prior (train only): color -> "red" (2 of 3); collide -> "no" (3 of 3); cf unseen -> option 0.
    assert m["descriptive"]["acc"] == pytest.approx(2 / 3)      # a1 red ok, a2 blue no, a3 "Red." ok
    assert m["predictive"]["acc"] == pytest.approx(1 / 3)       # b1 ok; b2, b3 get "no" = wrong
    assert m["counterfactual"]["acc"] == pytest.approx(1 / 2)   # c1 idx0 ok, c2 idx0 wrong
    assert m["counterfactual"]["pairwise_accuracy"] == 0.0
    assert m["overall"]["acc"] == pytest.approx((2 + 1 + 1) / 8)
    assert res["baselines"]["prior"] == m  # same predictor, same numbers
    assert res["n"] == 8

    # chance: each item's option is rng([seed, crc32(qid)]).integers(#options); open answers are
    # drawn from the template's TRAIN answers, sorted: ["blue", "red"].
    seed = 3
    res = run_eval("physqa", "baseline:chance", data=physqa_dir, output=tmp_path / "c", seed=seed)
    hits = []
    for r in PHYSQA["test"]:
        g = np.random.default_rng([seed, zlib.crc32(r["qid"].encode())])
        if r["choices"]:
            hits.append(int(g.integers(len(r["choices"]))) == r["answer_index"])
        else:
            pick = ["blue", "red"][int(g.integers(2))]
            hits.append(pick == r["answer"].lower().strip("."))
    assert res["metrics"]["overall"]["acc"] == pytest.approx(sum(hits) / len(hits))
    assert res["baselines"]["chance"]["overall"]["acc"] == pytest.approx(sum(hits) / len(hits))
    assert "chance" in res["baselines"] and "prior" in res["baselines"]


def test_chance_mc_converges_to_one_over_k(tmp_path):
    rows = [q(f"m{i:03d}", "predictive", "t", f"q{i}", ["a", "b", "c", "d"], idx=i % 4)
            for i in range(400)]
    d = write_suite(tmp_path / "s", "physqa", {"train": rows[:4], "test": rows})
    res = run_eval("physqa", "baseline:chance", data=d, output=tmp_path / "o", seed=0)
    assert abs(res["metrics"]["overall"]["acc"] - 0.25) < 0.06


def test_acc_vs_acc_norm_and_outputs(physqa_dir, tmp_path):
    truth = {r["question"]: r["answer"] for r in PHYSQA["test"]}
    double = KnowsAnswers(truth, open_wrong="What color is the cube?")
    res = run_eval("physqa", double, data=physqa_dir, output=tmp_path / "out")
    m = res["metrics"]
    # acc_norm always finds the truth; raw acc picks the shortest option unless it is the truth:
    # b1 (yes/no, truth "no") right; b2 (no/yes, truth "yes": -1.5 vs -2) right; b3 truth is the
    # long option (-8.5 vs -2) -> wrong.
    assert m["predictive"]["acc"] == pytest.approx(2 / 3)
    assert m["predictive"]["acc_norm"] == pytest.approx(1.0)
    assert m["descriptive"]["acc"] == pytest.approx(2 / 3)  # "the red" == "Red." after normalising
    assert m["descriptive"]["acc_norm"] is None  # open answers only
    assert m["counterfactual"]["pairwise_accuracy"] == pytest.approx(1.0)
    assert all(v.startswith(str(physqa_dir)) for v in double.videos)  # absolute clip paths

    out = tmp_path / "out"
    for f in ("results.json", "samples.jsonl", "results.md", "results.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == res
    assert set(on_disk) >= {"suite", "model", "split", "n", "metrics", "baselines", "config",
                            "git_revision", "seed"}
    assert set(on_disk["metrics"]["overall"]) == {"acc", "acc_norm", "pairwise_accuracy", "auroc", "n"}
    assert set(on_disk["baselines"]) == {"chance", "prior"}
    assert on_disk["baselines"]["prior"]["overall"]["acc"] == pytest.approx(4 / 8)
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["qid"] for s in samples] == sorted(r["qid"] for r in PHYSQA["test"])
    assert {"qid", "question", "options", "scores", "prediction", "truth", "correct"} <= set(samples[0])
    table = format_table(res)
    assert "model: double" in table and "chance" in table and "prior" in table
    assert "| predictive | acc_norm |" in (out / "results.md").read_text()
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"


class BatchesOpen(KnowsAnswers):
    """The same double with `generate_many`: the runner must batch a clip's open questions."""

    def __init__(self, truth):
        super().__init__(truth, open_wrong="What color is the cube?")
        self.batches: list[tuple[str, list[str]]] = []

    def generate(self, video, question):
        raise AssertionError("a scorer with generate_many is asked one clip's open questions at once")

    def generate_many(self, video, questions):
        self.batches.append((video, list(questions)))
        return [KnowsAnswers.generate(self, video, q) for q in questions]


def test_open_questions_of_a_clip_are_batched_with_the_same_results(physqa_dir, tmp_path):
    truth = {r["question"]: r["answer"] for r in PHYSQA["test"]}
    one = run_eval("physqa", KnowsAnswers(truth, open_wrong="What color is the cube?"), data=physqa_dir,
                   output=tmp_path / "one")
    double = BatchesOpen(truth)
    many = run_eval("physqa", double, data=physqa_dir, output=tmp_path / "many")
    assert many["metrics"] == one["metrics"]
    open_rows = [r for r in PHYSQA["test"] if not r["choices"]]
    asked = sorted((v.rsplit("/", 1)[-1], q) for v, qs in double.batches for q in qs)
    assert asked == sorted({(r["video"].rsplit("/", 1)[-1], r["question"]) for r in open_rows})  # each once
    assert len(double.batches) == len({r["video"] for r in open_rows})  # one call per clip


def test_limit_keeps_pairs_whole():
    rows = [q("a", "x", "t", "q", YN, idx=0, pair="P"), q("b", "x", "t", "q", YN, idx=0),
            q("c", "x", "t", "q", YN, idx=0), q("z", "x", "t", "q", YN, idx=0, pair="P")]
    assert [r["qid"] for r in select_limit(rows, 1)] == ["a", "z"]
    assert [r["qid"] for r in select_limit(rows, 3)] == ["a", "b", "z"]
    assert [r["qid"] for r in select_limit(rows, 2)] == ["a", "z"]
    assert len(select_limit(rows, None)) == 4
    with pytest.raises(UserError):
        select_limit(rows, 0)


def test_voe_pairs_and_auroc(tmp_path):
    def clip(qid, cat, pair, possible):
        r = q(qid, cat, f"voe_{cat}", "", answer="possible" if possible else "impossible",
              pair=pair, extra={"possible": possible, "violation_frame": 5})
        return r
    test = [clip("g1i", "gravity", "g1", False), clip("g1p", "gravity", "g1", True),
            clip("g2i", "gravity", "g2", False), clip("g2p", "gravity", "g2", True),
            clip("s1i", "solidity", "s1", False), clip("s1p", "solidity", "s1", True)]
    d = write_suite(tmp_path / "voe", "voe", {"train": test[:2], "test": test})
    from cogarch.video import write_mp4

    (d / "videos").mkdir()
    for r in test:  # a square that moves in the possible clips and stands still in the impossible ones
        frames = np.zeros((8, 32, 32, 3), np.uint8)
        for t in range(8):
            x = 2 + 3 * t if json.loads(r["extra"])["possible"] else 8
            frames[t, 10:18, x:x + 8] = 255
        write_mp4(d / r["video"], frames, 8.0)
    surprise = {"clip_g1i.mp4": 0.9, "clip_g1p.mp4": 0.2, "clip_g2i.mp4": 0.1,
                "clip_g2p.mp4": 0.3, "clip_s1i.mp4": 0.8, "clip_s1p.mp4": 0.4}
    res = run_eval("voe", KnowsAnswers({}, surprise=surprise), data=d, output=tmp_path / "o")
    m = res["metrics"]
    assert m["gravity"]["pairwise_accuracy"] == pytest.approx(0.5)
    assert m["solidity"]["pairwise_accuracy"] == pytest.approx(1.0)
    assert m["overall"]["pairwise_accuracy"] == pytest.approx(2 / 3)
    # impossible [0.9, 0.1, 0.8] vs possible [0.2, 0.3, 0.4]: wins 3 + 0 + 3 of 9
    assert m["overall"]["auroc"] == pytest.approx(6 / 9)
    assert res["baselines"]["prior"]["overall"]["auroc"] == pytest.approx(0.5)
    assert res["baselines"]["prior"]["overall"]["pairwise_accuracy"] == pytest.approx(0.5)
    res = run_eval("voe", "baseline:prior", data=d, output=tmp_path / "p", limit=1)
    assert res["n"] == 2  # the first clip's twin comes along
    runner.register_model_loader(lambda spec: KnowsAnswers({}, surprise=surprise))
    try:  # a blind model sees no clip, so it has no surprise to report: no blind baseline
        res = run_eval("voe", "packs/x", data=d, output=tmp_path / "p")
    finally:
        runner.register_model_loader(None)
    assert set(res["baselines"]) == {"chance", "prior", "motion"} and "blind_baseline" in res["config"]
    # the motion control ranks the moving (possible) clip of every pair as more surprising
    assert res["baselines"]["motion"]["overall"]["pairwise_accuracy"] == pytest.approx(0.0)


def test_model_specs_and_errors(physqa_dir, tmp_path):
    with pytest.raises(NotBuiltError, match="language module not built yet"):
        run_eval("physqa", "blind", data=physqa_dir, output=tmp_path / "b")
    with pytest.raises(NotBuiltError):
        run_eval("physqa", "packs/default", data=physqa_dir, output=tmp_path / "b")
    with pytest.raises(UserError, match="unknown baseline"):
        run_eval("physqa", "baseline:oracle", data=physqa_dir, output=tmp_path / "b")
    with pytest.raises(UserError, match="cogarch generate --suite voe --n 200 --out data/voe"):
        run_eval("voe", "baseline:prior", data=tmp_path / "nothing", output=tmp_path / "b")
    with pytest.raises(UserError, match="unknown suite"):
        run_eval("nosuch", "baseline:prior", data=physqa_dir, output=tmp_path / "b")
    with pytest.raises(UserError, match="needs --data"):
        run_eval("clevrer", "baseline:prior", output=tmp_path / "b")


def test_registered_loader_adds_blind_baseline(physqa_dir, tmp_path):
    truth = {r["question"]: r["answer"] for r in PHYSQA["test"]}
    seen = []

    def loader(spec):
        seen.append(spec)
        return KnowsAnswers(truth)

    runner.register_model_loader(loader)
    try:
        res = run_eval("physqa", "packs/x", data=physqa_dir, output=tmp_path / "o")
    finally:
        runner.register_model_loader(None)
    assert seen == ["packs/x", "blind"]
    assert set(res["baselines"]) == {"chance", "prior", "blind"}
    assert res["model"] == "packs/x"


def _key(r):
    return (r["question"], tuple(r["choices"]), r["answer"], r["answer_index"], r["category"],
            r["template"])


def test_export_clevrer_round_trip(physqa_dir, tmp_path):
    from cogarch.evals.suites import export_clevrer, load_clevrer

    out = export_clevrer(physqa_dir, tmp_path / "clevrer")
    for split in ("train", "val", "test"):
        back = load_clevrer(out, split, mc_mode="multi")
        assert sorted(map(_key, back)) == sorted(map(_key, PHYSQA[split]))
        for r in back:  # every clip's video was copied under its CLEVRER name
            assert r["video"].endswith(f"video_{json.loads(r['extra'])['scene_index']:05d}.mp4")
        copied = sorted(open(v, "rb").read() for v in {r["video"] for r in back})
        assert copied == sorted((physqa_dir / v).read_bytes() for v in {x["video"] for x in PHYSQA[split]})
    per_option = load_clevrer(out, "test")
    n_opts = sum(len(r["choices"]) or 1 for r in PHYSQA["test"])
    assert len(per_option) == n_opts
    assert not (out / "questions" / "test_ood.json").exists()


def test_export_intphys2_round_trip(tmp_path):
    from cogarch.evals.suites import export_intphys2, load_intphys2

    def clip(qid, cat, pair, possible):
        return q(qid, cat, f"voe_{cat}", "", answer="possible" if possible else "impossible",
                 pair=pair, extra={"possible": possible, "violation_frame": 4})

    test = [clip(f"{p}{k}", cat, p, k == "p") for p, cat in
            (("a", "gravity"), ("b", "permanence"), ("c", "solidity")) for k in ("p", "i")]
    d = write_suite(tmp_path / "voe", "voe", {"train": test[:2], "test": test}, videos=True)
    out = export_intphys2(d, tmp_path / "ip2")
    back = load_intphys2(out, "test")
    assert len(back) == len(test)
    by_bytes = {(d / r["video"]).read_bytes(): r for r in test}
    groups = {}
    for r in back:
        orig = by_bytes[open(r["video"], "rb").read()]
        assert (r["category"], r["answer"]) == (orig["category"], orig["answer"])
        groups.setdefault(r["pair_id"], set()).add(orig["pair_id"])
    assert all(len(v) == 1 for v in groups.values()) and len(groups) == 3  # pairs preserved
    assert len({json.loads(r["extra"])["scene_index"] for r in back}) == 2  # 2 pairs per scene
    assert len(load_intphys2(out, "train")) == 2


def test_planning_reports_stored_random_success_and_planner_hook(tmp_path):
    import datasets

    def ep(i, ok):
        return {"episode_id": f"ep{i:02d}", "split": "test", "seed": i, "video": f"videos/ep{i}.mp4",
                "frames": 16, "actions": json.dumps([[0.1, 0.0]] * 3), "states": "[]",
                "goal": json.dumps({"x": 1, "y": 1, "r": 0.2}), "obstacles": "[]", "success": ok}

    eps = [ep(i, i % 4 == 0) for i in range(8)]  # ep00, ep04 succeed
    root = tmp_path / "planning"
    datasets.DatasetDict({"test": datasets.Dataset.from_list(eps)}).save_to_disk(str(root / "episodes"))
    res = run_eval("planning", "baseline:chance", data=root, output=tmp_path / "o")
    assert res["metrics"]["overall"] == {"success_rate": 0.25, "n": 8}
    assert res["baselines"]["chance"]["overall"]["success_rate"] == 0.25
    assert run_eval("planning", "baseline:chance", data=root, output=tmp_path / "o",
                    limit=3)["metrics"]["overall"]["success_rate"] == pytest.approx(1 / 3)
    runner.register_planner(None)  # another test may have installed the pack planner (evalglue.install)
    with pytest.raises(NotBuiltError, match="planner"):
        run_eval("planning", "packs/x", data=root, output=tmp_path / "o")
    runner.register_planner(lambda spec, e, d: e["seed"] < 6)
    try:
        res = run_eval("planning", "packs/x", data=root, output=tmp_path / "o")
        # A planner may return details with its success; they land in samples, time in the metrics.
        runner.register_planner(lambda spec, e, d: {"success": e["seed"] < 2, "steps": 3, "plan_s_per_action": 0.5})
        res2 = run_eval("planning", "packs/x", data=root, output=tmp_path / "o2")
    finally:
        runner.register_planner(None)
    assert res["metrics"]["overall"]["success_rate"] == pytest.approx(6 / 8)
    assert "success_rate" in format_table(res)
    assert res2["metrics"]["overall"] == {"success_rate": 0.25, "n": 8, "plan_s_per_action": 0.5}
    rows = [json.loads(line) for line in (tmp_path / "o2" / "samples.jsonl").read_text().splitlines()]
    assert rows[0]["steps"] == 3 and rows[0]["stored_random_success"] is True and rows[0]["category"] == "planning"


def _category_suite(root, kinds):
    """A planning suite whose test episode i has goal distance / obstacles kinds[i] (ep00, ep05 stored successes)."""
    import datasets

    eps = [{"episode_id": f"ep{i:02d}", "split": "test", "seed": i, "video": f"videos/ep{i}.mp4", "frames": 16,
            "actions": "[]", "states": "[]", "goal": json.dumps({"x": 1, "y": 1, "r": 0.2}), "obstacles": "[]",
            "success": i in (0, 5), "env": json.dumps({"goal_distance": d, "obstacles": o})}
           for i, (d, o) in enumerate(kinds)]
    datasets.DatasetDict({"test": datasets.Dataset.from_list(eps)}).save_to_disk(str(root / "episodes"))
    return root


def test_planning_category_filters_before_the_limit(tmp_path):
    kinds = [("near", False), ("far", False), ("near", True), ("near", False), ("far", True), ("near", False)]
    root = _category_suite(tmp_path / "planning", kinds)
    res = run_eval("planning", "baseline:chance", data=root, output=tmp_path / "o", category="near")
    assert res["metrics"]["overall"] == {"success_rate": pytest.approx(2 / 3), "n": 3}  # ep00, ep03, ep05
    assert set(res["metrics"]) == {"overall", "near"} and res["config"]["category"] == "near"
    res = run_eval("planning", "baseline:chance", data=root, output=tmp_path / "o", category="near", limit=2)
    assert res["metrics"]["overall"] == {"success_rate": 0.5, "n": 2}  # ep00, ep03: filtered, then the first 2
    qids = [json.loads(line)["qid"] for line in (tmp_path / "o" / "samples.jsonl").read_text().splitlines()]
    assert qids == ["ep00", "ep03"]
    assert run_eval("planning", "baseline:chance", data=root, output=tmp_path / "o",
                    category="far+obstacles")["metrics"]["overall"]["n"] == 1
    near_only = _category_suite(tmp_path / "near_only", [("near", False)] * 2)
    with pytest.raises(DataError, match="no 'far' episodes"):
        run_eval("planning", "baseline:chance", data=near_only, output=tmp_path / "o", category="far")


def _planning_suite(root, n=4):
    """A planning suite of `n` stored test episodes (every other one a stored success)."""
    import datasets

    eps = [{"episode_id": f"ep{i:02d}", "split": "test", "seed": i, "video": f"videos/ep{i}.mp4", "frames": 16,
            "actions": json.dumps([[0.1, 0.0]] * 3), "states": "[]", "goal": json.dumps({"x": 1, "y": 1, "r": 0.2}),
            "obstacles": "[]", "success": i % 2 == 0} for i in range(n)]
    datasets.DatasetDict({"test": datasets.Dataset.from_list(eps)}).save_to_disk(str(root / "episodes"))
    return root


def test_eval_planner_override_reaches_the_planner_and_is_recorded(tmp_path, monkeypatch, capsys):
    from cogarch import evalglue
    from cogarch.cli import main

    root = _planning_suite(tmp_path / "planning")
    calls = []

    def fake(spec, row, data_dir, **kw):
        calls.append(kw)
        return {"success": True, "steps": 1, "plan_s_per_action": 0.1}

    # cmd_eval installs the pack planner; install the fake in its place.
    monkeypatch.setattr(evalglue, "install", lambda: runner.register_planner(fake))
    yaml = tmp_path / "fast.yaml"
    yaml.write_text("kind: cem\ncem: {horizon: 2, samples: 8, elites: 2, iters: 1}\n")
    try:
        for spec, kind in (("hier", "hier"), (str(yaml), "cem")):
            out = tmp_path / f"o-{kind}"
            assert main(["eval", "--suite", "planning", "--model", "packs/x", "--data", str(root),
                         "--planner", spec, "--output", str(out)]) == 0
            rec = json.loads((out / "results.json").read_text())["config"]["planner"]
            assert (rec["name"], rec["kind"], rec["config"]["kind"]) == (spec, kind, kind)
            assert calls[-1]["planner"] == rec and len(calls) % 4 == 0
        assert calls[-1]["planner"]["config"]["cem"]["samples"] == 8
        # without --planner: no keyword, nothing recorded (results.json as before)
        assert main(["eval", "--suite", "planning", "--model", "packs/x", "--data", str(root),
                     "--output", str(tmp_path / "o")]) == 0
    finally:
        runner.register_planner(None)
    assert calls[-1] == {} and "planner" not in json.loads((tmp_path / "o" / "results.json").read_text())["config"]
    capsys.readouterr()


def test_plan_episode_plans_with_the_override_config(tmp_path, monkeypatch):
    from cogarch.modules.cost.config import PlannerConfig

    from cogarch import evalglue

    seen = []

    def episode(seed, goal, cfg, learned, plan_seed=0, env=None):
        seen.append(cfg)
        return {"success": True, "steps": 2, "plan_s_per_action": 0.1, "final_distance": 1.0}

    monkeypatch.setattr(evalglue, "_planning_model", lambda pack: ("learned", PlannerConfig(kind="cem")))
    monkeypatch.setattr("cogarch.modules.cost.cli.table_push_episode", episode)
    monkeypatch.setattr("cogarch.evals.world.planning.env_from_row", lambda row: None)
    row = {"seed": 3}
    evalglue.plan_episode(str(tmp_path), row, tmp_path)
    evalglue.plan_episode(str(tmp_path), row, tmp_path, planner=evalglue.planner_override("hier"))
    assert [c.kind for c in seen] == ["cem", "hier"] and seen[1].hier.stride == 3  # configs/planner/hier.yaml
    wide = tmp_path / "wide.yaml"
    wide.write_text("action_dim: 3\n")
    with pytest.raises(UserError, match="action_dim 3, but this pack plans 2-D actions"):
        evalglue.plan_episode(str(tmp_path), row, tmp_path, planner=evalglue.planner_override(str(wide)))


@pytest.mark.parametrize("args, needle", [
    (["--planner", "bogus"], "unknown planner 'bogus'"),
    (["--planner", "missing/plan.yaml"], "config file not found"),
    (["--planner", "{dir}/key.yaml"], "unknown config key 'cem.horizn'"),
    (["--planner", "{dir}/type.yaml"], "bad value for 'max_steps'"),
    (["--planner", "{dir}/range.yaml"], "range.yaml: cem.elites=8 exceeds cem.samples=4"),
    (["--planner", "hier", "--model", "baseline:chance"], "--planner needs a pack"),
    (["--planner", "hier", "--suite", "physqa"], "--planner applies only to --suite planning"),
    (["--category", "middle"], "--category must be one of near, near+obstacles, far, far+obstacles"),
    (["--category", "near", "--suite", "physqa"], "--category applies only to --suite planning"),
], ids=["unknown-preset", "missing-file", "unknown-key", "bad-type", "bad-range", "chance-model", "physqa-suite",
        "bad-category", "category-physqa"])
def test_eval_bad_planner_exits_2_with_one_line(args, needle, tmp_path, capsys):
    from cogarch.cli import main

    (tmp_path / "key.yaml").write_text("cem: {horizn: 3}\n")
    (tmp_path / "type.yaml").write_text("max_steps: lots\n")
    (tmp_path / "range.yaml").write_text("cem: {samples: 4, elites: 8}\n")
    root = _planning_suite(tmp_path / "planning")
    capsys.readouterr()  # the dataset writer's progress bars
    argv = ["eval", "--suite", "planning", "--model", str(tmp_path), "--data", str(root),
            "--output", str(tmp_path / "o")]
    # argparse keeps the last of a repeated option: later --suite / --model win
    assert main(argv + [a.format(dir=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and err[0].startswith("cogarch eval: error:"), err
    assert not (tmp_path / "o").exists()
