"""Pieces shared by the three suites: per-clip seeds, the clip row, video writing, balancing.

Seeds: a clip's seed comes from numpy's SeedSequence(entropy=global seed, spawn_key=(split,
index)), so splits and indices never share a random stream, and the same (seed, split, index)
always yields the same clip no matter how many workers generated it.

Balancing (CLEVRER and later benchmarks balance answers so that answer priors carry no signal):
per clip we pick up to `per_template` candidates per template, stratified by answer; across the
split we then reject questions of over-represented answers until no answer of a template holds
more than 1/k + 5 points (k = number of distinct answers that template keeps in the split).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from cogarch.evals.world.render import Renderer
from cogarch.evals.world.sim import Scene, Trajectory
from cogarch.evals.world.truth import annotations, dumps
from cogarch.evals.world.video import write_mp4

SPLITS = ("train", "val", "test", "test_ood")
BALANCE_SLACK = 0.05


def clip_seed(global_seed: int, split: str, index: int) -> int:
    """63-bit seed of clip `index` of `split` (stable across runs and worker counts)."""
    ss = np.random.SeedSequence(entropy=int(global_seed), spawn_key=(SPLITS.index(split), int(index)))
    a, b = ss.generate_state(2, dtype=np.uint32)
    return int((int(a) << 31) ^ int(b)) & ((1 << 63) - 1)


def split_counts(n: int) -> dict[str, int]:
    """~80/10/10 train/val/test plus 10% test_ood; every split non-empty once n >= 4."""
    if n < 4:
        return {"train": n, "val": 0, "test": 0, "test_ood": 0}
    k = max(1, round(0.1 * n))
    return {"train": n - 3 * k, "val": k, "test": k, "test_ood": k}


def write_clip(task: dict, scene: Scene, traj: Trajectory, ann_extra: dict | None = None,
               renderer: Renderer | None = None) -> dict:
    """Render + write the mp4 of a clip and return its `clips` row (schema in /docs)."""
    observed = task["observed_frames"]
    upto = observed if task["video_frames"] == "observed" else traj.pos.shape[0]
    r = renderer or Renderer(scene, task["size"], task["ss"])
    frames = r.frames(traj, upto)
    rel = f"videos/{task['clip_id']}.mp4"
    write_mp4(Path(task["root"]) / rel, frames, scene.fps)
    ann = annotations(scene, traj, observed, ann_extra)
    return {
        "clip_id": task["clip_id"], "split": task["split"], "family": scene.family,
        "seed": task["seed"], "video": rel, "num_frames": int(frames.shape[0]),
        "observed_frames": int(observed), "fps": float(scene.fps), "width": task["size"],
        "height": task["size"], "objects": dumps([o.to_json() for o in scene.objects]),
        "annotations": dumps(ann),
    }


def pick_stratified(cands: list, per_template: int, rng: np.random.Generator) -> list:
    """Up to per_template candidates per template, each from a uniformly chosen answer."""
    by_t: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for q in cands:
        by_t[q.template][q.answer].append(q)
    out = []
    for t in sorted(by_t):
        groups = {a: list(v) for a, v in sorted(by_t[t].items())}
        for _ in range(per_template):
            if not groups:
                break
            answers = sorted(groups)
            a = answers[int(rng.integers(len(answers)))]
            g = groups[a]
            out.append(g.pop(int(rng.integers(len(g)))))
            if not g:
                del groups[a]
    return out


def _best_cap(counts: list[int]) -> tuple[int, int, int]:
    """For counts sorted descending, the (kept, m, cap) maximising kept rows such that keeping
    the top-m answers, each capped at `cap`, gives no answer more than 1/m + slack."""
    best = (0, 0, 0)
    for m in range(2, len(counts) + 1):
        c = counts[:m]
        p = 1.0 / m + BALANCE_SLACK
        cap = 0
        for j in range(1, m + 1):           # cap in [c[j], c[j-1]] (c[m] := 0)
            hi, lo = c[j - 1], (c[j] if j < m else 0)
            rest = sum(c[j:])
            if 1 - p * j <= 0:
                cand = hi
            else:
                cand = min(hi, int(np.floor(p * rest / (1 - p * j) + 1e-9)))
            if cand >= lo and cand > cap:
                cap = cand
        kept = sum(min(x, cap) for x in c)
        if cap > 0 and kept >= best[0]:
            best = (kept, m, cap)
    return best


def balance(rows: list[dict], rng: np.random.Generator) -> list[dict]:
    """Rejection-sample question rows so every template's answers are balanced (see module doc).

    Templates whose rows all share one answer are dropped (a one-answer template is a prior).
    Row order (clip order) is preserved among the kept rows.
    """
    by_t: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, r in enumerate(rows):
        by_t[r["template"]][r["answer"]].append(i)
    keep: list[int] = []
    for t in sorted(by_t):
        groups = sorted(by_t[t].items(), key=lambda kv: (-len(kv[1]), kv[0]))
        kept, m, cap = _best_cap([len(v) for _, v in groups])
        for _, idx in groups[:m]:
            if len(idx) > cap:
                idx = sorted(rng.choice(idx, size=cap, replace=False).tolist())
            keep += idx
    return [rows[i] for i in sorted(keep)]
