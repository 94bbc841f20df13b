"""Cost module: the energy the system minimises, plus a trainable critic.

Energy terms (LeCun 2022, "A Path Towards Autonomous Machine Intelligence": intrinsic cost +
trainable critic), all per batch element:
  goal       distance of (predicted) latents to a goal latent in layer-normed latent space
             (L1 by default, the V-JEPA 2-AC planning energy);
  surprise   mean world-model surprise (prefers futures the model finds predictable);
  critic     a learned estimate of discounted future cost from the last latent (an MLP on pooled
             latents, or a soft-argmax keypoint metric on token grids; trained by
             Monte-Carlo or TD(lambda) returns on planning episodes, see forward());
  <name>     caller-supplied constraint terms (e.g. leaving the table), weighted by
             constraint_weight.
`total` is the weighted sum. The module only sees tensors and bus messages: goal latents come
from perception (the caller encodes a goal image/clip), predicted latents from the world model.

Bus: reads `forecast`, `goal`, `surprise`; publishes `cost` (tokens [B, K, 1], one per term,
meta {"terms": [...]}).
"""

from __future__ import annotations

import functools

import os
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from cogarch.bus import LatentBus, Message
from cogarch.errors import UserError
from cogarch.module import load_module_config, load_weights, save_module
from cogarch.modules.cost.config import CostConfig


def _steps(x: torch.Tensor, name: str) -> torch.Tensor:
    """[B, H, D] or [B, H, P, D] -> [B, H, P, D]."""
    if x.dim() == 3:
        return x.unsqueeze(2)
    if x.dim() == 4:
        return x
    raise UserError(f"{name} must be [B, H, D] or [B, H, P, D], got {tuple(x.shape)}")


def _goal(g: torch.Tensor) -> torch.Tensor:
    """[B, D] or [B, P, D] -> [B, P, D]."""
    if g.dim() == 2:
        return g.unsqueeze(1)
    if g.dim() == 3:
        return g
    raise UserError(f"goal latents must be [B, D] or [B, P, D], got {tuple(g.shape)}")


def discounted_returns(costs: torch.Tensor, gamma: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Monte-Carlo returns G_t = sum_{k>=0} gamma^k c_{t+k} to the episode end; costs [B, T]."""
    c = costs if mask is None else costs * mask
    out = torch.zeros_like(c)
    acc = torch.zeros_like(c[:, 0])
    for t in range(c.shape[1] - 1, -1, -1):
        acc = c[:, t] + gamma * acc
        if mask is not None:
            acc = acc * mask[:, t]
        out[:, t] = acc
    return out


def lambda_returns(
    costs: torch.Tensor, values: torch.Tensor, gamma: float, lam: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """TD(lambda) targets, backward view: G_t = c_t + gamma((1-lam) V_{t+1} + lam G_{t+1}).

    costs, values: [B, T]; the episode end is terminal (G_{T-1} = c_{T-1}). lam = 1 gives the
    Monte-Carlo return, lam = 0 the one-step TD target (Sutton & Barto 2018, Eq. 12.18).
    """
    m = torch.ones_like(costs) if mask is None else mask.to(costs.dtype)
    out = torch.zeros_like(costs)
    g_next = torch.zeros_like(costs[:, 0])
    v_next = torch.zeros_like(costs[:, 0])
    for t in range(costs.shape[1] - 1, -1, -1):
        g = costs[:, t] + gamma * ((1 - lam) * v_next + lam * g_next)
        g = g * m[:, t]
        out[:, t] = g
        g_next, v_next = g, values[:, t] * m[:, t]
    return out


class Critic(nn.Module):
    """MLP(LN(pool z), LN(pool goal)) -> predicted discounted future cost (scalar)."""

    def __init__(self, dim: int, hidden: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = 2 * dim
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.GELU()]
            d = hidden
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """z: [..., D] pooled latent, goal: [..., D] pooled goal -> [...]."""
        zn, gn = F.layer_norm(z, (z.shape[-1],)), F.layer_norm(goal, (goal.shape[-1],))
        return self.net(torch.cat([zn, gn], dim=-1)).squeeze(-1)


@functools.lru_cache(maxsize=8)
def _cell_centres(side: int) -> torch.Tensor:
    """[side * side, 2] (x, y) centres of a row-major side x side grid, in [0, 1] units (built once:
    the planner calls the critic for every candidate of every CEM iteration)."""
    gy, gx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], dim=-1).float().add(0.5).div(side)


class KeypointCritic(nn.Module):
    """a * |kp(z) - kp(goal)| + b, kp = a learned soft-argmax keypoint over a step's token grid.

    Spatial soft-argmax (Levine et al. 2016, "End-to-end training of deep visuomotor policies";
    Finn et al. 2016, "Deep spatial autoencoders"): each token scores itself, the softmax over the
    grid weights the tokens' cell centres plus a learned in-cell offset, giving a 2-D point. Trained
    only on costs (e.g. the puck-goal distance), the point is free to be any position-like feature
    the cost depends on. A pooled MLP critic must recover WHERE from a mean over the grid, which a
    small object barely moves (docs/bench_pack_history.md: planning).
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.offset = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 2))
        self.scale = nn.Parameter(torch.ones(()))
        self.bias = nn.Parameter(torch.zeros(()))

    def keypoint(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [..., P, D] (P = side * side, row-major) -> [..., 2] (x, y) in [0, 1] grid units."""
        P = tokens.shape[-2]
        side = int(round(P**0.5))
        if side * side != P:
            raise UserError(f"the keypoint critic needs a square token grid, got {P} tokens per step")
        centres = _cell_centres(side).to(tokens)  # [P, 2]
        h = self.norm(tokens)
        w = self.score(h).squeeze(-1).softmax(dim=-1)  # [..., P]
        points = centres + torch.tanh(self.offset(h)) * (0.5 / side)  # [..., P, 2]: within the cell
        return (w.unsqueeze(-1) * points).sum(dim=-2)

    def forward(self, z: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """z: [..., P, D], goal: [..., P, D] -> [...]."""
        return self.scale * (self.keypoint(z) - self.keypoint(goal)).norm(dim=-1) + self.bias


class CostModel(nn.Module):
    """Energy terms + critic (see the file docstring)."""

    name: ClassVar[str] = "cost"
    reads: tuple[str, ...] = ("forecast", "goal", "surprise")
    writes: tuple[str, ...] = ("cost",)

    def __init__(self, config: CostConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        if config.critic_arch == "keypoint":
            self.critic = KeypointCritic(config.latent_dim, config.critic_hidden)
        else:
            self.critic = Critic(config.latent_dim, config.critic_hidden, config.critic_depth)

    # ---------------------------------------------------------------- energy terms
    def goal_distance(self, states: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Per-step distance [B, H] of states [B, H, (P,) D] to goal [B, (P,) D] (layer-normed)."""
        z, g = _steps(states, "state latents"), _goal(goal)
        if z.shape[-1] != g.shape[-1]:
            raise UserError(f"state latents have width {z.shape[-1]} but the goal has {g.shape[-1]}")
        if z.shape[2] != g.shape[1]:  # different token grids: compare pooled latents
            z, g = z.mean(dim=2, keepdim=True), g.mean(dim=1, keepdim=True)
        z = F.layer_norm(z, (z.shape[-1],))
        g = F.layer_norm(g, (g.shape[-1],)).unsqueeze(1).expand_as(z)
        if self.config.distance == "l1":
            return (z - g).abs().mean(dim=(2, 3))
        if self.config.distance == "l2":
            return (z - g).pow(2).mean(dim=(2, 3))
        return (1 - F.cosine_similarity(z, g, dim=-1)).mean(dim=2)

    def critic_value(self, states: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Critic's predicted future cost per step: states [B, H, (P,) D], goal -> [B, H]."""
        if self.config.critic_arch == "keypoint":  # reads the token grids themselves
            z, g = _steps(states, "state latents"), _goal(goal)  # [B, H, P, D], [B, P, D]
            return self.critic(z, g.unsqueeze(1).expand_as(z))
        z = _steps(states, "state latents").mean(dim=2)  # [B, H, D]
        g = _goal(goal).mean(dim=1, keepdim=True).expand(-1, z.shape[1], -1)
        return self.critic(z, g)

    def cost(
        self,
        state_latents: torch.Tensor,
        goal: torch.Tensor | None = None,
        surprise: torch.Tensor | None = None,
        constraints: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Energy of trajectories: state_latents [B, H, (P,) D] (H >= 1), goal [B, (P,) D].

        surprise: [B] or [B, H] per-step surprise; constraints: name -> [B] penalties.
        Returns per-term energies [B] and their weighted sum under "total".
        """
        c = self.config
        z = _steps(state_latents, "state latents")
        terms: dict[str, torch.Tensor] = {}
        total = z.new_zeros(z.shape[0])
        if goal is not None:
            d = self.goal_distance(z, goal)  # [B, H]
            terms["goal"] = d[:, -1] if c.goal_reduce == "final" else d.mean(dim=1)
            total = total + c.goal_weight * terms["goal"]
            if c.critic_weight:
                v = self.critic_value(z if c.critic_reduce == "mean" else z[:, -1:], goal)  # [B, H or 1]
                terms["critic"] = v.mean(dim=1)
                total = total + c.critic_weight * terms["critic"]
        if surprise is not None:
            terms["surprise"] = surprise if surprise.dim() == 1 else surprise.mean(dim=1)
            total = total + c.surprise_weight * terms["surprise"]
        for name, val in (constraints or {}).items():
            if name in ("goal", "critic", "surprise", "total"):
                raise UserError(f"constraint term name {name!r} clashes with a built-in cost term")
            terms[name] = val
            total = total + c.constraint_weight * val
        terms["total"] = total
        return terms

    # ---------------------------------------------------------------- critic training
    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Critic regression on episodes.

        batch: latents [B, T, (P,) D], goal [B, (P,) D], optional costs [B, T] (per-step cost;
        default: the intrinsic goal distance of each step), optional mask [B, T] (real steps).
        Targets: Monte-Carlo returns or TD(lambda) returns bootstrapped from the critic itself
        (detached, so the target is a fixed regression label for this step).
        """
        z, goal = batch["latents"].float(), batch["goal"].float()
        mask = batch.get("mask")
        m = mask.float() if mask is not None else None
        costs = batch.get("costs")
        aux = self._keypoint_loss(z, goal, batch) if self.config.keypoint_weight > 0 else None
        if self.training and self.config.relabel > 0 and "positions" in batch and "goal_position" in batch:
            goal, costs = self._relabel(goal, batch["positions"].float(), batch["goal_position"].float(), costs)
        if costs is None:
            with torch.no_grad():
                costs = self.goal_distance(z, goal)
        costs = costs.float()
        v = self.critic_value(z, goal)  # [B, T]
        if self.config.target == "mc":
            target = discounted_returns(costs, self.config.gamma, m)
        else:
            target = lambda_returns(costs, v.detach(), self.config.gamma, self.config.lam, m)
        err = (v - target).pow(2)
        loss = (err * m).sum() / m.sum().clamp(min=1) if m is not None else err.mean()
        metrics = {"target_mean": float(target.mean())}
        if aux is not None:
            metrics["value_loss"], metrics["keypoint_l1"] = float(loss.detach()), float(aux.detach())
            loss = loss + self.config.keypoint_weight * aux
        return loss, {"loss": float(loss.detach()), **metrics}

    def _keypoint_loss(self, z: torch.Tensor, goal: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """L1 of the keypoints of states [B, T, P, D] and goals [B, P, D] to the true positions."""
        if self.config.critic_arch != "keypoint" or "positions" not in batch or "goal_position" not in batch:
            raise UserError("cost.keypoint_weight > 0 needs critic_arch=keypoint and shards with positions/goal_position")
        kp_z, kp_g = self.critic.keypoint(_steps(z, "state latents")), self.critic.keypoint(_goal(goal))
        return 0.5 * ((kp_z - batch["positions"].float()).abs().mean() + (kp_g - batch["goal_position"].float()).abs().mean())

    def _relabel(self, goal: torch.Tensor, pos: torch.Tensor, goal_pos: torch.Tensor, costs: torch.Tensor | None):
        """Hindsight goal relabelling (Andrychowicz et al. 2017, HER): a `relabel` fraction of the
        episodes get another episode's goal, and their per-step cost becomes the distance of their
        true positions [B, T, 2] to that goal's position [B, 2] (the cost = |position - goal| that
        the shards' costs hold). Each episode has one goal; relabelling shows the critic many goals
        per trajectory, so it cannot lean on which goal goes with which table."""
        B = goal.shape[0]
        if B < 2:
            return goal, costs
        other = (torch.arange(B) + torch.randint(1, B, (B,))) % B  # never the episode's own goal
        pick = torch.rand(B) < self.config.relabel
        new_goal = torch.where(pick.view(B, *([1] * (goal.dim() - 1))), goal[other], goal)
        new_costs = (pos - goal_pos[other].unsqueeze(1)).norm(dim=-1)  # [B, T]
        old = costs.float() if costs is not None else new_costs
        return new_goal, torch.where(pick[:, None], new_costs, old)

    # ---------------------------------------------------------------- bus
    @torch.no_grad()
    def step(self, bus: LatentBus) -> None:
        """Publish `cost` for the latest `forecast` (nothing without one); `goal` and `surprise`
        add their terms when present on the bus."""
        fc = bus.latest("forecast")
        if fc is None:
            return
        B, N, D = fc.tokens.shape
        grid = fc.meta.get("grid") if fc.meta else None
        H = int(grid[0]) if grid else N
        states = fc.tokens.reshape(B, H, N // H, D)
        goal = None
        gm = bus.latest("goal")
        if gm is not None:
            g = gm.tokens  # [B, Ng, D]; a goal clip's grid: use its last time step
            ggrid = gm.meta.get("grid") if gm.meta else None
            if ggrid:
                g = g.reshape(B, int(ggrid[0]), -1, g.shape[-1])[:, -1]
            goal = g
        sm = bus.latest("surprise")
        surprise = None
        if sm is not None:
            s = sm.tokens[..., 0]  # [B, T]
            valid = sm.mask if sm.mask is not None else torch.ones_like(s, dtype=torch.bool)
            surprise = (s * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1)
        terms = self.cost(states, goal, surprise)
        names = list(terms)
        vals = torch.stack([terms[k] for k in names], dim=1).unsqueeze(-1)  # [B, K, 1]
        bus.publish(Message(kind="cost", source=self.name, tokens=vals, meta={"terms": names}))

    # ---------------------------------------------------------------- save / load
    def save_pretrained(self, path: str | os.PathLike) -> None:
        save_module(path, self, self.name, self.config)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "CostModel":
        cfg, _ = load_module_config(path, cls.name, CostConfig)
        model = cls(cfg)
        load_weights(model, path)
        model.eval()
        return model


# The name cogarch.registry.MODULE_CLASSES uses for this module.
CostModule = CostModel
