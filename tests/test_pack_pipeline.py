"""`cogarch train pack` end to end at toy sizes: every stage runs, the pack holds every module
(planning included), its pack.json records the evaluations, and a re-run skips every stage.

Sizes are minimal (2 optimizer steps per stage, a few dozen clips): this checks the wiring of the
pipeline, not what it learns; the measured default pack is in docs/benchmarks.md.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from cogarch.config import load_config
from cogarch.pack_checks import check_relations
from cogarch.pack_train import Config, Pipeline, run

TINY = {
    "physqa_n": 40, "voe_n": 8, "planning_n": 20, "planning_eval_limit": 2, "eval_limit": 20, "objects_n": 20,
    "objects_overrides": ["trainer.max_steps=2", "trainer.batch_size=4", "trainer.ckpt_every=0", "head.hidden=32"],
    "perception_overrides": ["trainer.max_steps=2", "model.pool_grid=4", "trainer.ckpt_every=0", "trainer.batch_size=2"],
    "world_model_overrides": ["trainer.max_steps=2", "trainer.batch_size=4", "trainer.ckpt_every=0"],
    "planning_world_model_overrides": ["trainer.max_steps=2", "trainer.batch_size=4", "trainer.ckpt_every=0", "data.window=8",
                                       "model.position_weight=0.1"],
    "critic_overrides": ["model.critic_arch=keypoint", "model.keypoint_weight=1.0", "model.relabel=1.0", "model.gamma=0.0", "model.target=mc", "trainer.max_steps=2", "trainer.batch_size=4",
                         "model.critic_weight=1.0", "model.goal_weight=0.0"],
    "language_pretrain_overrides": ["trainer.max_steps=2", "trainer.ckpt_every=0"],
    "stage1_overrides": ["trainer.max_steps=2", "model.pool=grid", "model.grid=4", "model.max_tokens=64", "trainer.ckpt_every=0"],
    "stage2_overrides": ["trainer.max_steps=2", "model.pool=grid", "model.grid=4", "model.max_tokens=64", "trainer.ckpt_every=0"],
    # the default recipe's rounds at toy size, five of its six: oversampling, relation channels, then
    # a pretrained, frozen slot binder, here the curriculum's (its sixth round's: {binder2}, which
    # continues the first pretraining's {binder}), on a second suite's train split (its seventh
    # round's: {more}, {more_features}); the blind baseline ignores relations and binder
    "stage2_rounds": 5, "physqa_more_n": 12,
    "stage2_round_overrides": [[], [], ["trainer.max_steps=2", "template_repeat.desc_count=2"],
                               ["trainer.max_steps=2", "template_repeat.desc_first_hit=2", "model.relations=[objects,forecast]"],
                               ["trainer.max_steps=2", "model.binder=[objects,forecast]", "model.binder_text=own",
                                "binder_init={binder2}", "freeze_binder=true", "data_dir={more}", "features_dir={more_features}"]],
    "binder_pretrain_overrides": ["templates=[desc_collide]", "trainer.max_steps=2", "trainer.ckpt_every=1"],
    "binder_curriculum_overrides": ["templates=[desc_collide]", "kinds=[forecast,objects]", "trainer.max_steps=2", "trainer.ckpt_every=1"],
}


@pytest.fixture(scope="module")
def tiny_pack(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:
    out = tmp_path_factory.mktemp("pack")
    overrides = [f"out_dir={out}"] + [f"{k}={json.dumps(v)}" for k, v in TINY.items()]
    cfg = load_config(Config, "configs/pack/default.yaml", overrides)
    return cfg, run(cfg)


def test_pipeline_builds_a_complete_pack(tiny_pack: tuple[Config, Path]) -> None:
    cfg, pack = tiny_pack
    for sub in ("perception", "world_model", "language", "language_blind", "memory", "planning/world_model", "planning/cost"):
        assert (pack / sub).is_dir(), sub
    meta = json.loads((pack / "pack.json").read_text())
    assert set(meta["eval"]) == {"physqa", "voe", "planning"}
    plan = meta["eval"]["planning"]
    assert plan["n"] == 2 and 0.0 <= plan["metrics"]["overall"]["success_rate"] <= 1.0
    assert "chance" in plan["baselines"] and plan["metrics"]["overall"]["plan_s_per_action"] > 0
    # object slots: trained on the extra annotated clips, shipped in the pack's perception, on the bus
    perception = json.loads((pack / "perception" / "config.json").read_text())
    assert perception["config"]["object_slots"] == 6, perception
    features = json.loads((Path(cfg.out_dir) / "features" / "language" / "test.json").read_text())
    assert features["kinds"]["objects"]["dim"] == 18
    stages = json.loads((Path(cfg.out_dir) / "pipeline.json").read_text())["stages"]
    assert {"generate objects", "object slots", "object features"} <= set(stages) and "percept features" not in stages
    # the bus world model reads the object slots (configs/world_model/objects_tiny.yaml) and
    # forecasts slot rows, which the language module reads unpooled
    wm = json.loads((pack / "world_model" / "config.json").read_text())
    assert wm["config"]["source"] == "objects" and wm["config"]["latent_dim"] == 18, wm
    assert features["kinds"]["forecast"]["dim"] == 18
    language = json.loads((pack / "language" / "language_config.json").read_text())
    assert language["config"]["pool_per_kind"] == {"objects": "none", "forecast": "none"}
    assert {"generate planning", "planning features", "planning world model", "critic"} <= set(stages)
    # stage2_rounds (6 in the default recipe, 5 here): the pack ships the last round of each, trained from the one before
    assert cfg.stage2_rounds == 5
    assert {f"{s} round {k}" for s in ("language stage 2", "blind language baseline") for k in (2, 3, 4, 5)} <= set(stages)
    assert language["config"]["relations"] == ["objects", "forecast"]
    assert json.loads((pack / "language_blind" / "language_config.json").read_text())["config"]["relations"] == []
    # round 5's slot binder: pretrained after stage 1, continued by the curriculum (their own stages), loaded and
    # kept frozen; the blind LM has none
    assert {"binder pretrain", "binder curriculum"} <= set(stages)
    binders = [Path(cfg.out_dir) / "binder" / phase / "final" / "binder.safetensors" for phase in ("pretrain", "curriculum")]
    assert json.loads((binders[1].parent / "binder_config.json").read_text())["init"] == str(binders[0])
    assert language["config"]["binder"] == ["objects", "forecast"] and language["config"]["binder_text"] == "own"
    assert json.loads((pack / "language_blind" / "language_config.json").read_text())["config"]["binder"] == []
    from safetensors.torch import load_file

    first, pre = (load_file(str(f)) for f in binders)
    shipped = load_file(str(pack / "language" / "projectors.safetensors"))
    assert all(torch.equal(shipped[f"binder.{k}"], v) for k, v in pre.items())  # the curriculum's, frozen through the round
    assert not all(torch.equal(first[k], v) for k, v in pre.items())  # the curriculum trained on from the first phase
    for folder, shipped in (("language", "language"), ("language_blind", "language_blind")):
        last = Path(cfg.out_dir) / f"{folder}_r{cfg.stage2_rounds}" / "final"
        assert (pack / shipped / "adapter_model.safetensors").read_bytes() == (last / "adapter_model.safetensors").read_bytes()
    assert meta["stages"] == stages  # pack.json times every stage, evaluate and check set included
    # the second suite: generated with its own seed, only its train split's features made, read by round 5 alone
    more = Path(cfg.out_dir) / "data" / "physqa_more"
    assert json.loads((more / "manifest.json").read_text())["seed"] == cfg.physqa_more_seed != cfg.seed
    assert sorted(p.name for p in (Path(cfg.out_dir) / "features" / "language_more").glob("*.json")) == ["train.json"]
    for k in (4, 5):
        recipe = stages[f"language stage 2 round {k}"]["recipe"]
        assert ("data_dir=<out_dir>/data/physqa_more" in recipe) == (k == 5)
        assert ("features_dir=<out_dir>/features/language_more" in recipe) == (k == 5)
    assert "data_dir=<out_dir>/data/physqa_more" in stages["blind language baseline round 5"]["recipe"]
    assert meta["sources"] == {"language": "language_r5/final", "language_blind": "language_blind_r5/final"}
    planning = json.loads((pack / "planning" / "planning.json").read_text())
    assert planning["encoder"] == "perception:../perception" and planning["grid"] == cfg.planning_grid
    assert planning["trained_on"]["splits"] == {"train": 14}  # only the train episodes reach training
    # the planning world model trained with the puck-position target the planning features carry
    header = (Path(cfg.out_dir) / "planning_world_model" / "metrics.csv").read_text().splitlines()[0]
    assert "loss_position" in header.split(",")


def test_rerun_skips_every_stage(tiny_pack: tuple[Config, Path], capsys: pytest.CaptureFixture) -> None:
    cfg, pack = tiny_pack
    before = (pack / "pack.json").read_bytes()
    run(cfg)
    printed = capsys.readouterr().out
    assert "running" not in printed and printed.count("skipping") >= 15
    assert (pack / "pack.json").read_bytes() == before
    # resuming with another number of stage-2 rounds would train the new round but keep the pack
    # assembled from the old one: refused before any stage runs, naming what to delete
    from cogarch.errors import ConfigError

    more = dataclasses.replace(cfg, stage2_rounds=6)
    with pytest.raises(ConfigError, match="assembled from language_r5/final but this recipe ships language_r6/final"):
        run(more)
    assert not (Path(cfg.out_dir) / "language_r6").exists()


def test_pack_plans_through_the_cli(tiny_pack: tuple[Config, Path], tmp_path: Path) -> None:
    from cogarch.cli import main

    cfg, pack = tiny_pack
    png = tmp_path / "strip.png"
    assert main(["plan", "--goal", "near", "--model", str(pack), "--out", str(png), "--seed", "1"]) == 0
    assert png.stat().st_size > 0
    assert main(["plan", "--goal", "near", "--model", str(tmp_path), "--out", str(png)]) == 2  # not a planning model


def test_stage2_rounds_continue_from_the_previous_round(tmp_path: Path) -> None:
    """Round k of stage 2 starts from round k-1's final folder (not from stage 1 again), the blind
    baseline's rounds from its own previous round; every round keeps the stage-2 overrides."""
    from cogarch.pack_train import Pipeline

    cfg = load_config(Config, None, [f"out_dir={tmp_path}", "stage2_rounds=3", 'stage2_overrides=["trainer.max_steps=7"]'])
    pipe = Pipeline(cfg, resume=False)
    calls = []

    def train(module, preset, overrides):
        calls.append(overrides)
        out = Path(next(o.split("=", 1)[1] for o in overrides if o.startswith("trainer.out_dir="))) / "final"
        out.mkdir(parents=True)
        return out

    pipe.train = train
    last = pipe.stage2_rounds("language stage 2", "language", ["data_dir=d", "init_from=S1"])
    assert last == tmp_path / "language_r3" / "final"
    inits = [[o for o in c if o.startswith("init_from=")] for c in calls]
    assert inits == [["init_from=S1"], [f"init_from={tmp_path / 'language' / 'final'}"], [f"init_from={tmp_path / 'language_r2' / 'final'}"]]
    assert all("stage=2" in c and "data_dir=d" in c and c[-1] == "trainer.max_steps=7" for c in calls)
    calls.clear()
    assert pipe.stage2_rounds("blind", "language_blind", ["blind=true"]) == tmp_path / "language_blind_r3" / "final"
    assert [[o for o in c if o.startswith("init_from=")] for c in calls] == [[], [f"init_from={tmp_path / 'language_blind' / 'final'}"],
                                                                             [f"init_from={tmp_path / 'language_blind_r2' / 'final'}"]]
    calls.clear()
    pipe.stage2_rounds("blind", "language_blind", ["blind=true"])  # every round done: nothing retrained
    assert calls == []
    # per-round extras come after the stage-2 overrides, for the model and the blind baseline alike
    import shutil

    from cogarch.errors import ConfigError

    x = tmp_path / "x"

    def recipe(rounds: str) -> Config:  # three rounds of 7 steps, with these per-round extras
        return load_config(Config, None, [f"out_dir={x}", "stage2_rounds=3", 'stage2_overrides=["trainer.max_steps=7"]',
                                          f"stage2_round_overrides={rounds}"])

    def blind_rounds(c: Config, resume: bool = True, fit=train) -> Pipeline:
        p = Pipeline(c, resume=resume)
        p.train = fit
        p.stage2_rounds("blind", "language_blind", ["blind=true"])
        return p

    def log() -> dict:
        return json.loads((x / "pipeline.json").read_text())

    def write_log(d: dict) -> None:
        (x / "pipeline.json").write_text(json.dumps(d))

    cfg = recipe('[[], ["template_repeat.desc_count=4", "trainer.max_steps=3"]]')
    calls.clear()
    blind_rounds(cfg, resume=False)
    assert [c[-3:] for c in calls] == [["stage=2", f"trainer.out_dir={x / 'language_blind'}", "trainer.max_steps=7"],
                                       ["trainer.max_steps=7", "template_repeat.desc_count=4", "trainer.max_steps=3"],
                                       ["stage=2", f"trainer.out_dir={x / 'language_blind_r3'}", "trainer.max_steps=7"]]
    # each training stage's recipe is in pipeline.json: resumed with the same recipe every round is
    # skipped; with round 2's extras changed, round 2 is refused (its folder would be kept silently)
    recorded = log()["stages"]["blind round 2"]["recipe"]
    assert recorded[-2:] == ["template_repeat.desc_count=4", "trainer.max_steps=3"] and "<out_dir>/language_blind_r2" in " ".join(recorded)
    calls.clear()
    blind_rounds(cfg)
    assert calls == []
    changed = recipe('[[], ["template_repeat.desc_count=2", "trainer.max_steps=3"]]')
    with pytest.raises(ConfigError, match="stage 'blind round 2' .* trained with template_repeat.desc_count=4; this recipe says template_repeat.desc_count=2"):
        blind_rounds(changed)
    assert calls == []
    # a stage finished before recipes were recorded is not checked
    d = log()
    del d["stages"]["blind round 2"]["recipe"]
    write_log(d)
    blind_rounds(changed)
    assert calls == []
    # an interrupted stage (its folder holds checkpoints, no final) resumes only under the recipe it started with
    shutil.rmtree(x / "language_blind_r3")
    (x / "language_blind_r3" / "checkpoints" / "step_00000001").mkdir(parents=True)
    d = log()
    d["stages"]["blind round 3"] = {"recipe": d["stages"]["blind round 3"]["recipe"], "finished": False}
    write_log(d)
    longer = recipe('[[], ["template_repeat.desc_count=4", "trainer.max_steps=3"], ["trainer.max_steps=9"]]')
    with pytest.raises(ConfigError, match="stage 'blind round 3' .* was interrupted; it was started with \\(none\\) and this recipe says trainer.max_steps=9"):
        blind_rounds(longer)
    assert calls == []
    # the recipe it started with resumes it; pipeline.json holds that recipe while it runs
    seen = []
    blind_rounds(cfg, fit=lambda m, p, o: (seen.append(log()["stages"]["blind round 3"]), train(m, p, o))[1])
    assert len(calls) == 1 and seen[0]["finished"] is False and seen[0]["recipe"][-1] == "trainer.max_steps=7"
    assert "finished" not in log()["stages"]["blind round 3"]
    # a stage killed after its final folder was written but before pipeline.json said so: skipped, the flag dropped
    d = log()
    d["stages"]["blind round 3"]["finished"] = False
    write_log(d)
    calls.clear()
    blind_rounds(cfg)
    assert calls == [] and "finished" not in log()["stages"]["blind round 3"]
    # a stage that failed before its first checkpoint (a folder, no checkpoint) starts afresh under the new recipe
    shutil.rmtree(x / "language_blind_r3")
    (x / "language_blind_r3" / "checkpoints").mkdir(parents=True)
    calls.clear()
    again = blind_rounds(longer)
    assert len(calls) == 1 and calls[0][-1] == "trainer.max_steps=9"
    # only values that are the run folder or inside it become <out_dir> (so a moved run still matches)
    root = str(x)
    assert again.portable([f"trainer.out_dir={root}/language", f"init_from={root}", f"encoder={root}_v11/final", "seed=1"]) == [
        "trainer.out_dir=<out_dir>/language", "init_from=<out_dir>", f"encoder={root}_v11/final", "seed=1"]


def test_object_world_model_needs_object_slots(tmp_path: Path) -> None:
    """The default world model reads perception's slots: without them the pipeline stops at once,
    with a config error that names the cause, before generating or training anything."""
    from cogarch.errors import ConfigError

    cfg = load_config(Config, "configs/pack/default.yaml", [f"out_dir={tmp_path / 'p'}", "objects_n=0"])
    with pytest.raises(ConfigError, match="objects_n"):
        run(cfg)
    assert not (tmp_path / "p" / "data").exists()
    # a bad world-model value fails before the first stage too
    cfg = load_config(Config, "configs/pack/default.yaml", [f"out_dir={tmp_path / 'q'}", 'world_model_overrides=["model.source=object"]'])
    with pytest.raises(ConfigError, match="world_model.source"):
        run(cfg)
    assert not (tmp_path / "q" / "data").exists()
    # the recipe's relation channels read the forecast as slot rows: a percept world model fails at once
    cfg = load_config(Config, "configs/pack/default.yaml", [f"out_dir={tmp_path / 'w'}", 'world_model_overrides=["model.source=percept"]'])
    with pytest.raises(ConfigError, match="model.relations=.objects,forecast. reads the forecast as object-slot rows"):
        run(cfg)
    assert not (tmp_path / "w" / "data").exists()
    # ... and so does the slot binder's, however the list is written; a kind merely containing "forecast" is not one
    rounds = ["stage2_rounds=2", "world_model_overrides=[\"model.source=percept\"]"]
    cfg = load_config(Config, "configs/pack/default.yaml", [f"out_dir={tmp_path / 'b'}", *rounds,
                      """stage2_round_overrides=[[], ["model.binder=[ objects, 'forecast' ]"]]"""])
    with pytest.raises(ConfigError, match="drop forecast from model.binder"):
        run(cfg)
    assert not (tmp_path / "b" / "data").exists()
    cfg = load_config(Config, "configs/pack/default.yaml", [f"out_dir={tmp_path / 'c'}", *rounds,
                      'stage2_round_overrides=[[], ["model.binder=[objects,forecasts]"]]'])
    check_relations(cfg, "percept")  # no error
    # object-slot rows need object slots: a recipe reading them with objects_n 0 fails before the first stage
    cfg = load_config(Config, "configs/pack/default.yaml", [f"out_dir={tmp_path / 'n'}", *rounds, "objects_n=0",
                      'stage2_round_overrides=[[], ["model.binder=[objects]"]]'])
    with pytest.raises(ConfigError, match="model.binder=.objects. reads object-slot rows, but objects_n is 0"):
        run(cfg)
    assert not (tmp_path / "n" / "data").exists()
    # the binder stages' overrides load (with their preset) before the first stage too
    cfg = load_config(Config, "configs/pack/default.yaml", [f"out_dir={tmp_path / 'k'}", 'binder_curriculum_overrides=["kinds=[percept]"]'])
    with pytest.raises(ConfigError, match="kinds must be slot-row kinds"):
        run(cfg)
    assert not (tmp_path / "k" / "data").exists()
    cfg = load_config(Config, "configs/pack/default.yaml", [f"out_dir={tmp_path / 'v'}", "voe_design=triple"])
    with pytest.raises(ConfigError, match="voe_design"):
        run(cfg)
    assert not (tmp_path / "v" / "data").exists()
    # round counts are checked when the recipe loads (load_config runs Config.validate), and again by run
    with pytest.raises(ConfigError, match="stage2_rounds"):
        load_config(Config, "configs/pack/default.yaml", [f"out_dir={tmp_path / 's'}", "stage2_rounds=0"])
    with pytest.raises(ConfigError, match="stage2_round_overrides has 2"):
        load_config(Config, "configs/pack/default.yaml", [f"out_dir={tmp_path / 't'}", "stage2_rounds=1",
                                                          'stage2_round_overrides=[[], ["trainer.max_steps=3"]]'])
    cfg = dataclasses.replace(load_config(Config, "configs/pack/default.yaml", [f"out_dir={tmp_path / 's'}"]), stage2_rounds=0)
    with pytest.raises(ConfigError, match="stage2_rounds"):
        run(cfg)
    assert not (tmp_path / "s" / "data").exists()
    # a pack assembled before pack.json recorded its sources: its recorded recipe (2 rounds) decides
    old_pack = tmp_path / "u" / "pack"
    old_pack.mkdir(parents=True)
    (old_pack / "pack.json").write_text(json.dumps({"config": {"stage2_rounds": 2, "train_blind": True}}))
    cfg = load_config(Config, "configs/pack/default.yaml", [f"out_dir={tmp_path / 'u'}"])
    with pytest.raises(ConfigError, match=f"assembled from language_r2/final but this recipe ships language_r{cfg.stage2_rounds}/final"):
        run(cfg)
    assert not (tmp_path / "u" / "data").exists()
    # resuming a run whose world model was trained on the other source is refused, not mixed
    old = tmp_path / "r" / "world_model" / "final"
    old.mkdir(parents=True)
    (old / "config.json").write_text(json.dumps({"config": {"source": "percept"}}))
    cfg = load_config(Config, "configs/pack/default.yaml", [f"out_dir={tmp_path / 'r'}"])
    with pytest.raises(ConfigError, match="trained on 'percept'"):
        run(cfg)
    assert not (tmp_path / "r" / "data").exists()


def test_second_suite_is_checked_with_the_recipe(tmp_path: Path) -> None:
    """{more} / {more_features} need a second suite, and that suite needs its own seed: both are
    refused when the recipe loads, before anything is generated."""
    from cogarch.errors import ConfigError

    for bad, msg in (('stage2_round_overrides=[["data_dir={more}"]]', "physqa_more_n is 0"),
                     ('stage2_overrides=["features_dir={more_features}"]', "physqa_more_n is 0"),
                     ("physqa_more_seed=0", "must differ from seed")):
        with pytest.raises(ConfigError, match=msg):
            load_config(Config, None, [f"out_dir={tmp_path}", "stage2_rounds=1", "physqa_more_n=10" if "seed" in bad else "physqa_more_n=0", bad])
    assert load_config(Config, None, [f"out_dir={tmp_path}", "physqa_more_n=10", 'stage2_overrides=["data_dir={more}"]']).physqa_more_n == 10
