"""`cogarch train pack`: one resumable pipeline that trains the whole architecture into a pack.

    generate physqa + voe + planning  ->  perception (V-JEPA)  [->  object slots on the frozen encoder]
      ->  percept (or object) features  ->  world model (over patch tokens, or over object slots)
      ->  planning features -> action-conditioned world model -> critic (the pack's planner)
      ->  bus features (percept, objects, forecast, surprise, cost)  ->  language-pretrain (tokenizer + LM)
      ->  language stage 1 (projectors on captions)  [-> binder pretrain]  ->  stage 2 (projectors + LoRA on QA)
      ->  blind language baseline  ->  assemble pack  ->  evaluate  ->  pack.json

Each stage is the same `cogarch train MODULE --config PRESET k=v ...` a user can run alone (the
pipeline calls `train_module` with the preset and overrides that point it at this run's folders).
A stage whose output exists is skipped, and an interrupted stage resumes from its last
checkpoint, so re-running the same command continues where it stopped. Each training
stage's preset and overrides are recorded in pipeline.json when it starts: a re-run whose recipe
for a finished stage changed is refused (the old folder would be kept silently), and so is one that
would resume an interrupted stage's checkpoints under another recipe.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cogarch.config import to_dict
from cogarch.errors import ConfigError
from cogarch.fsutil import atomic_dir, atomic_write_json
from cogarch.info import git_revision
from cogarch.pack_checks import check_relations, check_resumed_world_model, world_model_source


@dataclass
class Config:
    out_dir: str = "runs/pack"
    seed: int = 0  # data seed (generator) and training seed
    physqa_n: int = 2000
    # Questions per template per TRAIN clip (0: the generator's default, 1). More training questions
    # from the same clips cost no perception or feature time; val/test keep the standard questions.
    physqa_train_per_template: int = 0
    # A second physqa suite for later stage-2 rounds (physqa_more_n clips, seed physqa_more_seed: other
    # scenes; only its train split is read): in stage2_round_overrides {more} names it and
    # {more_features} its train split's bus features, e.g. [data_dir={more}, features_dir={more_features}].
    physqa_more_n: int = 0
    physqa_more_seed: int = 23
    voe_n: int = 400
    # "pair" (possible + impossible twin; the shipped packs) or "quad" (IntPhys-balanced quadruplets,
    # evals/world/voe_quad.py: no per-clip motion statistic separates possible from impossible).
    voe_design: str = "pair"
    perception: str = "configs/perception/tiny.yaml"
    perception_overrides: list[str] = field(default_factory=list)
    # Object slots (modules/perception/objects.py): objects_n > 0 generates that many extra annotated
    # physqa clips (seed + 3, disjoint from the eval splits) and fits the slots on their train split
    # with the encoder frozen; the pack's perception then also publishes "objects". 0: no slots.
    objects_n: int = 0
    objects: str = "configs/perception/objects_tiny.yaml"
    objects_overrides: list[str] = field(default_factory=list)
    # The bus world model. Its preset's model.source picks what it reads: "percept" (patch tokens
    # of the frozen encoder) or "objects" (the object slots; needs objects_n > 0).
    world_model: str = "configs/world_model/tiny.yaml"
    world_model_overrides: list[str] = field(default_factory=list)
    # Planning (TablePushEnv): episodes of the planning suite, encoded by the trained perception
    # (each step's token grid pooled to planning_grid x planning_grid tokens), an action-conditioned
    # world model and a critic trained on them; the planner preset is copied into the pack.
    planning_n: int = 1000  # episodes (70/10/10/10 train/val/test/test_ood)
    planning_grid: int = 4
    # The planning world model's own preset (patch tokens + actions). Until v9 it shared `world_model`'s
    # preset; set it explicitly when an older pack config used a custom world-model preset.
    planning_world_model: str = "configs/world_model/tiny.yaml"
    planning_world_model_overrides: list[str] = field(default_factory=list)
    critic: str = "configs/critic/tiny.yaml"
    critic_overrides: list[str] = field(default_factory=list)
    planner: str = "configs/planner/cem.yaml"
    planning_eval_limit: int = 20  # test episodes the evaluation plans (0: all); up to ~17 s each on 2 cores
    language_pretrain: str = "configs/language/pretrain_tiny.yaml"
    language_pretrain_overrides: list[str] = field(default_factory=list)
    language: str = "configs/language/tiny.yaml"
    stage1_overrides: list[str] = field(default_factory=lambda: ["trainer.max_steps=300"])
    stage2_overrides: list[str] = field(default_factory=list)
    # Stage 2 runs this many times: round r > 1 starts from round r-1's final weights with a fresh
    # warmup + cosine schedule (a warm restart, as SGDR, Loshchilov & Hutter 2017). The blind
    # baseline gets the same rounds, so it is trained exactly as long.
    stage2_rounds: int = 1
    # Extra overrides of round k (entry k-1), after stage2_overrides, for the model and the blind
    # baseline alike: e.g. [[], [], ["trainer.max_steps=3000", "template_repeat.desc_count=4"]]
    # (a shorter third round that oversamples counting). Rounds past the list get none.
    stage2_round_overrides: list[list[str]] = field(default_factory=list)
    # The slot binder's pretraining (`cogarch train language-binder` from binder_preset, after language
    # stage 1, on the train split's answers): run when a stage-2 override says binder_init={binder},
    # which then names its weights. binder_pretrain_overrides are its dotted overrides, e.g.
    # [templates=[desc_collide], trainer.max_steps=1500]. A curriculum's second phase continues those
    # weights (init=) with binder_curriculum_overrides and writes {binder2}; it runs when an override
    # names {binder2}. (Packs v14 and v15 recorded binder_pretrain_args: the bench script's flags.)
    binder_preset: str = "configs/language/binder.yaml"
    binder_pretrain_overrides: list[str] = field(default_factory=list)
    binder_curriculum_overrides: list[str] = field(default_factory=list)
    train_blind: bool = True  # also train the blind (no-video) language baseline on the same QA
    memory: str = "configs/memory/default.yaml"
    eval_limit: int = 0  # 0: the whole test split
    ship_to: str = ""  # copy the finished pack here too (e.g. cogarch/assets/default_pack)

    def validate(self) -> None:
        """Run by load_config, so every reader of a recipe (the pipeline, repack_language) checks it."""
        if self.stage2_rounds < 1:
            raise ConfigError(f"stage2_rounds must be >= 1, got {self.stage2_rounds}")
        named = " ".join(self.stage2_overrides + [o for r in self.stage2_round_overrides for o in r])
        if (MORE in named or MORE_FEATURES in named) and self.physqa_more_n <= 0:
            raise ConfigError(f"a stage-2 override names {MORE} or {MORE_FEATURES}, but physqa_more_n is 0: there is no second suite")
        if self.physqa_more_n > 0 and self.physqa_more_seed == self.seed:
            raise ConfigError(f"physqa_more_seed must differ from seed ({self.seed}): the second suite would repeat the first's scenes")
        if len(self.stage2_round_overrides) > self.stage2_rounds:
            raise ConfigError(f"stage2_round_overrides has {len(self.stage2_round_overrides)} rounds' entries, "
                              f"stage2_rounds is {self.stage2_rounds}")


BINDER, BINDER2 = "{binder}", "{binder2}"  # in a stage-2 override: the pretrained binders' weights (Pipeline.binders)
MORE, MORE_FEATURES = "{more}", "{more_features}"  # ... the second physqa suite and its bus features (Pipeline.more)


def shard_width(path: Path) -> int:
    """Latent width D of a world-model feature shard ([N, T', P, D] `latents`)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as fh:
        return int(fh.get_slice("latents").get_shape()[-1])


# The fixed question set whose accuracy pack.json records (see Pipeline.check).
CHECK_SET = {"suite": "physqa", "n": 120, "seed": 777, "split": "test", "limit": 100}


def round_folder(folder: str, k: int) -> str:
    """The run folder of stage-2 round k: `folder` for the first round, `folder`_r<k> after it."""
    return folder if k == 1 else f"{folder}_r{k}"


class Pipeline:
    def __init__(self, cfg: Config, resume: bool) -> None:
        self.cfg, self.resume = cfg, resume
        self.root = Path(cfg.out_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_path = self.root / "pipeline.json"
        self.binders = {k: self.root / "binder" / sub / "final" / "binder.safetensors" for k, sub in ((BINDER, "pretrain"), (BINDER2, "curriculum"))}
        self.more = {MORE: self.root / "data" / "physqa_more", MORE_FEATURES: self.root / "features" / "language_more"}
        self.log = json.loads(self.log_path.read_text()) if self.log_path.is_file() else {"stages": {}}

    def stage(self, name: str, done: Path, fn: Callable[[], object], recipe: list[str] | None = None) -> None:
        if done.exists():
            if recipe is not None:
                self.check_recipe(name, done, recipe)
                if self.log["stages"].get(name, {}).pop("finished", True) is False:  # killed after it finished
                    atomic_write_json(self.log_path, self.log)
            print(f"[pack] {name}: done ({done}), skipping")
            return
        recorded = {}
        if recipe is not None:
            from cogarch.checkpoint import latest_checkpoint

            if latest_checkpoint(done.parent) is not None:  # an interrupted training stage resumes from it
                self.check_recipe(name, done, recipe, finished=False)
            # recorded before it runs, so an interruption leaves the recipe its checkpoints were made with
            recorded = {"recipe": self.portable(recipe)}
            self.log["stages"][name] = {**recorded, "finished": False}
            atomic_write_json(self.log_path, self.log)
        print(f"[pack] {name}: running")
        t0 = time.perf_counter()
        fn()
        self.log["stages"][name] = {"seconds": round(time.perf_counter() - t0, 1), "git_revision": git_revision(), **recorded}
        atomic_write_json(self.log_path, self.log)

    def train(self, module: str, preset: str, overrides: list[str]) -> Path:
        from cogarch.train import train_module

        return train_module(module, preset, overrides, resume=True)

    def train_stage(self, name: str, done: Path, module: str, preset: str, overrides: list[str]) -> None:
        """A training stage; its preset and overrides are recorded in pipeline.json, so a resumed run
        whose recipe for that stage changed is refused instead of keeping the old folder silently."""
        self.stage(name, done, lambda: self.train(module, preset, overrides), recipe=[preset, *overrides])

    def portable(self, recipe: list[str]) -> list[str]:
        """A recipe with this run's folder written as <out_dir> (a moved run folder still matches):
        only in values that are that folder or lie inside it, never in other paths that share a prefix."""
        root = str(self.root)

        def one(o: str) -> str:
            key, eq, value = o.partition("=")
            if eq and (value == root or value.startswith(root + "/")):
                return f"{key}=<out_dir>{value[len(root):]}"
            return o

        return [one(o) for o in recipe]

    def check_recipe(self, name: str, done: Path, recipe: list[str], finished: bool = True) -> None:
        """Refuse to skip a finished training stage, or to resume an interrupted one, whose recorded
        recipe differs from this one's. Stages without a recorded recipe are not checked."""
        had = self.log["stages"].get(name, {}).get("recipe")
        now = self.portable(recipe)
        if had is None or had == now:
            return
        old = [o for o in had if o not in now]
        new = [o for o in now if o not in had]
        if not old and not new:  # the same overrides in another order (a later one wins): show both lists
            old, new = had, now
        old, new = old or ["(none)"], new or ["(none)"]
        if not finished:
            raise ConfigError(f"stage {name!r} in {done.parent} was interrupted; it was started with {' '.join(old)} and this recipe "
                              f"says {' '.join(new)}: delete that folder to restart the stage, or resume with its recipe")
        raise ConfigError(f"stage {name!r} in {done.parent} was trained with {' '.join(old)}; this recipe says {' '.join(new)}: "
                          "delete that folder and the stages after it (pack, eval), or use a new out_dir")

    # ------------------------------------------------------------------------------------------
    def run(self) -> Path:
        from cogarch.evals.world.generate import VOE_DESIGNS, generate

        c, r = self.cfg, self.root
        source = world_model_source(c)  # checked before any stage runs
        if source == "objects" and c.objects_n <= 0:
            raise ConfigError("the world model reads objects (model.source=objects) but objects_n is 0: there are no object slots to read")
        if c.voe_design not in VOE_DESIGNS:  # checked before any stage runs, like the world model's source
            raise ConfigError(f"voe_design must be one of {', '.join(VOE_DESIGNS)}, got {c.voe_design!r}")
        c.validate()  # a Config changed after loading (dataclasses.replace) is checked again
        check_resumed_world_model(r, source)
        check_relations(c, source)
        self.check_assembled_rounds()
        data = r / "data"
        self.stage("generate physqa", data / "physqa", lambda: generate("physqa", c.physqa_n, data / "physqa", seed=c.seed,
                                                                          train_per_template=c.physqa_train_per_template))
        self.stage("generate voe", data / "voe", lambda: generate("voe", c.voe_n, data / "voe", seed=c.seed + 1,
                                                                    voe_design=c.voe_design))
        self.stage("generate planning", data / "planning",
                   lambda: generate("planning", c.planning_n, data / "planning", seed=c.seed + 2))

        perc = r / "perception" / "final"
        self.train_stage("perception", perc,
            "perception", c.perception,
            [f"data.data_dir={data / 'physqa'}", f"trainer.out_dir={r / 'perception'}", f"trainer.seed={c.seed}"] + c.perception_overrides)

        # The encoder is frozen from here on: the object slots read it, the bus carries both outputs.
        bus_perc = perc
        if c.objects_n > 0:
            self.stage("generate objects", data / "objects", lambda: generate("physqa", c.objects_n, data / "objects", seed=c.seed + 3))
            bus_perc = r / "objects" / "final"
            self.train_stage("object slots", bus_perc,
                "objects", c.objects,
                [f"encoder={perc}", f"data.data_dir={data / 'objects'}", f"trainer.out_dir={r / 'objects'}",
                 f"trainer.seed={c.seed}"] + c.objects_overrides)

        from cogarch.features import write_language_features, write_world_model_features

        if source == "objects":
            wm_feats = r / "features" / "world_model_objects"
            self.stage("object features", wm_feats / "voe.safetensors", lambda: [
                write_world_model_features(str(bus_perc), data / s, wm_feats, kind="objects") for s in ("physqa", "voe")])
            width = shard_width(wm_feats / "voe.safetensors")
        else:
            wm_feats = r / "features" / "world_model"
            self.stage("percept features", wm_feats / "voe.safetensors", lambda: [
                write_world_model_features(str(perc), data / s, wm_feats) for s in ("physqa", "voe")])
            from cogarch.registry import module_class

            width = module_class("perception").from_pretrained(perc).config.hidden_size
        wm = r / "world_model" / "final"
        self.train_stage("world model", wm,
            "world_model", c.world_model,
            [f"data.features_dir={wm_feats}", f"model.latent_dim={width}", f"trainer.out_dir={r / 'world_model'}",
             f"trainer.seed={c.seed}"] + c.world_model_overrides)

        plan_wm, critic = self.planning_stages(perc, data / "planning")

        lang_feats = r / "features" / "language"
        self.stage("bus features", lang_feats / "test.json", lambda: write_language_features(
            {"perception": str(bus_perc), "world_model": str(wm)}, data / "physqa", lang_feats, splits=("train", "val", "test", "test_ood")))
        if c.physqa_more_n > 0:
            more, more_feats = self.more[MORE], self.more[MORE_FEATURES]
            self.stage("generate physqa more", more, lambda: generate("physqa", c.physqa_more_n, more, seed=c.physqa_more_seed,
                                                                      train_per_template=c.physqa_train_per_template))
            self.stage("bus features more", more_feats / "train.json", lambda: write_language_features(
                {"perception": str(bus_perc), "world_model": str(wm)}, more, more_feats, splits=("train",)))

        lm = r / "language_pretrain" / "final"
        self.train_stage("language pretrain", lm,
            "language-pretrain", c.language_pretrain,
            [f"data_dir={data / 'physqa'}", f"trainer.out_dir={r / 'language_pretrain'}", f"trainer.seed={c.seed}"]
            + c.language_pretrain_overrides)

        common = [f"model.base_lm={lm}", f"data_dir={data / 'physqa'}", f"features_dir={lang_feats}", f"trainer.seed={c.seed}"]
        if source == "objects":
            # a forecast of slot rows: averaging a step's slots together would mix the objects
            common.append("model.pool_per_kind.forecast=none")
        s1 = r / "language_s1" / "final"
        self.train_stage("language stage 1", s1,
            "language", c.language, common + ["stage=1", f"trainer.out_dir={r / 'language_s1'}"] + c.stage1_overrides)
        named = " ".join(c.stage2_overrides + [o for k in c.stage2_round_overrides for o in k])  # binder_init={binder}
        for name, key, extra in (("binder pretrain", BINDER, c.binder_pretrain_overrides),
                                 ("binder curriculum", BINDER2, [*c.binder_curriculum_overrides, f"init={self.binders[BINDER]}"])):
            if BINDER2 in named or (key == BINDER and BINDER in named):  # the curriculum starts from the first phase
                self.train_stage(name, self.binders[key].parent, "language-binder", c.binder_preset,
                                 [f"language={s1}", f"data_dir={data / 'physqa'}", f"features_dir={lang_feats}", f"trainer.seed={c.seed}",
                                  f"trainer.out_dir={self.binders[key].parent.parent}", *extra])
        s2 = self.stage2_rounds("language stage 2", "language", common + [f"init_from={s1}"])
        blind = r / "language_blind" / "final"
        if c.train_blind:
            blind = self.stage2_rounds("blind language baseline", "language_blind", common + ["blind=true"])

        pack = r / "pack"
        self.stage("assemble pack", pack / "pack.json",
                   lambda: self.assemble(pack, bus_perc, wm, s2, blind if c.train_blind else None, (plan_wm, critic)))
        self.stage("evaluate", r / "eval" / "done.json", lambda: self.evaluate(pack, data))
        self.stage("check set", r / "eval" / "check" / "results.json", lambda: self.check(pack))
        self.record_stages(pack)
        if c.ship_to:
            self.ship(pack, Path(c.ship_to))
        return pack

    def stage2_rounds(self, name: str, folder: str, overrides: list[str]) -> Path:
        """Language stage 2 (`folder`), then rounds 2..stage2_rounds (`folder`_r2, ...), each from the
        previous round's final weights; returns the last round's final folder."""
        c, r = self.cfg, self.root

        def round_overrides(k: int) -> list[str]:
            extra = c.stage2_overrides + (list(c.stage2_round_overrides[k - 1]) if k <= len(c.stage2_round_overrides) else [])
            subs = {**{k: str(v) for k, v in self.binders.items()}, **{k: str(v) for k, v in self.more.items()}}
            return [functools.reduce(lambda o, kv: o.replace(*kv), subs.items(), o) for o in extra]

        out = r / folder / "final"
        self.train_stage(name, out, "language", c.language,
                         overrides + ["stage=2", f"trainer.out_dir={r / folder}"] + round_overrides(1))
        for k in range(2, c.stage2_rounds + 1):
            prev, out = out, r / round_folder(folder, k) / "final"
            extra = [o for o in overrides if not o.startswith("init_from=")] + [f"init_from={prev}"]
            self.train_stage(f"{name} round {k}", out, "language", c.language,
                             extra + ["stage=2", f"trainer.out_dir={r / round_folder(folder, k)}"] + round_overrides(k))
        return out

    def sources(self, rounds: int | None = None, train_blind: bool | None = None) -> dict[str, str | None]:
        """The training folders the pack's language modules are copied from (in pack.json); for
        another number of rounds / blind setting when given (a pack assembled under another recipe)."""
        k = self.cfg.stage2_rounds if rounds is None else rounds
        blind = self.cfg.train_blind if train_blind is None else train_blind
        return {"language": f"{round_folder('language', k)}/final",
                "language_blind": f"{round_folder('language_blind', k)}/final" if blind else None}

    def check_assembled_rounds(self) -> None:
        """A resumed run skips "assemble pack" once pack.json exists: after stage2_rounds changes, the
        new last round would be trained but the pack (and its scores) would keep the old one."""
        saved = self.root / "pack" / "pack.json"
        if not saved.is_file():
            return
        meta = json.loads(saved.read_text())
        had = meta.get("sources")
        if had is None:  # assembled before pack.json recorded its sources: its recorded recipe says which
            cfg = meta.get("config", {})
            had = self.sources(int(cfg.get("stage2_rounds", 1)), bool(cfg.get("train_blind", True)))
        if had != self.sources():
            now = self.sources()
            what = (f"{had['language']} but this recipe ships {now['language']}" if had["language"] != now["language"]
                    else f"{had} but this recipe ships {now}")
            raise ConfigError(f"{saved.parent} was assembled from {what} (stage2_rounds={self.cfg.stage2_rounds}, "
                              f"train_blind={self.cfg.train_blind}): delete {saved.parent} and {self.root / 'eval'}, or use a new out_dir")

    def planning_stages(self, perc: Path, data: Path) -> tuple[Path, Path]:
        """Encode the planning episodes, then train the action-conditioned world model and the critic."""
        from cogarch.modules.cost.cli import PerceptionEncoder, write_planning_features

        c, r = self.cfg, self.root
        feats = r / "features" / "planning"
        self.stage("planning features", feats / "planning_features.json",
                   lambda: write_planning_features(data, PerceptionEncoder(perc, c.planning_grid, tokens=True), feats))
        dim = json.loads((feats / "planning_features.json").read_text())["dim"]
        wm = r / "planning_world_model" / "final"
        self.train_stage("planning world model", wm,
            "world_model", c.planning_world_model,
            [f"data.features_dir={feats / 'world_model'}", f"model.latent_dim={dim}", "model.action_dim=2",
             f"trainer.out_dir={r / 'planning_world_model'}", f"trainer.seed={c.seed}"] + c.planning_world_model_overrides)
        critic = r / "critic" / "final"
        self.train_stage("critic", critic,
            "critic", c.critic,
            [f"data.features_dir={feats / 'critic'}", f"model.latent_dim={dim}", f"trainer.out_dir={r / 'critic'}",
             f"trainer.seed={c.seed}"] + c.critic_overrides)
        return wm, critic

    def assemble(self, pack: Path, perc: Path, wm: Path, lang: Path, blind: Path | None,
                 planning: tuple[Path, Path]) -> None:
        from cogarch.config import load_config
        from cogarch.modules.memory.config import MemoryConfig

        mem_cfg = load_config(MemoryConfig, self.cfg.memory)
        meta = {
            "format_version": 1,
            "modules": {"perception": "perception", "world_model": "world_model", "memory": "memory", "language": "language"},
            "config": to_dict(self.cfg),
            "data_seed": self.cfg.seed,
            "git_revision": git_revision(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "stages": self.log["stages"],
            "sources": self.sources(),
        }
        with atomic_dir(pack) as tmp:
            from cogarch.registry import module_class

            # Inference needs only the EMA target encoder: ship that (the training folder keeps all).
            module_class("perception").from_pretrained(perc).save_pretrained(tmp / "perception", inference_only=True)
            shutil.copytree(wm, tmp / "world_model")
            shutil.copytree(lang, tmp / "language")
            if blind is not None:
                shutil.copytree(blind, tmp / "language_blind")
            self.assemble_planning(tmp / "planning", *planning)
            mem_cfg.enabled = False  # a shipped pack writes no memory unless `ask --memory DIR`
            module_class("memory")(mem_cfg).save_pretrained(tmp / "memory")
            (tmp / "pack.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

    def assemble_planning(self, dest: Path, wm: Path, critic: Path) -> None:
        """pack/planning: the action-conditioned world model, the critic (its energy weights) and
        planning.json (encoder = the pack's own perception, grid, context, planner preset)."""
        from cogarch.config import load_config
        from cogarch.modules.cost.config import PlannerConfig

        planner = load_config(PlannerConfig, self.cfg.planner)
        planner.validate()
        dest.mkdir(parents=True)
        shutil.copytree(wm, dest / "world_model")
        shutil.copytree(critic, dest / "cost")
        feats = json.loads((self.root / "features" / "planning" / "planning_features.json").read_text())
        atomic_write_json(dest / "planning.json", {
            "encoder": "perception:../perception", "grid": self.cfg.planning_grid, "tokens": True, "context": 3,
            "planner": to_dict(planner), "trained_on": feats})

    def evaluate(self, pack: Path, data: Path) -> None:
        from cogarch.evalglue import install
        from cogarch.evals.runner import run_eval

        install()
        limit = self.cfg.eval_limit or None
        results = {}
        for suite in ("physqa", "voe", "planning"):
            n = (self.cfg.planning_eval_limit or None) if suite == "planning" else limit
            res = run_eval(suite, str(pack), str(data / suite), n, str(self.root / "eval" / suite), seed=self.cfg.seed, split="test")
            results[suite] = {"metrics": res["metrics"], "baselines": res.get("baselines", {}), "n": res.get("n")}
        meta = json.loads((pack / "pack.json").read_text())
        meta["eval"] = results
        atomic_write_json(pack / "pack.json", meta)
        atomic_write_json(self.root / "eval" / "done.json", {"ok": True})

    def check(self, pack: Path) -> None:
        """Record accuracy on a small, separately seeded question set in pack.json.

        tests/test_default_pack.py regenerates the same set and re-scores the shipped pack, so the
        shipped weights and the numbers the README reports cannot drift apart."""
        from cogarch.evalglue import install
        from cogarch.evals.runner import run_eval
        from cogarch.evals.world.generate import generate

        install()
        spec = CHECK_SET
        data = self.root / "data" / "check"
        if not data.exists():
            generate("physqa", spec["n"], data, seed=spec["seed"], progress=False)
        res = run_eval("physqa", str(pack), str(data), spec["limit"], str(self.root / "eval" / "check"), seed=0, split=spec["split"])
        meta = json.loads((pack / "pack.json").read_text())
        meta["check"] = dict(spec, metrics=res["metrics"]["overall"])
        atomic_write_json(pack / "pack.json", meta)

    def record_stages(self, pack: Path) -> None:
        """Copy the final stage times into pack.json. Assembly snapshots them before evaluate and
        the check set run, so without this a re-run pack would carry the previous run's times."""
        meta = json.loads((pack / "pack.json").read_text())
        if meta.get("stages") != self.log["stages"]:
            meta["stages"] = self.log["stages"]
            atomic_write_json(pack / "pack.json", meta)

    def ship(self, pack: Path, dest: Path) -> None:
        with atomic_dir(dest) as tmp:
            shutil.copytree(pack, tmp, dirs_exist_ok=True)
        print(f"[pack] shipped to {dest}")


def run(cfg: Config, resume: bool = False) -> Path:
    return Pipeline(cfg, resume).run()
