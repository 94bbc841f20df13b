"""Perception: V-JEPA (I-JEPA when T = 1) on transformers' VJEPA2 building blocks.

Public API: `PerceptionModule`, `PerceptionConfig`, builders `vjepa_tiny/vitl/vith/vitg`, `ijepa_tiny`,
`MaskCollator`, `ClipDataset`, HF interop `load_hf_pretrained` / `export_hf`. See README.md.
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

__all__ = [
    "MaskCollator",
    "MaskSetConfig",
    "PerceptionConfig",
    "ijepa_tiny",
    "to_hf_config",
    "vjepa_tiny",
    "vjepa_vitg",
    "vjepa_vith",
    "vjepa_vitl",
]
