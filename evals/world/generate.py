"""`cogarch generate`: build a physqa / voe / planning suite on disk (schema: docs/vocabulary.md).

Layout of OUT (see the shared data schema): manifest.json, videos/<clip_id>.mp4, clips/ and
questions/ (datasets.DatasetDict.save_to_disk, splits train/val/test/test_ood), and for planning
episodes/. Everything is written into a temporary sibling folder and renamed into place at the
end, so a crash or Ctrl-C never leaves a half-written suite under OUT.

Parallelism: clips are independent jobs (seeded per clip, see common.clip_seed) run by a
multiprocessing pool with the "spawn" start method (safe with threads and on macOS/Windows);
results come back in job order, so output bytes do not depend on the number of workers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from cogarch.errors import UserError
from cogarch.evals.world.common import SPLITS, balance, clip_seed, split_counts
from cogarch.evals.world.scenes import SceneConfig

GENERATOR_VERSION = 2  # 2: planning episodes store their env keyword arguments ("env")
SUITES = ("physqa", "voe", "planning")
VOE_DESIGNS = ("pair", "quad")  # voe.py matched pairs, voe_quad.py IntPhys-balanced quadruplets


@dataclasses.dataclass
class GenOptions:
    """Options of `generate` (all optional keyword arguments)."""

    size: int = 64                    # frame width = height in pixels (even)
    ss: int = 2                       # render supersampling factor (anti-aliasing)
    observed_frames: int = 16         # frames a model may see
    future_frames: int = 16           # simulated beyond the video (predictive ground truth)
    fps: float = 8.0
    substeps: int = 4                 # physics steps per frame (dt = 1/32 s at 8 fps)
    cf_removals: int = 2              # physqa: objects re-simulated away per clip
    min_objects: int = 3
    max_objects: int = 5
    side_prob: float = 0.5            # physqa: fraction of side-view clips (rest: table)
    video_frames: str = "observed"    # "observed": the mp4 holds only what a model may see; "all"
    per_template: int = 1             # physqa: questions per template per clip before balancing
    train_per_template: int = 0       # physqa: the same for the train split only (0: per_template);
                                      # more training questions from the same clips, while val/test
                                      # keep the standard questions (other splits are unchanged)
    overwrite: bool = False
    episode_steps: int = 12           # planning: actions per random episode
    action_every: int = 2             # planning: frames between actions
    chunksize: int = 16
    voe_design: str = "pair"          # voe: "pair" (possible + impossible twin) or "quad" (IntPhys-
                                      # balanced quadruplets, evals/world/voe_quad.py)


def _options(options: dict) -> GenOptions:
    names = {f.name for f in dataclasses.fields(GenOptions)}
    bad = sorted(set(options) - names)
    if bad:
        raise UserError(f"unknown generate option(s) {', '.join(bad)}; known: {', '.join(sorted(names))}")
    opt = GenOptions(**options)
    if opt.size < 16 or opt.size % 2:
        raise UserError(f"size must be an even number >= 16, got {opt.size}")
    if opt.voe_design not in VOE_DESIGNS:
        raise UserError(f"voe_design must be one of {', '.join(VOE_DESIGNS)}, got {opt.voe_design!r}")
    if opt.video_frames not in ("observed", "all"):
        raise UserError(f"video_frames must be 'observed' or 'all', got {opt.video_frames!r}")
    if opt.observed_frames < 2 or opt.future_frames < 0:
        raise UserError("observed_frames must be >= 2 and future_frames >= 0")
    if not 1 <= opt.min_objects <= opt.max_objects <= 7:
        raise UserError("need 1 <= min_objects <= max_objects <= 7")
    for name in ("ss", "substeps", "per_template", "episode_steps", "action_every", "chunksize"):
        if int(getattr(opt, name)) < 1:
            raise UserError(f"{name} must be >= 1, got {getattr(opt, name)}")
    if int(opt.train_per_template) < 0:
        raise UserError(f"train_per_template must be >= 0, got {opt.train_per_template}")
    if opt.cf_removals < 0 or not opt.fps > 0 or not 0.0 <= opt.side_prob <= 1.0:
        raise UserError("need cf_removals >= 0, fps > 0 and 0 <= side_prob <= 1")
    return opt


def parse_options(pairs: list[str]) -> dict:
    """KEY=VALUE strings from the command line -> generate() keyword options, typed like GenOptions'
    defaults (a bad pair, an unknown key or a value of the wrong type is a one-line UserError)."""
    fields = {f.name: f for f in dataclasses.fields(GenOptions) if f.name != "overwrite"}
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UserError(f"generator option {pair!r} is not KEY=VALUE (e.g. train_per_template=4)")
        if key not in fields:
            raise UserError(f"unknown generate option {key!r}; known: {', '.join(sorted(fields))}")
        kind = type(fields[key].default)
        try:
            if kind is bool:
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out[key] = raw.lower() in ("true", "1")
            else:
                out[key] = kind(raw)
        except ValueError:
            raise UserError(f"generate option {key}: {raw!r} is not a valid {kind.__name__}") from None
    return out


def scene_config(opt: GenOptions, split: str) -> SceneConfig:
    """test_ood: held-out (color, shape) combos, two more objects, 1.5x longer clips."""
    ood = split == "test_ood"
    grow = 1.5 if ood else 1.0
    return SceneConfig(
        min_objects=opt.min_objects + (2 if ood else 0),
        max_objects=opt.max_objects + (2 if ood else 0),
        observed_frames=int(round(opt.observed_frames * grow)),
        future_frames=int(round(opt.future_frames * grow)),
        fps=opt.fps, substeps=opt.substeps, ood=ood, side_prob=opt.side_prob,
    )


def _run_task(task: dict) -> dict:
    """Top-level (picklable under spawn) dispatcher for worker processes."""
    if task["suite"] == "physqa":
        from cogarch.evals.world.physqa import make_clip
    elif task["suite"] == "voe" and task["voe_design"] == "quad":
        from cogarch.evals.world.voe_quad import make_clip
    elif task["suite"] == "voe":
        from cogarch.evals.world.voe import make_clip
    else:
        from cogarch.evals.world.planning import make_clip
    return make_clip(task)


def _tasks(suite: str, counts: dict[str, int], seed: int, opt: GenOptions, root: Path) -> list[dict]:
    tasks = []
    for split in SPLITS:
        cfg = scene_config(opt, split)
        for i in range(counts[split]):
            tasks.append({
                "suite": suite, "split": split, "index": i, "seed": clip_seed(seed, split, i),
                "clip_id": f"{suite}_{split}_{i:06d}", "root": str(root),
                "scene": dataclasses.asdict(cfg), "size": opt.size, "ss": opt.ss,
                "observed_frames": cfg.observed_frames, "video_frames": opt.video_frames,
                "per_template": (opt.train_per_template or opt.per_template) if split == "train" else opt.per_template,
                "cf_removals": opt.cf_removals,
                "episode_steps": opt.episode_steps,
                "action_every": opt.action_every,
                "voe_design": opt.voe_design,
            })
    return tasks


def _map(tasks: list[dict], workers: int, progress: bool, desc: str, chunksize: int):
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc=desc, unit="clip", disable=not progress)
    try:
        if workers <= 1:
            for t in tasks:
                yield _run_task(t)
                bar.update(1)
            return
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            # Chunks amortise IPC, but small runs still need every worker busy.
            cs = max(1, min(chunksize, len(tasks) // (4 * workers)))
            for res in pool.imap(_run_task, tasks, chunksize=cs):
                yield res
                bar.update(1)
    finally:
        bar.close()


def _features(kind: str):
    from datasets import Features, Sequence, Value

    s, i = Value("string"), Value("int32")
    if kind == "clips":
        return Features({"clip_id": s, "split": s, "family": s, "seed": Value("int64"), "video": s,
                         "num_frames": i, "observed_frames": i, "fps": Value("float32"),
                         "width": i, "height": i, "objects": s, "annotations": s})
    if kind == "questions":
        return Features({"qid": s, "clip_id": s, "video": s, "category": s, "template": s,
                         "question": s, "choices": Sequence(s), "answer": s, "answer_index": i,
                         "pair_id": s, "extra": s})
    return Features({"episode_id": s, "split": s, "seed": Value("int64"), "video": s, "frames": i,
                     "actions": s, "states": s, "goal": s, "obstacles": s, "success": Value("bool"), "env": s})


def _save(rows_by_split: dict[str, list[dict]], kind: str, path: Path) -> None:
    from datasets import Dataset, DatasetDict
    from datasets.utils import logging as ds_logging

    feats = _features(kind)
    dd = DatasetDict({
        sp: Dataset.from_dict({k: [r[k] for r in rows_by_split[sp]] for k in feats}, features=feats)
        for sp in SPLITS
    })
    # datasets prints one bar per split and shard; our own tqdm bar is the progress report.
    was_on = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        # Explicit shard counts: datasets writes NO shard for an empty split unless told to, and
        # then cannot load it back; ~400 MB per shard otherwise.
        shards = {sp: max(1, -(-dd[sp].data.nbytes // 400_000_000)) for sp in SPLITS}
        dd.save_to_disk(str(path), num_shards=shards)
    finally:
        if was_on:
            ds_logging.enable_progress_bar()


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {str(out)!r} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"output folder {str(out)!r} is not empty (pass overwrite=True / --overwrite)")


def generate(suite: str, n: int, out: str | os.PathLike, seed: int = 0, workers: int | None = None,
             progress: bool = True, **options) -> dict:
    """Generate `n` clips (voe: n clips in n//2 matched pairs or n//4 quadruplets, at least one; planning: n
    episodes) of `suite` into folder `out`. Returns a summary dict (counts, seconds, clips/s)."""
    if suite not in SUITES:
        raise UserError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise UserError(f"n must be a positive integer, got {n!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
    opt = _options(options)
    out = Path(out)
    _check_out(out, opt.overwrite)
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise UserError(f"workers must be >= 1, got {workers}")
    # voe jobs are pairs or quadruplets
    units = max(1, n // (4 if opt.voe_design == "quad" else 2)) if suite == "voe" else n
    counts = split_counts(units)
    t0 = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "videos").mkdir()
        tasks = _tasks(suite, counts, seed, opt, tmp)
        rows: dict[str, dict[str, list[dict]]] = {k: {sp: [] for sp in SPLITS}
                                                  for k in ("clips", "questions", "episodes")}
        for task, res in zip(tasks, _map(tasks, min(workers, len(tasks)), progress,
                                         f"generate {suite}", opt.chunksize)):
            for kind, lst in res.items():
                rows[kind][task["split"]] += lst
        if suite == "physqa":
            for k, sp in enumerate(SPLITS):
                rows["questions"][sp] = balance(rows["questions"][sp],
                                                np.random.default_rng([seed, k, 7]))
        n_clips = {sp: len(rows["clips"][sp]) for sp in SPLITS}
        n_q = {sp: len(rows["questions"][sp]) for sp in SPLITS}
        if suite == "planning":
            _save(rows["episodes"], "episodes", tmp / "episodes")
            n_clips = {sp: len(rows["episodes"][sp]) for sp in SPLITS}
        else:
            _save(rows["clips"], "clips", tmp / "clips")
        _save(rows["questions"], "questions", tmp / "questions")
        seconds = time.perf_counter() - t0
        total = sum(n_clips.values())
        config = {**dataclasses.asdict(opt), "ood": dataclasses.asdict(scene_config(opt, "test_ood")),
                  "video_holds": "observed frames only" if opt.video_frames == "observed"
                  else "all simulated frames", "workers": workers}
        config.pop("overwrite")
        manifest = {"suite": suite, "n": int(n), "seed": int(seed), "generator_version": GENERATOR_VERSION,
                    "splits": n_clips, "questions": n_q, "config": config}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.rename(out, old)
        os.rename(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"suite": suite, "out": str(out), "n": int(n), "clips": total, "splits": n_clips,
            "questions": n_q, "seconds": round(seconds, 3),
            "clips_per_s": round(total / max(seconds, 1e-9), 2), "workers": workers}
