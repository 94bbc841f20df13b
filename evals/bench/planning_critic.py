"""Why latent planning fails or works on TablePushEnv: the energy's geometry and the critic's quality.

    # does the V-JEPA 2-AC energy (L1 of layer-normed latents to the goal latent) fall with the
    # puck's true distance to the goal? Spearman over random puck placements on 20 tables
    python -m cogarch.evals.bench.planning_critic geometry --perception runs/pack/perception/final --grid 0 2 4

    # a trained critic on held-out test episodes: |critic - true distance| in pixels, and the success
    # of a one-step greedy policy that scores 32 candidate pushes by the critic on the TRUE next frame
    # (no world model: isolates the cost from the dynamics)
    python -m cogarch.evals.bench.planning_critic critic --pack runs/pack/pack --data runs/pack/data/planning

    # the world model as the planner sees it, read through the critic's keypoint: how far the puck
    # of a rollout is from the true puck (px) at horizons 1..5 against copy-last, and whether a push
    # moves the predicted puck the way the simulator moves it (opposite pushes from the same state)
    python -m cogarch.evals.bench.planning_critic dynamics --pack runs/pack/pack --data runs/pack/data/planning

Numbers and their reading: docs/bench_pack_history.md (planning).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from cogarch.errors import UserError
from cogarch.evals.bench import cli
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


@torch.no_grad()
def dynamics(pack: str, data: str, episodes: int = 50, split: str = "val", world_model: str | None = None,
             horizons: int = 5, seed: int = 0) -> dict:
    """Rollout keypoint error vs copy-last, and the response to opposite pushes, on stored episodes.

    For each episode and each start t with C observed steps, the world model rolls out the stored
    actions; the critic's keypoint of step t+h is compared with the true puck position (px). The
    keypoint of the TRUE latent is the readout floor. Response: from each state, one random push u
    (|u| = a_max) and its opposite -u are simulated and rolled out one step; cosine and ratio of the
    predicted keypoint difference kp(u) - kp(-u) against the true one. Displacement slope: the
    least-squares slope of the keypoint's one-step displacement on the puck's true one, read from the
    true next latent (the readout's own sensitivity to motion) and from the prediction.
    """
    import datasets

    from cogarch.evals.world.planning import env_from_row
    from cogarch.registry import module_class

    learned = load_learned(pack)
    wm = module_class("world_model").from_pretrained(world_model).eval() if world_model else learned.world_model
    if not hasattr(learned.cost.critic, "keypoint"):
        raise UserError("dynamics needs a keypoint critic (model.critic_arch=keypoint)")
    enc, kp, C = learned.encoder, learned.cost.critic.keypoint, learned.context
    eps = datasets.load_from_disk(str(Path(data) / "episodes"))
    if split not in eps:
        raise UserError(f"{data}: the planning suite has no {split!r} split")
    rows = sorted((dict(r) for r in eps[split]), key=lambda r: r["episode_id"])[:episodes]
    rng = np.random.default_rng(seed)
    err = {k: [[] for _ in range(horizons)] for k in ("model", "copy_last", "true_latent")}
    cos, ratio, true_sep, pred_sep = [], [], [], []
    disp: dict[str, list] = {"true": [], "true_latent": [], "model": []}
    for r in rows:
        env = env_from_row(r)
        size, stored = float(env.size), json.loads(r["actions"])
        lat, pos, acts, states = [enc(env.frames)], [env.state()[:2]], [], [env.clone_state()]
        for a in stored:
            env.step(np.asarray(a))
            lat.append(enc(env.frames)); pos.append(env.state()[:2]); acts.append(torch.tensor(a) / env.a_max)
            states.append(env.clone_state())
        z = wm.normalize(torch.stack(lat))  # [T, P, D]
        A = torch.stack(acts).float() if acts else torch.zeros(0, 2)  # [T-1, 2]
        T = z.shape[0]
        for t in range(C - 1, T - 1):
            H = min(horizons, T - 1 - t)
            ctx = z[t - C + 1 : t + 1][None]
            pred = wm.rollout(ctx, H, actions=A[t : t + H][None], past_actions=A[t - C + 1 : t][None])[0]
            kp_pred, kp_true_lat, kp_last = kp(pred) * size, kp(z[t + 1 : t + 1 + H]) * size, kp(z[t]) * size
            # One-step displacements (px): true, as the keypoint of the true next latent reads it, as predicted.
            step = torch.as_tensor(pos[t + 1] - pos[t])
            disp["true"].append(step.tolist())
            disp["true_latent"].append((kp_true_lat[0] - kp_last).tolist())
            disp["model"].append((kp_pred[0] - kp_last).tolist())
            for h in range(H):
                truth = torch.as_tensor(pos[t + 1 + h])
                err["model"][h].append(float((kp_pred[h] - truth).norm()))
                err["copy_last"][h].append(float((kp_last - truth).norm()))
                err["true_latent"][h].append(float((kp_true_lat[h] - truth).norm()))
            # Opposite pushes from the state after step t (the simulator gives the true effect).
            u = rng.normal(size=2)
            u /= np.linalg.norm(u)
            kp_u, xy_u = [], []
            for sgn in (1.0, -1.0):
                env.restore_state(states[t])
                n0 = len(env.frames)
                env.step(sgn * u * env.a_max)
                xy_u.append(env.state()[:2])
                del env.frames[n0:]
                act = torch.as_tensor(sgn * u, dtype=torch.float32)[None, None]
                kp_u.append(kp(wm.rollout(ctx, 1, actions=act, past_actions=A[t - C + 1 : t][None])[0, 0]) * size)
            d_true, d_pred = torch.as_tensor(xy_u[0] - xy_u[1]), kp_u[0] - kp_u[1]
            true_sep.append(float(d_true.norm())); pred_sep.append(float(d_pred.norm()))
            cos.append(float(torch.nn.functional.cosine_similarity(d_pred[None], d_true[None].float())[0]))
            ratio.append(float(d_pred.norm() / d_true.norm().clamp(min=1e-6)))
    med = lambda v: round(float(np.median(v)), 2) if v else None  # noqa: E731
    # Least-squares slope of a readout's one-step displacement on the true one (1 = full size, 0 =
    # blind to motion): how much of the puck's motion the keypoint sees in true and predicted latents.
    d_true = np.asarray(disp["true"]).reshape(-1, 2)

    def slope(k: str) -> float | None:
        d = np.asarray(disp[k]).reshape(-1, 2)
        return round(float((d * d_true).sum() / max((d_true * d_true).sum(), 1e-9)), 3) if len(d) else None

    return {"episodes": len(rows), "split": split, "context": C,
            "keypoint_err_px_median": {k: [med(v[h]) for h in range(horizons)] for k, v in err.items()},
            "displacement_slope": {"true_latent": slope("true_latent"), "model": slope("model"),
                                   "true_step_px_median": med(np.linalg.norm(d_true, axis=1).tolist())},
            "push_response": {"cosine_mean": round(float(np.mean(cos)), 3), "predicted_sep_px_median": med(pred_sep),
                              "true_sep_px_median": med(true_sep), "ratio_median": med(ratio), "n": len(cos)}}


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
    d = sub.add_parser("dynamics")
    d.add_argument("--pack", required=True, help="a pack (its planning/) or a planning model folder")
    d.add_argument("--data", required=True, help="the generated planning suite")
    d.add_argument("--world-model", default=None, help="score this world model folder instead of the pack's")
    d.add_argument("--split", default="val", choices=["val", "test", "test_ood"])
    d.add_argument("--episodes", type=int, default=50)
    args = ap.parse_args(argv)
    if args.cmd == "geometry":
        res = geometry(args.perception, args.grid)
    elif args.cmd == "critic":
        res = critic(args.pack, args.data, args.episodes)
    else:
        res = dynamics(args.pack, args.data, args.episodes, args.split, args.world_model)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    cli(main)
