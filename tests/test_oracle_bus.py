"""The language-ceiling diagnostics: ground-truth object tokens (evals/bench/oracle_bus.py) and
scoring a saved language folder from feature shards (evals/bench/lang_eval.py)."""

import json
import subprocess
import sys

import pytest
import torch

from cogarch.evals.bench.oracle_bus import DIM, write
from cogarch.evals.world.vocab import COLORS, MATERIALS, SHAPES
from cogarch.modules.language.corpus import load_split
from cogarch.modules.language.data import FeatureShard


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    from cogarch.evals.world import generate as gen

    out = tmp_path_factory.mktemp("physqa")
    gen.generate("physqa", 12, out, seed=3, workers=1, progress=False)
    return out


def test_oracle_tokens_are_the_visible_truth(suite, tmp_path):
    counts = write(str(suite), str(tmp_path / "oracle"))
    assert counts["train"] > 0
    shard = FeatureShard(tmp_path / "oracle", "train")
    clips = [r for s in ("train", "val", "test", "test_ood") for r in load_split(str(suite), "clips", s)]
    K = max(len(json.loads(r["objects"])) for r in clips)  # slots: the most objects of any clip
    assert shard.kinds["percept"] == {"dim": DIM, "n_tokens": 8 * K, "source": "oracle"}
    row = load_split(str(suite), "clips", "train")[0]
    objects = json.loads(row["objects"])
    tracks = json.loads(row["annotations"])["tracks"]
    msg = shard.bus(row["clip_id"]).latest("percept")
    tok = msg.tokens[0].reshape(8, K, DIM)  # [step, object slot, D]
    assert msg.time[0].reshape(8, K)[:, 0].tolist() == list(range(8))
    fps = int(row["observed_frames"]) // 8
    seen = 0
    for j, ob in enumerate(objects):
        tr = tracks[str(ob["id"])]
        for t in range(8):
            f = (t + 1) * fps - 1
            if not tr["visible"][f]:
                assert tok[t, j].abs().sum() == 0  # a camera cannot see it: nothing published
                continue
            seen += 1
            assert tok[t, j, list(COLORS).index(ob["color"])] == 1
            assert tok[t, j, len(COLORS) + SHAPES.index(ob["shape"])] == 1
            assert tok[t, j, len(COLORS) + len(SHAPES) + MATERIALS.index(ob["material"])] == 1
            assert tok[t, j, 13:16].tolist() == pytest.approx([1.0, tr["pos"][f][0] / 64, tr["pos"][f][1] / 64])
    assert seen > 0
    assert tok[:, len(objects):].abs().sum() == 0  # unused object slots stay zero


def test_lang_eval_bad_folder_exits_2(suite):
    r = subprocess.run([sys.executable, "-m", "cogarch.evals.bench.lang_eval", "--data", str(suite),
                        "--features", "/nonexistent", "--model", "/nonexistent", "--split", "train"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "/nonexistent" in r.stderr


def test_lang_eval_scores_a_language_folder(suite, tmp_path):
    from cogarch.evals.bench.lang_eval import evaluate, scorer
    from cogarch.modules.language.config import LanguageConfig
    from cogarch.modules.language.model import LanguageModule
    from cogarch.modules.language.pretrain import LMArchConfig, new_lm
    from cogarch.modules.language.tokenizer import build_tokenizer

    write(str(suite), str(tmp_path / "oracle"))
    qs = load_split(str(suite), "questions", "train")
    tok = build_tokenizer([f"Question: {q['question']} Answer: {q['answer']}" for q in qs] * 4, 300, tmp_path / "tok")
    torch.manual_seed(0)
    lm = new_lm(LMArchConfig(hidden=32, layers=2, heads=2, kv_heads=1, intermediate=64, max_positions=256), len(tok))
    lm.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    module = LanguageModule.build(LanguageConfig(base_lm=str(tmp_path / "lm"), kind_dims={"percept": DIM}, pool="none"))
    module.save_pretrained(tmp_path / "lang")

    from cogarch.errors import UserError

    with pytest.raises(UserError, match="no feature shard"):
        scorer(str(tmp_path / "lang"), str(tmp_path / "missing"), "train")
    with pytest.raises(UserError, match="forcast"):
        scorer(str(tmp_path / "lang"), str(tmp_path / "oracle"), "train", drop=("forcast",))
    own, swapped = scorer(str(tmp_path / "lang"), str(tmp_path / "oracle"), "train"), \
        scorer(str(tmp_path / "lang"), str(tmp_path / "oracle"), "train", swap=True)
    ids = sorted(own.bus_for_video.shard.clip_ids)
    a, b = own._bus(f"videos/{ids[0]}.mp4"), swapped._bus(f"videos/{ids[0]}.mp4")
    assert torch.equal(b.latest("percept").tokens, own._bus(f"videos/{ids[1]}.mp4").latest("percept").tokens)
    assert not torch.equal(a.latest("percept").tokens, b.latest("percept").tokens)
    q = next(r for r in qs if r["choices"])
    expect = LanguageModule.from_pretrained(tmp_path / "lang").merge_lora_().eval().score_choices(
        own.bus_for_video.shard.bus(q["clip_id"]), q["question"], list(q["choices"]))
    assert [s for s, _ in own.loglik(q["video"], q["question"], q["choices"])] == pytest.approx([float(s) for s, _ in expect])
    open_qs = [r["question"] for r in qs if not r["choices"]][:4]
    assert len(open_qs) >= 2
    # The runner answers a clip's open questions in one batch: the same greedy answers as one by one.
    assert own.generate_many(q["video"], open_qs) == [own.generate(q["video"], x) for x in open_qs]

    res = evaluate(str(suite), str(tmp_path / "oracle"), "train", str(tmp_path / "lang"), str(tmp_path / "lang"), swap=True, limit=20,
                   drop=("percept",), samples_dir=str(tmp_path / "samples"))
    assert set(res["variants"]) == {"model", "other clip's bus", "without percept", "blind-trained"}
    # --samples: one jsonl per variant, one row per question, agreeing with the reported accuracy
    files = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert files == ["blind_trained.samples.jsonl", "model.samples.jsonl", "other_clip_s_bus.samples.jsonl",
                     "without_percept.samples.jsonl"]
    rows = [json.loads(x) for x in (tmp_path / "samples" / "model.samples.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and len({r["qid"] for r in rows}) == 20
    assert round(100 * sum(r["correct"] for r in rows) / 20, 1) == res["variants"]["model"]["overall"]
    assert sum(v["n"] for v in res["templates"].values()) == res["n"] == 20
    for v in res["variants"].values():
        assert 0.0 <= v["overall"] <= 100.0
    # Without its only kind the bus is empty: the same folder then answers exactly as blind.
    assert res["variants"]["without percept"] == res["variants"]["blind-trained"]


def test_caption_oracle_writes_the_true_caption_before_the_question(suite, tmp_path):
    from cogarch.evals.bench.lang_eval import CaptionScorer
    from cogarch.modules.language.corpus import clip_caption
    from cogarch.modules.language.model import format_prompt
    from cogarch.modules.language.pretrain import LMArchConfig, new_lm
    from cogarch.modules.language.scoring import choice_logliks, generate_texts
    from cogarch.modules.language.tokenizer import build_tokenizer

    clips = {r["clip_id"]: r for r in load_split(str(suite), "clips", "train")}
    tok = build_tokenizer([clip_caption(r) for r in clips.values()] * 4, 300, tmp_path / "tok")
    torch.manual_seed(0)
    new_lm(LMArchConfig(hidden=32, layers=2, heads=2, kv_heads=1, intermediate=64, max_positions=2048), len(tok)).save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    oracle = CaptionScorer(str(tmp_path / "lm"), str(suite), "train")
    plain = CaptionScorer(str(tmp_path / "lm"), str(suite), "train", with_caption=False)
    assert oracle.module.config.max_prompt_tokens == 2048 - 32  # the LM's context, not the 128-token default
    q = next(r for r in load_split(str(suite), "questions", "train") if r["choices"])
    body = format_prompt(oracle.module.config, q["question"], list(q["choices"]))
    assert oracle._prompt(q["video"], q["question"], list(q["choices"])) == clip_caption(clips[q["clip_id"]]) + "\n" + body
    assert plain._prompt(q["video"], q["question"], list(q["choices"])) == body
    want = choice_logliks(oracle.module, None, clip_caption(clips[q["clip_id"]]) + "\n" + body, list(q["choices"]), blind=True)
    assert oracle.loglik(q["video"], q["question"], list(q["choices"])) == want
    assert oracle.loglik(q["video"], q["question"], list(q["choices"])) != plain.loglik(q["video"], q["question"], list(q["choices"]))
    assert isinstance(oracle.generate(q["video"], q["question"]), str)
    from cogarch.errors import UserError

    oracle.module.config.max_prompt_tokens = 8  # a caption that does not fit is an error, never cut
    with pytest.raises(UserError, match="more than the LM's 8"):
        oracle.loglik(q["video"], q["question"], list(q["choices"]))
    assert generate_texts(plain.module, None, [format_prompt(plain.module.config, q["question"])], blind=True)[0] == plain.generate(q["video"], q["question"])
