"""Loaders for PIQA, MVPBench and the Perception Test multiple-choice task (published formats).

PIQA (Bisk et al., AAAI 2020): `train.jsonl` + `train-labels.lst`, `valid.jsonl` +
  `valid-labels.lst`, `tests.jsonl` (labels withheld). Each jsonl line has `goal`, `sol1`, `sol2`
  (and `id`); line k of the .lst file is the 0/1 index of the right solution. Text only.

MVPBench (Minimal Video Pairs; Krojer et al., 2025; facebook/minimal_video_pairs): one table per
  subset (human_object_interactions, intuitive_physics, robot_object_interactions,
  temporal_reasoning), rows `video_id`, `video_path`, `question`, `candidates` (a list, or its
  Python-literal string), `answer` (the text of one candidate). Two rows form a minimal pair when
  their video_id agree up to the last "_" suffix (the official metric's grouping); pair accuracy
  = both right. Locally: `<subset>.jsonl` / `.json` / `.csv` in the folder, videos under
  `videos/<video_path>`.

Perception Test (Patraucean et al., NeurIPS 2023): `mc_question_<split>.json` or
  `all_<split>.json` (split in train / valid / test), a JSON object keyed by video id, each value
  `{"metadata": {"video_id": ...}, "mc_question": [{"id", "question", "options", "answer_id",
  "area", "reasoning", "tag"}]}`; videos `videos/<video_id>.mp4`. Category = area; template =
  area/reasoning. Test labels are withheld.
"""

from __future__ import annotations

import ast
import csv
from pathlib import Path

from cogarch.evals.suites.schema import (
    DataError,
    field,
    make_row,
    read_json,
    read_jsonl,
    require_dir,
    require_file,
    to_dataset,
)
from cogarch.fsutil import safe_join

PIQA_FILES = {"train": ("train.jsonl", "train-labels.lst"), "val": ("valid.jsonl", "valid-labels.lst"),
              "valid": ("valid.jsonl", "valid-labels.lst"), "test": ("tests.jsonl", None)}
MVP_SUBSETS = ("human_object_interactions", "intuitive_physics", "robot_object_interactions",
               "temporal_reasoning")
PT_SPLITS = {"train": "train", "val": "valid", "valid": "valid", "test": "test"}


def load_piqa(root: str | Path, split: str = "val"):
    """PIQA goal/solution pairs as two-choice text items (category "physical_commonsense")."""
    root = require_dir(root, "PIQA")
    if split not in PIQA_FILES:
        raise DataError(f"PIQA has no split {split!r} (use train or val)")
    data_name, label_name = PIQA_FILES[split]
    if label_name is None:
        raise DataError("PIQA test labels are withheld by the authors; evaluate on --split val")
    data_path = require_file(root / data_name, "PIQA")
    recs = read_jsonl(data_path, "PIQA")
    label_path = require_file(root / label_name, "PIQA")
    labels = [ln.strip() for ln in label_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if len(labels) != len(recs):
        raise DataError(f"PIQA: {label_name} has {len(labels)} labels for {len(recs)} records in {data_name}")
    rows = []
    for k, (rec, lab) in enumerate(zip(recs, labels)):
        where = f"PIQA {data_name} record {k}"
        goal = field(rec, "goal", where)
        sols = [field(rec, "sol1", where), field(rec, "sol2", where)]
        if lab not in ("0", "1"):
            raise DataError(f"PIQA {label_name} line {k + 1}: label must be 0 or 1, got {lab!r}")
        i = int(lab)
        rows.append(make_row(qid=f"piqa-{split}-{k:06d}", clip_id="", video="",
                             category="physical_commonsense", template="piqa", question=goal,
                             choices=sols, answer=sols[i], answer_index=i,
                             extra={"id": rec.get("id", "")}))
    return to_dataset(rows, f"PIQA {str(data_path)!r}")


def _mvp_records(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return read_jsonl(path, "MVPBench")
    if path.suffix == ".json":
        data = read_json(path, "MVPBench")
        if not isinstance(data, list):
            raise DataError(f"MVPBench: {str(path)!r} must hold a list of records")
        return data
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _candidates(val, where: str) -> list[str]:
    if isinstance(val, str):
        # The HF table stores the list as its Python literal; literal_eval parses data, runs no code.
        try:
            val = ast.literal_eval(val)
        except (ValueError, SyntaxError):
            raise DataError(f"{where}: 'candidates' is not a list literal") from None
    if not isinstance(val, list) or len(val) < 2 or not all(isinstance(c, str) for c in val):
        raise DataError(f"{where}: 'candidates' must be a list of at least two strings")
    return val


def load_mvp(root: str | Path, split: str = "test"):
    """MVPBench subsets found in `root` (split is accepted for symmetry; MVP has one split)."""
    root = require_dir(root, "MVPBench")
    files = sorted(p for p in root.iterdir() if p.stem in MVP_SUBSETS
                   and p.suffix in (".jsonl", ".json", ".csv"))
    if not files:
        raise DataError(f"MVPBench: no <subset>.jsonl/.json/.csv in {str(root)!r} "
                        f"(subsets: {', '.join(MVP_SUBSETS)})")
    rows = []
    for path in files:
        for k, rec in enumerate(_mvp_records(path)):
            where = f"MVPBench {path.name} record {k}"
            vid = field(rec, "video_id", where)
            cands = _candidates(field(rec, "candidates", where, (str, list)), where)
            ans = str(field(rec, "answer", where, (str, int)))
            if ans not in cands:
                raise DataError(f"{where}: answer {ans!r} is not one of the candidates")
            vpath = rec.get("video_path") or ""
            if "_" not in vid:
                raise DataError(f"{where}: video_id {vid!r} has no '_<n>' pair suffix")
            rows.append(make_row(
                qid=f"mvp-{path.stem}-{vid}", clip_id=vid,
                video=str(safe_join(root / "videos", vpath)) if vpath else "",  # a record cannot escape videos/
                category=path.stem, template=f"mvp_{path.stem}", question=field(rec, "question", where),
                choices=cands, answer=ans, answer_index=cands.index(ans),
                pair_id=f"mvp-{path.stem}-{vid.rsplit('_', 1)[0]}"))
    return to_dataset(rows, f"MVPBench {str(root)!r}")


def load_perception_test(root: str | Path, split: str = "val"):
    """Perception Test multiple-choice questions of one split (category = area)."""
    root = require_dir(root, "Perception Test")
    if split not in PT_SPLITS:
        raise DataError(f"Perception Test has no split {split!r} (use train, val or test)")
    name = PT_SPLITS[split]
    path = next((root / f for f in (f"mc_question_{name}.json", f"all_{name}.json")
                 if (root / f).is_file()), None)
    if path is None:
        raise DataError(f"Perception Test: no mc_question_{name}.json or all_{name}.json in {str(root)!r}")
    data = read_json(path, "Perception Test")
    if not isinstance(data, dict):
        raise DataError(f"Perception Test: {str(path)!r} must hold an object keyed by video id")
    rows = []
    for key in sorted(data):
        where = f"Perception Test {path.name} video {key!r}"
        entry = data[key]
        vid = field(field(entry, "metadata", where, dict), "video_id", where)
        # all_<split>.json also lists videos annotated only for other tasks: no key = no questions.
        for q in field(entry, "mc_question", where, list) if "mc_question" in entry else []:
            qwhere = f"{where} question {q.get('id', '?') if isinstance(q, dict) else '?'}"
            qn = field(q, "id", qwhere, (int, str))
            opts = field(q, "options", qwhere, list)
            if "answer_id" not in q:
                raise DataError(f"{qwhere}: no 'answer_id' (test labels are withheld; use --split val)")
            raw = field(q, "answer_id", qwhere, (int, str))
            if not str(raw).strip().isdigit():
                raise DataError(f"{qwhere}: answer_id {raw!r} is not an option index")
            aid = int(raw)
            if not 0 <= aid < len(opts):
                raise DataError(f"{qwhere}: answer_id {aid} is outside the {len(opts)} options")
            area = field(q, "area", qwhere)
            reasoning = field(q, "reasoning", qwhere)
            rows.append(make_row(
                qid=f"pt-{vid}-{qn}", clip_id=vid, video=str(safe_join(root / "videos", f"{vid}.mp4")),
                category=area, template=f"{area}/{reasoning}", question=field(q, "question", qwhere),
                choices=[str(o) for o in opts], answer=str(opts[aid]), answer_index=aid,
                extra={"reasoning": reasoning, "tag": q.get("tag", [])}))
    return to_dataset(rows, f"Perception Test {str(path)!r}")
