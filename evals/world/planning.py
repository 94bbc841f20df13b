"""planning suite: random-action episodes of TablePushEnv stored as (frames, actions, states, goal).

Actions are random but not all aimless: each episode draws a "goal bias" b in [0, 1], and each
action is b * (a step toward the goal) + (1 - b) * (uniform in the |a| <= a_max disc), so the
data set contains successes and failures (what a world model / cost critic must tell apart).
test_ood episodes always have obstacles (2-3 bars) and far goals.
"""

from __future__ import annotations

import math

import numpy as np

from cogarch.evals.world.planning_env import TablePushEnv
from cogarch.evals.world.truth import dumps
from cogarch.evals.world.video import write_mp4


def random_action(rng: np.random.Generator, env: TablePushEnv, bias: float) -> np.ndarray:
    r, th = env.a_max * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
    noise = np.array([r * math.cos(th), r * math.sin(th)])
    x, y, vx, vy = env.state().astype(float)
    to_goal = np.array([env.goal[0] - x, env.goal[1] - y])
    # Aim for a velocity that would cover the remaining distance in about one second.
    want = to_goal - np.array([vx, vy])
    return env.clip_action(bias * want + (1 - bias) * noise)


def env_from_row(row: dict, record: bool = True) -> TablePushEnv:
    """The TablePushEnv of a stored episode (same start, goal and obstacles), reset, ready to act in."""
    import json

    from cogarch.evals.suites.schema import DataError

    if not row.get("env"):
        raise DataError(f"planning episode {row.get('episode_id')!r} has no 'env' field (generated before it existed: "
                        "regenerate the suite with cogarch generate --suite planning)")
    env = TablePushEnv(**json.loads(row["env"]), record=record)
    env.reset()
    return env


def make_clip(task: dict) -> dict:
    """Worker job: one random-action episode -> one `episodes` row + its mp4."""
    from pathlib import Path

    rng = np.random.default_rng(task["seed"])
    ood = task["scene"]["ood"]
    # Everything TablePushEnv needs to rebuild this episode's table (start, goal, obstacles):
    # stored in the row so a planner can be scored on exactly this episode (env_from_row).
    kwargs = dict(
        seed=int(rng.integers(2**31)), obstacles=bool(ood or rng.random() < 0.5),
        goal_distance="far" if (ood or rng.random() < 0.5) else "near", size=task["size"],
        action_every=task["action_every"], max_steps=task["episode_steps"],
        n_obstacles=int(rng.integers(2, 4)) if ood else None, ss=task["ss"],
        fps=task["scene"]["fps"], substeps=task["scene"]["substeps"],
    )
    env = TablePushEnv(**kwargs, record=True)
    bias = float(rng.random())
    env.reset()
    states = [env.state().astype(float)]
    actions, done = [], False
    while not done:
        a = random_action(rng, env, bias)
        _, done, info = env.step(a)
        actions.append(info["action"])
        states.append(env.state().astype(float))
    rel = f"videos/{task['clip_id']}.mp4"
    frames = np.stack(env.frames)
    write_mp4(Path(task["root"]) / rel, frames, env.fps)
    row = {
        "episode_id": task["clip_id"], "split": task["split"], "seed": task["seed"], "video": rel,
        "frames": int(frames.shape[0]),
        "actions": dumps(np.round(np.array(actions), 4).tolist()),
        # One state per action step (after it); frames hold action_every frames per step.
        "states": dumps(np.round(np.array(states), 3).tolist()),
        "goal": dumps({"x": env.goal[0], "y": env.goal[1], "r": env.goal[2]}),
        "obstacles": dumps([s.to_json() for s in env.scene.statics]),
        "success": bool(env.success()),
        "env": dumps(kwargs),
    }
    return {"episodes": [row]}
