"""Interop with transformers' V-JEPA 2 format (a folder with config.json + model.safetensors).

- `load_hf_pretrained(folder)`: an official V-JEPA 2 checkpoint in HF format (`VJEPA2Model`, or
  `VJEPA2ForVideoClassification` whose backbone sits under `vjepa2.`) -> PerceptionModule. The HF
  `encoder` initialises BOTH our context encoder and the EMA target (official releases ship the
  target encoder as `encoder`), `predictor` the predictor. Only safetensors are read (no pickle).
- `export_hf(module, folder, encoder="target")`: writes a folder that stock
  `transformers.VJEPA2Model.from_pretrained(folder)` loads with identical outputs. The exported
  encoder is the EMA target by default (the one V-JEPA evaluates and publishes).

Works without instantiating a second model: keys of our `encoder.` / `target_encoder.` /
`predictor.` submodules are exactly VJEPA2Model's `encoder.` / `predictor.` keys.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cogarch.errors import CheckpointError
from cogarch.fsutil import atomic_dir
from cogarch.modules.perception.config import PerceptionConfig, from_hf_config, to_hf_config
from cogarch.modules.perception.model import PerceptionModule

_IGNORED_PREFIXES = ("pooler.", "classifier.")  # heads of VJEPA2ForVideoClassification


def is_hf_folder(path: str | os.PathLike) -> bool:
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text(encoding="utf-8")).get("model_type") == "vjepa2"
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def _read_hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    index = folder / "model.safetensors.index.json"
    files: list[Path]
    if (folder / "model.safetensors").is_file():
        files = [folder / "model.safetensors"]
    elif index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{index}: corrupt shard index ({e})") from None
        files = [folder / n for n in names]
    elif any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
        raise CheckpointError(f"{folder}: only pickle weights (.bin/.pt) found; convert them to safetensors first")
    else:
        raise CheckpointError(f"{folder}: no model.safetensors in this V-JEPA 2 folder")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            state.update(load_file(str(f), device="cpu"))
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{f}: corrupt or truncated safetensors file ({str(e).splitlines()[0]})") from None
    return state


def load_hf_pretrained(folder: str | os.PathLike, base: PerceptionConfig | None = None) -> PerceptionModule:
    """PerceptionModule from an HF V-JEPA 2 folder; non-architecture settings come from `base`."""
    from transformers import VJEPA2Config

    folder = Path(folder)
    if not is_hf_folder(folder):
        raise CheckpointError(f"{str(folder)!r} is not a V-JEPA 2 folder (config.json with model_type 'vjepa2')")
    try:
        hf_cfg = VJEPA2Config.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise CheckpointError(f"{folder / 'config.json'}: unreadable V-JEPA 2 config ({str(e).splitlines()[0]})") from None
    cfg = from_hf_config(hf_cfg, base)
    model = PerceptionModule(cfg)
    state = _read_hf_weights(folder)
    if any(k.startswith("vjepa2.") for k in state):  # VJEPA2ForVideoClassification
        state = {k[len("vjepa2."):]: v for k, v in state.items() if k.startswith("vjepa2.")}
    state = {k: v for k, v in state.items() if not k.startswith(_IGNORED_PREFIXES)}
    enc = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    pred = {k[len("predictor."):]: v for k, v in state.items() if k.startswith("predictor.")}
    unexpected = [k for k in state if not k.startswith(("encoder.", "predictor."))]
    if unexpected:
        raise CheckpointError(f"{folder}: unexpected weights {unexpected[:3]} for a V-JEPA 2 model")
    try:
        model.encoder.load_state_dict(enc, strict=True)
        model.target_encoder.load_state_dict(enc, strict=True)
        if pred:
            model.predictor.load_state_dict(pred, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{folder}: weights do not fit its config ({str(e).splitlines()[0][:200]})") from None
    return model


def export_hf(module: PerceptionModule, folder: str | os.PathLike, encoder: str = "target") -> Path:
    """Write `module` as a stock `VJEPA2Model` folder (config.json + model.safetensors)."""
    if encoder not in ("target", "context"):
        raise CheckpointError(f"export_hf: encoder must be 'target' or 'context', got {encoder!r}")
    src = module.target_encoder if encoder == "target" else module.encoder
    state = {f"encoder.{k}": v for k, v in src.state_dict().items()}
    state.update({f"predictor.{k}": v for k, v in module.predictor.state_dict().items()})
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    hf_cfg = to_hf_config(module.config)
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        hf_cfg.save_pretrained(str(tmp))
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    return folder
