"""Perception: V-JEPA (I-JEPA when T = 1) on transformers' VJEPA2 building blocks.

Public API (see README.md): `PerceptionModule`, `PerceptionConfig`, `MaskSetConfig`, builders
`vjepa_tiny/vjepa_vitl/vjepa_vith/vjepa_vitg/ijepa_tiny`, `MaskCollator`, `ClipDataset`, HF interop
`load_hf_pretrained` / `export_hf`. Heavy names (model, data, interop) import lazily so that
`import cogarch.modules.perception` does not pull in transformers' model code.
"""

from cogarch.modules.perception.config import (
    MaskSetConfig,
    PerceptionConfig,
    ijepa_tiny,
    to_hf_config,
    vjepa_tiny,
    vjepa_vitg,
    vjepa_vith,
    vjepa_vitl,
)
from cogarch.modules.perception.masking import MaskCollator

_LAZY = {
    "PerceptionModule": "cogarch.modules.perception.model",
    "ClipDataset": "cogarch.modules.perception.data",
    "load_hf_pretrained": "cogarch.modules.perception.hf_interop",
    "export_hf": "cogarch.modules.perception.hf_interop",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cogarch.modules.perception' has no attribute {name!r}")


__all__ = [
    "ClipDataset",
    "MaskCollator",
    "MaskSetConfig",
    "PerceptionConfig",
    "PerceptionModule",
    "export_hf",
    "ijepa_tiny",
    "load_hf_pretrained",
    "to_hf_config",
    "vjepa_tiny",
    "vjepa_vitg",
    "vjepa_vith",
    "vjepa_vitl",
]
