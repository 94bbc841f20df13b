"""Planning benchmark on TablePushEnv: random vs flat CEM vs hierarchical CEM, near/far goals,
with and without obstacles; success rate over seeded episodes and planning time per action.

    # 1. collect random-action training episodes, encode them, write feature shards
    python -m cogarch.evals.bench.planning collect --out runs/plan_bench --episodes 400
    # 2. train the action-conditioned world model (+ critic) with the generic trainer
    python -m cogarch.evals.bench.planning train --out runs/plan_bench
    # 3. evaluate (model: the learned folder, or "simulator" for the perfect-model upper bound)
    python -m cogarch.evals.bench.planning eval --model runs/plan_bench/model --episodes 100

Training episodes use env seeds >= 1_000_000, evaluation seeds 0..episodes-1: disjoint.
The encoder is named in every result ("blur-pixels" is a fixed, non-learned feature used while no
trained perception checkpoint exists; pass --encoder perception:<folder> for V-JEPA latents).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from cogarch.config import load_config
from cogarch.evals.bench import cli
from cogarch.fsutil import atomic_write_json
from cogarch.modules.cost.cli import goal_frames, load_learned, make_encoder, planner_config, table_push_episode

ROOT = Path(__file__).resolve().parents[2]
TRAIN_SEED0 = 1_000_000


def collect(out: Path, episodes: int, steps: int, encoder_spec: str, seed: int = 0, split: str = "train") -> Path:
    """Random-action (goal-biased, as the planning suite) episodes -> feature shards.

    world_model shard: latents [N, steps+1, D], actions [N, steps+1, 2] (impulse / a_max; the last
    step has no action), split `split`. planning shard (critic): the same + goal latents [N, D].
    """
    from cogarch.evals.world.planning import random_action
    from cogarch.evals.world.planning_env import TablePushEnv

    enc = make_encoder(encoder_spec)
    rng = np.random.default_rng(seed)
    lats, acts, goals, ids = [], [], [], []
    t0 = time.perf_counter()
    for i in range(episodes):
        env_seed = TRAIN_SEED0 + seed * 100_000 + i
        env = TablePushEnv(seed=env_seed, obstacles=bool(rng.random() < 0.5),
                           goal_distance="far" if rng.random() < 0.5 else "near", max_steps=steps, record=True)
        env.reset()
        # Low goal bias: the data must cover many directions, not only straight runs to the goal.
        bias = float(rng.uniform(0.0, 0.6))
        z, a = [enc(env.frames)], []
        for _ in range(steps):
            act = random_action(rng, env, bias)
            _, _, info = env.step(act)
            a.append(np.asarray(info["action"]) / env.a_max)
            z.append(enc(env.frames))
        a.append(np.zeros(2))
        lats.append(torch.stack(z))
        acts.append(torch.as_tensor(np.stack(a), dtype=torch.float32))
        goals.append(enc(goal_frames(env)))
        ids.append(f"tablepush-{env_seed}")
    meta = {"clip_ids": json.dumps(ids), "splits": json.dumps([split] * episodes),
            "extras": json.dumps([{} for _ in ids]), "suite": "planning", "encoder": enc.name}
    tensors = {"latents": torch.stack(lats).contiguous(), "actions": torch.stack(acts).contiguous()}
    for sub, extra in (("world_model", {}), ("planning", {"goal": torch.stack(goals).contiguous()})):
        (out / "features" / sub).mkdir(parents=True, exist_ok=True)
        save_file({**tensors, **extra}, str(out / "features" / sub / "shard0.safetensors"), metadata=meta)
    atomic_write_json(out / "features" / "collect.json", {"episodes": episodes, "steps": steps, "encoder": enc.name,
                                                          "dim": int(tensors["latents"].shape[-1]),
                                                          "seconds": time.perf_counter() - t0})
    return out / "features"


def train(out: Path, max_steps: int, critic_steps: int, context: int) -> Path:
    """World model (action-conditioned) + critic through the generic trainer; writes out/model."""
    from cogarch.modules.cost.train import Config as CriticConfig
    from cogarch.modules.cost.train import make_job as critic_job
    from cogarch.modules.world_model.train import Config as WMConfig
    from cogarch.modules.world_model.train import make_job as wm_job
    from cogarch.train import fit

    info = json.loads((out / "features" / "collect.json").read_text())
    D = info["dim"]
    wcfg = load_config(WMConfig, ROOT / "configs/world_model/tiny.yaml", [
        f"model.latent_dim={D}", "model.action_dim=2", f"data.features_dir={out / 'features/world_model'}",
        f"trainer.out_dir={out / 'runs/world_model'}", f"trainer.max_steps={max_steps}", "trainer.progress=false"])
    wfinal = fit(wm_job(wcfg), wcfg)
    ccfg = load_config(CriticConfig, ROOT / "configs/critic/tiny.yaml", [
        f"model.latent_dim={D}", f"data.features_dir={out / 'features/planning'}",
        f"trainer.out_dir={out / 'runs/critic'}", f"trainer.max_steps={critic_steps}", "trainer.progress=false"])
    cfinal = fit(critic_job(ccfg), ccfg)
    model = out / "model"
    model.mkdir(parents=True, exist_ok=True)
    import shutil

    for src, name in ((wfinal, "world_model"), (cfinal, "cost")):
        if (model / name).exists():
            shutil.rmtree(model / name)
        shutil.copytree(src, model / name)
    atomic_write_json(model / "planning.json", {"encoder": info["encoder"], "context": context,
                                                "trained_on": str(out / "features")})
    return model


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of a success rate."""
    if n == 0:
        return (0.0, 0.0)
    p, z = k / n, 1.96
    den = 1 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, c - h), min(1.0, c + h))


def evaluate(model: str, episodes: int, planners: list[str], goals: list[str], max_steps: int,
             out_json: Path | None, seed0: int = 0) -> list[dict]:
    learned = None if model == "simulator" else load_learned(model)
    rows = []
    for goal in goals:
        for kind in planners:
            cfg = planner_config(kind, str(ROOT / "configs/planner" / f"{'cem' if kind == 'random' else kind}.yaml"))
            res = [table_push_episode(seed0 + i, goal, cfg, learned, max_steps=max_steps, plan_seed=i)
                   for i in range(episodes)]
            k = sum(r["success"] for r in res)
            times = [r["plan_s_per_action"] for r in res if r["steps"]]
            row = {"goal": goal, "planner": kind, "mode": res[0]["mode"], "episodes": episodes, "success": k / episodes,
                   "ci95": wilson(k, episodes), "mean_steps_success": float(np.mean([r["steps"] for r in res if r["success"]] or [0])),
                   "plan_s_per_action": float(np.mean(times)) if times else 0.0,
                   "median_final_distance": float(np.median([r["final_distance"] for r in res]))}
            rows.append(row)
            print(fmt_row(row), flush=True)
            if out_json is not None:
                atomic_write_json(out_json, {"model": model, "max_steps": max_steps, "rows": rows})
    return rows


def fmt_row(r: dict) -> str:
    lo, hi = r["ci95"]
    return (f"| {r['goal']:<14} | {r['planner']:<6} | {r['success'] * 100:5.1f}% [{lo * 100:.0f}, {hi * 100:.0f}] "
            f"| {r['mean_steps_success']:5.1f} | {r['plan_s_per_action'] * 1e3:7.1f} ms | {r['median_final_distance']:6.1f} | {r['mode']} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--episodes", type=int, default=400)
    c.add_argument("--steps", type=int, default=16)
    c.add_argument("--encoder", default="blur-pixels")
    c.add_argument("--seed", type=int, default=0, help="env seeds start at 1_000_000 + 100_000 * seed")
    c.add_argument("--split", default="train", help="split label written into the shards (test: held out)")
    t = sub.add_parser("train")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--max-steps", type=int, default=1500)
    t.add_argument("--critic-steps", type=int, default=400)
    t.add_argument("--context", type=int, default=3)
    e = sub.add_parser("eval")
    e.add_argument("--model", required=True, help="planning model folder, or 'simulator' (upper bound)")
    e.add_argument("--episodes", type=int, default=100)
    e.add_argument("--planners", default="random,cem,hier")
    e.add_argument("--goals", default="near,far")
    e.add_argument("--max-steps", type=int, default=20)
    e.add_argument("--json", type=Path, default=None)
    e.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(getattr(args, "threads", 1))
    if args.cmd == "collect":
        print(collect(args.out, args.episodes, args.steps, args.encoder, args.seed, args.split))
    elif args.cmd == "train":
        print(train(args.out, args.max_steps, args.critic_steps, args.context))
    else:
        print("| goal | planner | success [95% CI] | steps (succ.) | plan time/action | median final dist | model |")
        print("|---|---|---|---|---|---|---|")
        evaluate(args.model, args.episodes, args.planners.split(","), args.goals.split(","), args.max_steps, args.json)
    return 0


if __name__ == "__main__":
    cli(main)
