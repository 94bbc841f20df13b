"""The eval runner: score a model on a suite, next to its chance and answer-prior baselines.

    run_eval("physqa", "baseline:prior", data="data/physqa", limit=None, output="runs/eval")

A model is a `Scorer` (three calls, after lm-evaluation-harness's loglikelihood / generate_until
split, Gao et al. 2021) or a spec string: `baseline:chance`, `baseline:prior`, `blind`, or a PACK
path. `blind` and packs are resolved by a loader the language module registers with
`register_model_loader(fn)`; until it does they raise NotBuiltError. The planning suite reports a
policy's success through `register_planner(fn)`; without it only the stored random-action
episodes' success (the chance baseline) is reported. `run_eval(..., planner=OVERRIDE)` hands a
JSON-able override (e.g. another planner config) to that fn unchanged; the runner never reads it.

Outputs in `output`: results.json (model metrics and baselines kept apart), samples.jsonl (one line
per scored item of the model), results.md and results.png (`cogarch.evals.report`). Every file is
written atomically (temp file + rename).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
from tqdm import tqdm

from cogarch.errors import NotBuiltError, UserError
from cogarch.fsutil import safe_join
from cogarch.evals.baselines import ChanceBaseline, MotionBaseline, Prediction, PriorBaseline
from cogarch.evals.metrics import ItemResult, aggregate, normalize_answer
from cogarch.evals.report import format_table  # noqa: F401  (public: the CLI prints it)
from cogarch.evals.suites import (
    TRAIN_SPLITS,
    VOE_SUITES,
    DataError,
    check_suite,
    default_split,
    load_episodes,
    load_suite,
    resolve_data_dir,
)


@runtime_checkable
class Scorer(Protocol):
    """What a model must answer. `video` is an absolute mp4 path, or None (text-only / blind)."""

    def loglik(self, video: str | None, question: str, choices: list[str]) -> list[tuple[float, int]]:
        """Per option: (summed log-probability of the option given the question, its length)."""

    def generate(self, video: str | None, question: str) -> str:
        """A free-form answer (scored by exact match after normalisation)."""

    def surprise(self, video: str) -> float:
        """How unexpected the clip is (higher = more likely a physics violation)."""


_MODEL_LOADER: Callable[[str], Scorer] | None = None
_PLANNER: Callable[..., bool] | None = None


def register_model_loader(fn: Callable[[str], Scorer] | None) -> None:
    """The language module registers fn(spec) -> Scorer for `blind` and PACK specs (None: unset)."""
    global _MODEL_LOADER
    _MODEL_LOADER = fn


def register_planner(fn: Callable[..., Any] | None) -> None:
    """fn(model_spec, episode_row: dict, data_dir: Path) -> bool success, or a dict with "success"
    and per-episode extras (e.g. "steps", "plan_s_per_action"), for the planning suite.

    With `run_eval(..., planner=OVERRIDE)` it is called as fn(model_spec, row, data_dir,
    planner=OVERRIDE); without one the keyword is left out, so a three-argument fn keeps working."""
    global _PLANNER
    _PLANNER = fn


class ScorerPredictor:
    """Adapts a Scorer to the runner: picks acc / acc_norm options, calls generate or surprise."""

    def __init__(self, scorer: Scorer, name: str, blind: bool = False):
        self.scorer, self.name, self.blind = scorer, name, blind
        self._open: dict[str | None, list[str]] = {}  # video -> its open questions not yet answered
        self._answers: dict[tuple[str | None, str], str] = {}

    def plan(self, jobs: list[tuple[dict, str, str | None]]) -> None:
        """Optional batching: a scorer with `generate_many(video, questions) -> [str]` answers all
        open questions of one clip in one batched call, the first time one of them is asked
        (greedy decoding per question, as `generate`; only the batch shape differs)."""
        if not hasattr(self.scorer, "generate_many"):
            return
        for row, kind, video in jobs:
            if kind == "open":
                qs = self._open.setdefault(None if self.blind else video, [])
                if row["question"] not in qs:
                    qs.append(row["question"])

    def _generate(self, video: str | None, question: str) -> str:
        key = (video, question)
        if key not in self._answers and question in self._open.get(video, ()):
            qs = self._open.pop(video)
            self._answers.update(zip(((video, q) for q in qs), self.scorer.generate_many(video, qs)))
        if key in self._answers:
            return self._answers.pop(key)
        return self.scorer.generate(video, question)

    def predict(self, row: dict, kind: str, video: str | None) -> Prediction:
        video = None if self.blind else video
        if kind == "voe":
            s = float(self.scorer.surprise(video))
            return Prediction(scores=[s], pred=s, pred_norm=s)
        if kind == "open":
            text = str(self._generate(video, row["question"]))
            return Prediction(pred=text, pred_norm=text)
        choices = list(row["choices"])
        out = list(self.scorer.loglik(video, row["question"], choices))
        if len(out) != len(choices):
            raise ValueError(f"{self.name}: loglik returned {len(out)} scores for {len(choices)} options")
        ll = np.array([float(o[0]) for o in out])  # [C]
        lens = np.array([max(int(o[1]), 1) for o in out])  # [C]
        return Prediction(scores=ll.tolist(), lengths=lens.tolist(), pred=int(np.argmax(ll)),
                          pred_norm=int(np.argmax(ll / lens)))


def _load_scorer(spec: str) -> Scorer:
    if _MODEL_LOADER is None:
        raise NotBuiltError(f"model {spec!r}: language module not built yet")
    return _MODEL_LOADER(spec)


def resolve_model(model: str | Scorer, train_rows: list[dict], seed: int):
    """Spec or Scorer -> (predictor, display name)."""
    if not isinstance(model, str):
        if not isinstance(model, Scorer):
            raise UserError(f"model {model!r} is neither a spec string nor a Scorer")
        name = getattr(model, "name", type(model).__name__)
        return ScorerPredictor(model, name), name
    if model == "baseline:chance":
        return ChanceBaseline(train_rows, seed), model
    if model == "baseline:prior":
        return PriorBaseline(train_rows), model
    if model.startswith("baseline:"):
        raise UserError(f"unknown baseline {model!r} (use baseline:chance or baseline:prior)")
    return ScorerPredictor(_load_scorer(model), model, blind=model == "blind"), model


def item_kind(suite: str, row: dict) -> str:
    if suite in VOE_SUITES:
        return "voe"
    return "mc" if len(row["choices"]) else "open"


def select_limit(rows: list[dict], limit: int | None) -> list[dict]:
    """First `limit` rows by qid, then whole pair groups: a pair is never cut in half.

    The result may hold up to (group size - 1) rows more than `limit`, never fewer (if available).
    """
    rows = sorted(rows, key=lambda r: r["qid"])
    if limit is None:
        return rows
    if limit < 1:
        raise UserError(f"--limit must be >= 1, got {limit}")
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if r["pair_id"]:
            groups.setdefault(r["pair_id"], []).append(i)
    keep: set[int] = set()
    for i, r in enumerate(rows):
        if len(keep) >= limit:
            break
        keep.update(groups[r["pair_id"]] if r["pair_id"] else [i])
    return [rows[i] for i in sorted(keep)]


def _video(row: dict, data_dir: Path) -> str | None:
    v = row["video"]
    if not v:
        return None
    p = Path(v)
    # Loaders of public suites give absolute paths they already checked with safe_join; a
    # relative one comes from a suite's own tables and must stay inside its data folder.
    return str(p if p.is_absolute() else safe_join(data_dir, v))


def score(suite: str, rows: list[dict], predictor, data_dir: Path, progress: bool = False):
    """Run one predictor over the rows -> (ItemResults, sample dicts)."""
    items, samples = [], []
    if hasattr(predictor, "plan"):
        predictor.plan([(row, item_kind(suite, row), _video(row, data_dir)) for row in rows])
    it = tqdm(rows, desc=f"eval {suite} [{getattr(predictor, 'name', '')}]", disable=not progress)
    for row in it:
        kind = item_kind(suite, row)
        p = predictor.predict(row, kind, _video(row, data_dir))
        res = ItemResult(row["qid"], row["category"], row["pair_id"], kind)
        if kind == "voe":
            res.surprise = float(p.pred)
            res.possible = row["answer"] == "possible"
            truth: Any = row["answer"]
        elif kind == "mc":
            res.correct = p.pred == row["answer_index"]
            res.correct_norm = p.pred_norm == row["answer_index"]
            truth = row["answer_index"]
        else:
            res.correct = normalize_answer(p.pred) == normalize_answer(row["answer"])
            res.correct_norm = res.correct
            truth = row["answer"]
        items.append(res)
        samples.append({"qid": row["qid"], "category": row["category"], "pair_id": row["pair_id"],
                        "question": row["question"], "options": list(row["choices"]),
                        "scores": p.scores, "lengths": p.lengths, "prediction": p.pred,
                        "prediction_norm": p.pred_norm, "truth": truth, "correct": res.correct,
                        "correct_norm": res.correct_norm})
    return items, samples


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _train_rows(suite: str, data_dir: Path, split: str) -> tuple[list[dict], str]:
    train = TRAIN_SPLITS.get(suite)
    if train is None:
        return [], "none (suite has no train split)"
    try:
        return list(load_suite(suite, data_dir, train)), train
    except DataError as e:
        return [], f"none ({e})"


def _model_name(model) -> str:
    return model if isinstance(model, str) else getattr(model, "name", type(model).__name__)


def _episode_category(row: dict) -> str:
    """near | far, "+obstacles" when bars stand on the table (from the stored env arguments)."""
    env = json.loads(row["env"]) if row.get("env") else None
    if not env:
        return "planning"
    return env["goal_distance"] + ("+obstacles" if env["obstacles"] else "")


PLANNING_CATEGORIES = ("near", "near+obstacles", "far", "far+obstacles")


def _run_planning(model, data_dir: Path, split: str, limit: int | None,
                  planner: Any = None, category: str | None = None) -> tuple[dict, dict, list, int]:
    eps = sorted((dict(r) for r in load_episodes(data_dir, split)), key=lambda r: r["episode_id"])
    cats = [_episode_category(e) for e in eps]  # parsed once; filtered in step with eps
    if category is not None:  # before --limit: "the first N near-goal episodes" of the split
        eps, cats = [e for e, c in zip(eps, cats) if c == category], [c for c in cats if c == category]
        if not eps:
            raise DataError(f"planning split {split!r} at {str(data_dir)!r} has no {category!r} episodes")
    if limit is not None:
        if limit < 1:
            raise UserError(f"--limit must be >= 1, got {limit}")
        eps, cats = eps[:limit], cats[:limit]
    if not eps:
        raise DataError(f"planning split {split!r} at {str(data_dir)!r} has no episodes")

    def metrics(succ: list[bool]) -> dict:
        out = {"overall": {"success_rate": sum(map(bool, succ)) / len(succ), "n": len(succ)}}
        for c in sorted(set(cats)):
            sub = [bool(x) for x, k in zip(succ, cats) if k == c]
            out[c] = {"success_rate": sum(sub) / len(sub), "n": len(sub)}
        return out

    stored = [bool(e["success"]) for e in eps]
    baselines = {"chance": metrics(stored)}
    extras: list[dict] = [{} for _ in eps]  # per-episode details a planner reports (steps, time)
    if model == "baseline:chance":
        if planner is not None:
            raise UserError("--planner needs a pack as --model: baseline:chance replays the stored random actions")
        model_succ = stored
    elif model == "baseline:prior":
        raise UserError("baseline:prior has no meaning for planning (use baseline:chance)")
    else:
        if _PLANNER is None:
            raise NotBuiltError("planning with a model: planner module not built yet")
        kw = {} if planner is None else {"planner": planner}
        outs = [_PLANNER(model, e, data_dir, **kw) for e in tqdm(eps, desc="eval planning")]
        extras = [dict(o) if isinstance(o, dict) else {} for o in outs]
        model_succ = [bool(o["success"] if isinstance(o, dict) else o) for o in outs]
    samples = [{"qid": e["episode_id"], "category": c, "prediction": s,
                "truth": True, "correct": s, "stored_random_success": bool(e["success"]),
                **{k: v for k, v in x.items() if k != "success"}}
               for e, c, s, x in zip(eps, cats, model_succ, extras)]
    out = metrics(model_succ)
    times = [x["plan_s_per_action"] for x in extras if x.get("steps")]
    if times:
        out["overall"]["plan_s_per_action"] = round(sum(times) / len(times), 4)
    return out, baselines, samples, len(eps)


def run_eval(
    suite: str,
    model: str | Scorer,
    data: str | Path | None = None,
    limit: int | None = None,
    output: str | Path = "runs/eval",
    seed: int = 0,
    split: str | None = "test",
    planner: Any = None,
    category: str | None = None,
) -> dict:
    """Score `model` on one split of `suite`, with baselines; write outputs; return results.json.

    split=None picks the suite's labelled evaluation split (`default_split`: val for CLEVRER,
    PIQA and Perception Test, whose test labels are withheld; test otherwise). planner: planning
    suite only, a JSON-able override handed to the registered planner and recorded as
    config["planner"]; None keeps the model's own planner (and results.json as before).
    category: planning suite only, evaluate only episodes of this goal category (near, far,
    near+obstacles, far+obstacles), taken before `limit`; recorded as config["category"].
    """
    from cogarch.evals.report import write_outputs

    check_suite(suite)
    if planner is not None and suite != "planning":
        raise UserError(f"--planner applies only to --suite planning, not --suite {suite}")
    if category is not None:
        if suite != "planning":
            raise UserError(f"--category applies only to --suite planning, not --suite {suite}")
        if category not in PLANNING_CATEGORIES:
            raise UserError(f"--category must be one of {', '.join(PLANNING_CATEGORIES)}, got {category!r}")
    split = split or default_split(suite)
    data_dir = resolve_data_dir(suite, data)
    config: dict[str, Any] = {"suite": suite, "data": str(data_dir), "split": split,
                              "limit": limit, "seed": seed}
    if suite == "planning":
        metrics, baselines, samples, n = _run_planning(model, data_dir, split, limit, planner, category)
        if category is not None:
            config["category"] = category
        config["baseline_note"] = "chance = stored random-action episodes; no answer prior for planning"
        if planner is not None:
            config["planner"] = planner
    else:
        rows = select_limit([dict(r) for r in load_suite(suite, data_dir, split)], limit)
        train_rows, source = _train_rows(suite, data_dir, split)
        config["prior_source"] = source
        predictor, _ = resolve_model(model, train_rows, seed)
        items, samples = score(suite, rows, predictor, data_dir, progress=True)
        metrics = aggregate(items)
        baselines = {}
        for base in (ChanceBaseline(train_rows, seed), PriorBaseline(train_rows)):
            baselines[base.name] = aggregate(score(suite, rows, base, data_dir)[0])
        if suite in VOE_SUITES:
            baselines["motion"] = aggregate(score(suite, rows, MotionBaseline(), data_dir)[0])
            config["blind_baseline"] = "not defined for surprise-scored suites (no clip, no surprise)"
        elif _MODEL_LOADER is not None and model != "blind":
            # The blind baseline: the same language model, never shown the clip.
            try:
                blind = ScorerPredictor(_load_scorer("blind"), "blind", blind=True)
            except NotBuiltError as e:
                config["blind_baseline"] = f"skipped ({e})"
            else:
                baselines["blind"] = aggregate(score(suite, rows, blind, data_dir, progress=True)[0])
        n = len(rows)
    results = {
        "suite": suite,
        "model": _model_name(model),
        "split": split,
        "n": n,
        "metrics": metrics,
        "baselines": baselines,
        "config": config,
        "git_revision": git_revision(),
        "seed": seed,
    }
    write_outputs(results, samples, output)
    return json.loads(json.dumps(results))  # exactly what results.json holds
