"""Baselines the runner always computes next to a model: chance and answer prior.

Both see only what a model could know without the clip's content, and both learn from the TRAIN
split only (never the split being scored), so their numbers are the floor a model must beat:

- chance: multiple choice -> a uniformly random option; open answers -> a uniformly random answer
  among those the question's template has in TRAIN; violation of expectation -> a random surprise.
  Each item draws from its own generator seeded by (seed, crc32(qid)), so an item's draw does not
  depend on which other items are scored (`--limit` does not change it).
- prior ("answer prior", as the blind baselines of CLEVRER / Perception Test): the majority answer
  of the question's template in TRAIN (ties -> alphabetically first); multiple choice picks that
  answer's option if offered, else the template's most common answer index. Violation of
  expectation -> a constant surprise, so AUROC and pair accuracy are exactly 0.5.

Violation-of-expectation suites also get a control that does read the clip:
- motion: a clip's surprise is how much its pixels change from frame to frame. It knows no
  physics, so a model scoring near it may be reading motion, and a suite where it is far from
  50 % pairs possible and impossible clips whose motion differs (on the generated voe suite the
  impossible clip of a gravity or permanence pair moves less; docs/bench_world_model.md §6;
  the balanced quadruplets of `voe_design=quad` remove that leak).
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Prediction:
    """What a predictor says about one item; scores are per-option log-likelihoods (mc) or [surprise]."""

    scores: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    pred: Any = None  # option index (mc), answer text (open) or surprise (voe)
    pred_norm: Any = None  # length-normalised option index (mc); = pred otherwise


def _majority(counter: Counter) -> Any:
    return min(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))[0]


def item_rng(seed: int, qid: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(qid.encode("utf-8"))])


class ChanceBaseline:
    name = "chance"

    def __init__(self, train_rows: list[dict], seed: int = 0):
        self.seed = seed
        answers: dict[str, set[str]] = defaultdict(set)
        for r in train_rows:
            if not r["choices"]:
                answers[r["template"]].add(r["answer"])
        self.answers = {t: sorted(a) for t, a in answers.items()}
        self.all_answers = sorted({a for v in answers.values() for a in v})

    def predict(self, row: dict, kind: str, video: str | None) -> Prediction:
        rng = item_rng(self.seed, row["qid"])
        if kind == "mc":
            i = int(rng.integers(len(row["choices"])))
            return Prediction(pred=i, pred_norm=i)
        if kind == "voe":
            s = float(rng.random())
            return Prediction(scores=[s], pred=s, pred_norm=s)
        pool = self.answers.get(row["template"]) or self.all_answers
        text = pool[int(rng.integers(len(pool)))] if pool else ""
        return Prediction(pred=text, pred_norm=text)


class PriorBaseline:
    name = "prior"

    def __init__(self, train_rows: list[dict]):
        text: dict[str, Counter] = defaultdict(Counter)
        index: dict[str, Counter] = defaultdict(Counter)
        overall: Counter = Counter()
        for r in train_rows:
            text[r["template"]][r["answer"]] += 1
            if r["choices"]:
                index[r["template"]][int(r["answer_index"])] += 1
            else:
                overall[r["answer"]] += 1
        self.text = {t: _majority(c) for t, c in text.items()}
        self.index = {t: _majority(c) for t, c in index.items()}
        self.open_fallback = _majority(overall) if overall else ""

    def predict(self, row: dict, kind: str, video: str | None) -> Prediction:
        if kind == "voe":
            return Prediction(scores=[0.0], pred=0.0, pred_norm=0.0)
        t = row["template"]
        if kind == "mc":
            choices = list(row["choices"])
            if self.text.get(t) in choices:
                i = choices.index(self.text[t])
            elif self.index.get(t, -1) in range(len(choices)):
                i = self.index[t]
            else:
                i = 0
            return Prediction(pred=i, pred_norm=i)
        ans = self.text.get(t, self.open_fallback)
        return Prediction(pred=ans, pred_norm=ans)


class MotionBaseline:
    """VoE control: surprise = mean |x_t - x_{t-1}| over up to 64 frames spread over the clip, at 64 px."""

    name = "motion"
    max_frames = 64

    def predict(self, row: dict, kind: str, video: str | None) -> Prediction:
        if kind != "voe" or video is None:
            raise ValueError("the motion baseline scores violation-of-expectation clips only")
        from cogarch.video import probe, read_clip

        n = min(max(probe(video).frames, 2), self.max_frames)
        x = read_clip(video, num_frames=n, size=64)  # [T, 3, 64, 64] in [0, 1], spread over the clip
        s = float((x[1:] - x[:-1]).abs().mean())
        return Prediction(scores=[s], pred=s, pred_norm=s)

