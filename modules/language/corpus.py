"""Text from the physics world's TRAIN split: scene descriptions, event narrations, QA pairs.

Reads a generated suite folder (the shared data schema: `clips/` and `questions/` DatasetDicts) and
turns its ground truth into plain English. It is the pretraining corpus of the default LM
(`cogarch train language-pretrain`) and the caption targets of stage 1 (`cogarch train language`).
Only the split asked for is read (train by default), so no test question can leak into the LM.
This file parses the suite's JSON columns itself; it imports nothing from cogarch.evals.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cogarch.errors import UserError
from cogarch.modules.language.config import LanguageConfig


class CorpusError(UserError):
    """A missing or malformed generated suite."""


def load_split(data_dir: str | os.PathLike, table: str, split: str):
    """One split of `DIR/<table>` (clips | questions) as a datasets.Dataset."""
    from datasets import load_from_disk

    path = Path(data_dir) / table
    if not path.is_dir():
        raise CorpusError(f"{str(data_dir)!r} is not a generated suite (no {table}/ folder); run `cogarch generate` first")
    dd = load_from_disk(str(path))
    if split not in dd:
        raise CorpusError(f"{path} has no split {split!r} (has {', '.join(dd.keys())})")
    return dd[split]


def noun(obj: dict) -> str:
    """CLEVRER word order: "red metal cube"."""
    parts = [obj.get(k) for k in ("color", "material", "shape") if obj.get(k)]
    return " ".join(parts) if obj.get("shape") else " ".join(parts + ["object"])


def _direction(vx: float, vy: float) -> str:
    # Canvas coordinates: x right, y down.
    if abs(vx) < 1e-3 and abs(vy) < 1e-3:
        return "is at rest"
    horiz = "right" if vx > 0 else "left"
    vert = "down" if vy > 0 else "up"
    if abs(vx) > 2 * abs(vy):
        return f"moves {horiz}"
    if abs(vy) > 2 * abs(vx):
        return f"moves {vert}"
    return f"moves {vert} and to the {horiz}"


def describe_scene(objects: list[dict], family: str) -> str:
    names = [f"a {noun(o)}" for o in objects]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    view = {"table": "a table seen from above", "side": "a side view with gravity"}.get(family, f"a {family} view")
    out = [f"The clip shows {view} with {len(objects)} object{'s' if len(objects) != 1 else ''}: {listed}."]
    for o in objects:
        if "vx" in o and "vy" in o:
            out.append(f"The {noun(o)} {_direction(float(o['vx']), float(o['vy']))}.")
    return " ".join(out)


def _static(name: str) -> str:
    # Static parts are named by kind + index ("wall0", "floor", "ramp0", "ledge0").
    return name.rstrip("0123456789") or "object"


def narrate_event(e: dict, names: dict) -> str | None:
    def n(k: str) -> str:
        v = str(e.get(k))
        return "the " + (names[v] if v in names else _static(v))

    typ = e.get("type")
    if typ == "collision":
        return f"{n('a')} collides with {n('b')}"
    if typ == "enter":
        return f"{n('obj')} enters the scene"
    if typ == "exit":
        return f"{n('obj')} exits the scene"
    if typ == "fall":
        return f"{n('obj')} falls off the ledge"
    return None


def narrate(objects: list[dict], annotations: dict, observed: int) -> str:
    """Events of the observed frames, then those after the clip ends (what a forecast should predict)."""
    names = {str(o["id"]): noun(o) for o in objects if "id" in o}
    seen, later = [], []
    for e in annotations.get("events", []):
        s = narrate_event(e, names)
        if s is None:
            continue
        (seen if int(e.get("frame", 0)) < observed else later).append(s)
    parts = []
    if seen:
        parts.append("First, " + "; then ".join(seen) + ".")
    else:
        parts.append("Nothing collides while the clip is visible.")
    if later:
        parts.append("After the clip ends, " + "; then ".join(later) + ".")
    return " ".join(parts)


def clip_caption(row: dict) -> str:
    """Scene description + narration of one `clips` row."""
    try:
        objects = json.loads(row["objects"]) if row.get("objects") else []
        ann = json.loads(row["annotations"]) if row.get("annotations") else {}
    except json.JSONDecodeError:
        raise CorpusError(f"clip {row.get('clip_id')!r}: objects/annotations are not valid JSON") from None
    if not objects:
        return "The clip shows an empty scene."
    observed = int(row.get("observed_frames") or ann.get("observed_frames") or 0)
    return describe_scene(objects, str(row.get("family", ""))) + " " + narrate(objects, ann, observed)


def clip_captions(data_dir: str | os.PathLike, split: str = "train") -> dict[str, str]:
    return {row["clip_id"]: clip_caption(row) for row in load_split(data_dir, "clips", split)}


def qa_text(cfg: LanguageConfig, question: str, choices: list[str], answer: str) -> str:
    """A QA pair in exactly the prompt format the language module is trained and scored with."""
    from cogarch.modules.language.model import format_prompt

    return format_prompt(cfg, question, choices) + " " + answer


GROUNDED = ("none", "add", "only")


def build_corpus(
    data_dir: str | os.PathLike, split: str = "train", cfg: LanguageConfig | None = None, grounded: str = "none"
) -> list[str]:
    """All documents of one split: one caption per clip, one QA text per question (open or MC).

    grounded="add" adds, per question, its clip's caption followed by the QA text: documents in which
    the answer can be read from the text before it, so the LM learns to answer from its context
    (reading comprehension), the skill it needs to answer from the bus prefix later. "only" keeps the
    captions and these documents but drops the bare QA texts (answers without a context).
    """
    if grounded not in GROUNDED:
        raise CorpusError(f"grounded must be one of {'|'.join(GROUNDED)}, got {grounded!r}")
    cfg = cfg or LanguageConfig()
    captions = clip_captions(data_dir, split)
    docs = list(captions.values())
    qpath = Path(data_dir) / "questions"
    if qpath.is_dir():
        grounded_docs = []
        for row in load_split(data_dir, "questions", split):
            if row["question"] and row["answer"]:
                qa = qa_text(cfg, row["question"], list(row["choices"] or []), row["answer"])
                if grounded != "only":
                    docs.append(qa)
                if grounded != "none" and row["clip_id"] in captions:
                    grounded_docs.append(captions[row["clip_id"]] + "\n" + qa)
        docs += grounded_docs
    if not docs:
        raise CorpusError(f"{str(data_dir)!r} split {split!r} has no clips or questions to build a corpus from")
    return docs
