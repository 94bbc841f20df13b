"""Evaluation suites: our generated ones and loaders for public benchmarks, one row schema for all.

`load_suite(suite, data_dir, split)` returns a `datasets.Dataset` in the shared questions schema
(`cogarch.evals.suites.schema.COLUMNS`). Generated suites (physqa, voe, planning) read
`data/<suite>` by default; public suites need `--data` pointing at a local copy of the release
(nothing is ever downloaded). Exporters write our world in the CLEVRER and IntPhys 2 layouts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from cogarch.errors import NotBuiltError, UserError
from cogarch.evals.suites.clevrer import export_clevrer, load_clevrer
from cogarch.evals.suites.generated import (
    GENERATED_SUITES,
    default_data_dir,
    load_episodes,
    load_generated,
)
from cogarch.evals.suites.intphys2 import export_intphys2, load_intphys2
from cogarch.evals.suites.schema import COLUMNS, DataError
from cogarch.evals.suites.text_video_mc import load_mvp, load_perception_test, load_piqa

PUBLIC_LOADERS: dict[str, Callable] = {
    "clevrer": load_clevrer,
    "intphys2": load_intphys2,
    "piqa": load_piqa,
    "mvp": load_mvp,
    "perception_test": load_perception_test,
}
SUITES = (*GENERATED_SUITES, *PUBLIC_LOADERS, "probe")
# Suites whose items are clips scored by surprise (violation of expectation), not by answers.
VOE_SUITES = ("voe", "intphys2")
# The labelled evaluation split of each suite: public test labels are often withheld.
DEFAULT_SPLITS = {"physqa": "test", "voe": "test", "planning": "test", "clevrer": "val",
                  "intphys2": "test", "piqa": "val", "mvp": "test", "perception_test": "val",
                  "probe": "test"}
# The split baselines learn their answer prior from (None: the suite has no training split).
TRAIN_SPLITS = {"physqa": "train", "voe": "train", "planning": "train", "clevrer": "train",
                "intphys2": None, "piqa": "train", "mvp": None, "perception_test": "train",
                "probe": "train"}

_EXTRA_LOADERS: dict[str, Callable] = {}


def register_suite_loader(name: str, fn: Callable) -> None:
    """Hook for suites built elsewhere (e.g. `probe`): fn(data_dir, split) -> Dataset."""
    _EXTRA_LOADERS[name] = fn


def check_suite(suite: str) -> str:
    if suite not in SUITES and suite not in _EXTRA_LOADERS:
        raise UserError(f"unknown suite {suite!r} (known: {', '.join(SUITES)})")
    return suite


def default_split(suite: str) -> str:
    """The split `cogarch eval` should score when the user names none."""
    return DEFAULT_SPLITS.get(check_suite(suite), "test")


def resolve_data_dir(suite: str, data: str | Path | None) -> Path:
    """--data, or data/<suite> for generated suites; public suites must be pointed at a copy."""
    check_suite(suite)
    if data is not None:
        return Path(data)
    if suite in PUBLIC_LOADERS:
        raise UserError(f"suite {suite!r} needs --data DIR: a local copy of its public release")
    return default_data_dir(suite)


def load_suite(suite: str, data_dir: str | Path, split: str):
    """One split of a suite as a shared-schema `datasets.Dataset` (planning: its question table)."""
    check_suite(suite)
    if suite in _EXTRA_LOADERS:
        return _EXTRA_LOADERS[suite](data_dir, split)
    if suite == "probe":
        raise NotBuiltError("suite 'probe' has no loader registered yet (probe module not built)")
    if suite in PUBLIC_LOADERS:
        return PUBLIC_LOADERS[suite](data_dir, split)
    return load_generated(data_dir, split, suite)


__all__ = [
    "COLUMNS",
    "DEFAULT_SPLITS",
    "DataError",
    "PUBLIC_LOADERS",
    "SUITES",
    "TRAIN_SPLITS",
    "VOE_SUITES",
    "check_suite",
    "default_split",
    "export_clevrer",
    "export_intphys2",
    "load_clevrer",
    "load_episodes",
    "load_intphys2",
    "load_mvp",
    "load_perception_test",
    "load_piqa",
    "load_suite",
    "register_suite_loader",
    "resolve_data_dir",
]
