"""Typed config of the world model (block-causal latent predictor, V-JEPA 2-AC style).

The world model sees per-step perception latents [B, T', P, D] (P tokens per time step; P = 1 for
pooled latents), optionally interleaved with one action token and one state token per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cogarch.errors import ConfigError


@dataclass
class WorldModelConfig:
    latent_dim: int = 64  # D: width of the perception latents it reads and predicts
    # Which perception message the predictor reads and forecasts: "percept" (the V-JEPA patch
    # tokens, P per step) or "objects" (perception's object slots, K rows of 18 per step:
    # identity, presence, position, velocity). Over slots the world model is object-centric, as
    # SlotFormer (Wu et al., 2023): each slot keeps its object from step to step, so predicting a
    # slot's next row is predicting that object's motion (docs/benchmarks.md, "Object world model").
    source: str = "percept"
    # Layer-norm the latents before prediction (V-JEPA 2-AC's target space). Off for "objects":
    # their channels have fixed meanings (a position is not comparable after per-row normalisation,
    # and an absent object's zero row must stay zero).
    normalize: bool = True
    hidden_dim: int = 128  # width of the predictor transformer
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    max_steps: int = 32  # longest sequence of time steps (context + rollout) the model accepts
    max_patches: int = 64  # largest P (tokens per step); 1 for pooled latents
    action_dim: int = 0  # 0: not action-conditioned; else one action token per step (V-JEPA 2-AC)
    state_dim: int = 0  # 0: no proprioceptive state token; else one state token per step
    # Also add the step's action embedding to each of its latent tokens (FiLM-like, our choice on
    # top of V-JEPA 2-AC's separate action token): the change of a token is a function of that
    # token and the action, which a per-token path learns without first learning to attend to the
    # action token (docs/bench_pack_history.md, planning: with the token alone the model ignored actions).
    action_to_tokens: bool = False
    # Predict the change from the current step (out_t = z_t + f(z_<=t)) instead of z_{t+1} itself:
    # copying the last step is then the zero function, so the model starts at the copy-last
    # baseline and learns only the motion. (Our choice; V-JEPA 2-AC predicts z_{t+1} directly.)
    residual: bool = True
    # Feature dims whose residual base is constant velocity instead of "no change": step t+1 is
    # predicted as z_t + (z_t - z_{t-1}) on these dims (z_t at t = 0) plus the network's
    # correction. For object slots the position columns ([14, 15] in the 18-D row): constant
    # velocity of the slots' own positions answers 74 % of test exit questions where the
    # copy-based v10 world model's forecast answered 61 % (evals/bench/forecast_readout.py); the
    # idea was to start from it and learn only the deviations (contacts, walls). Measured: worse at
    # every horizon and no better on exits (the slots' displacement is noisy; docs/bench_pack_history.md,
    # "Thirteenth session"), so the presets leave it off. Needs residual=true. Empty: off.
    extrapolate_dims: list[int] = field(default_factory=list)
    # Training objective (V-JEPA 2-AC, Assran et al. 2025, Sec. 3): L1 to layer-normed targets,
    # teacher-forced next-step loss + autoregressive rollout loss over `rollout_steps` steps.
    rollout_steps: int = 2  # 0 disables the rollout loss
    rollout_weight: float = 1.0
    # Per-element loss: "l1" (V-JEPA 2-AC) or "l2". L1's optimum is the per-dimension median of
    # the next latent, which is "no change" for every dimension the model is unsure about; L2's is
    # the mean, which keeps the expected motion of a small object (docs/bench_pack_history.md, planning).
    loss: str = "l1"
    # Weight each token's loss by 1 + change_weight * (its true change / the mean change of the
    # step's tokens). 0 = plain L1. When one small object moves, copying the frame already
    # minimises most of a plain L1; this puts the loss where the frame changes.
    change_weight: float = 0.0
    # Auxiliary target during training only (never an input): an object position per step
    # (`positions` [N, T, position_dim] in the feature shards, e.g. the puck on the planning table).
    # A soft-argmax head reads the position from the TRUE next latents and, with its weights
    # frozen for that term, from the PREDICTED ones; the WM is trained so that the two agree.
    # So the prediction must move where the world moved, in the directions the true latents use,
    # which a per-element latent loss leaves to a small object's handful of tokens
    # (docs/bench_pack_history.md, planning). 0 = off.
    position_weight: float = 0.0
    position_dim: int = 2
    # VoE clip score from per-step surprise: "max" or "topk_mean" (mean of the k largest steps).
    clip_score: str = "topk_mean"
    clip_score_k: int = 2
    # Steps of warm-up context before surprise is trusted: step t's surprise needs >= this many
    # observed steps before t (the first steps have almost no context, their error is not surprise).
    surprise_min_context: int = 2

    def validate(self) -> None:
        if self.source not in ("percept", "objects"):
            raise ConfigError(f"world_model.source must be 'percept' or 'objects', got {self.source!r}")
        for name in ("latent_dim", "hidden_dim", "depth", "heads", "max_steps", "max_patches"):
            if getattr(self, name) < 1:
                raise ConfigError(f"world_model.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_dim % self.heads:
            raise ConfigError(f"world_model.hidden_dim={self.hidden_dim} is not divisible by heads={self.heads}")
        if self.action_dim < 0 or self.state_dim < 0:
            raise ConfigError("world_model.action_dim and state_dim must be >= 0")
        if self.loss not in ("l1", "l2"):
            raise ConfigError(f"world_model.loss must be 'l1' or 'l2', got {self.loss!r}")
        if self.position_weight < 0 or self.position_dim < 1:
            raise ConfigError("world_model.position_weight must be >= 0 and position_dim >= 1")
        if self.change_weight < 0:
            raise ConfigError(f"world_model.change_weight must be >= 0, got {self.change_weight}")
        if self.action_to_tokens and not self.action_dim:
            raise ConfigError("world_model.action_to_tokens needs action_dim > 0")
        bad = [d for d in self.extrapolate_dims if not 0 <= d < self.latent_dim]
        if bad:
            raise ConfigError(f"world_model.extrapolate_dims {bad} are outside 0..{self.latent_dim - 1} (latent_dim={self.latent_dim})")
        if len(set(self.extrapolate_dims)) != len(self.extrapolate_dims):
            raise ConfigError(f"world_model.extrapolate_dims has repeats: {self.extrapolate_dims}")
        if self.extrapolate_dims and not self.residual:
            raise ConfigError("world_model.extrapolate_dims needs residual=true (it sets the residual's base)")
        if self.rollout_steps < 0:
            raise ConfigError(f"world_model.rollout_steps must be >= 0, got {self.rollout_steps}")
        if self.clip_score not in ("max", "topk_mean"):
            raise ConfigError(f"world_model.clip_score must be 'max' or 'topk_mean', got {self.clip_score!r}")
        if self.clip_score_k < 1:
            raise ConfigError(f"world_model.clip_score_k must be >= 1, got {self.clip_score_k}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"world_model.dropout must be in [0, 1), got {self.dropout}")
        if self.surprise_min_context < 1:
            raise ConfigError(f"world_model.surprise_min_context must be >= 1, got {self.surprise_min_context}")
