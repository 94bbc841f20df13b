"""TablePushEnv: an action-conditioned table world for planning (V-JEPA 2-AC style tasks).

An agent puck on the top-down table (no gravity, damping so it slides and stops) receives one
bounded impulse every `action_every` frames: action a = (dx, dy) is a velocity change in
units/s, clipped to |a| <= a_max. The goal is a disc region; obstacles are static bars. The
planner sees rendered frames (uint8 HxWx3) and may use `clone_state` / `restore_state` for
ground-truth checks only.

    env = TablePushEnv(seed=0, obstacles=True, goal_distance="far", size=64)
    obs = env.reset()                      # {"frame": uint8 [H,W,3], "state": [x,y,vx,vy], "goal": [x,y,r]}
    obs, done, info = env.step([5.0, -3.0])
    env.success(); env.render()
"""

from __future__ import annotations

import math

import numpy as np

from cogarch.errors import UserError
from cogarch.evals.world.render import Renderer
from cogarch.evals.world.sim import ObjSpec, Scene, Static, build_space, seg_distance as _seg_dist

AGENT_ID = 0


class TablePushEnv:
    """Push an agent puck into a goal region; see the module docstring for the API."""

    def __init__(self, seed: int = 0, obstacles: bool = False, goal_distance: str = "near",
                 size: int = 64, a_max: float = 25.0, action_every: int = 2, max_steps: int = 30,
                 fps: float = 8.0, substeps: int = 4, n_obstacles: int | None = None,
                 goal_radius: float = 6.0, record: bool = False, ss: int = 2):
        if goal_distance not in ("near", "far"):
            raise UserError(f"goal_distance must be 'near' or 'far', got {goal_distance!r}")
        if size < 16 or size % 2:
            raise UserError(f"size must be an even number >= 16, got {size}")
        self.seed, self.obstacles, self.goal_distance, self.size = int(seed), bool(obstacles), goal_distance, size
        self.a_max, self.action_every, self.max_steps = float(a_max), int(action_every), int(max_steps)
        self.fps, self.substeps, self.goal_radius, self.ss = fps, substeps, goal_radius, ss
        self.n_obstacles = n_obstacles
        self.record = record
        self.frames: list[np.ndarray] = []
        self._layout()

    # ---- layout ----------------------------------------------------------------------------
    def _layout(self) -> None:
        """Sample agent start, goal and obstacle bars from the seed (fixed for the env's life)."""
        rng = np.random.default_rng([self.seed, 424242])
        lo, hi = (12.0, 20.0) if self.goal_distance == "near" else (30.0, 42.0)
        for _ in range(200):
            ax, ay = rng.uniform(10, 54, size=2)
            ang, dist = rng.uniform(0, 2 * math.pi), rng.uniform(lo, hi)
            gx, gy = ax + dist * math.cos(ang), ay + dist * math.sin(ang)
            if 9 <= gx <= 55 and 9 <= gy <= 55:
                break
        self.start = (float(ax), float(ay))
        self.goal = (float(gx), float(gy), float(self.goal_radius))
        statics = []
        if self.obstacles:
            k = self.n_obstacles if self.n_obstacles is not None else int(rng.integers(1, 3))
            for i in range(k):
                for _ in range(100):
                    # Bars near the segment start->goal, so obstacles actually get in the way.
                    t = rng.uniform(0.3, 0.7)
                    cx = ax + t * (gx - ax) + rng.normal(0, 6)
                    cy = ay + t * (gy - ay) + rng.normal(0, 6)
                    th, half = rng.uniform(0, math.pi), rng.uniform(5, 9)
                    a = (float(cx - half * math.cos(th)), float(cy - half * math.sin(th)))
                    b = (float(cx + half * math.cos(th)), float(cy + half * math.sin(th)))
                    if (_seg_dist(self.start, a, b) > 10 and _seg_dist((gx, gy), a, b) > self.goal_radius + 4
                            and all(_seg_dist(((a[0] + b[0]) / 2, (a[1] + b[1]) / 2), s.a, s.b) > 8 for s in statics)):
                        statics.append(Static(f"obstacle{i}", "wall", a, b, 2.0))
                        break
        agent = ObjSpec(AGENT_ID, "gray", "sphere", "rubber", self.start[0], self.start[1])
        self.scene = Scene("table", [agent], statics, None, 0.0, 0.5, self.fps, self.substeps,
                           num_frames=1)
        self.renderer = Renderer(self.scene, self.size, self.ss, agent_ids=(AGENT_ID,), goal=self.goal)

    def _build(self, x: float, y: float, vx: float, vy: float) -> None:
        self.scene.objects[0] = ObjSpec(AGENT_ID, "gray", "sphere", "rubber", x, y, vx, vy)
        self.space, bodies, labels = build_space(self.scene)
        self.body = bodies[AGENT_ID]
        self._hit = False

        def begin(arbiter, space, data) -> None:
            self._hit = True

        self.space.on_collision(None, None, begin=begin)

    # ---- API -------------------------------------------------------------------------------
    def reset(self) -> dict:
        self.t = 0
        self._build(self.start[0], self.start[1], 0.0, 0.0)
        self.frames = []
        obs = self._obs()
        if self.record:
            self.frames.append(obs["frame"])
        return obs

    def state(self) -> np.ndarray:
        """float32 [4]: x, y, vx, vy of the agent (world units, y down)."""
        p, v = self.body.position, self.body.velocity
        return np.array([p.x, p.y, v.x, v.y], dtype=np.float32)

    def render(self) -> np.ndarray:
        p = self.body.position
        return self.renderer.frame(np.array([[p.x, p.y]]), np.array([self.body.angle]),
                                   np.array([True]), [AGENT_ID])

    def _obs(self) -> dict:
        return {"frame": self.render(), "state": self.state(), "goal": np.array(self.goal, np.float32)}

    def clip_action(self, action) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64).reshape(2)
        if not np.all(np.isfinite(a)):
            raise UserError(f"action must be two finite numbers, got {action!r}")
        n = float(np.hypot(*a))
        return a * (self.a_max / n) if n > self.a_max else a

    def step(self, action) -> tuple[dict, bool, dict]:
        """Apply Δv = clip(action) and simulate `action_every` frames."""
        if not hasattr(self, "body"):
            raise UserError("call env.reset() before env.step()")
        a = self.clip_action(action)
        self.body.velocity = (self.body.velocity.x + a[0], self.body.velocity.y + a[1])
        self._hit = False
        dt = 1.0 / (self.fps * self.substeps)
        for _ in range(self.action_every):
            for _ in range(self.substeps):
                self.space.step(dt)
            if self.record:
                self.frames.append(self.render())
        self.t += 1
        obs = self._obs()
        done = self.success() or self.t >= self.max_steps
        info = {"t": self.t, "action": a.tolist(), "distance": self.distance(), "hit_obstacle": self._hit}
        return obs, done, info

    def distance(self) -> float:
        p = self.body.position
        return float(math.hypot(p.x - self.goal[0], p.y - self.goal[1]))

    def success(self) -> bool:
        """The agent's centre lies inside the goal disc."""
        return self.distance() <= self.goal[2]

    def clone_state(self) -> dict:
        p, v = self.body.position, self.body.velocity
        return {"t": self.t, "state": [p.x, p.y, v.x, v.y]}   # float64: exact round trip

    def restore_state(self, st: dict) -> None:
        """Rebuild the space at a cloned state (contact caches start fresh, as after reset)."""
        x, y, vx, vy = st["state"]
        self._build(x, y, vx, vy)
        self.t = int(st["t"])

