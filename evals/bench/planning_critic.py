"""Why latent planning fails or works on TablePushEnv: the energy's geometry and the critic's quality.

    # does the V-JEPA 2-AC energy (L1 of layer-normed latents to the goal latent) fall with the
    # puck's true distance to the goal? Spearman over random puck placements on 20 tables
    python -m cogarch.evals.bench.planning_critic geometry --perception runs/pack/perception/final --grid 0 2 4

    # a trained critic on held-out test episodes: |critic - true distance| in pixels, and the success
    # of a one-step greedy policy that scores 32 candidate pushes by the critic on the TRUE next frame
    # (no world model: isolates the cost from the dynamics)
    python -m cogarch.evals.bench.planning_critic critic --pack runs/pack/pack --data runs/pack/data/planning

Numbers and their reading: docs/benchmarks.md (planning).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from cogarch.modules.cost.cli import PerceptionEncoder, goal_frames, load_learned


def _spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


@torch.no_grad()
def geometry(perception: str, grids: list[int], tables: int = 20, placements: int = 15, seed: int = 0) -> dict:
    """Mean over tables of Spearman(latent L1 to the goal latent, true puck-goal distance)."""
    from cogarch.evals.world.planning_env import TablePushEnv

    rng = np.random.default_rng(seed)
    encs = {g: PerceptionEncoder(perception, g, tokens=bool(g)) for g in grids}
    out: dict[int, list[float]] = {g: [] for g in grids}
    for t in range(tables):
        env = TablePushEnv(seed=t, obstacles=bool(t % 2), goal_distance="near")
        env.reset()
        goals = {g: torch.nn.functional.layer_norm(e(goal_frames(env)), (e.model.config.hidden_size,)) for g, e in encs.items()}
        true, lat = [], {g: [] for g in grids}
        for _ in range(placements):
            x, y = rng.uniform(8, env.size - 8, 2)
            env.restore_state({"t": 0, "state": [x, y, 0.0, 0.0]})
            frame = env.render()
            true.append(float(np.hypot(x - env.goal[0], y - env.goal[1])))
            for g, e in encs.items():
                z = torch.nn.functional.layer_norm(e([frame, frame]), (e.model.config.hidden_size,))
                lat[g].append(float((z - goals[g]).abs().mean()))
        for g in grids:
            out[g].append(_spearman(lat[g], true))
    return {f"grid {g}" if g else "mean-pooled": round(float(np.mean(v)), 3) for g, v in out.items()}


@torch.no_grad()
def critic(pack: str, data: str, episodes: int = 20) -> dict:
    """Critic error (px) along greedy episodes, and the greedy policy's success, on test episodes."""
    import datasets

    from cogarch.evals.world.planning import env_from_row

    learned = load_learned(pack)
    enc, cm = learned.encoder, learned.cost
    rows = sorted((dict(r) for r in datasets.load_from_disk(str(Path(data) / "episodes"))["test"]),
                  key=lambda r: r["episode_id"])[:episodes]
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    value = lambda frames, g: float(cm.critic_value(enc(frames)[None, None], g[None])[0, 0])  # noqa: E731
    succ, errs = 0, []
    for r in rows:
        env = env_from_row(r)
        g = enc(goal_frames(env))
        for _ in range(env.max_steps):
            errs.append(abs(value(env.frames, g) - env.distance() / env.size) * env.size)
            if env.success():
                break
            st, best, best_v = env.clone_state(), None, float("inf")
            for mag in (0.3, 1.0):
                for a in angles:
                    act = np.array([np.cos(a), np.sin(a)]) * mag * env.a_max
                    env.restore_state(st)
                    n0 = len(env.frames)
                    env.step(act)
                    v = value(env.frames, g)
                    del env.frames[n0:]
                    if v < best_v:
                        best, best_v = act, v
            env.restore_state(st)
            env.step(best)
        succ += bool(env.success())
    return {"episodes": len(rows), "greedy_success": succ / len(rows),
            "critic_abs_err_px_median": round(float(np.median(errs)), 2), "critic_abs_err_px_mean": round(float(np.mean(errs)), 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("geometry")
    g.add_argument("--perception", required=True)
    g.add_argument("--grid", type=int, nargs="+", default=[0, 2, 4])
    c = sub.add_parser("critic")
    c.add_argument("--pack", required=True, help="a pack (its planning/) or a planning model folder")
    c.add_argument("--data", required=True, help="the generated planning suite")
    c.add_argument("--episodes", type=int, default=20)
    args = ap.parse_args(argv)
    res = geometry(args.perception, args.grid) if args.cmd == "geometry" else critic(args.pack, args.data, args.episodes)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
