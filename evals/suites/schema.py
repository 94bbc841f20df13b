"""The shared `questions` row schema, and small helpers every suite loader uses.

Every loader (our generated suites and the public ones) returns a `datasets.Dataset` with exactly
these columns, so the runner scores CLEVRER, IntPhys 2, PIQA, MVPBench and Perception Test the
same way it scores our own physics world (docs/vocabulary.md and evals/world/generate.py are the contract with the generator):

  qid str, clip_id str, video str (absolute, or relative to the data dir; "" = text only),
  category str, template str, question str, choices list[str] ("" list = open-ended),
  answer str, answer_index int (-1 = open-ended), pair_id str ("" = scored alone), extra str (JSON)

Bad input from the user (a missing folder, a malformed record) is a `UserError` naming the file
and the record, one line, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from cogarch.errors import UserError

COLUMNS = (
    "qid",
    "clip_id",
    "video",
    "category",
    "template",
    "question",
    "choices",
    "answer",
    "answer_index",
    "pair_id",
    "extra",
)


class DataError(UserError):
    """A suite folder, file or record that cannot be read as its published format."""


def features():
    """The `datasets.Features` of a questions table (built lazily: importing datasets is slow)."""
    import datasets

    return datasets.Features(
        {
            "qid": datasets.Value("string"),
            "clip_id": datasets.Value("string"),
            "video": datasets.Value("string"),
            "category": datasets.Value("string"),
            "template": datasets.Value("string"),
            "question": datasets.Value("string"),
            "choices": datasets.Sequence(datasets.Value("string")),
            "answer": datasets.Value("string"),
            "answer_index": datasets.Value("int64"),
            "pair_id": datasets.Value("string"),
            "extra": datasets.Value("string"),
        }
    )


def make_row(
    *,
    qid: str,
    question: str,
    answer: str,
    category: str,
    template: str,
    clip_id: str = "",
    video: str = "",
    choices: Iterable[str] = (),
    answer_index: int = -1,
    pair_id: str = "",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One schema row; keyword-only so a loader cannot swap two string fields by position."""
    return {
        "qid": str(qid),
        "clip_id": str(clip_id),
        "video": str(video),
        "category": str(category),
        "template": str(template),
        "question": str(question),
        "choices": [str(c) for c in choices],
        "answer": str(answer),
        "answer_index": int(answer_index),
        "pair_id": str(pair_id),
        "extra": json.dumps(extra or {}, sort_keys=True),
    }


def to_dataset(rows: list[dict[str, Any]], source: str):
    """Rows -> `datasets.Dataset` with the exact schema; refuses an empty suite (nothing to score)."""
    import datasets

    if not rows:
        raise DataError(f"{source}: no questions found")
    qids = [r["qid"] for r in rows]
    if len(set(qids)) != len(qids):
        dup = next(q for q in qids if qids.count(q) > 1)
        raise DataError(f"{source}: duplicate question id {dup!r}")
    cols = {c: [r[c] for r in rows] for c in COLUMNS}
    return datasets.Dataset.from_dict(cols, features=features())


def require_dir(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise DataError(f"{what}: folder {str(p)!r} does not exist")
    return p


def require_file(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what}: file {str(p)!r} does not exist")
    return p


def read_json(path: str | Path, what: str) -> Any:
    p = require_file(path, what)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{what}: {str(p)!r} is not valid JSON ({e})") from None


def read_jsonl(path: str | Path, what: str) -> list[Any]:
    p = require_file(path, what)
    out = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise DataError(f"{what}: {str(p)!r} line {i} is not valid JSON ({e})") from None
    return out


def field(rec: Any, key: str, where: str, kind: type | tuple[type, ...] = str) -> Any:
    """`rec[key]` checked for presence and type; `where` names the file and record on failure."""
    if not isinstance(rec, dict):
        raise DataError(f"{where}: record is a {type(rec).__name__}, expected an object")
    if key not in rec:
        raise DataError(f"{where}: missing field {key!r}")
    val = rec[key]
    # bool is an int subclass; an int field that holds true/false is malformed, not a number.
    if isinstance(val, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise DataError(f"{where}: field {key!r} is a bool, expected {_kind_name(kind)}")
    if not isinstance(val, kind):
        raise DataError(f"{where}: field {key!r} is {type(val).__name__}, expected {_kind_name(kind)}")
    return val


def _kind_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return "/".join(k.__name__ for k in kind)
    return kind.__name__
