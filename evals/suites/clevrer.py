"""CLEVRER (Yi et al., ICLR 2020): loader for its published format, and an exporter of ours to it.

Published layout (data.csail.mit.edu/clevrer): question files `train.json`, `validation.json`,
`test.json` (we accept them at the root or under `questions/`), each a JSON list of scenes

  {"scene_index": 10000, "video_filename": "video_10000.mp4",
   "questions": [
     {"question_id": 0, "question_type": "descriptive", "question_subtype": "count",
      "question": "...", "answer": "2", "program": [...]},
     {"question_id": 14, "question_type": "explanatory", "question": "...", "program": [...],
      "choices": [{"choice_id": 0, "choice": "...", "program": [...], "answer": "wrong"}, ...]}]}

and videos `video_<split>/video_<lo>-<hi>/video_XXXXX.mp4` (folders of 1000; we find them by name
anywhere under the root). Test labels are withheld by the authors.

Descriptive questions are open-ended (one-word answer). Explanatory, predictive and
counterfactual ones are multiple choice with possibly several correct options, which CLEVRER
scores two ways: per option (each option judged correct/wrong) and per question (all options of
the question right). `mc_mode="per_option"` (default) expands each option into a binary item
("wrong"/"correct") whose `pair_id` is the question, so the runner's `pairwise_accuracy` is exactly
CLEVRER's per-question accuracy. `mc_mode="multi"` keeps one multiple-choice item per question;
since the shared schema has one `answer_index`, it keeps only questions with exactly one correct
option and skips the others.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

from cogarch.evals.suites.schema import (
    DataError,
    field,
    make_row,
    read_json,
    require_dir,
    to_dataset,
)
from cogarch.fsutil import atomic_dir, atomic_write_json, safe_join

SPLIT_FILES = {"train": "train.json", "val": "validation.json", "validation": "validation.json",
               "test": "test.json"}
EXPORT_SPLITS = {"train": "train", "val": "validation", "test": "test"}
LABELS = ("wrong", "correct")  # binary item choices, index 1 = the option is correct


def _questions_file(root: Path, split: str) -> Path:
    if split not in SPLIT_FILES:
        raise DataError(f"CLEVRER has no split {split!r} (use one of: train, val, test)")
    name = SPLIT_FILES[split]
    for cand in (root / "questions" / name, root / name):
        if cand.is_file():
            return cand
    raise DataError(f"CLEVRER: no {name} under {str(root)!r} (looked in questions/ and the root)")


def _video_index(root: Path) -> dict[str, Path]:
    return {p.name: p for p in root.rglob("video_*.mp4")}


def _canonical_video(split: str, index: int) -> str:
    lo = index // 1000 * 1000
    return f"video_{EXPORT_SPLITS.get(split, split)}/video_{lo:05d}-{lo + 1000:05d}/video_{index:05d}.mp4"


def load_clevrer(root: str | Path, split: str = "val", mc_mode: str = "per_option"):
    """CLEVRER questions of one split as a shared-schema `datasets.Dataset`."""
    if mc_mode not in ("per_option", "multi"):
        raise DataError(f"CLEVRER mc_mode must be 'per_option' or 'multi', got {mc_mode!r}")
    root = require_dir(root, "CLEVRER")
    path = _questions_file(root, split)
    scenes = read_json(path, "CLEVRER")
    if not isinstance(scenes, list):
        raise DataError(f"CLEVRER: {str(path)!r} must hold a list of scenes")
    videos = _video_index(root)
    rows = []
    for si, scene in enumerate(scenes):
        where = f"CLEVRER {path.name} scene #{si}"
        index = field(scene, "scene_index", where, int)
        where = f"CLEVRER {path.name} scene {index}"
        vname = field(scene, "video_filename", where, str)
        video = str(videos[vname]) if vname in videos else _canonical_video(split, index)
        clip = Path(vname).stem
        for q in field(scene, "questions", where, list):
            qwhere = f"{where} question {q.get('question_id', '?') if isinstance(q, dict) else '?'}"
            qid_n = field(q, "question_id", qwhere, int)
            qtype = field(q, "question_type", qwhere, str)
            text = field(q, "question", qwhere, str)
            subtype = q.get("question_subtype") or qtype
            base = f"clevrer-{index:05d}-q{qid_n}"
            if "choices" not in q:
                if "answer" not in q:
                    raise DataError(f"{qwhere}: no 'answer' (CLEVRER withholds test labels; "
                                    "evaluate on --split val)")
                rows.append(make_row(qid=base, clip_id=clip, video=video, category=qtype,
                                     template=str(subtype), question=text,
                                     answer=str(field(q, "answer", qwhere, (str, int))),
                                     extra={"scene_index": index, "question_id": qid_n}))
                continue
            opts = field(q, "choices", qwhere, list)
            parsed = []
            for c in opts:
                cwhere = f"{qwhere} choice {c.get('choice_id', '?') if isinstance(c, dict) else '?'}"
                cid = field(c, "choice_id", cwhere, int)
                ctext = field(c, "choice", cwhere, str)
                if "answer" not in c:
                    raise DataError(f"{cwhere}: no 'answer' (CLEVRER withholds test labels; "
                                    "evaluate on --split val)")
                label = field(c, "answer", cwhere, str)
                if label not in LABELS:
                    raise DataError(f"{cwhere}: answer must be 'correct' or 'wrong', got {label!r}")
                parsed.append((cid, ctext, label))
            if not parsed:
                raise DataError(f"{qwhere}: empty 'choices' list")
            if mc_mode == "per_option":
                for cid, ctext, label in parsed:
                    rows.append(make_row(
                        qid=f"{base}-c{cid}", clip_id=clip, video=video, category=qtype,
                        template=f"{qtype}_option", question=f"{text} Option: {ctext}",
                        choices=LABELS, answer=label, answer_index=LABELS.index(label),
                        pair_id=base,
                        extra={"scene_index": index, "question_id": qid_n, "choice_id": cid}))
            else:
                correct = [i for i, (_, _, lab) in enumerate(parsed) if lab == "correct"]
                if len(correct) != 1:
                    continue  # several (or no) right options: not expressible as one answer_index
                k = correct[0]
                rows.append(make_row(
                    qid=base, clip_id=clip, video=video, category=qtype, template=str(subtype),
                    question=text, choices=[t for _, t, _ in parsed], answer=parsed[k][1],
                    answer_index=k, extra={"scene_index": index, "question_id": qid_n}))
    return to_dataset(rows, f"CLEVRER {str(path)!r}")


def export_clevrer(our_dir: str | Path, out_dir: str | Path) -> Path:
    """Write our generated physqa suite in the CLEVRER release layout (videos copied).

    Splits train/val/test become train.json/validation.json/test.json (test_ood has no CLEVRER
    counterpart and is left out). Clips get consecutive scene indices across splits, as CLEVRER's
    do. Open questions keep `answer`; multiple-choice ones become `choices` with one "correct".
    Our `category` is written as `question_type`, our `template` as `question_subtype`.
    """
    from cogarch.evals.suites.generated import load_generated_dict

    our_dir = Path(our_dir)
    dd = load_generated_dict(our_dir, "physqa")
    out_dir = Path(out_dir)
    next_index = 0
    with atomic_dir(out_dir) as tmp:
        for split, fname in EXPORT_SPLITS.items():
            if split not in dd:
                continue
            by_clip: dict[str, list[dict]] = defaultdict(list)
            for row in dd[split]:
                by_clip[row["clip_id"]].append(row)
            scenes = []
            for clip in sorted(by_clip):
                index = next_index
                next_index += 1
                qrows = sorted(by_clip[clip], key=lambda r: r["qid"])
                src_rel = next((r["video"] for r in qrows if r["video"]), "")
                if src_rel:
                    src = safe_join(our_dir, src_rel)
                    if not src.is_file():
                        raise DataError(f"export_clevrer: video {str(src)!r} of clip {clip!r} is missing")
                    dst = tmp / _canonical_video(split, index)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dst)
                questions = []
                for qn, r in enumerate(qrows):
                    q = {"question_id": qn, "question_type": r["category"],
                         "question_subtype": r["template"], "question": r["question"]}
                    if r["choices"]:
                        q["choices"] = [
                            {"choice_id": j, "choice": c,
                             "answer": "correct" if j == r["answer_index"] else "wrong"}
                            for j, c in enumerate(r["choices"])
                        ]
                    else:
                        q["answer"] = r["answer"]
                    questions.append(q)
                scenes.append({"scene_index": index, "video_filename": f"video_{index:05d}.mp4",
                               "questions": questions})
            (tmp / "questions").mkdir(exist_ok=True)
            atomic_write_json(tmp / "questions" / f"{fname}.json", scenes)
    return out_dir
