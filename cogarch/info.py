"""`cogarch info`: what is installed, and what is inside a pack."""

from __future__ import annotations

import importlib
import json
import platform
import subprocess
from pathlib import Path


def _device_line() -> str:
    import torch

    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return f"cuda ({names}); bf16={'yes' if torch.cuda.is_bf16_supported() else 'no'}"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return f"cpu ({torch.get_num_threads()} threads)"


def git_revision() -> str:
    """The source checkout's commit ("-dirty" with uncommitted changes), "unknown" outside git: packs record it."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, cwd=Path(__file__).parent)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=10, cwd=Path(__file__).parent)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if rev.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def info(pack: str | None = None) -> str:
    import torch

    from cogarch import __version__
    from cogarch.assets import default_pack_path, example_clips
    from cogarch.registry import MODULE_CLASSES

    if pack is not None:
        return pack_info(pack)
    lines = [
        f"cogarch {__version__}  (python {platform.python_version()}, torch {torch.__version__})",
        f"device: {_device_line()}",
        "modules:",
    ]
    for name, target in MODULE_CLASSES.items():
        path = target.split(":")[0]
        try:
            importlib.import_module(path)
            state = "built"
        except ModuleNotFoundError:
            state = "not built yet"
        lines.append(f"  {name:<12} {state}")
    dp = default_pack_path()
    lines.append(f"default pack: {dp if dp else 'not shipped yet'}")
    clips = example_clips()
    lines.append(f"example clips: {len(clips)}")
    return "\n".join(lines)


def pack_info(pack: str) -> str:
    from cogarch.architecture import read_pack_meta
    from cogarch.fsutil import safe_join

    meta = read_pack_meta(pack)
    root = Path(pack)
    lines = [f"pack {root}  ({_dir_size(root) / 2**20:.1f} MiB)"]
    for name, sub in meta["modules"].items():
        folder = safe_join(root, sub)  # pack.json cannot make `info` walk outside the pack
        size = _dir_size(folder) / 2**20 if folder.is_dir() else 0.0
        has_cfg = folder.is_dir() and any(folder.glob("*config.json"))
        lines.append(f"  {name:<12} {size:6.1f} MiB  {'ok' if has_cfg else 'MISSING (no config JSON)'}")
    plan = root / "planning"
    if (plan / "planning.json").is_file():  # not an `ask` module: used by `cogarch plan` / eval --suite planning
        lines.append(f"  {'planning':<12} {_dir_size(plan) / 2**20:6.1f} MiB  ok (action-conditioned world model + critic)")
    for key in ("git_revision", "data_seed", "created"):
        if key in meta:
            lines.append(f"{key}: {meta[key]}")
    if "eval" in meta:
        lines.append("eval: " + json.dumps(meta["eval"], sort_keys=True)[:2000])
    return "\n".join(lines)
