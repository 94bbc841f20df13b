"""Connects model packs to the evaluation runner (`cogarch eval --model PACK|blind`).

`PackScorer` implements the runner's Scorer protocol with a loaded pack: a clip is observed once
(decode -> perception -> world model -> memory -> cost on one bus) and cached, then the language
module scores options by log-likelihood or generates; VoE uses the world model's surprise.

`blind` is the same evaluation with no clip: if the pack ships a separately trained blind language
module (`language_blind/`, trained on the same QA with no bus tokens) that one answers, otherwise
the pack's language module answers with no bus tokens. The runner prints it beside the model.

`plan_episode` plans with the planner stored in the pack's planning.json, or with the one
`planner_override` resolved from `cogarch eval --planner` (a preset name or a planner YAML).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from cogarch.errors import NotBuiltError, UserError

_LAST_PACK: str | None = None


class PackScorer:
    def __init__(
        self, pack: str, blind: bool = False, cache: int = 256, drop_kinds: tuple[str, ...] = (), swap_clips: bool = False
    ) -> None:
        from cogarch.api import load

        self.model = load(pack)
        self.blind = blind
        self.drop_kinds = tuple(drop_kinds)  # ablation: answer without these bus kinds
        # Control: answer every question from ANOTHER clip's bus (the next clip of the same folder).
        # If accuracy does not drop, the language module is not reading the video.
        self.swap_clips = swap_clips
        self.lm = self.model.language
        blind_dir = Path(pack) / "language_blind"
        if blind and blind_dir.is_dir():
            from cogarch.registry import module_class

            self.lm = module_class("language").from_pretrained(blind_dir).merge_lora_()
            self.lm.eval()
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._size = cache

    def _bus(self, video: str | None):
        if video is None or self.blind:
            return None
        if self.swap_clips:
            video = partner_clip(video)
        obs = self._cache.get(video)
        if obs is None:
            obs = self.model.observe(video)
            for kind in self.drop_kinds:
                obs.bus.drop(kind)
            self._cache[video] = obs
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(video)
        return obs.bus

    @torch.no_grad()
    def loglik(self, video: str | None, question: str, choices: list[str]) -> list[tuple[float, int]]:
        bus = self._bus(video)
        return [(float(a), int(b)) for a, b in self.lm.score_choices(bus, question, choices, blind=bus is None)]

    @torch.no_grad()
    def generate(self, video: str | None, question: str) -> str:
        bus = self._bus(video)
        return self.lm.answer(bus, question, blind=bus is None).strip()

    @torch.no_grad()
    def generate_many(self, video: str | None, questions: list[str], batch: int = 16) -> list[str]:
        """Greedy answers to several questions about one clip, `batch` prompts per generate call
        (the runner batches a clip's open questions: ~3x the throughput of one at a time)."""
        from cogarch.modules.language.scoring import answer_many

        bus = self._bus(video)
        return answer_many(self.lm, bus, questions, batch, blind=bus is None)

    @torch.no_grad()
    def surprise(self, video: str) -> float:
        bus = self._bus(video)
        if bus is None or bus.latest("surprise") is None:
            raise NotBuiltError("this pack has no world model: it cannot score violation-of-expectation clips")
        s = bus.latest("surprise")
        return float(s.meta["clip_score"][0])


@lru_cache(maxsize=8)
def _peers(folder: str, suffix: str) -> list[str]:
    return sorted(q.name for q in Path(folder).iterdir() if q.suffix == suffix and q.is_file())


def partner_clip(video: str) -> str:
    """The next file (sorted, cyclic) with the same suffix in `video`'s folder: a fixed derangement."""
    p = Path(video)
    peers = _peers(str(p.parent), p.suffix)
    if len(peers) < 2 or p.name not in peers:
        raise UserError(f"--swap-clips needs at least two {p.suffix} clips beside {video}")
    return str(p.parent / peers[(peers.index(p.name) + 1) % len(peers)])


def load_scorer(spec: str) -> PackScorer:
    """The runner's model loader: a pack folder, or `blind` (the last pack, else the default pack)."""
    global _LAST_PACK
    if spec == "blind":
        pack = _LAST_PACK
        if pack is None:
            from cogarch.assets import default_pack_path

            found = default_pack_path()
            if found is None:
                raise NotBuiltError("blind baseline needs a pack (--model PACK) or the shipped default pack")
            pack = str(found)
        return PackScorer(pack, blind=True)
    if not Path(spec).is_dir():
        raise UserError(f"model {spec!r} is not a pack folder, 'blind', 'baseline:chance' or 'baseline:prior'")
    _LAST_PACK = spec
    return PackScorer(spec)


@lru_cache(maxsize=2)
def _planning_model(pack: str):
    """(learned planning model, planner config) of a pack's `planning/` folder."""
    from cogarch.config import from_dict
    from cogarch.modules.cost.cli import load_learned
    from cogarch.modules.cost.config import PlannerConfig

    folder = Path(pack) / "planning"
    if not (folder / "planning.json").is_file():
        raise NotBuiltError(f"pack {pack!r} has no planning/ folder (action-conditioned world model + critic): "
                            "it cannot plan; retrain it with `cogarch train pack`")
    meta = json.loads((folder / "planning.json").read_text())
    cfg = from_dict(PlannerConfig, meta.get("planner", {}), origin=str(folder / "planning.json"))
    cfg.validate()
    return load_learned(str(folder)), cfg


def planner_override(spec: str) -> dict:
    """`--planner SPEC` -> the runner's planner override {"name", "kind", "config"}.

    Resolved by modules/cost/cli.py: resolve_planner (the preset names `cogarch plan --planner`
    takes, or a planner YAML), up front, so a bad name or YAML fails before any pack is loaded. Kept JSON-able because results.json
    records it: the full config too, since a YAML file may change after the run."""
    from cogarch.config import to_dict
    from cogarch.modules.cost.cli import resolve_planner

    cfg = resolve_planner(spec)
    return {"name": spec, "kind": cfg.kind, "config": to_dict(cfg)}


@lru_cache(maxsize=4)
def _override_config(config_json: str):
    """PlannerConfig of an override's "config" (cached: plan_episode runs once per episode)."""
    from cogarch.config import from_dict
    from cogarch.modules.cost.config import PlannerConfig

    return from_dict(PlannerConfig, json.loads(config_json), origin="--planner")


def plan_episode(spec: str, row: dict, data_dir: Path, planner: dict | None = None) -> dict:
    """The runner's planner: closed-loop MPC with a pack's planning model on one stored episode.

    The env is rebuilt from the row (same table, start, goal and obstacles) and gets the same action
    budget as the stored random-action episode, so the two successes are paired. planner: a
    `planner_override` dict that replaces the pack's stored planner config."""
    from cogarch.evals.world.planning import env_from_row
    from cogarch.modules.cost.cli import table_push_episode

    if spec == "blind" or not Path(spec).is_dir():
        raise UserError(f"planning needs a pack folder as --model, got {spec!r}")
    learned, cfg = _planning_model(str(Path(spec).resolve()))
    if planner is not None:
        stored_dim = cfg.action_dim
        cfg = _override_config(json.dumps(planner["config"], sort_keys=True))
        if cfg.action_dim != stored_dim:  # the pack's world model was trained on this action width
            raise UserError(f"--planner {planner['name']}: action_dim {cfg.action_dim}, but this pack plans "
                            f"{stored_dim}-D actions")
    res = table_push_episode(0, "near", cfg, learned, plan_seed=int(row["seed"]) % 2**31, env=env_from_row(row))
    return {"success": bool(res["success"]), "steps": int(res["steps"]),
            "plan_s_per_action": round(float(res["plan_s_per_action"]), 4),
            "final_distance": round(float(res["final_distance"]), 2)}


def install() -> None:
    """Register the pack loader and the pack planner with the evaluation runner."""
    from cogarch.evals.runner import register_model_loader, register_planner

    register_model_loader(load_scorer)
    register_planner(plan_episode)
