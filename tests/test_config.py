"""Typed configs: defaults, YAML presets, dotted overrides, and errors that name key and file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cogarch.config import from_dict, load_config, to_dict
from cogarch.errors import ConfigError


@dataclass
class Model:
    depth: int = 2
    width: int = 8
    act: str = "gelu"


@dataclass
class Optim:
    lr: float = 1e-3


@dataclass
class Cfg:
    model: Model = field(default_factory=Model)
    optim: Optim = field(default_factory=Optim)
    tags: dict = field(default_factory=dict)
    name: str = "x"


def test_defaults_yaml_and_overrides_layer_in_order(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("model:\n  depth: 6\noptim:\n  lr: 0.01\n")
    cfg = load_config(Cfg, y, ["optim.lr=3e-4", "name=run1"])
    assert isinstance(cfg, Cfg) and isinstance(cfg.model, Model)
    assert (cfg.model.depth, cfg.model.width, cfg.optim.lr, cfg.name) == (6, 8, 3e-4, "run1")


def test_unknown_key_names_key_file_and_suggestion(tmp_path: Path) -> None:
    y = tmp_path / "bad.yaml"
    y.write_text("model:\n  dpth: 6\n")
    with pytest.raises(ConfigError) as e:
        load_config(Cfg, y)
    msg = str(e.value)
    assert "model.dpth" in msg and str(y) in msg and "model.depth" in msg
    with pytest.raises(ConfigError, match="bogus.key"):
        load_config(Cfg, None, ["bogus.key=1"])


def test_wrong_type_names_key() -> None:
    with pytest.raises(ConfigError, match="optim.lr"):
        load_config(Cfg, None, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match="model.depth"):
        load_config(Cfg, None, ["model.depth=2.5"])


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    y = tmp_path / "broken.yaml"
    y.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Cfg, y)
    with pytest.raises(ConfigError, match="not found"):
        load_config(Cfg, tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config(Cfg, None, ["no_equals_sign"])


def test_free_form_dict_field_and_round_trip() -> None:
    cfg = load_config(Cfg, None, ["tags.anything=1"])
    assert cfg.tags == {"anything": 1}
    again = from_dict(Cfg, to_dict(cfg))
    assert again == cfg
