"""Typed configs: dataclass schemas in code, YAML presets in configs/, dotted CLI overrides.

Built on OmegaConf structured configs, which already type-check merges against the dataclass
schema. This file only adds what users need on top: errors that name the offending key *and* the
file it came from, a "did you mean" suggestion, and plain-dataclass results (no DictConfig leaks
into model code).

    cfg = load_config(PerceptionTrainConfig, "configs/perception/tiny.yaml", ["optim.lr=3e-4"])
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from cogarch.errors import ConfigError

T = TypeVar("T")


def valid_keys(schema: type) -> list[str]:
    """All dotted leaf and group keys of a dataclass schema (for suggestions)."""
    keys: list[str] = []

    def walk(cls: type, prefix: str) -> None:
        for f in dataclasses.fields(cls):
            key = f"{prefix}{f.name}"
            keys.append(key)
            ftype = f.type if isinstance(f.type, type) else None
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if dataclasses.is_dataclass(default):
                walk(type(default), key + ".")
            elif ftype is not None and dataclasses.is_dataclass(ftype):
                walk(ftype, key + ".")

    walk(schema, "")
    return keys


def _suggest(key: str, schema: type) -> str:
    keys = valid_keys(schema)
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    if not close:  # also try the last component alone (e.g. `model.dpth` vs `encoder.depth`)
        leaf = key.split(".")[-1]
        by_leaf = {k.split(".")[-1]: k for k in keys}
        hit = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.7)
        close = [by_leaf[hit[0]]] if hit else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def _flatten(d: Any, prefix: str = "") -> Iterable[str]:
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _flatten(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1]


def _field_group(f: dataclasses.Field) -> type | None:
    """The dataclass type of a nested config group, or None for a leaf field."""
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if dataclasses.is_dataclass(default):
        return type(default)
    return f.type if isinstance(f.type, type) and dataclasses.is_dataclass(f.type) else None


def _check_keys(raw: dict, schema: type, origin: str) -> None:
    """Name the first unknown key before OmegaConf does (its messages lack the file)."""
    for key in _flatten(raw):
        cls: type | None = schema
        for part in key.split("."):
            if cls is None:  # below a leaf (a dict- or list-valued field): free-form
                break
            fields = {f.name: f for f in dataclasses.fields(cls)}
            if part not in fields:
                raise ConfigError(f"{origin}: unknown config key {key!r}{_suggest(key, schema)}")
            cls = _field_group(fields[part])


def _read_yaml(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {str(path)!r}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML ({first})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}")
    return data


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item or item.startswith("="):
        raise ConfigError(f"override {item!r} must look like key.path=value")
    key, value = item.split("=", 1)
    try:
        parsed = yaml.safe_load(value) if value != "" else ""
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


def _nest(key: str, value: Any) -> dict:
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def merge(schema: type[T], layers: list[tuple[str, dict]]) -> T:
    """Merge (origin, mapping) layers onto the schema defaults; return a plain dataclass."""
    base = OmegaConf.structured(schema)
    for origin, raw in layers:
        _check_keys(raw, schema, origin)
        try:
            base = OmegaConf.merge(base, raw)
        except ValidationError as e:
            key = getattr(e, "full_key", None) or "?"
            msg = str(e).strip().splitlines()[0]
            raise ConfigError(f"{origin}: bad value for {key!r}: {msg}") from None
        except ConfigKeyError as e:
            key = getattr(e, "full_key", None) or "?"
            raise ConfigError(f"{origin}: unknown config key {key!r}{_suggest(key, schema)}") from None
        except OmegaConfBaseException as e:
            raise ConfigError(f"{origin}: {str(e).strip().splitlines()[0]}") from None
    try:
        obj = OmegaConf.to_object(base)
    except OmegaConfBaseException as e:  # e.g. a required (MISSING) value never given
        key = getattr(e, "full_key", None) or "?"
        raise ConfigError(f"missing required config value {key!r}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj  # type: ignore[return-value]


def load_config(schema: type[T], path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> T:
    """Defaults from `schema`, then the YAML preset at `path`, then `key=value` overrides."""
    layers: list[tuple[str, dict]] = []
    if path is not None:
        layers.append((str(path), _read_yaml(path)))
    for item in overrides:
        key, value = _parse_override(item)
        layers.append((f"override {item!r}", _nest(key, value)))
    return merge(schema, layers)


def to_dict(cfg: Any) -> dict:
    """Dataclass config → JSON-able dict (for checkpoints and pack.json)."""
    return dataclasses.asdict(cfg)


def from_dict(schema: type[T], data: dict, origin: str = "config.json") -> T:
    """Inverse of `to_dict`, with the same key/type checking as YAML files."""
    return merge(schema, [(origin, data)])
