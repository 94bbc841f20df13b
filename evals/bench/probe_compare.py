"""Compare two encoders' frozen-feature probes clip by clip (paired McNemar tests).

    python -m cogarch.evals.bench.probe_compare --a runs/probe10k/trained_s0.json runs/probe10k/trained_s1.json \
        --b runs/probe10k/random_s0.json runs/probe10k/random_s1.json --names trained random

Each file is the results JSON of `cogarch train probe` (modules/perception/probe.py). The i-th file
of --a is paired with the i-th file of --b (run them with the same probe seed; for `encoder=random`
the seed is also the random init). All files must come from the same data folder and test split:
the probe records, per target, which test clips it got right at the epoch chosen on val, so two
probes can be compared on the same clips. For each pair and target the table gives both
accuracies, the discordant clips (right only under A / only under B) and the exact two-sided
McNemar p (a binomial test on the discordant clips). The summary pools the pairs two ways:
- a sign test over clips, each clip's correctness averaged over the seeds (`pooled_sign_test`). It
  asks whether these probes differ on these clips; it holds the probe seeds fixed, so it does not
  count the seed-to-seed variance of the probe itself;
- a paired t-test over the seed pairs' accuracies (`seed_level_p`), which does, with few units.
All p values are two-sided and not corrected for the number of targets.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scipy.stats import binomtest, ttest_rel

from cogarch.errors import UserError


def _shape_problem(res: object) -> str | None:
    """Why `res` is not a probe results JSON (None when it is one)."""
    if not isinstance(res, dict):
        return "not an object"
    missing = [k for k in ("targets", "data_dir", "splits", "n") if k not in res]
    if missing:
        return f"missing {missing}"
    targets = res["targets"]
    if not isinstance(targets, dict) or not targets:
        return "no targets"
    for name, r in targets.items():
        if (not isinstance(r, dict) or not isinstance(r.get("test"), (int, float)) or "chance_majority" not in r
                or not isinstance(r.get("test_correct", ""), str)):
            return f"bad entry for target {name!r}"
    return None


def _load(path: str) -> dict:
    try:
        res = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a probe results JSON ({e.__class__.__name__})") from None
    problem = _shape_problem(res)
    if problem:
        raise UserError(f"{path}: not a probe results JSON ({problem})")
    missing = [t for t, r in res["targets"].items() if "test_correct" not in r]
    if missing:
        raise UserError(f"{path}: no per-clip results for {missing} (written by an older probe; rerun it)")
    res["data_dir"] = str(Path(res["data_dir"]).resolve())  # the same folder by any relative path
    return res


def mcnemar(a: str, b: str) -> tuple[int, int, float]:
    """(right only under a, right only under b, exact two-sided p) for two '0'/'1' strings."""
    if len(a) != len(b):
        raise UserError(f"the two probes were tested on different clips ({len(a)} vs {len(b)})")
    only_a = sum(x == "1" and y == "0" for x, y in zip(a, b))
    only_b = sum(x == "0" and y == "1" for x, y in zip(a, b))
    n = only_a + only_b
    return only_a, only_b, (binomtest(only_a, n, 0.5).pvalue if n else 1.0)


def compare(a_files: list[str], b_files: list[str], names: tuple[str, str]) -> list[str]:
    """Markdown lines: one row per (target, seed pair), then the mean accuracies per target."""
    if len(a_files) != len(b_files) or not a_files:
        raise UserError("--a and --b need the same number of results files (paired by position)")
    a_res, b_res = [_load(f) for f in a_files], [_load(f) for f in b_files]
    keys = {(r["data_dir"], r["splits"]["test"], r["n"]["test"]) for r in a_res + b_res}
    if len(keys) != 1:
        raise UserError(f"the results come from different data or test splits: {sorted(keys)}")
    order = a_res[0].get("config", {}).get("targets") or sorted(a_res[0]["targets"])  # the probe's own order
    targets = [t for t in order if all(t in r["targets"] for r in a_res + b_res)]
    na, nb = names
    lines = [f"| target (chance) | pair | {na} | {nb} | right only {na} | right only {nb} | McNemar p |",
             "|---|---|---|---|---|---|---|"]
    means = {}
    for t in targets:
        chance = a_res[0]["targets"][t]["chance_majority"]
        accs_a, accs_b = [], []
        for i, (ra, rb) in enumerate(zip(a_res, b_res)):
            ta, tb = ra["targets"][t], rb["targets"][t]
            oa, ob, p = mcnemar(ta["test_correct"], tb["test_correct"])
            accs_a.append(ta["test"])
            accs_b.append(tb["test"])
            lines.append(f"| {t} ({chance:.3f}) | {i} | {ta['test']:.3f} | {tb['test']:.3f} | {oa} | {ob} | {p:.2g} |")
        better_a, better_b, p = pooled_sign_test([r["targets"][t]["test_correct"] for r in a_res],
                                                 [r["targets"][t]["test_correct"] for r in b_res])
        means[t] = (sum(accs_a) / len(accs_a), sum(accs_b) / len(accs_b), sum(x > y for x, y in zip(accs_a, accs_b)),
                    better_a, better_b, p, seed_level_p(accs_a, accs_b))
    lines += ["", f"| target | mean {na} | mean {nb} | pairs where {na} is ahead | clips better under {na} | "
              f"clips better under {nb} | sign-test p (clips, seeds fixed) | paired t p (seeds) |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {t} | {ma:.3f} | {mb:.3f} | {w} of {len(a_files)} | {ba} | {bb} | {p:.2g} | "
              + ("—" if ps is None else f"{ps:.2g}") + " |"
              for t, (ma, mb, w, ba, bb, p, ps) in means.items()]
    lines += ["", f"p values are two-sided and uncorrected for the {len(targets)} targets."]
    return lines


def seed_level_p(accs_a: list[float], accs_b: list[float]) -> float | None:
    """Paired t-test over the seed pairs' accuracies: it counts the probe-seed variance that the
    clip-level sign test holds fixed, at the price of few units (None below 2 pairs or with no spread)."""
    diffs = [x - y for x, y in zip(accs_a, accs_b)]
    if len(diffs) < 2 or max(diffs) == min(diffs):
        return None
    return float(ttest_rel(accs_a, accs_b).pvalue)


def pooled_sign_test(a: list[str], b: list[str]) -> tuple[int, int, float]:
    """Over all seed pairs at once: per clip, the fraction of A's probes right vs B's.

    Clips, not (clip, seed) rows, are the independent units (every seed tests the same clips), so the
    seeds are averaged per clip first; then a two-sided sign test over the clips where A and B differ.
    Returns (clips where A is right more often, clips where B is, p).
    """
    n = len(a[0])
    score_a = [sum(s[i] == "1" for s in a) for i in range(n)]  # equal seed counts: sums compare as means
    score_b = [sum(s[i] == "1" for s in b) for i in range(n)]
    more_a = sum(x > y for x, y in zip(score_a, score_b))
    more_b = sum(x < y for x, y in zip(score_a, score_b))
    return more_a, more_b, (binomtest(more_a, more_a + more_b, 0.5).pvalue if more_a + more_b else 1.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", nargs="+", required=True, help="probe results JSON files of encoder A")
    ap.add_argument("--b", nargs="+", required=True, help="probe results JSON files of encoder B, same order")
    ap.add_argument("--names", nargs=2, default=("A", "B"), metavar=("NAME_A", "NAME_B"))
    args = ap.parse_args()
    print("\n".join(compare(args.a, args.b, tuple(args.names))))
    return 0


if __name__ == "__main__":
    from cogarch.evals.bench import cli

    cli(main)
