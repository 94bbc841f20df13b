"""Planning in latent space: CEM model-predictive control, flat and hierarchical.

Flat MPC (V-JEPA 2-AC, Assran et al. 2025, Sec. 4): sample action sequences from a Gaussian, roll
each out with the dynamics model, score the predicted latents with an energy (distance to the goal
latent + optional terms), refit mean/std on the elites (cross-entropy method, Rubinstein 1999),
execute the first action of the mean, replan from the next observation.

Hierarchical: a high level runs CEM over *coarse* actions held for `stride` fine steps (a rollout
at a coarser time scale) and proposes the predicted latent after one coarse step as a subgoal;
the low level runs flat CEM towards that subgoal (plus a small pull to the final goal). The high
level replans every `stride` env steps, so subgoals follow the actual progress.

The dynamics model is pluggable (duck-typed): `LatentDynamics` wraps the learned world model (the
real result); `SimulatorDynamics` uses the env's own simulator through clone_state/restore_state
and is only an UPPER-BOUND baseline (perfect model), never the learned result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np
import torch

from cogarch.errors import UserError
from cogarch.modules.cost.config import CEMConfig, PlannerConfig

# energy(pred [N, H, ...], goal [N, ...]) -> [N]; distance(pred [N, H, ...], target [N, ...]) -> [N, H]
EnergyFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
DistanceFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class CEMResult:
    mean: torch.Tensor  # [H, A] final sampling mean (the plan that is executed)
    std: torch.Tensor  # [H, A]
    best: torch.Tensor  # [H, A] lowest-energy sample seen
    best_energy: float
    history: list[float] = field(default_factory=list)  # elite mean energy per iteration


def cem(
    energy_fn: Callable[[torch.Tensor], torch.Tensor],
    horizon: int,
    action_dim: int,
    cfg: CEMConfig,
    mean: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> CEMResult:
    """Minimise energy_fn(actions [N, H, A]) -> [N] over action sequences by CEM."""
    b = cfg.action_bound
    mu = torch.zeros(horizon, action_dim) if mean is None else mean.clone().float()
    sd = torch.full((horizon, action_dim), float(cfg.init_std))
    best, best_e, hist = mu.clone(), float("inf"), []
    for _ in range(cfg.iters):
        eps = torch.randn(cfg.samples, horizon, action_dim, generator=generator)
        acts = (mu + sd * eps).clamp(-b, b)
        acts[0] = mu.clamp(-b, b)  # keep the current mean in the population: never worse than it
        with torch.no_grad():
            e = energy_fn(acts).float()
        if e.shape != (cfg.samples,):
            raise UserError(f"energy function must return [{cfg.samples}] energies, got {tuple(e.shape)}")
        e = torch.nan_to_num(e, nan=float("inf"))
        idx = torch.topk(-e, cfg.elites).indices
        elite = acts[idx]
        if float(e[idx[0]]) < best_e:
            best_e, best = float(e[idx[0]]), acts[idx[0]].clone()
        hist.append(float(e[idx].mean()))
        s = cfg.smoothing
        mu = s * mu + (1 - s) * elite.mean(dim=0)
        new_sd = elite.std(dim=0, unbiased=False) if cfg.elites > 1 else torch.zeros_like(sd)
        sd = (s * sd + (1 - s) * new_sd).clamp(min=cfg.min_std)
    return CEMResult(mu.clamp(-b, b), sd, best, best_e, hist)


class Dynamics(Protocol):
    def rollout(self, state: Any, actions: torch.Tensor) -> torch.Tensor:
        """state: the model's current state; actions [N, H, A] -> predictions [N, H, ...]."""
        ...


class LatentDynamics:
    """The learned world model as the planning model (anything with `.rollout(ctx, H, actions=, past_actions=)`).

    state: {"latents": [C, (P,) D] observed context latents, "actions": [C-1, A] actions between them}.
    """

    def __init__(self, world_model: Any) -> None:
        self.wm = world_model

    def rollout(self, state: dict[str, torch.Tensor], actions: torch.Tensor) -> torch.Tensor:
        N = actions.shape[0]
        ctx = state["latents"]
        past = state.get("actions")
        ctx_n = ctx.unsqueeze(0).expand(N, *ctx.shape)
        past_n = past.unsqueeze(0).expand(N, *past.shape) if past is not None and past.numel() else None
        with torch.no_grad():
            return self.wm.rollout(ctx_n, actions.shape[1], actions=actions, past_actions=past_n)


class SimulatorDynamics:
    """UPPER-BOUND baseline: the env's ground-truth simulator as the model (clone/restore state).

    `features(env) -> np.ndarray [F]` reads the state the energy compares (e.g. object x, y).
    """

    def __init__(self, env: Any, features: Callable[[Any], np.ndarray], action_scale: float = 1.0) -> None:
        for attr in ("clone_state", "restore_state", "step"):
            if not hasattr(env, attr):
                raise UserError(f"simulator planning needs env.{attr}()")
        self.env, self.features, self.scale = env, features, float(action_scale)

    def rollout(self, state: Any, actions: torch.Tensor) -> torch.Tensor:
        out = []
        saved = self.env.clone_state()
        record = getattr(self.env, "record", False)
        self.env.record = False  # imagined steps must not land in the episode's recorded frames
        try:
            for seq in actions.numpy():
                self.env.restore_state(state)
                traj = []
                for a in seq:
                    self.env.step(a * self.scale)
                    traj.append(self.features(self.env))
                out.append(traj)
        finally:
            self.env.restore_state(saved)
            self.env.record = record
        return torch.as_tensor(np.asarray(out), dtype=torch.float32)


def _expand_goal(goal: torch.Tensor, n: int) -> torch.Tensor:
    return goal.unsqueeze(0).expand(n, *goal.shape)


class Planner:
    """random / flat CEM-MPC / hierarchical CEM over a `Dynamics` model.

    energy_fn scores whole predicted trajectories against the goal (e.g. CostModel.cost total);
    distance_fn gives per-step distances (used for subgoals). Both take batched [N, ...] inputs.
    """

    def __init__(
        self, cfg: PlannerConfig, dynamics: Dynamics, energy_fn: EnergyFn, distance_fn: DistanceFn, seed: int = 0
    ) -> None:
        cfg.validate()
        self.cfg, self.dyn, self.energy_fn, self.distance_fn = cfg, dynamics, energy_fn, distance_fn
        self.gen = torch.Generator().manual_seed(seed)
        self.reset()

    def reset(self) -> None:
        self.t = 0
        self._plan: torch.Tensor | None = None  # warm start of the flat / low-level CEM
        self._high: torch.Tensor | None = None  # warm start of the high level (coarse actions)
        self.subgoal: torch.Tensor | None = None
        self.last_info: dict[str, Any] = {}

    def _shift(self, plan: torch.Tensor | None, horizon: int) -> torch.Tensor | None:
        if plan is None or not self.cfg.cem.warm_start:
            return None
        return torch.cat([plan[1:], torch.zeros_like(plan[:1])])[:horizon]

    def act(self, state: Any, goal: torch.Tensor) -> torch.Tensor:
        """One MPC step: returns the action [A] to execute now."""
        t0 = time.perf_counter()
        c, A = self.cfg, self.cfg.action_dim
        if c.kind == "random":
            a = (torch.rand(A, generator=self.gen) * 2 - 1) * c.cem.action_bound
            self.last_info = {"plan_s": time.perf_counter() - t0}
        elif c.kind == "cem":
            a = self._act_flat(state, goal)
        else:
            a = self._act_hier(state, goal)
        self.last_info["plan_s"] = time.perf_counter() - t0
        self.t += 1
        return a

    def _act_flat(self, state: Any, goal: torch.Tensor) -> torch.Tensor:
        H = self.cfg.cem.horizon

        def energy(acts: torch.Tensor) -> torch.Tensor:
            return self.energy_fn(self.dyn.rollout(state, acts), _expand_goal(goal, acts.shape[0]))

        res = cem(energy, H, self.cfg.action_dim, self.cfg.cem, self._shift(self._plan, H), self.gen)
        self._plan = res.mean
        self.last_info = {"energy": res.best_energy, "history": res.history}
        return res.mean[0]

    def _act_hier(self, state: Any, goal: torch.Tensor) -> torch.Tensor:
        hc, s = self.cfg.hier, self.cfg.hier.stride
        if self.subgoal is None or self.t % s == 0:
            Hh = self.cfg.high.horizon

            def coarse_energy(acts: torch.Tensor) -> torch.Tensor:  # acts [N, Hh, A], held s steps
                fine = acts.repeat_interleave(s, dim=1)
                return self.energy_fn(self.dyn.rollout(state, fine), _expand_goal(goal, acts.shape[0]))

            warm = None
            if self._high is not None and self.cfg.high.warm_start:
                warm = torch.cat([self._high[1:], torch.zeros_like(self._high[:1])])
            res = cem(coarse_energy, Hh, self.cfg.action_dim, self.cfg.high, warm, self.gen)
            self._high = res.mean
            pred = self.dyn.rollout(state, res.mean[:1].repeat_interleave(s, dim=0)[None])  # [1, s, ...]
            self.subgoal = pred[0, -1]
            self._plan = res.mean[0].expand(self.cfg.cem.horizon, -1).clone()  # low level starts on the coarse action
        remaining = s - self.t % s  # fine steps left to reach the subgoal
        H = self.cfg.cem.horizon
        k = min(remaining, H) - 1

        def energy(acts: torch.Tensor) -> torch.Tensor:
            pred = self.dyn.rollout(state, acts)
            n = acts.shape[0]
            d_sub = self.distance_fn(pred, _expand_goal(self.subgoal, n))[:, k]
            d_goal = self.distance_fn(pred, _expand_goal(goal, n))[:, -1]
            return hc.subgoal_weight * d_sub + hc.goal_weight * d_goal

        res = cem(energy, H, self.cfg.action_dim, self.cfg.cem, self._shift(self._plan, H), self.gen)
        self._plan = res.mean
        self.last_info = {"energy": res.best_energy, "history": res.history}
        return res.mean[0]


def run_episode(
    env: Any,
    planner: Planner,
    observe: Callable[[Any], Any],
    goal: torch.Tensor,
    max_steps: int,
    on_step: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Closed-loop MPC: observe -> plan -> env.step(action) until env.success() or max_steps.

    observe(env) -> the planner's state (latent context or simulator snapshot).
    Returns {"success", "steps", "plan_s_per_action", "actions"}.
    """
    planner.reset()
    times, actions = [], []
    success = bool(env.success())
    steps = 0
    while not success and steps < max_steps:
        a = planner.act(observe(env), goal)
        times.append(planner.last_info.get("plan_s", 0.0))
        actions.append(a.tolist())
        env.step(a.numpy())
        steps += 1
        if on_step is not None:
            on_step(env)
        success = bool(env.success())
    return {
        "success": success,
        "steps": steps,
        "plan_s_per_action": float(np.mean(times)) if times else 0.0,
        "actions": actions,
    }
