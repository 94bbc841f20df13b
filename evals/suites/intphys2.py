"""IntPhys 2 (Bordes et al., 2025): loader for its published format, and an exporter of ours to it.

Published layout (facebook/IntPhys2): one folder per split (`Main`, `Debug`, `HeldOut`), each with
`metadata.csv` and `Videos/<filename>.mp4`. Columns we use: `SceneIndex` (a string: "12",
"124_0", ...), `type` in 1_Possible / 1_Impossible / 2_Possible / 2_Impossible, the clip name
(`filename` without extension; some copies name the column `file_name` and/or store a path
relative to the split folder, both accepted), and `condition` (permanence, immutability,
continuity, solidity) when present. A scene holds two matched possible/impossible pairs: the
digit before the underscore picks the pair, so pair = (SceneIndex, digit). HeldOut ships without
labels, so it cannot be scored. The data folder may be the release root (split chosen by name:
test = Main, val = Debug) or one split folder itself.

Rows follow our VoE convention (docs/vocabulary.md): one row per clip, question "", choices [],
answer "possible"/"impossible", category = condition, pair_id links the matched clips.
"""

from __future__ import annotations

import csv
import shutil
from collections import defaultdict
from pathlib import Path

from cogarch.evals.suites.schema import DataError, make_row, require_dir, require_file, to_dataset
from cogarch.fsutil import atomic_dir, safe_join

SPLIT_NAMES = {"test": "Main", "val": "Debug", "main": "Main", "debug": "Debug",
               "heldout": "HeldOut", "train": "Train"}
TYPES = ("1_Possible", "1_Impossible", "2_Possible", "2_Impossible")
NAME_COLUMNS = ("filename", "file_name")
EXPORT_SPLITS = {"test": "Main", "val": "Debug", "train": "Train"}


def _split_dir(root: Path, split: str) -> Path:
    if (root / "metadata.csv").is_file():
        return root  # pointed at a split folder itself (e.g. --data IntPhys2/Main)
    name = SPLIT_NAMES.get(split.lower(), split)
    d = root / name
    if not d.is_dir():
        raise DataError(f"IntPhys 2: no split folder {str(d)!r} (split {split!r} -> {name!r})")
    return d


def _video_path(split_dir: Path, name: str) -> Path:
    rel = name if name.endswith(".mp4") else f"{name}.mp4"
    direct = safe_join(split_dir, rel)
    if "/" in rel and direct.is_file():
        return direct
    return safe_join(split_dir, f"Videos/{Path(rel).name}")


def load_intphys2(root: str | Path, split: str = "test"):
    """One IntPhys 2 split (`test` = Main, `val` = Debug, or the folder name) as VoE rows."""
    root = require_dir(root, "IntPhys 2")
    sdir = _split_dir(root, split)
    meta = require_file(sdir / "metadata.csv", "IntPhys 2")
    with open(meta, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        name_col = next((c for c in NAME_COLUMNS if c in header), None)
        for col in ("SceneIndex", "type"):
            if col not in header:
                raise DataError(f"IntPhys 2: {str(meta)!r} has no column {col!r} "
                                "(HeldOut ships without labels and cannot be scored)")
        if name_col is None:
            raise DataError(f"IntPhys 2: {str(meta)!r} has no 'filename' column")
        records = list(reader)
    rows = []
    for i, rec in enumerate(records, 2):  # line 1 is the header
        where = f"IntPhys 2 {str(meta)!r} line {i}"
        scene, typ, name = rec.get("SceneIndex") or "", rec.get("type") or "", rec.get(name_col) or ""
        if not scene or not name:
            raise DataError(f"{where}: empty SceneIndex or {name_col}")
        if typ not in TYPES:
            raise DataError(f"{where}: type must be one of {', '.join(TYPES)}, got {typ!r}")
        possible = typ.endswith("_Possible")
        stem = Path(name).stem
        rows.append(make_row(
            qid=f"intphys2-{sdir.name}-{stem}", clip_id=stem,
            video=str(_video_path(sdir, name)), category=rec.get("condition") or "all",
            template=f"voe_{rec.get('condition') or 'all'}", question="", choices=[],
            answer="possible" if possible else "impossible",
            pair_id=f"intphys2-{sdir.name}-{scene}-{typ[0]}",
            extra={"possible": possible, "scene_index": scene, "type": typ,
                   **{k: rec[k] for k in ("Difficulty", "Camera") if rec.get(k)}},
        ))
    return to_dataset(rows, f"IntPhys 2 {str(meta)!r}")


def export_intphys2(our_voe_dir: str | Path, out_dir: str | Path) -> Path:
    """Write our generated voe suite in the IntPhys 2 layout (videos copied).

    Our test split becomes `Main`, val `Debug`, train `Train` (IntPhys 2 has no train split; the
    folder is an extra). IntPhys 2 scenes hold two pairs, so consecutive pairs (sorted by pair_id)
    share a SceneIndex as types 1_* and 2_*; an odd last pair has only the 1_* types. Columns:
    SceneIndex, type, filename (no extension), condition (= our category).
    """
    from cogarch.evals.suites.generated import load_generated_dict

    our_dir = Path(our_voe_dir)
    dd = load_generated_dict(our_dir, "voe")
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        for split, folder in EXPORT_SPLITS.items():
            if split not in dd:
                continue
            pairs: dict[str, list[dict]] = defaultdict(list)
            for row in dd[split]:
                if not row["pair_id"]:
                    raise DataError(f"export_intphys2: clip {row['qid']!r} has no pair_id")
                pairs[row["pair_id"]].append(row)
            (tmp / folder / "Videos").mkdir(parents=True)
            lines = [("SceneIndex", "type", "filename", "condition")]
            for k, pid in enumerate(sorted(pairs)):
                members = pairs[pid]
                kinds = sorted(r["answer"] for r in members)
                if kinds != ["impossible", "possible"]:
                    raise DataError(f"export_intphys2: pair {pid!r} is not one possible + one "
                                    f"impossible clip (has {kinds})")
                scene, slot = str(k // 2), str(k % 2 + 1)
                for r in sorted(members, key=lambda r: r["answer"], reverse=True):
                    typ = f"{slot}_{'Possible' if r['answer'] == 'possible' else 'Impossible'}"
                    name = f"scene{scene}_{typ}_{r['clip_id']}"
                    src = safe_join(our_dir, r["video"])
                    if not src.is_file():
                        raise DataError(f"export_intphys2: video {str(src)!r} of {r['qid']!r} is missing")
                    shutil.copyfile(src, tmp / folder / "Videos" / f"{name}.mp4")
                    lines.append((scene, typ, name, r["category"]))
            with open(tmp / folder / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerows(lines)
    return out_dir
