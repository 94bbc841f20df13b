"""Files shipped inside the package: the default model pack and example clips.

`default_pack/` is produced by `cogarch train pack --config configs/pack/default.yaml` and copied
here; until it exists, `default_pack_path()` returns None and verbs that need a model say so.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent


def default_pack_path() -> Path | None:
    path = ASSETS / "default_pack"
    return path if (path / "pack.json").is_file() else None


def example_clips() -> list[Path]:
    folder = ASSETS / "examples"
    return sorted(folder.glob("*.mp4")) if folder.is_dir() else []
