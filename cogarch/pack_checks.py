"""Checks `cogarch train pack` runs before its first stage, so a bad recipe fails at once, not hours in.

Each reads only the recipe (cogarch.pack_train.Config) and, for a resumed run, what its folder holds.
"""

from __future__ import annotations

import json
from pathlib import Path

from cogarch.errors import ConfigError


def world_model_source(cfg) -> str:
    """model.source of the bus world model's preset + overrides ("percept" or "objects"); the
    model config is validated here, so a bad value fails before the first stage."""
    from cogarch.config import load_config
    from cogarch.modules.world_model.train import Config as WMConfig

    model = load_config(WMConfig, cfg.world_model, cfg.world_model_overrides).model
    model.validate()
    return model.source


def check_relations(cfg, source: str) -> None:
    """Relation channels and the slot binder read object-slot rows: `objects` needs objects_n > 0, the
    forecast an object world model; the binder stages' overrides must load."""
    for o in cfg.stage1_overrides + cfg.stage2_overrides + [o for r in cfg.stage2_round_overrides for o in r]:
        key, _, value = o.partition("=")
        kinds = [k.strip().strip("'\"") for k in value.strip().strip("[]").split(",")]
        if key in ("model.relations", "model.binder") and cfg.objects_n <= 0 and kinds != [""]:
            raise ConfigError(f"{o} reads object-slot rows, but objects_n is 0: the pipeline makes no object slots")
        if key in ("model.relations", "model.binder") and "forecast" in kinds and source != "objects":
            raise ConfigError(f"{o} reads the forecast as object-slot rows, but the world model forecasts {source!r} "
                              f"(model.source): drop forecast from {key} or use model.source=objects")
    from cogarch.config import load_config  # and the binder stages' overrides (their preset validates them)
    from cogarch.modules.language.binder_train import Config as BinderConfig

    for key in ("binder_pretrain_overrides", "binder_curriculum_overrides"):
        if getattr(cfg, key):
            load_config(BinderConfig, cfg.binder_preset, getattr(cfg, key))


def check_resumed_world_model(root: Path, source: str) -> None:
    """A resumed run skips stages whose output exists: a world model trained on the other source
    would be kept silently and mixed with language stages set up for this one."""
    saved = root / "world_model" / "final" / "config.json"
    if not saved.is_file():
        return
    had = json.loads(saved.read_text()).get("config", {}).get("source", "percept")
    if had != source:
        raise ConfigError(f"{saved.parent} was trained on {had!r} but the world model preset reads {source!r}: "
                          "delete it and the stages after it (features/language, language*, pack, eval), or use a new out_dir")
