"""Paired comparison of two evaluations of the same questions: accuracy per category, exact McNemar.

Two `cogarch eval` runs on the same split (e.g. a pack and its ablation, or two packs) each write a
samples.jsonl with one row per question (`qid`, `category`, `correct`). This pairs the rows by qid
and reports, per category and overall: both accuracies, the questions only A got right, those
only B got right, and the exact two-sided McNemar p (a binomial test on the discordant pairs).

    python -m cogarch.evals.bench.paired runs/pack/eval/physqa/samples.jsonl \
        runs/pack_untrained/eval/physqa/samples.jsonl --names trained untrained
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cogarch.errors import UserError
from cogarch.evals.bench import cli
from cogarch.evals.bench.probe_compare import mcnemar  # the exact test on '0'/'1' strings


def load(path: str) -> dict[str, tuple[str, bool]]:
    """qid -> (category, correct) of one samples.jsonl."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path!r} is not a file (want an eval's samples.jsonl)")
    out = {}
    for i, line in enumerate(p.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            qid, cat, ok = r["qid"], str(r["category"]), bool(r["correct"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise UserError(f"{path}:{i + 1}: not a samples row with qid, category and correct ({e})") from None
        if qid in out:
            raise UserError(f"{path}:{i + 1}: question {qid!r} appears twice")
        if cat == "overall":
            raise UserError(f"{path}:{i + 1}: a category named 'overall' clashes with the summary row")
        out[qid] = (cat, ok)
    if not out:
        raise UserError(f"{path!r} holds no samples")
    return out


def compare(a: dict[str, tuple[str, bool]], b: dict[str, tuple[str, bool]]) -> dict[str, dict]:
    """Per category (+ "overall"): n, acc_a, acc_b, only_a, only_b, p."""
    if set(a) != set(b):
        raise UserError(f"the two runs scored different questions ({len(set(a) ^ set(b))} qids differ)")
    groups: dict[str, list[str]] = {}
    for q, (cat, _) in a.items():
        if b[q][0] != cat:
            raise UserError(f"question {q!r} has category {cat!r} in A but {b[q][0]!r} in B")
        groups.setdefault(cat, []).append(q)
    groups["overall"] = list(a)
    out = {}
    for cat, qs in groups.items():
        only_a, only_b, p = mcnemar("".join("01"[a[q][1]] for q in qs), "".join("01"[b[q][1]] for q in qs))
        out[cat] = {"n": len(qs), "acc_a": sum(a[q][1] for q in qs) / len(qs), "acc_b": sum(b[q][1] for q in qs) / len(qs),
                    "only_a": only_a, "only_b": only_b, "p": p}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", help="samples.jsonl of run A")
    ap.add_argument("b", help="samples.jsonl of run B (the same questions)")
    ap.add_argument("--names", nargs=2, default=("A", "B"), metavar=("A", "B"))
    args = ap.parse_args(argv)
    na, nb = args.names
    res = compare(load(args.a), load(args.b))
    print(f"| category | n | {na} | {nb} | right only {na} | right only {nb} | McNemar p |\n|---|---|---|---|---|---|---|")
    for cat in sorted(res, key=lambda c: (c == "overall", c)):
        r = res[cat]
        print(f"| {cat} | {r['n']} | {100 * r['acc_a']:.1f} | {100 * r['acc_b']:.1f} | {r['only_a']} | {r['only_b']} | {r['p']:.2g} |")
    return 0


if __name__ == "__main__":
    cli(main)
