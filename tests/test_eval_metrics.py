"""Metrics of the eval runner against hand-computed values (AUROC, pairs, normalisation)."""

from __future__ import annotations

import itertools

import pytest

from cogarch.evals.metrics import ItemResult, aggregate, auroc, group_metrics, normalize_answer


def _brute_auroc(pos, neg):
    wins = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)]
    return sum(wins) / len(wins)


def test_auroc_hand_computed_toy():
    # pos (impossible) = [0.9, 0.4, 0.4], neg (possible) = [0.4, 0.1]
    # pairs: 0.9>0.4, 0.9>0.1, 0.4=0.4 (1/2), 0.4>0.1, 0.4=0.4 (1/2), 0.4>0.1 -> 5/6
    assert auroc([0.9, 0.4, 0.4], [0.4, 0.1]) == pytest.approx(5 / 6)
    assert auroc([1.0, 2.0], [3.0, 4.0]) == 0.0
    assert auroc([3.0], [3.0]) == 0.5
    assert auroc([], [1.0]) is None


def test_auroc_matches_brute_force_with_ties():
    import numpy as np

    rng = np.random.default_rng(0)
    pos = rng.integers(0, 5, 23).tolist()
    neg = rng.integers(0, 5, 17).tolist()
    assert auroc(pos, neg) == pytest.approx(_brute_auroc(pos, neg))


def test_normalize_answer():
    assert normalize_answer("The Three.") == "3"
    assert normalize_answer("  a red   cube!") == "red cube"
    assert normalize_answer("two-three") == "2 3"
    assert normalize_answer("Red") != normalize_answer("blue")


def test_pairwise_accuracy_mc_and_voe():
    items = [
        ItemResult("a", "c", "p1", "mc", correct=True, correct_norm=True),
        ItemResult("b", "c", "p1", "mc", correct=True, correct_norm=False),
        ItemResult("c", "c", "p2", "mc", correct=True, correct_norm=True),
        ItemResult("d", "c", "p2", "mc", correct=False, correct_norm=True),
        ItemResult("e", "c", "", "open", correct=False, correct_norm=False),
    ]
    m = group_metrics(items)
    assert m["acc"] == pytest.approx(3 / 5)
    assert m["acc_norm"] == pytest.approx(3 / 5)
    assert m["pairwise_accuracy"] == pytest.approx(1 / 2)  # p1 whole, p2 broken
    assert m["auroc"] is None and m["n"] == 5
    assert group_metrics(items[4:])["acc_norm"] is None  # open answers only: nothing to normalise

    voe = [
        ItemResult("i1", "gravity", "g1", "voe", surprise=0.9, possible=False),
        ItemResult("p1", "gravity", "g1", "voe", surprise=0.2, possible=True),
        ItemResult("i2", "gravity", "g2", "voe", surprise=0.1, possible=False),
        ItemResult("p2", "gravity", "g2", "voe", surprise=0.3, possible=True),
        ItemResult("i3", "solidity", "g3", "voe", surprise=0.5, possible=False),
        ItemResult("p3", "solidity", "g3", "voe", surprise=0.5, possible=True),
    ]
    agg = aggregate(voe)
    assert list(agg) == ["gravity", "solidity", "overall"]
    assert agg["gravity"]["pairwise_accuracy"] == pytest.approx(0.5)
    assert agg["solidity"]["pairwise_accuracy"] == pytest.approx(0.5)  # tie counts half
    assert agg["overall"]["pairwise_accuracy"] == pytest.approx(0.5)
    # gravity: pos [0.9, 0.1] vs neg [0.2, 0.3]: 0.9 wins twice, 0.1 never -> 2/4
    assert agg["gravity"]["auroc"] == pytest.approx(0.5)
    assert agg["overall"]["auroc"] == pytest.approx(_brute_auroc([0.9, 0.1, 0.5], [0.2, 0.3, 0.5]))
    assert agg["overall"]["acc"] is None
