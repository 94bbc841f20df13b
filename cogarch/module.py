"""The module contract, and the save/load helpers every module uses.

A cogarch module is an `nn.Module` that provides:

- `name` (its folder name), `reads` / `writes`: the bus kinds it consumes and produces;
- `config`: its typed config dataclass;
- `step(bus)`: inference — read its inputs from the bus, publish its outputs;
- `forward(batch) -> (loss, metrics)`: the training objective the generic trainer drives;
- optional `update(step)`: post-optimizer work such as an EMA target (called on sync steps only);
- `save_pretrained(dir)` / `from_pretrained(dir)`: safetensors weights + JSON config.

It is a `Protocol` (structural typing), not a base class: a module is anything with that shape.
`save_module` / `load_module_config` / `load_weights` give every module the same on-disk format:

    <dir>/config.json        {"module": "perception", "format_version": 1, "config": {...}, ...}
    <dir>/model.safetensors  the weights (no pickle anywhere)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from cogarch.bus import LatentBus
from cogarch.config import from_dict, to_dict
from cogarch.errors import CheckpointError, ConfigError
from cogarch.fsutil import atomic_dir

FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"

T = TypeVar("T")


@runtime_checkable
class CogModule(Protocol):
    """Structural type of a module (see the file docstring)."""

    name: ClassVar[str]
    # Plain attributes, not ClassVar: a module may set them per instance from its config (a world
    # model reads "percept" or "objects" depending on `source`).
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    config: Any

    def step(self, bus: LatentBus) -> None: ...

    def forward(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]: ...

    def save_pretrained(self, path: str | os.PathLike) -> None: ...


def save_module(
    path: str | os.PathLike,
    module: torch.nn.Module,
    name: str,
    config: Any,
    extra: dict | None = None,
    extra_files: dict[str, str] | None = None,
) -> None:
    """Write config.json + model.safetensors (+ optional text files) atomically into `path`."""
    with atomic_dir(path) as tmp:
        save_model(module, str(tmp / WEIGHTS_NAME))  # handles tied/shared tensors
        meta = {"module": name, "format_version": FORMAT_VERSION, "config": to_dict(config)}
        meta.update(extra or {})
        (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        for fname, text in (extra_files or {}).items():
            (tmp / fname).write_text(text)


def read_module_meta(path: str | os.PathLike, name: str) -> dict:
    """Read and check `config.json` of a saved module; errors name the folder and the problem."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"{name} checkpoint not found: {str(path)!r} is not a folder")
    cfg_file = folder / CONFIG_NAME
    if not cfg_file.is_file():
        raise CheckpointError(f"{str(path)!r} has no {CONFIG_NAME}: not a saved cogarch module")
    try:
        meta = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_file}: corrupt JSON ({e.msg if hasattr(e, 'msg') else e})") from None
    if not isinstance(meta, dict) or "module" not in meta or "config" not in meta:
        raise CheckpointError(f"{cfg_file}: not a cogarch module config (missing 'module'/'config')")
    if meta["module"] != name:
        raise CheckpointError(f"{str(path)!r} holds a {meta['module']!r} module, expected {name!r}")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} was written by a newer cogarch (format {version}, this one reads <= {FORMAT_VERSION})"
        )
    return meta


def load_module_config(path: str | os.PathLike, name: str, schema: type[T]) -> tuple[T, dict]:
    """Return (typed config, full meta dict) of a saved module."""
    meta = read_module_meta(path, name)
    try:
        cfg = from_dict(schema, meta["config"], origin=str(Path(path) / CONFIG_NAME))
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    return cfg, meta


def bad_safetensors(wfile: str | os.PathLike, err: BaseException) -> CheckpointError:
    """One line for a .safetensors file that does not parse; names pickles for what they are
    (they are never loaded: unpickling runs code from the file)."""
    try:  # safetensors reports an unreadable file as "No such file": ask the OS
        with open(wfile, "rb") as fh:
            head = fh.read(2)
    except PermissionError:
        return CheckpointError(f"{wfile}: permission denied")
    except OSError:
        head = b""
    if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return CheckpointError(f"{wfile}: not a safetensors file but a Python pickle, which cogarch never loads (convert it to safetensors)")
    if head == b"PK":
        return CheckpointError(f"{wfile}: not a safetensors file but a zip archive (torch.save format?), which cogarch never loads (convert it to safetensors)")
    return CheckpointError(f"{wfile}: corrupt or truncated safetensors file ({str(err).splitlines()[0] if str(err) else type(err).__name__})")


def load_weights(module: torch.nn.Module, path: str | os.PathLike, strict: bool = True) -> None:
    """Load model.safetensors from `path` into `module`, with one-line errors."""
    wfile = Path(path) / WEIGHTS_NAME
    if not wfile.is_file():
        raise CheckpointError(f"{str(path)!r} has no {WEIGHTS_NAME}")
    try:
        missing, unexpected = load_model(module, str(wfile), strict=False, device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise bad_safetensors(wfile, e) from None
    except RuntimeError as e:  # shape mismatch from load_state_dict
        first = [ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln]
        raise CheckpointError(f"{wfile}: weights do not fit this model ({first[0] if first else str(e).splitlines()[0]})") from None
    if strict and (missing or unexpected):
        what = f"missing {sorted(missing)[:3]}" if missing else f"unexpected {sorted(unexpected)[:3]}"
        raise CheckpointError(f"{wfile}: weights do not fit this model ({what})")
