"""World model: a block-causal transformer predictor over per-step perception latents.

As in V-JEPA 2-AC (Assran et al., 2025, "V-JEPA 2", Sec. 3): the latents of each time step (P
tokens; P = 1 when pooled), optionally preceded by one action token and one state token, form a
*block*; every token of step t attends to all tokens of steps <= t and to nothing later. The
output at the latent tokens of step t is the prediction of step t+1. Targets are the layer-normed
latents (the predictor works in that normalized space throughout: inputs are layer-normed too, so
rollouts can feed predictions back as inputs).

Bus: reads `percept`; publishes `forecast` (future latents with their time index) and `surprise`
(per-step prediction error of each observed step given the steps before it; the VoE signal).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from cogarch.bus import LatentBus, Message
from cogarch.errors import UserError
from cogarch.module import load_module_config, load_weights, save_module
from cogarch.modules.world_model.config import WorldModelConfig

TYPE_LATENT, TYPE_ACTION, TYPE_STATE = 0, 1, 2


def block_causal_mask(steps: int, tokens_per_step: int, device: torch.device | None = None) -> torch.Tensor:
    """[L, L] bool, L = steps * tokens_per_step; True where query token i may attend to key j.

    Token i belongs to step i // tokens_per_step; it sees key j iff step(j) <= step(i). This is the
    block-causal pattern of V-JEPA 2-AC: full attention inside a step, causal across steps.
    """
    step_id = torch.arange(steps, device=device).repeat_interleave(tokens_per_step)  # [L]
    return step_id[:, None] >= step_id[None, :]


class Block(nn.Module):
    """Pre-LN transformer block; attention through SDPA with an explicit boolean mask."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, L, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(a.transpose(1, 2).reshape(B, L, C))
        return x + self.mlp(self.norm2(x))


def message_to_steps(msg: Message) -> torch.Tensor:
    """A perception message's tokens [B, N, D] (`percept` patches or `objects` slots) -> per-step latents [B, T', P, D].

    Uses meta["grid"] = [T', H', W'] (time-major token order) when present; otherwise groups tokens
    by their time index; without either, tokens are pooled per step ([B, T', D] -> P = 1).
    """
    tok = msg.tokens
    B, N, D = tok.shape
    grid = msg.meta.get("grid") if msg.meta else None
    if grid is not None:
        T = int(grid[0])
        if T < 1 or N % T:
            raise UserError(f"percept grid {list(grid)} does not fit {N} tokens")
        if msg.time is not None:  # enforce time-major order so the reshape groups the right tokens
            order = torch.argsort(msg.time[0].float(), stable=True)
            tok = tok[:, order]
        return tok.reshape(B, T, N // T, D)
    if msg.time is not None:
        t0 = msg.time[0].float()
        T = int(torch.unique(t0).numel())
        if N % T:
            raise UserError(f"percept time index has {T} steps that do not divide {N} tokens")
        order = torch.argsort(t0, stable=True)
        return tok[:, order].reshape(B, T, N // T, D)
    return tok.reshape(B, N, 1, D)


def step_times(msg: Message, steps: int) -> torch.Tensor:
    """[B, T'] time index of each step of a percept message (its own time unit), or 0..T'-1."""
    B = msg.tokens.shape[0]
    if msg.time is None:
        return torch.arange(steps, dtype=torch.float32).expand(B, steps).clone()
    t = torch.sort(msg.time.float(), dim=1).values  # [B, N]
    return t.reshape(B, steps, -1)[:, :, 0]


class PositionHead(nn.Module):
    """Soft-argmax position readout of one step's tokens [..., P, D] -> [..., position_dim].

    Each token slot p has a learned anchor c_p (for a token grid: its cell centre, learned); a token
    scores how much the object is in it and proposes an offset o(z_p) from its anchor, and the
    position is sum_p softmax(score)_p * (c_p + o(z_p)). It works for any P <= max_patches.
    """

    def __init__(self, dim: int, max_patches: int, out_dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)
        self.offset = nn.Linear(dim, out_dim)
        self.anchor = nn.Parameter(torch.rand(max_patches, out_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        P = z.shape[-2]
        w = self.score(z).squeeze(-1).softmax(dim=-1)  # [..., P]
        return (w.unsqueeze(-1) * (self.anchor[:P] + self.offset(z))).sum(dim=-2)


class WorldModel(nn.Module):
    """Block-causal latent predictor (see the file docstring)."""

    name: ClassVar[str] = "world_model"
    reads: tuple[str, ...] = ("percept",)  # set per instance from config.source
    writes: tuple[str, ...] = ("forecast", "surprise")

    def __init__(self, config: WorldModelConfig, forecast_horizon: int = 4) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.forecast_horizon = forecast_horizon
        self.reads = (config.source,)  # an object world model reads "objects"
        c = config
        self.in_proj = nn.Linear(c.latent_dim, c.hidden_dim)
        self.action_proj = nn.Linear(c.action_dim, c.hidden_dim) if c.action_dim else None
        self.state_proj = nn.Linear(c.state_dim, c.hidden_dim) if c.state_dim else None
        self.step_embed = nn.Parameter(torch.zeros(c.max_steps, c.hidden_dim))
        self.patch_embed = nn.Parameter(torch.zeros(c.max_patches, c.hidden_dim))
        self.type_embed = nn.Parameter(torch.zeros(3, c.hidden_dim))
        self.blocks = nn.ModuleList(Block(c.hidden_dim, c.heads, c.mlp_ratio, c.dropout) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.hidden_dim)
        self.out_proj = nn.Linear(c.hidden_dim, c.latent_dim)
        self.position_head = PositionHead(c.latent_dim, c.max_patches, c.position_dim) if c.position_weight else None
        # [D] 1 on the dims whose residual base is constant velocity (config.extrapolate_dims)
        extrap = torch.zeros(c.latent_dim)
        extrap[list(c.extrapolate_dims)] = 1.0
        self.register_buffer("extrap_mask", extrap, persistent=False)
        for p in (self.step_embed, self.patch_embed, self.type_embed):
            nn.init.trunc_normal_(p, std=0.02)
        self.apply(self._init)  # (the head's anchors keep their uniform init: Linear only)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    @property
    def n_extra(self) -> int:
        """Action/state tokens per step, placed before the latent tokens of that step."""
        return int(self.action_proj is not None) + int(self.state_proj is not None)

    # ---------------------------------------------------------------- shapes and normalization
    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Layer norm over D without affine (the target space of the L1 loss); identity when
        config.normalize is off (object rows keep their units)."""
        return F.layer_norm(z, (z.shape[-1],)) if self.config.normalize else z

    def _as_steps(self, latents: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """Accept [B, T, D] (pooled) or [B, T, P, D]; return [B, T, P, D] and whether it was pooled."""
        if latents.dim() == 3:
            return latents.unsqueeze(2), True
        if latents.dim() != 4:
            raise UserError(f"world model latents must be [B, T, D] or [B, T, P, D], got {tuple(latents.shape)}")
        return latents, False

    def _check(self, z: torch.Tensor) -> None:
        B, T, P, D = z.shape
        c = self.config
        if D != c.latent_dim:
            raise UserError(f"world model expects latent width {c.latent_dim}, got {D}")
        if P > c.max_patches:
            raise UserError(f"world model accepts at most {c.max_patches} tokens per step, got {P}")

    # ---------------------------------------------------------------- core prediction
    def predict(
        self, z: torch.Tensor, actions: torch.Tensor | None = None, states: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced next-step prediction.

        z: [B, T, P, D] normalized latents (T <= max_steps); actions: [B, T, A] (action a_t moves
        step t to t+1); states: [B, T, S]. Returns [B, T, P, D]: out[:, t] predicts z[:, t+1]
        from steps <= t only.
        """
        B, T, P, _ = z.shape
        c = self.config
        if T > c.max_steps:
            raise UserError(f"world model accepts at most {c.max_steps} steps, got {T}")
        parts = []
        lat = self.in_proj(z) + self.patch_embed[:P] + self.type_embed[TYPE_LATENT]  # [B, T, P, H]
        if self.action_proj is not None:
            a = actions if actions is not None else z.new_zeros(B, T, c.action_dim)
            emb = self.action_proj(a[:, :T].to(z.dtype))  # [B, T, H]
            parts.append((emb + self.type_embed[TYPE_ACTION]).unsqueeze(2))
            if c.action_to_tokens:
                lat = lat + emb.unsqueeze(2)
        if self.state_proj is not None:
            s = states if states is not None else z.new_zeros(B, T, c.state_dim)
            parts.append((self.state_proj(s[:, :T].to(z.dtype)) + self.type_embed[TYPE_STATE]).unsqueeze(2))
        x = torch.cat(parts + [lat], dim=2) + self.step_embed[:T, None]  # [B, T, K+P, H]
        K = self.n_extra
        x = x.reshape(B, T * (K + P), c.hidden_dim)
        mask = block_causal_mask(T, K + P, device=z.device)
        for blk in self.blocks:
            x = blk(x, mask)
        x = self.norm(x).reshape(B, T, K + P, c.hidden_dim)[:, :, K:]
        out = self.out_proj(x)  # [B, T, P, D]
        return self.base(z) + out if c.residual else out

    def base(self, z: torch.Tensor) -> torch.Tensor:
        """The residual's starting point for predicting step t+1 from z [B, T, P, D]: z_t itself
        (copy-last), except on config.extrapolate_dims, where it is z_t + (z_t - z_{t-1}) (constant
        velocity; copy at t = 0, which has no previous step)."""
        if not self.config.extrapolate_dims or z.shape[1] < 2:
            return z
        step = (z[:, 1:] - z[:, :-1]) * self.extrap_mask.to(z.dtype)  # [B, T-1, P, D]
        return z + torch.cat([torch.zeros_like(z[:, :1]), step], dim=1)

    def _rollout_normed(
        self, z: torch.Tensor, horizon: int, actions: torch.Tensor | None, states: torch.Tensor | None
    ) -> torch.Tensor:
        """Autoregressive rollout in normalized space (differentiable).

        z: [B, C, P, D]; actions: [B, C+horizon-1, A] covering steps 0..C+horizon-2; states: [B, C, S]
        for the context (future states are extrapolated as last state + summed actions when S == A,
        else held). A sliding window of max_steps keeps long rollouts inside the trained range.
        Returns [B, horizon, P, D].
        """
        seq = z
        W = self.config.max_steps
        st = states
        for _ in range(horizon):
            L = seq.shape[1]
            lo = max(0, L - W)
            a = actions[:, lo:L] if actions is not None else None
            s = st[:, lo:L] if st is not None else None
            nxt = self.predict(seq[:, lo:], a, s)[:, -1:]  # [B, 1, P, D]
            seq = torch.cat([seq, nxt], dim=1)
            if st is not None:
                last = st[:, -1:]
                if actions is not None and st.shape[-1] == actions.shape[-1]:
                    last = last + actions[:, L - 1 : L].to(last.dtype)
                st = torch.cat([st, last], dim=1)
        return seq[:, z.shape[1] :]

    def rollout(
        self,
        context_latents: torch.Tensor,
        horizon: int,
        actions: torch.Tensor | None = None,
        past_actions: torch.Tensor | None = None,
        states: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict `horizon` future steps after the context.

        context_latents: [B, C, D] or [B, C, P, D] (raw perception latents; normalized here).
        actions: [B, horizon, A] the actions applied at steps C-1 .. C+horizon-2 (the planner's
        sequence); past_actions: [B, C-1, A] actions between the context steps (zeros if absent).
        Returns future latents in normalized space, [B, horizon, D] or [B, horizon, P, D].
        """
        z, pooled = self._as_steps(context_latents)
        self._check(z)
        if horizon < 1:
            raise UserError(f"rollout horizon must be >= 1, got {horizon}")
        B, C = z.shape[:2]
        full = None
        if self.action_proj is not None and actions is not None:
            if actions.shape[:2] != (B, horizon):
                raise UserError(f"actions must be [B={B}, horizon={horizon}, A], got {tuple(actions.shape)}")
            past = past_actions if past_actions is not None else actions.new_zeros(B, C - 1, actions.shape[-1])
            full = torch.cat([past, actions], dim=1)  # [B, C+horizon-1, A]
        out = self._rollout_normed(self.normalize(z), horizon, full, states)
        return out.squeeze(2) if pooled else out

    # ---------------------------------------------------------------- surprise
    def surprise(
        self, latents: torch.Tensor, actions: torch.Tensor | None = None, states: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-step surprise of observed latents [B, T, (P,) D].

        s_t = mean |pred(z_{<=t-1}) - LN(z_t)| (L1 per step), s_0 = 0. Returns (surprise [B, T],
        valid [B, T] bool: steps with at least `surprise_min_context` observed steps before them).
        Sequences longer than max_steps are scored with a sliding window of max_steps steps.
        """
        z, _ = self._as_steps(latents)
        self._check(z)
        z = self.normalize(z)
        B, T = z.shape[:2]
        W = self.config.max_steps
        s = z.new_zeros(B, T)
        if T <= W:
            pred = self.predict(z, actions, states)  # [B, T, P, D]
            s[:, 1:] = (pred[:, :-1] - z[:, 1:]).abs().mean(dim=(2, 3))
        else:
            for t in range(1, T):
                lo = max(0, t - W)
                a = actions[:, lo:t] if actions is not None else None
                st = states[:, lo:t] if states is not None else None
                p = self.predict(z[:, lo:t], a, st)[:, -1]
                s[:, t] = (p - z[:, t]).abs().mean(dim=(1, 2))
        valid = torch.arange(T, device=z.device) >= self.config.surprise_min_context
        return s, valid.expand(B, T).clone()

    def clip_score(self, surprise: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """VoE clip score [B] from per-step surprise [B, T] (see README: why top-k mean)."""
        s = surprise.masked_fill(~valid, float("-inf"))
        n_valid = int(valid.sum(dim=1).min())
        if n_valid == 0:
            raise UserError(
                f"clip too short for a surprise score: need > {self.config.surprise_min_context} latent steps"
            )
        if self.config.clip_score == "max":
            return s.max(dim=1).values
        k = min(self.config.clip_score_k, n_valid)
        return s.topk(k, dim=1).values.mean(dim=1)

    @torch.no_grad()
    def score_clip(self, latents: torch.Tensor) -> float:
        """Surprise score of one clip's latents [T, (P,) D] (the VoE scorer's core)."""
        was = self.training
        self.eval()
        s, v = self.surprise(latents.unsqueeze(0))
        self.train(was)
        return float(self.clip_score(s, v)[0])

    # ---------------------------------------------------------------- training objective
    def _loss(self, pred: torch.Tensor, target: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """Mean L1 (or L2) [B, T, P, D], each token weighted by 1 + change_weight * its relative change.

        prev: the observed step before each target; a token's change is |target - prev| averaged
        over D, relative to the mean over the step's P tokens (so the weights' scale is fixed).
        """
        err = (pred - target).abs() if self.config.loss == "l1" else (pred - target).square()
        w = self.config.change_weight
        if not w:
            return err.mean()
        change = (target - prev).abs().mean(dim=-1)  # [B, T, P]
        weight = 1.0 + w * change / change.mean(dim=-1, keepdim=True).clamp(min=1e-6)
        return (err.mean(dim=-1) * weight).sum() / weight.sum()

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Teacher-forced next-step L1 + autoregressive rollout L1 (V-JEPA 2-AC objective; see `_loss`).

        batch: latents [B, T, (P,) D], optional actions [B, T, A], states [B, T, S].
        The rollout starts from a random context length c in [1, T-k] and predicts k =
        min(rollout_steps, T-1) steps, feeding its own predictions back (gradients flow through).
        """
        z, _ = self._as_steps(batch["latents"])
        self._check(z)
        z = self.normalize(z.float())
        actions, states = batch.get("actions"), batch.get("states")
        T = z.shape[1]
        if T < 2:
            raise UserError("world model training needs clips of at least 2 latent steps")
        pred = self.predict(z, actions, states)
        tf = self._loss(pred[:, :-1], z[:, 1:], z[:, :-1])
        metrics = {"loss_tf": float(tf.detach())}
        loss = tf
        k = min(self.config.rollout_steps, T - 1)
        if k >= 1 and self.config.rollout_weight > 0:
            c = int(torch.randint(1, T - k + 1, (1,)))
            a = actions[:, : c + k - 1] if actions is not None else None
            s = states[:, :c] if states is not None else None
            ro = self._rollout_normed(z[:, :c], k, a, s)
            ro_loss = self._loss(ro, z[:, c : c + k], z[:, c - 1 : c + k - 1])
            loss = loss + self.config.rollout_weight * ro_loss
            metrics["loss_rollout"] = float(ro_loss.detach())
        if self.position_head is not None:
            pos = batch.get("positions")
            if pos is None:
                raise UserError("world_model.position_weight > 0 but the batch has no 'positions' (feature shards lack them)")
            pos_loss = self._position_loss(pred[:, :-1], z[:, 1:], pos[:, 1:].to(z.dtype))
            loss = loss + self.config.position_weight * pos_loss
            metrics["loss_position"] = float(pos_loss.detach())
        metrics["loss"] = float(loss.detach())
        return loss, metrics

    def _position_loss(self, pred: torch.Tensor, target: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """L1 of the head on the true latents (trains the head) + on the predictions through the
        head's frozen weights (trains only the world model). pred, target [B, T, P, D]; pos [B, T, k]."""
        head = self.position_head
        true_term = (head(target) - pos).abs().mean()
        frozen = {k: v.detach() for k, v in head.named_parameters()}
        pred_term = (torch.func.functional_call(head, frozen, (pred,)) - pos).abs().mean()
        return true_term + pred_term

    # ---------------------------------------------------------------- bus
    @torch.no_grad()
    def step(self, bus: LatentBus) -> None:
        """Read `percept` (or `objects`, config.source); publish `forecast` and `surprise`.
        Without that message, publish nothing."""
        msg = bus.latest(self.config.source)
        if msg is None:
            return
        z = message_to_steps(msg)  # [B, T, P, D]; for objects P = K slots, D = 18
        B, T, P, D = z.shape
        times = step_times(msg, T).to(z.device)  # [B, T]
        dt = (times[:, -1:] - times[:, -2:-1]) if T > 1 else torch.ones_like(times[:, :1])
        s, valid = self.surprise(z)
        H = self.forecast_horizon
        fut = self.rollout(z[:, -self.config.max_steps :], H)  # [B, H, P, D]
        ftime = times[:, -1:] + dt * torch.arange(1, H + 1, device=z.device, dtype=times.dtype)  # [B, H]
        bus.publish(
            Message(
                kind="forecast",
                source=self.name,
                tokens=fut.reshape(B, H * P, D),
                time=ftime.repeat_interleave(P, dim=1),
                meta={"grid": [H, P], "horizon": H, "source": self.config.source,
                      "space": "layernormed-latent" if self.config.normalize else self.config.source},
            )
        )
        peak = s.masked_fill(~valid, float("-inf")).max(dim=1) if bool(valid.any()) else None
        meta: dict[str, Any] = {"clip_score": self.clip_score(s, valid).tolist() if peak is not None else None}
        if peak is not None:
            meta["peak_step"] = peak.indices.tolist()
            meta["peak_value"] = peak.values.tolist()
            meta["peak_time"] = times.gather(1, peak.indices[:, None])[:, 0].tolist()
        bus.publish(Message(kind="surprise", source=self.name, tokens=s.unsqueeze(-1), time=times, mask=valid, meta=meta))

    # ---------------------------------------------------------------- save / load
    def save_pretrained(self, path: str | os.PathLike) -> None:
        save_module(path, self, self.name, self.config, extra={"forecast_horizon": self.forecast_horizon})

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "WorldModel":
        cfg, meta = load_module_config(path, cls.name, WorldModelConfig)
        model = cls(cfg, forecast_horizon=int(meta.get("forecast_horizon", 4)))
        load_weights(model, path)
        model.eval()
        return model

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def param_count_str(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


__all__ = ["WorldModel", "WorldModelConfig", "block_causal_mask", "message_to_steps", "param_count_str"]
