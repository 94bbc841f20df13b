"""Public-suite loaders on small fixtures written here in each benchmark's published format."""

from __future__ import annotations

import json

import pytest

from cogarch.evals.runner import run_eval
from cogarch.evals.suites import (
    DataError,
    load_clevrer,
    load_intphys2,
    load_mvp,
    load_perception_test,
    load_piqa,
)

COLS = ["qid", "clip_id", "video", "category", "template", "question", "choices", "answer",
        "answer_index", "pair_id", "extra"]


def _choice(i, text, ok):
    return {"choice_id": i, "choice": text, "program": ["objects"], "answer": "correct" if ok else "wrong"}


def clevrer_scenes(with_answers=True):
    scenes = [
        {"scene_index": 10000, "video_filename": "video_10000.mp4", "questions": [
            {"question_id": 0, "question_type": "descriptive", "question_subtype": "count",
             "question": "How many metal objects are there?", "answer": "2", "program": ["count"]},
            {"question_id": 1, "question_type": "explanatory", "program": ["filter_collision"],
             "question": "Which of the following is responsible for the collision?",
             "choices": [_choice(0, "The cube's entering", True), _choice(1, "The sphere", True),
                         _choice(2, "The cylinder", False)]},
            {"question_id": 2, "question_type": "predictive", "program": ["events"],
             "question": "What will happen next?",
             "choices": [_choice(0, "The cube collides with the sphere", False),
                         _choice(1, "The cube exits", True)]},
        ]},
        {"scene_index": 10001, "video_filename": "video_10001.mp4", "questions": [
            {"question_id": 0, "question_type": "counterfactual", "program": ["events"],
             "question": "Without the cube, what will not happen?",
             "choices": [_choice(0, "A collision", True), _choice(1, "An exit", False)]},
        ]},
    ]
    if not with_answers:
        for s in scenes:
            for q in s["questions"]:
                q.pop("answer", None)
                for c in q.get("choices", []):
                    c.pop("answer")
    return scenes


@pytest.fixture()
def clevrer_dir(tmp_path):
    (tmp_path / "questions").mkdir()
    (tmp_path / "questions" / "validation.json").write_text(json.dumps(clevrer_scenes()))
    (tmp_path / "questions" / "test.json").write_text(json.dumps(clevrer_scenes(False)))
    vdir = tmp_path / "video_validation" / "video_10000-11000"
    vdir.mkdir(parents=True)
    (vdir / "video_10000.mp4").write_bytes(b"not decoded by the loader")
    return tmp_path


def test_clevrer_per_option_and_multi(clevrer_dir):
    ds = load_clevrer(clevrer_dir, "val")
    assert ds.column_names == COLS
    rows = {r["qid"]: r for r in ds}
    assert len(rows) == 1 + 3 + 2 + 2
    d = rows["clevrer-10000-q0"]
    assert (d["choices"], d["answer"], d["answer_index"], d["category"], d["template"]) == \
        ([], "2", -1, "descriptive", "count")
    assert d["video"] == str(clevrer_dir / "video_validation/video_10000-11000/video_10000.mp4")
    opt = rows["clevrer-10000-q1-c2"]
    assert opt["choices"] == ["wrong", "correct"] and opt["answer"] == "wrong"
    assert opt["pair_id"] == "clevrer-10000-q1" and opt["question"].endswith("Option: The cylinder")
    # no file on disk: the canonical release path, relative to the root
    assert rows["clevrer-10001-q0-c0"]["video"] == "video_validation/video_10000-11000/video_10001.mp4"

    multi = {r["qid"]: r for r in load_clevrer(clevrer_dir, "val", mc_mode="multi")}
    assert sorted(multi) == ["clevrer-10000-q0", "clevrer-10000-q2", "clevrer-10001-q0"]  # 2-correct q dropped
    assert multi["clevrer-10000-q2"]["answer"] == "The cube exits"
    assert multi["clevrer-10000-q2"]["answer_index"] == 1


def test_clevrer_per_question_accuracy(clevrer_dir, tmp_path):
    class SaysWrong:  # every option judged "wrong"; descriptive answered "two"
        name = "says_wrong"

        def loglik(self, video, question, choices):
            return [(0.0 if c == "wrong" else -1.0, len(c)) for c in choices]

        def generate(self, video, question):
            return "two"

        def surprise(self, video):
            return 0.0

    res = run_eval("clevrer", SaysWrong(), data=clevrer_dir, split="val", output=tmp_path / "o")
    m = res["metrics"]
    # per option: explanatory 1/3 right, predictive 1/2, counterfactual 1/2; per question: none
    # of the 3 MC questions has all options right. Descriptive "two" == "2".
    assert m["explanatory"]["acc"] == pytest.approx(1 / 3)
    assert m["predictive"]["acc"] == pytest.approx(1 / 2)
    assert m["overall"]["pairwise_accuracy"] == 0.0
    assert m["descriptive"]["acc"] == 1.0
    assert res["config"]["prior_source"].startswith("none")  # no train.json in the fixture


def test_clevrer_errors(clevrer_dir, tmp_path):
    with pytest.raises(DataError, match="withholds test labels"):
        load_clevrer(clevrer_dir, "test")
    with pytest.raises(DataError, match="no train.json"):
        load_clevrer(clevrer_dir, "train")
    with pytest.raises(DataError, match="does not exist"):
        load_clevrer(tmp_path / "absent", "val")
    bad = clevrer_scenes()
    del bad[1]["questions"][0]["question_type"]
    (clevrer_dir / "questions" / "validation.json").write_text(json.dumps(bad))
    with pytest.raises(DataError, match=r"validation.json scene 10001 question 0: missing field 'question_type'"):
        load_clevrer(clevrer_dir, "val")
    bad = clevrer_scenes()
    bad[0]["questions"][1]["choices"][0]["answer"] = "maybe"
    (clevrer_dir / "questions" / "validation.json").write_text(json.dumps(bad))
    with pytest.raises(DataError, match="choice 0: answer must be"):
        load_clevrer(clevrer_dir, "val")


def _intphys_dir(root, header=("SceneIndex", "Difficulty", "type", "filename", "condition")):
    main = root / "Main"
    (main / "Videos").mkdir(parents=True)
    lines = [",".join(header)]
    for scene, cond in (("7", "permanence"), ("124_0", "solidity")):
        for typ in ("1_Possible", "1_Impossible", "2_Possible", "2_Impossible"):
            name = f"{cond}_{scene}_{typ}"
            (main / "Videos" / f"{name}.mp4").write_bytes(b"x")
            vals = {"SceneIndex": scene, "Difficulty": "Easy", "type": typ, "filename": name,
                    "file_name": f"Videos/{name}.mp4", "condition": cond}
            lines.append(",".join(vals[h] for h in header))
    (main / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def test_intphys2_pairs_by_scene(tmp_path):
    ds = load_intphys2(_intphys_dir(tmp_path), "test")
    assert ds.column_names == COLS and len(ds) == 8
    pairs = {}
    for r in ds:
        pairs.setdefault(r["pair_id"], []).append(r)
        assert r["video"] == str(tmp_path / "Main" / "Videos" / f"{r['clip_id']}.mp4")
        assert json.loads(r["extra"])["possible"] == (r["answer"] == "possible")
    assert sorted(pairs) == ["intphys2-Main-124_0-1", "intphys2-Main-124_0-2",
                             "intphys2-Main-7-1", "intphys2-Main-7-2"]
    for members in pairs.values():
        assert sorted(m["answer"] for m in members) == ["impossible", "possible"]
        assert len({m["category"] for m in members}) == 1
    assert {r["category"] for r in ds} == {"permanence", "solidity"}
    # --data may point at the split folder itself (e.g. IntPhys2/Main)
    assert load_intphys2(tmp_path / "Main", "test")["qid"] == ds["qid"]


def test_intphys2_file_name_variant_and_errors(tmp_path):
    ds = load_intphys2(_intphys_dir(tmp_path / "a", ("SceneIndex", "type", "file_name")), "Main")
    assert len(ds) == 8 and {r["category"] for r in ds} == {"all"}
    assert all(r["video"].endswith(".mp4") and "/Videos/" in r["video"] for r in ds)
    root = _intphys_dir(tmp_path / "b")
    meta = root / "Main" / "metadata.csv"
    meta.write_text(meta.read_text().replace("2_Impossible", "3_Weird", 1))
    with pytest.raises(DataError, match=r"metadata.csv' line 5: type must be one of"):
        load_intphys2(root, "test")
    (root / "HeldOut").mkdir()
    (root / "HeldOut" / "metadata.csv").write_text("filename\nabc\n")
    with pytest.raises(DataError, match="no column 'SceneIndex'"):
        load_intphys2(root, "heldout")
    with pytest.raises(DataError, match="no split folder"):
        load_intphys2(root, "val")


def test_piqa(tmp_path):
    recs = [{"id": "a", "goal": "To dry wet socks,", "sol1": "hang them up.", "sol2": "freeze them."},
            {"id": "b", "goal": "To open a jar,", "sol1": "eat it.", "sol2": "twist the lid."}]
    (tmp_path / "valid.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (tmp_path / "valid-labels.lst").write_text("0\n1\n")
    ds = load_piqa(tmp_path, "val")
    assert ds.column_names == COLS
    assert [r["answer"] for r in ds] == ["hang them up.", "twist the lid."]
    assert [r["answer_index"] for r in ds] == [0, 1] and all(r["video"] == "" for r in ds)
    with pytest.raises(DataError, match="withheld"):
        load_piqa(tmp_path, "test")
    res = run_eval("piqa", "baseline:prior", data=tmp_path, split=None, output=tmp_path / "o")
    assert res["split"] == "val" and res["n"] == 2  # split=None: the labelled split
    assert res["metrics"]["overall"]["acc"] == 0.5  # no train split -> prior picks option 0
    (tmp_path / "valid-labels.lst").write_text("0\n")
    with pytest.raises(DataError, match="1 labels for 2 records"):
        load_piqa(tmp_path, "val")
    (tmp_path / "valid-labels.lst").write_text("0\n1\n")
    del recs[1]["sol2"]
    (tmp_path / "valid.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(DataError, match="valid.jsonl record 1: missing field 'sol2'"):
        load_piqa(tmp_path, "val")
    with pytest.raises(DataError, match="train.jsonl"):
        load_piqa(tmp_path, "train")


def test_mvp_pairs_and_paired_accuracy(tmp_path):
    recs = [
        {"video_id": "ip_001_0", "video_path": "intphys/a.mp4", "question": "Is it plausible?",
         "candidates": "['Yes', 'No']", "answer": "Yes"},
        {"video_id": "ip_001_1", "video_path": "intphys/b.mp4", "question": "Is it plausible?",
         "candidates": ["Yes", "No"], "answer": "No"},
        {"video_id": "ip_002_0", "video_path": "intphys/c.mp4", "question": "Does it stop?",
         "candidates": ["Yes", "No"], "answer": "Yes"},
        {"video_id": "ip_002_1", "video_path": "intphys/d.mp4", "question": "Does it stop?",
         "candidates": ["Yes", "No"], "answer": "No"},
    ]
    (tmp_path / "intuitive_physics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (tmp_path / "temporal_reasoning.csv").write_text(
        "video_id,video_path,question,candidates,answer\n"
        "tr_9_0,tr/x.mp4,What came first?,\"['the cup', 'the ball']\",the ball\n"
        "tr_9_1,tr/y.mp4,What came first?,\"['the cup', 'the ball']\",the cup\n")
    ds = load_mvp(tmp_path)
    assert ds.column_names == COLS and len(ds) == 6
    rows = {r["qid"]: r for r in ds}
    assert rows["mvp-intuitive_physics-ip_001_0"]["pair_id"] == "mvp-intuitive_physics-ip_001"
    assert rows["mvp-temporal_reasoning-tr_9_0"]["answer_index"] == 1
    assert rows["mvp-intuitive_physics-ip_001_1"]["video"] == str(tmp_path / "videos/intphys/b.mp4")

    class AlwaysYes:  # the shortcut MVP is built to catch: right once per pair, never both
        name = "always_first"

        def loglik(self, video, question, choices):
            return [(-float(i), 1) for i in range(len(choices))]

        def generate(self, video, question):
            return ""

        def surprise(self, video):
            return 0.0

    res = run_eval("mvp", AlwaysYes(), data=tmp_path, output=tmp_path / "o")
    assert res["metrics"]["overall"]["acc"] == pytest.approx(0.5)
    assert res["metrics"]["overall"]["pairwise_accuracy"] == 0.0
    recs[0]["answer"] = "Maybe"
    (tmp_path / "intuitive_physics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(DataError, match="intuitive_physics.jsonl record 0: answer 'Maybe' is not one"):
        load_mvp(tmp_path)
    with pytest.raises(DataError, match="no <subset>"):
        load_mvp(tmp_path / "o")


def test_perception_test(tmp_path):
    data = {
        "video_10": {"metadata": {"video_id": "video_10", "num_frames": 900}, "mc_question": [
            {"id": 0, "question": "Is the camera moving?", "options": ["yes", "no", "unsure"],
             "answer_id": 1, "area": "physics", "reasoning": "descriptive", "tag": ["motion"]},
            {"id": 1, "question": "What will fall?", "options": ["cup", "box", "nothing"],
             "answer_id": 2, "area": "physics", "reasoning": "predictive", "tag": []}]},
        "video_11": {"metadata": {"video_id": "video_11"}, "mc_question": [
            {"id": 0, "question": "How many objects?", "options": ["1", "2", "3"],
             "answer_id": "0", "area": "abstraction", "reasoning": "descriptive", "tag": []}]},
        "video_12": {"metadata": {"video_id": "video_12"}, "object_tracking": []},  # other tasks only
    }
    (tmp_path / "mc_question_valid.json").write_text(json.dumps(data))
    ds = load_perception_test(tmp_path, "val")
    assert ds.column_names == COLS and len(ds) == 3
    rows = {r["qid"]: r for r in ds}
    assert rows["pt-video_10-1"]["answer"] == "nothing"
    assert rows["pt-video_10-1"]["template"] == "physics/predictive"
    assert rows["pt-video_11-0"]["category"] == "abstraction"
    assert rows["pt-video_11-0"]["video"] == str(tmp_path / "videos" / "video_11.mp4")
    assert rows["pt-video_11-0"]["answer"] == "1" and rows["pt-video_11-0"]["answer_index"] == 0
    data["video_11"]["mc_question"][0]["answer_id"] = "first"
    (tmp_path / "all_train.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="answer_id 'first' is not an option index"):
        load_perception_test(tmp_path, "train")
    del data["video_11"]["mc_question"][0]["answer_id"]
    (tmp_path / "all_test.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="video 'video_11' question 0: no 'answer_id'"):
        load_perception_test(tmp_path, "test")
    (tmp_path / "mc_question_valid.json").write_text("{not json")
    with pytest.raises(DataError, match="is not valid JSON"):
        load_perception_test(tmp_path, "val")
