"""Metrics of the eval runner: answer normalisation, accuracy, pair accuracy, AUROC.

- Multiple choice as in lm-evaluation-harness (Gao et al. 2021): `acc` takes the option with the
  highest summed log-probability, `acc_norm` divides it by the option's length first (so long
  options are not penalised for having more tokens).
- Open answers: exact match after SQuAD-style normalisation (Rajpurkar et al. 2016: lowercase,
  drop punctuation and articles) plus number words -> digits ("three" == "3").
- Pairs: a pair/group is right only when all its items are (MVP's paired accuracy, CLEVRER's
  per-question accuracy). For violation of expectation, a pair is right when the impossible clip
  is more surprising than its possible twin (IntPhys relative error; ties count 1/2).
- AUROC by the Mann-Whitney U statistic with average ranks for ties (no sklearn): the
  probability that a random impossible clip is more surprising than a random possible one.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split())}
ARTICLES = {"a", "an", "the"}
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
METRIC_KEYS = ("acc", "acc_norm", "pairwise_accuracy", "auroc")


def normalize_answer(text: str) -> str:
    """Lowercase, punctuation -> space, drop articles, number words -> digits, squeeze spaces."""
    words = _PUNCT.sub(" ", str(text).lower()).split()
    return " ".join(NUMBER_WORDS.get(w, w) for w in words if w not in ARTICLES)


def auroc(pos: Sequence[float], neg: Sequence[float]) -> float | None:
    """P(score of a positive > score of a negative) + 1/2 P(tie); None if a class is empty."""
    n_pos, n_neg = len(pos), len(neg)
    if n_pos == 0 or n_neg == 0:
        return None
    allv = sorted([(float(v), 1) for v in pos] + [(float(v), 0) for v in neg])
    rank_sum_pos, i = 0.0, 0
    while i < len(allv):
        j = i
        while j < len(allv) and allv[j][0] == allv[i][0]:
            j += 1
        avg_rank = (i + 1 + j) / 2.0  # ranks i+1..j share their mean
        rank_sum_pos += avg_rank * sum(1 for k in range(i, j) if allv[k][1] == 1)
        i = j
    u = rank_sum_pos - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


@dataclass
class ItemResult:
    """One scored item. kind: "mc" | "open" | "voe"."""

    qid: str
    category: str
    pair_id: str
    kind: str
    correct: bool | None = None
    correct_norm: bool | None = None
    surprise: float | None = None
    possible: bool | None = None


def _mean(vals: list[float]) -> float | None:
    return sum(vals) / len(vals) if vals else None


def voe_group_score(impossible: list[float], possible: list[float]) -> float | None:
    """Score of one VoE group (a matched pair or an IntPhys quadruplet): the fraction of its
    (impossible, possible) cross comparisons where the impossible clip is more surprising, ties
    counting half. None when either side is empty."""
    if not impossible or not possible:
        return None
    wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a in impossible for b in possible]
    return sum(wins) / len(wins)


def _voe_pair_score(members: list[ItemResult]) -> float | None:
    return voe_group_score([m.surprise for m in members if m.possible is False],
                           [m.surprise for m in members if m.possible is True])


def group_metrics(items: list[ItemResult]) -> dict[str, Any]:
    """acc / acc_norm / pairwise_accuracy / auroc / n of one group of items (None = not defined)."""
    answered = [it for it in items if it.kind in ("mc", "open")]
    voe = [it for it in items if it.kind == "voe"]
    pairs: dict[str, list[ItemResult]] = defaultdict(list)
    for it in items:
        if it.pair_id:
            pairs[it.pair_id].append(it)
    pair_scores = []
    for members in pairs.values():
        if all(m.kind == "voe" for m in members):
            s = _voe_pair_score(members)
        else:
            s = float(all(bool(m.correct) for m in members))
        if s is not None:
            pair_scores.append(s)
    return {
        "acc": _mean([float(bool(it.correct)) for it in answered]),
        # Defined where there are options to normalise; open answers in a mixed group count by
        # their exact match, so acc and acc_norm are over the same items.
        "acc_norm": _mean([float(bool(it.correct_norm)) for it in answered])
        if any(it.kind == "mc" for it in answered) else None,
        "pairwise_accuracy": _mean(pair_scores),
        "auroc": auroc([it.surprise for it in voe if it.possible is False],
                       [it.surprise for it in voe if it.possible is True]) if voe else None,
        "n": len(items),
    }


def aggregate(items: list[ItemResult]) -> dict[str, dict[str, Any]]:
    """Per-category metrics plus "overall" (category order: sorted, overall last)."""
    by_cat: dict[str, list[ItemResult]] = defaultdict(list)
    for it in items:
        by_cat[it.category].append(it)
    out = {cat: group_metrics(by_cat[cat]) for cat in sorted(by_cat)}
    out["overall"] = group_metrics(items)
    return out
