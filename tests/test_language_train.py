"""Language module training: the LM learns to read the bus (an answer only the latents carry), and
the `language-pretrain` / `language` jobs run through the generic trainer on a tiny synthetic suite
in the shared data schema, with feature shards in the data.py format."""

from __future__ import annotations

import json

import pytest
import torch

from cogarch.bus import LatentBus, Message
from cogarch.errors import UserError
from cogarch.modules.language.config import LanguageConfig
from cogarch.modules.language.corpus import build_corpus, clip_caption
from cogarch.modules.language.data import write_shard
from cogarch.modules.language.model import LanguageModule, encode_pair, format_prompt
from cogarch.modules.language.pretrain import LMArchConfig, new_lm
from cogarch.modules.language.tokenizer import build_tokenizer
from cogarch.modules.language.train import collate

TEXTS = ["Question: What color is the hidden ball? Answer: red", "Question: What color is the hidden ball? Answer: blue"] * 20
Q = "What color is the hidden ball?"


def bus_example(g: torch.Generator, color: int) -> dict:
    """Percept tokens whose feature 0 has the sign of the answer (red: +, blue: -); the rest noise."""
    x = torch.randn(4, 8, generator=g)
    x[:, 0] = (x[:, 0].abs() + 1.0) * (1 if color == 0 else -1)
    return {"tokens": x, "time": torch.arange(4).float()}


def test_lm_learns_an_answer_only_the_bus_carries(tmp_path):
    tok = build_tokenizer(TEXTS, 300, tmp_path / "lm")
    torch.manual_seed(0)
    lm = new_lm(LMArchConfig(hidden=32, layers=2, heads=2, kv_heads=1, intermediate=64, max_positions=128), len(tok))
    # A frozen random LM with the usual 0.02-std tied embeddings cannot emit a confident token
    # (logits = RMS-normed state . tiny embedding); unit-ish embeddings stand in for a pretrained LM.
    with torch.no_grad():
        lm.get_input_embeddings().weight.normal_(0, 0.5)
    lm.save_pretrained(tmp_path / "lm")
    torch.manual_seed(0)
    cfg = LanguageConfig(base_lm=str(tmp_path / "lm"), kind_dims={"percept": 8}, pool="none", lora_dropout=0.0, bundle_base=False)
    m = LanguageModule.build(cfg)
    m.set_stage(2)
    prompt = format_prompt(cfg, Q, ["red", "blue"])
    enc = {c: encode_pair(m.tokenizer, prompt, name, cfg) for c, name in enumerate(["red", "blue"])}
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    g = torch.Generator().manual_seed(0)
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add contention on a shared 2-core box
    for step in range(80):
        colors = torch.randint(0, 2, (16,), generator=g).tolist()
        batch = collate([{"prompt": enc[c][0], "target": enc[c][1], "bus": {"percept": bus_example(g, c)}} for c in colors])
        loss, metrics = m(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(metrics["token_nll"])
    torch.set_num_threads(threads)
    assert sum(losses[-5:]) / 5 < 0.3 * sum(losses[:5]) / 5
    # Held-out clips: multiple-choice by log-likelihood must follow the latents, blind cannot.
    hits, blind_scores = 0, set()
    for i in range(24):
        color = i % 2
        bus = LatentBus()
        ex = bus_example(g, color)
        bus.publish(Message("percept", "perception", ex["tokens"][None], time=ex["time"][None]))
        scores = m.score_choices(bus, Q, ["red", "blue"])
        hits += int(max(range(2), key=lambda j: scores[j][0]) == color)
        blind_scores.add(tuple(s for s, _ in m.score_choices(bus, Q, ["red", "blue"], blind=True)))
    assert hits >= 22
    assert len(blind_scores) == 1  # blind answers cannot depend on the clip


def make_suite(root, n_clips: int = 8) -> None:
    """A tiny generated suite in the shared schema: clips/ and questions/, train split only."""
    from datasets import Dataset, DatasetDict

    clips, questions = [], []
    colors = ["red", "blue", "green", "yellow"]
    for i in range(n_clips):
        objs = [{"id": 0, "color": colors[i % 4], "shape": "sphere", "material": "metal", "x": 10, "y": 10, "vx": 3.0, "vy": 0.0},
                {"id": 1, "color": "gray", "shape": "cube", "material": "rubber", "x": 40, "y": 10, "vx": 0.0, "vy": 0.0}]
        ann = {"observed_frames": 16, "events": [{"type": "collision", "frame": 5 + 10 * (i % 2), "a": 0, "b": 1},
                                                 {"type": "exit", "frame": 20, "obj": 0}]}
        cid = f"clip{i:03d}"
        clips.append({"clip_id": cid, "split": "train", "family": "table", "seed": i, "video": f"videos/{cid}.mp4",
                      "num_frames": 16, "observed_frames": 16, "fps": 8.0, "width": 64, "height": 64,
                      "objects": json.dumps(objs), "annotations": json.dumps(ann)})
        questions.append({"qid": f"q{i}", "clip_id": cid, "video": f"videos/{cid}.mp4", "category": "descriptive",
                          "template": "desc_color", "question": "What color is the sphere?", "choices": colors,
                          "answer": colors[i % 4], "answer_index": i % 4, "pair_id": "", "extra": "{}"})
    DatasetDict({"train": Dataset.from_list(clips)}).save_to_disk(str(root / "clips"))
    DatasetDict({"train": Dataset.from_list(questions)}).save_to_disk(str(root / "questions"))
    g = torch.Generator().manual_seed(0)
    write_shard(root / "features", "train", [c["clip_id"] for c in clips], {
        "percept": {"tokens": torch.randn(n_clips, 12, 8, generator=g), "time": torch.arange(12).div(4, rounding_mode="floor").float().expand(n_clips, 12)},
        "surprise": {"tokens": torch.rand(n_clips, 3, 1, generator=g), "time": torch.arange(3).float().expand(n_clips, 3)},
    })


def test_captions_follow_the_ground_truth():
    objs = [{"id": 0, "color": "red", "shape": "cube", "material": "metal", "vx": 2.0, "vy": 0.1},
            {"id": 1, "color": "blue", "shape": "sphere", "material": "rubber", "vx": 0.0, "vy": 0.0}]
    ann = {"events": [{"type": "collision", "frame": 3, "a": 0, "b": 1}, {"type": "exit", "frame": 30, "obj": 1}]}
    text = clip_caption({"clip_id": "c", "family": "table", "observed_frames": 16, "objects": json.dumps(objs), "annotations": json.dumps(ann)})
    assert text == ("The clip shows a table seen from above with 2 objects: a red metal cube and a blue rubber sphere. "
                    "The red metal cube moves right. The blue rubber sphere is at rest. "
                    "First, the red metal cube collides with the blue rubber sphere. "
                    "After the clip ends, the blue rubber sphere exits the scene.")


def test_grounded_corpus_puts_each_question_after_its_clips_caption(tmp_path):
    make_suite(tmp_path)
    plain, grounded = build_corpus(tmp_path, "train"), build_corpus(tmp_path, "train", grounded="add")
    assert grounded[: len(plain)] == plain and len(grounded) == len(plain) + 8  # one per question
    for i, doc in enumerate(grounded[len(plain):]):
        caption, qa = doc.split("\n", 1)
        assert caption == plain[i]  # clip i's caption (it names the sphere's colour) ...
        assert qa == plain[8 + i] and qa.endswith("Answer: " + ["red", "blue", "green", "yellow"][i % 4])  # ... then its QA
    only = build_corpus(tmp_path, "train", grounded="only")
    assert only == plain[:8] + grounded[len(plain):]  # captions + grounded QA, no bare QA
    with pytest.raises(UserError, match="grounded must be one of none.add.only"):
        build_corpus(tmp_path, "train", grounded="yes")


@pytest.mark.slow
def test_pretrain_then_two_stages_through_the_trainer(tmp_path):
    from transformers import AutoModelForCausalLM

    from cogarch.config import load_config
    from cogarch.modules.language import pretrain, train
    from cogarch.train import fit

    make_suite(tmp_path)
    docs = build_corpus(tmp_path, "train")
    assert len(docs) == 16 and docs[8].startswith("Question: What color is the sphere?\nOptions: red, blue, green, yellow\nAnswer: ")
    common = ["trainer.max_steps=2", "trainer.batch_size=2", "trainer.progress=false", "trainer.ckpt_every=0", "trainer.mixed_precision='no'"]
    pcfg = load_config(pretrain.Config, None, [f"data_dir={tmp_path}", "vocab_size=300", "seq_len=32", "lm.hidden=32", "lm.layers=1",
                                               "lm.heads=2", "lm.kv_heads=1", "lm.intermediate=64", "lm.max_positions=64",
                                               f"trainer.out_dir={tmp_path / 'pre'}", *common])
    base = fit(pretrain.make_job(pcfg), pcfg)
    lm = AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True)
    assert lm.config.model_type == "llama" and lm.config.hidden_size == 32
    # widths 0: taken from the shards; recall is not in the shards, so it is dropped
    model_keys = [f"model.base_lm={base}", "model.kind_dims={percept: 0, surprise: 0, recall: 0}", "model.max_tokens=4"]
    s1 = load_config(train.Config, None, ["stage=1", f"data_dir={tmp_path}", f"features_dir={tmp_path / 'features'}",
                                          f"trainer.out_dir={tmp_path / 's1'}", *common, *model_keys])
    job1 = train.make_job(s1)
    assert job1.model.config.kind_dims == {"percept": 8, "surprise": 1}
    assert not any(p.requires_grad for p in job1.model.lm.parameters())  # stage 1: projectors only
    out1 = fit(job1, s1)
    s2 = load_config(train.Config, None, ["stage=2", f"init_from={out1}", f"data_dir={tmp_path}", f"features_dir={tmp_path / 'features'}",
                                          f"trainer.out_dir={tmp_path / 's2'}", *common])
    job2 = train.make_job(s2)
    assert any(p.requires_grad for n, p in job2.model.lm.named_parameters() if "lora_" in n)
    before = {n: p.detach().clone() for n, p in job2.model.lm.named_parameters() if "lora_B" in n}
    out2 = fit(job2, s2)
    final = LanguageModule.from_pretrained(out2)
    moved = [not torch.equal(before[n], p) for n, p in final.lm.named_parameters() if n in before]
    assert moved and all(moved)  # LoRA trained in stage 2
    scores = final.score_choices(FeatureShardBus(tmp_path / "features")("clip001"), "What color is the sphere?", ["red", "blue"])
    assert len(scores) == 2 and all(n >= 2 for _, n in scores)


def test_templates_restrict_stage_two_questions(tmp_path):
    """templates=[...] keeps only those templates' questions (e.g. "can this reader count at all");
    a template no question has, or templates in stage 1, is a config error naming it."""
    from datasets import Dataset, DatasetDict

    from cogarch.config import load_config
    from cogarch.errors import ConfigError
    from cogarch.modules.language import train

    make_suite(tmp_path)
    qs = [dict(q, qid=q["qid"] + "s", template="desc_shape", question="What shape is the gray object?", choices=["cube", "sphere"],
               answer="cube", answer_index=0) for q in Dataset.load_from_disk(str(tmp_path / "questions" / "train"))]
    rows = list(Dataset.load_from_disk(str(tmp_path / "questions" / "train"))) + qs
    DatasetDict({"train": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "questions2"))
    (tmp_path / "questions").rename(tmp_path / "questions_old")
    (tmp_path / "questions2").rename(tmp_path / "questions")
    tok = build_tokenizer(TEXTS + ["What shape is the gray object? cube sphere"], 300, tmp_path / "lm")
    new_lm(LMArchConfig(hidden=32, layers=1, heads=2, kv_heads=1, intermediate=64, max_positions=128), len(tok)).save_pretrained(tmp_path / "lm")
    module = LanguageModule.build(LanguageConfig(base_lm=str(tmp_path / "lm"), kind_dims={"percept": 8}))
    from cogarch.modules.language.data import FeatureShard

    shard = FeatureShard(tmp_path / "features", "train")

    def examples(*over):
        cfg = load_config(train.Config, None, [f"data_dir={tmp_path}", f"features_dir={tmp_path / 'features'}", *over])
        return train.build_examples(cfg, module, shard)

    assert len(examples()) == 16
    only = examples("templates=[desc_shape]")
    assert len(only) == 8 and all(t == module.tokenizer("cube", add_special_tokens=False)["input_ids"] + [module.tokenizer.eos_token_id]
                                  for _, _, t in only)
    with pytest.raises(ConfigError, match="desc_count"):
        examples("templates=[desc_count]")
    with pytest.raises(ConfigError, match="stage 1"):
        load_config(train.Config, None, ["stage=1", "templates=[desc_shape]"])
    # template_repeat oversamples: each desc_shape question three times, the others once, in order
    base = examples()
    rep = examples("template_repeat.desc_shape=3")
    shape_t = only[0][2]
    assert len(rep) == 8 + 3 * 8 and sum(t == shape_t for _, _, t in rep) == 24
    assert [e for e in rep if e[2] != shape_t] == [e for e in base if e[2] != shape_t]
    with pytest.raises(ConfigError, match="desc_count"):
        examples("template_repeat.desc_count=2")
    with pytest.raises(ConfigError, match="template_repeat.desc_shape"):
        load_config(train.Config, None, ["template_repeat.desc_shape=0"])
    with pytest.raises(ConfigError, match="stage 1"):
        load_config(train.Config, None, ["stage=1", "template_repeat.desc_shape=2"])


def FeatureShardBus(root):
    from cogarch.modules.language.scoring import ShardBus

    return ShardBus(root, "train")
