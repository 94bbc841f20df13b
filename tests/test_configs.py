"""Every YAML preset under configs/ loads into its typed schema (unknown keys would fail here)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from cogarch.config import load_config
from cogarch.registry import trainable

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# configs/<folder>/ -> schema. Trainable folders use the registry's Config; others name their class.
SCHEMAS: dict[str, str] = {
    "toy": "train:toy",
    "perception": "train:perception",
    "probe": "train:probe",
    "world_model": "train:world_model",
    "critic": "train:critic",
    "pack": "train:pack",
    "memory": "cogarch.modules.memory.config:MemoryConfig",
    "planner": "cogarch.modules.cost.config:PlannerConfig",
}
# Files in a folder whose schema differs from the folder's.
FILE_SCHEMAS: dict[str, str] = {
    "language/pretrain_tiny.yaml": "train:language-pretrain",
    "language/tiny.yaml": "train:language",
    "language/binder.yaml": "train:language-binder",
    "language/binder_tiny.yaml": "train:language-binder",
    "perception/objects_tiny.yaml": "train:objects",
}


def schema_for(path: Path) -> type:
    rel = path.relative_to(CONFIGS).as_posix()
    spec = FILE_SCHEMAS.get(rel) or SCHEMAS.get(path.parent.name)
    if spec is None:
        pytest.fail(f"configs/{rel}: no schema registered in tests/test_configs.py")
    if spec.startswith("train:"):
        return trainable(spec[len("train:") :]).Config
    mod, cls = spec.split(":")
    return getattr(importlib.import_module(mod), cls)


PRESETS = sorted(p for p in CONFIGS.rglob("*.yaml") if p.parent.name != "accelerate")


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_preset_loads(path: Path) -> None:
    cfg = load_config(schema_for(path), path)
    assert cfg is not None


@pytest.mark.parametrize("path", sorted((CONFIGS / "accelerate").glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_are_accelerate_configs(path: Path) -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    data = yaml.safe_load(path.read_text())
    assert data["compute_environment"] == "LOCAL_MACHINE"
    cfg = ClusterConfig.from_yaml_file(str(path))  # accelerate's own loader and schema checks
    assert str(cfg.distributed_type) == str(data["distributed_type"]) or cfg.distributed_type.value == data["distributed_type"]


def test_untrained_encoder_pack_follows_the_default_recipe() -> None:
    # The untrained-encoder column of the README is only a baseline if everything after perception
    # is trained exactly as the default pack is; this keeps the two presets from drifting apart.
    from cogarch.pack_train import Config

    default = load_config(Config, str(CONFIGS / "pack/default.yaml"), [])
    untrained = load_config(Config, str(CONFIGS / "pack/untrained_encoder.yaml"), [])
    for name in ("seed", "physqa_n", "physqa_more_n", "physqa_more_seed", "voe_n", "voe_design", "objects_n", "objects", "objects_overrides", "world_model", "world_model_overrides", "language_pretrain",
                 "language_pretrain_overrides", "language", "stage1_overrides", "stage2_overrides", "stage2_rounds",
                 "stage2_round_overrides", "binder_preset", "binder_pretrain_overrides", "binder_curriculum_overrides", "memory"):
        assert getattr(untrained, name) == getattr(default, name), name
