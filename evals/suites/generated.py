"""Readers for the suites our physics world generates (physqa, voe, planning; docs/vocabulary.md).

`cogarch generate --suite S --out DIR` writes DIR/manifest.json, DIR/videos/, DIR/clips/,
DIR/questions/ (a DatasetDict: train/val/test/test_ood) and, for planning, DIR/episodes/. The
default data folder of a generated suite is `data/<suite>` (relative to the working directory).
"""

from __future__ import annotations

from pathlib import Path

from cogarch.evals.suites.schema import COLUMNS, DataError

GENERATED_SUITES = ("physqa", "voe", "planning")
EPISODE_COLUMNS = ("episode_id", "split", "seed", "video", "frames", "actions", "states", "goal",
                   "obstacles", "success")


def default_data_dir(suite: str) -> Path:
    """Where `cogarch eval --suite S` looks when no --data is given: data/<suite>."""
    return Path("data") / suite


def _need_data(data_dir: str | Path, suite: str) -> Path:
    d = Path(data_dir)
    if not d.is_dir():
        raise DataError(
            f"no data for suite {suite!r} at {str(d)!r}: run "
            f"`cogarch generate --suite {suite} --n 200 --out data/{suite}` first"
        )
    return d


def _load_dict(path: Path, what: str):
    import datasets

    if not path.is_dir():
        raise DataError(f"{what}: folder {str(path)!r} does not exist (is this a generated suite?)")
    try:
        dd = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise DataError(f"{what}: {str(path)!r} is not a saved DatasetDict ({e})") from None
    if not isinstance(dd, datasets.DatasetDict):
        raise DataError(f"{what}: {str(path)!r} holds a single Dataset, expected a DatasetDict")
    return dd


def load_generated_dict(data_dir: str | Path, suite: str = "physqa"):
    """DIR/questions as a DatasetDict restricted to the shared columns (extra columns dropped)."""
    d = _need_data(data_dir, suite)
    dd = _load_dict(d / "questions", f"suite {suite!r}")
    for name, ds in dd.items():
        missing = [c for c in COLUMNS if c not in ds.column_names]
        if missing:
            raise DataError(
                f"{str(d / 'questions')!r} split {name!r}: missing column(s) {', '.join(missing)}"
            )
    return dd.select_columns(list(COLUMNS))


def load_generated(data_dir: str | Path, split: str = "test", suite: str = "physqa"):
    """One split of a generated suite's questions (`datasets.Dataset`, shared schema)."""
    dd = load_generated_dict(data_dir, suite)
    if split not in dd:
        raise DataError(
            f"suite {suite!r} at {str(data_dir)!r} has no split {split!r} "
            f"(has: {', '.join(sorted(dd))})"
        )
    return dd[split]


def load_episodes(data_dir: str | Path, split: str = "test"):
    """One split of DIR/episodes (planning suite): one row per stored episode."""
    d = _need_data(data_dir, "planning")
    dd = _load_dict(d / "episodes", "suite 'planning'")
    if split not in dd:
        raise DataError(f"planning episodes at {str(d)!r} have no split {split!r} "
                        f"(has: {', '.join(sorted(dd))})")
    ds = dd[split]
    missing = [c for c in ("episode_id", "success") if c not in ds.column_names]
    if missing:
        raise DataError(f"{str(d / 'episodes')!r} split {split!r}: missing column(s) {', '.join(missing)}")
    return ds
