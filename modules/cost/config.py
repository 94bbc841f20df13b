"""Typed configs of the cost module (energy terms + critic) and of the latent planner."""

from __future__ import annotations

from dataclasses import dataclass, field

from cogarch.errors import ConfigError


@dataclass
class CostConfig:
    latent_dim: int = 64  # D of the latents the energy and critic read
    distance: str = "l1"  # goal distance in layer-normed latent space: "l1" (V-JEPA 2-AC) | "l2" | "cosine"
    goal_reduce: str = "final"  # over a predicted trajectory: "final" step | "mean" over steps
    goal_weight: float = 1.0
    surprise_weight: float = 0.0  # weight of mean surprise (prefer predictable futures)
    critic_weight: float = 0.0  # weight of the critic's cost-to-go (last step, or mean: critic_reduce)
    # Over a predicted trajectory: "final" step (a cost-to-go critic, gamma > 0) | "mean" over steps.
    # With a gamma = 0 critic (the current distance), "mean" prefers arriving early and staying; "final"
    # is indifferent to a trajectory that sweeps past the goal as long as it ends near it.
    critic_reduce: str = "final"
    constraint_weight: float = 1.0  # weight of caller-supplied constraint terms (e.g. leaving the table)
    # critic: "mlp": MLP(LN(pooled z), LN(pooled goal)) -> predicted discounted future cost;
    # "keypoint": a soft-argmax keypoint over each step's token grid, value = a |kp(z) - kp(goal)| + b
    # (needs square token grids; for costs that are distances, e.g. gamma = 0 on the puck-goal distance)
    critic_arch: str = "mlp"
    critic_hidden: int = 256
    critic_depth: int = 2
    # Hindsight goal relabelling: this fraction of training episodes gets another episode's goal
    # (needs `positions` and `goal_position` in the shards; costs must be |position - goal|).
    relabel: float = 0.0
    # Keypoint critic only: weight of an L1 loss pulling the keypoint onto the true agent position
    # (shards' `positions` / `goal_position`, the environment's state). Cost regression alone finds
    # the puck for some seeds and latches onto other features for others (docs/bench_pack_history.md).
    keypoint_weight: float = 0.0
    gamma: float = 0.9
    target: str = "td_lambda"  # critic targets: "mc" (Monte-Carlo returns) | "td_lambda"
    lam: float = 0.8  # lambda of TD(lambda) (Sutton & Barto 2018, Ch. 12)

    def validate(self) -> None:
        if self.latent_dim < 1 or self.critic_hidden < 1 or self.critic_depth < 1:
            raise ConfigError("cost.latent_dim, critic_hidden and critic_depth must be >= 1")
        if self.distance not in ("l1", "l2", "cosine"):
            raise ConfigError(f"cost.distance must be 'l1', 'l2' or 'cosine', got {self.distance!r}")
        if self.goal_reduce not in ("final", "mean"):
            raise ConfigError(f"cost.goal_reduce must be 'final' or 'mean', got {self.goal_reduce!r}")
        if self.critic_reduce not in ("final", "mean"):
            raise ConfigError(f"cost.critic_reduce must be 'final' or 'mean', got {self.critic_reduce!r}")
        if self.critic_arch not in ("mlp", "keypoint"):
            raise ConfigError(f"cost.critic_arch must be 'mlp' or 'keypoint', got {self.critic_arch!r}")
        if self.target not in ("mc", "td_lambda"):
            raise ConfigError(f"cost.target must be 'mc' or 'td_lambda', got {self.target!r}")
        if self.keypoint_weight < 0:
            raise ConfigError(f"cost.keypoint_weight must be >= 0, got {self.keypoint_weight}")
        if not 0.0 <= self.relabel <= 1.0:
            raise ConfigError(f"cost.relabel must be in [0, 1], got {self.relabel}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.lam <= 1.0:
            raise ConfigError("cost.gamma and cost.lam must be in [0, 1]")


@dataclass
class CEMConfig:
    """Cross-entropy method over action sequences (Rubinstein 1999; as used by V-JEPA 2-AC)."""

    horizon: int = 6  # actions per sequence
    samples: int = 128
    elites: int = 16
    iters: int = 4
    init_std: float = 1.0
    min_std: float = 0.05
    smoothing: float = 0.0  # new = smoothing * old + (1 - smoothing) * elite statistic
    action_bound: float = 1.0  # actions are clipped to [-bound, bound] per dimension
    warm_start: bool = True  # start each replan from the previous plan shifted by one step

    def validate(self) -> None:
        if min(self.horizon, self.samples, self.elites, self.iters) < 1:
            raise ConfigError("cem.horizon, samples, elites and iters must be >= 1")
        if self.elites > self.samples:
            raise ConfigError(f"cem.elites={self.elites} exceeds cem.samples={self.samples}")
        if self.init_std <= 0 or self.min_std < 0 or self.action_bound <= 0:
            raise ConfigError("cem.init_std and action_bound must be > 0, min_std >= 0")
        if not 0.0 <= self.smoothing < 1.0:
            raise ConfigError(f"cem.smoothing must be in [0, 1), got {self.smoothing}")


@dataclass
class HierConfig:
    """Two-level planning: coarse CEM proposes a subgoal latent, fine CEM reaches it."""

    stride: int = 4  # fine steps per coarse step (coarse actions are held for `stride` steps)
    # (the high level looks PlannerConfig.high.horizon coarse steps ahead)
    subgoal_weight: float = 1.0  # low level: distance to the subgoal ...
    goal_weight: float = 0.25  # ... plus this much distance to the final goal


@dataclass
class PlannerConfig:
    kind: str = "cem"  # "random" | "cem" (flat MPC) | "hier" (hierarchical)
    action_dim: int = 2
    max_steps: int = 40  # env steps per episode
    cem: CEMConfig = field(default_factory=CEMConfig)
    high: CEMConfig = field(default_factory=lambda: CEMConfig(horizon=4, samples=128, elites=16, iters=4))
    hier: HierConfig = field(default_factory=HierConfig)

    def validate(self) -> None:
        if self.kind not in ("random", "cem", "hier"):
            raise ConfigError(f"planner.kind must be 'random', 'cem' or 'hier', got {self.kind!r}")
        if self.action_dim < 1 or self.max_steps < 1:
            raise ConfigError("planner.action_dim and max_steps must be >= 1")
        if self.hier.stride < 1:
            raise ConfigError("planner.hier.stride must be >= 1")
        self.cem.validate()
        self.high.validate()
