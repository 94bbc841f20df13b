"""PerceptionModule: V-JEPA pretraining objective and inference encoder on transformers' VJEPA2 blocks.

Training step (V-JEPA, Bardes et al. 2024; V-JEPA 2, Assran et al. 2025):
  target  h = LN(target_encoder(full clip))            no grad, EMA of the context encoder
  context z_i = encoder(context tokens of mask set i)  ONLY the visible tokens go through the layers
                                                       (`VJEPA2Model.forward` would encode the full
                                                       clip and drop tokens afterwards, which leaks
                                                       masked pixels into the context through attention)
  predict p_i = predictor(z_i + mask tokens at the target positions, sorted by position)
  loss    mean_i mean |p_i - h[target_i]|^loss_exp / loss_exp        (loss_exp = 1: L1)
The EMA target is updated in `update(step)` only; the trainer calls it on sync_gradients steps.

Submodules are stock `VJEPA2Encoder` / `VJEPA2Predictor` (3-D RoPE, no absolute position
embedding), so the state-dict keys under `encoder.` / `predictor.` are exactly those of
`transformers.VJEPA2Model`; hf_interop.py relies on that.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.vjepa2.modeling_vjepa2 import VJEPA2Encoder, VJEPA2Predictor

from cogarch.bus import LatentBus, Message
from cogarch.errors import UserError
from cogarch.module import load_module_config, load_weights, save_module
from cogarch.modules.perception.config import PerceptionConfig, to_hf_config
from cogarch.modules.perception.layers import run_layers
from cogarch.modules.perception.objects import CANVAS, ObjectHead

log = logging.getLogger(__name__)


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x [B, N, D], idx [B, M] (long) -> [B, M, D]."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def effective_rank(x: torch.Tensor) -> float:
    """exp(entropy of normalised singular values) of a [n, D] feature matrix (Roy & Vetterli 2007);
    RankMe (Garrido et al. 2023) uses it to detect dimensional collapse of JEPA features."""
    x = x.float() - x.float().mean(0, keepdim=True)
    s = torch.linalg.svdvals(x)
    p = s / s.sum().clamp_min(1e-12)
    ent = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return float(torch.exp(ent))


def variance_covariance(ctx: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """VICReg's variance and covariance terms (Bardes et al. 2022) over every context token of the
    batch, averaged over mask sets. ctx: per mask set [B, N_ctx, D]. The variance hinge keeps each
    dimension's std near >= 1 (no constant features); the covariance term decorrelates dimensions
    (no dimensional collapse). Both act on the online encoder, the one that collapsed in our runs."""
    var_l, cov_l = [], []
    for z in ctx:
        x = z.reshape(-1, z.shape[-1]).float()  # [M, D]
        x = x - x.mean(0, keepdim=True)
        var = x.pow(2).sum(0) / max(x.shape[0] - 1, 1)  # [D]
        var_l.append(F.relu(1.0 - torch.sqrt(var + 1e-4)).mean())
        cov = x.T @ x / max(x.shape[0] - 1, 1)  # [D, D]
        off = cov - torch.diag(torch.diag(cov))
        cov_l.append(off.pow(2).sum() / x.shape[-1])
    return torch.stack(var_l).mean(), torch.stack(cov_l).mean()


class PerceptionModule(nn.Module):
    """V-JEPA encoder/predictor/EMA target; bus module "perception" (reads nothing, writes "percept",
    and "objects" when the config has object slots)."""

    name = "perception"
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ("percept",)

    def __init__(self, config: PerceptionConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.hf_config = to_hf_config(config)
        self.encoder = VJEPA2Encoder(self.hf_config)
        self.predictor = VJEPA2Predictor(self.hf_config)
        self.target_encoder = VJEPA2Encoder(self.hf_config)
        self._init_weights()
        self.target_encoder.load_state_dict(self.encoder.state_dict())
        self.target_encoder.requires_grad_(False)
        # Object slots (objects.py): built after _init_weights, which is the ViT's init, not DETR's.
        self.objects = None
        if config.object_slots:
            classes = (len(config.object_colors), len(config.object_shapes), len(config.object_materials))
            self.objects = ObjectHead(config.hidden_size, config.grid, config.object_slots, config.object_hidden,
                                      config.object_layers, config.object_heads, config.object_blocks, classes,
                                      config.object_step_layers, config.object_pixels, config.patch_size,
                                      config.tubelet_size, config.object_statics, len(config.object_static_kinds))
            self.writes = ("percept", "objects")
        mean = torch.tensor(config.norm_mean, dtype=torch.float32).view(1, 1, -1, 1, 1)
        std = torch.tensor(config.norm_std, dtype=torch.float32).view(1, 1, -1, 1, 1)
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)
        self._step = 0  # last optimizer step seen by update(); drives the monitor cadence
        self._monitored_at = -1
        self._monitor_values: dict[str, float] = {}

    # ------------------------------------------------------------------ init
    def _init_weights(self) -> None:
        # ViT init as in the reference: trunc-normal(0.02) weights, zero biases, unit LayerNorms,
        # and residual output projections scaled by 1/sqrt(2 * layer_id) (GPT-2 style "rescale_blocks").
        std = self.config.init_std
        for mod in self.modules():
            if isinstance(mod, (nn.Linear, nn.Conv3d)):
                nn.init.trunc_normal_(mod.weight, std=std)
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.LayerNorm):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)
        for stack in (self.encoder.layer, self.predictor.layer):
            for i, layer in enumerate(stack, start=1):
                layer.attention.proj.weight.data.div_(math.sqrt(2.0 * i))
                layer.mlp.fc2.weight.data.div_(math.sqrt(2.0 * i))
        nn.init.zeros_(self.predictor.embeddings.mask_tokens)  # zero-init mask tokens (V-JEPA)

    # ------------------------------------------------------------------ encoders
    def _check_frames(self, frames: torch.Tensor) -> None:
        c = self.config
        if not isinstance(frames, torch.Tensor) or frames.dim() != 5:
            shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise UserError(f"perception: frames must be [B, T, {c.in_chans}, H, W], got {shape}")
        B, T, C, H, W = frames.shape
        if C != c.in_chans or H != c.img_size or W != c.img_size:
            raise UserError(
                f"perception: frames must have {c.in_chans} channels and {c.img_size}x{c.img_size} pixels, got {C}x{H}x{W}"
            )
        if T > c.tubelet_size and T % c.tubelet_size:
            raise UserError(f"perception: {T} frames is not a multiple of the tubelet size {c.tubelet_size}")

    def normalize(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, T, 3, H, W] in [0, 1] -> normalised with the config mean/std."""
        return (frames - self.pixel_mean.to(frames.dtype)) / self.pixel_std.to(frames.dtype)

    def _run_layers(self, encoder: VJEPA2Encoder, x: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        c = self.config
        x = run_layers(encoder.layer, x, positions, fused=c.fused_rope, grad_ckpt=c.grad_checkpointing)
        return encoder.layernorm(x)

    def encode_context(self, frames: torch.Tensor, masks_enc: list[torch.Tensor]) -> list[torch.Tensor]:
        """Context encoder on the visible tokens only: frames [B, T, 3, H, W] -> [[B, Nc_i, D]]."""
        # The tubelet embedding is a stride = kernel Conv3d, so embedding the full clip and then
        # gathering is identical to embedding only the visible tubelets, and it is done once for all
        # mask sets (the reference re-embeds per mask set).
        emb = self.encoder.embeddings(frames)  # [B, N, D]
        return [self._run_layers(self.encoder, gather_tokens(emb, m), m) for m in masks_enc]

    @torch.no_grad()
    def encode_target(self, frames: torch.Tensor) -> torch.Tensor:
        """EMA target features of the full clip: [B, N, D], layer-normed (no affine) as in V-JEPA."""
        h = self._run_layers(self.target_encoder, self.target_encoder.embeddings(frames), None)
        return F.layer_norm(h, (h.shape[-1],))

    def predict(self, ctx: torch.Tensor, ctx_idx: torch.Tensor, tgt_idx: torch.Tensor, mask_index: int) -> torch.Tensor:
        """Predictor: ctx [B, Nc, D] at positions ctx_idx [B, Nc] -> predictions [B, Np, D] at tgt_idx [B, Np].

        Same computation as `VJEPA2Predictor.forward` minus its internal context gather (our context
        already holds only the visible tokens): project, append mask token `mask_index` at every
        target position, sort all tokens by position (RoPE positions), run, un-sort, project back.
        """
        p = self.predictor
        B, Nc, _ = ctx.shape
        z = p.embeddings.predictor_embeddings(ctx)  # [B, Nc, Dp]
        tok = p.embeddings.mask_tokens[mask_index % p.embeddings.num_mask_tokens]  # [1, 1, Dp]
        x = torch.cat([z, tok.to(z.dtype).expand(B, tgt_idx.shape[1], -1)], dim=1)  # [B, Nc+Np, Dp]
        pos = torch.cat([ctx_idx, tgt_idx], dim=1)  # [B, Nc+Np]
        order = torch.argsort(pos, dim=1)
        x, pos = gather_tokens(x, order), torch.gather(pos, 1, order)
        x = p.layernorm(run_layers(p.layer, x, pos, fused=self.config.fused_rope, grad_ckpt=self.config.grad_checkpointing))
        where = torch.argsort(order, dim=1)[:, Nc:]  # sorted slot of each target token
        return p.proj(gather_tokens(x, where))

    # ------------------------------------------------------------------ training
    def momentum(self, step: int) -> float:
        c = self.config
        if c.ema_steps <= 0 or c.ema_start == c.ema_end:
            return float(c.ema_start)
        frac = min(max(step, 0) / c.ema_steps, 1.0)
        return float(c.ema_start + (c.ema_end - c.ema_start) * frac)

    @torch.no_grad()
    def update(self, step: int) -> None:
        """EMA of the context encoder into the target encoder: t <- m t + (1 - m) c."""
        m = self.momentum(step)
        tgt = [p for p in self.target_encoder.parameters()]
        src = [p.detach() for p in self.encoder.parameters()]
        torch._foreach_lerp_(tgt, src, 1.0 - m)
        self._step = int(step)

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """batch from MaskCollator -> (loss, metrics)."""
        frames = batch["frames"]
        self._check_frames(frames)
        masks_enc = [m.to(frames.device, non_blocking=True) for m in batch["masks_enc"]]
        masks_pred = [m.to(frames.device, non_blocking=True) for m in batch["masks_pred"]]
        h = self.encode_target(frames)  # [B, N, D]
        ctx = self.encode_context(frames, masks_enc)
        c = self.config
        losses = []
        metrics: dict[str, float] = {}
        for i, (z, ci, ti) in enumerate(zip(ctx, masks_enc, masks_pred)):
            pred = self.predict(z, ci, ti, mask_index=i)  # [B, Np, D]
            target = gather_tokens(h, ti)
            li = (pred - target).abs().pow(c.loss_exp).mean() / c.loss_exp
            losses.append(li)
            metrics[f"loss_m{i}"] = float(li.detach())
        loss = torch.stack(losses).mean()
        if c.var_weight > 0 or c.cov_weight > 0:
            var_l, cov_l = variance_covariance(ctx)
            loss = loss + c.var_weight * var_l + c.cov_weight * cov_l
            metrics["loss_var"], metrics["loss_cov"] = float(var_l.detach()), float(cov_l.detach())
        metrics["ctx_ratio"] = float(sum(m.shape[1] for m in masks_enc) / (len(masks_enc) * h.shape[1]))
        metrics["momentum"] = self.momentum(self._step)
        if self.training and c.monitor_every > 0 and self._step % c.monitor_every == 0 and self._monitored_at != self._step:
            self._monitored_at = self._step
            self._monitor_values = self.collapse_monitors(h, ctx)
        # The last monitor values ride along on every step so that a logger averaging metrics over
        # its window sees them at full weight (they are recomputed every monitor_every steps).
        metrics.update(self._monitor_values)
        return loss, metrics

    @torch.no_grad()
    def collapse_monitors(self, h: torch.Tensor, ctx: list[torch.Tensor]) -> dict[str, float]:
        """Per-dim std and effective rank of target (and context) features; warn when collapsing."""
        c = self.config
        flat = h.detach().reshape(-1, h.shape[-1]).float()
        if flat.shape[0] > c.monitor_tokens:
            sel = torch.randperm(flat.shape[0], device=flat.device)[: c.monitor_tokens]
            flat = flat[sel]
        std = float(flat.std(0).mean())
        rank = effective_rank(flat)
        cflat = ctx[0].detach().reshape(-1, ctx[0].shape[-1]).float()[: c.monitor_tokens]
        # The online (context) encoder can collapse while the slow EMA target still looks healthy
        # (seen on the physics world with EMA 0.998 -> 1: context std fell 10x in 100 steps), so
        # its effective rank is watched too; its std is scale-free only relative to its own start.
        crank = effective_rank(cflat)
        out = {"target_std": std, "target_rank": rank, "context_std": float(cflat.std(0).mean()), "context_rank": crank}
        problems = []
        if std < c.collapse_min_std or rank < c.collapse_min_rank:
            problems.append(f"target per-dim std {std:.4f} (threshold {c.collapse_min_std}), "
                            f"effective rank {rank:.2f} (threshold {c.collapse_min_rank})")
        # A rank is only measurable from enough tokens: with fewer than ~4x the threshold visible
        # tokens (tiny test configs) a low value says nothing about collapse.
        if crank < c.collapse_min_rank and cflat.shape[0] >= 4 * c.collapse_min_rank:
            problems.append(f"context-encoder effective rank {crank:.2f} (threshold {c.collapse_min_rank})")
        if problems:
            msg = f"perception: representation collapse suspected at step {self._step}: " + "; ".join(problems)
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
            log.warning(msg)
        return out

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def encode(self, frames: torch.Tensor, normalized: bool = False) -> torch.Tensor:
        """frames [B, T, 3, H, W] (in [0, 1], or already normalised) -> tokens [B, T'*H'*W', D].

        Uses the EMA target encoder, as V-JEPA evaluates. Token order is (t', h', w') row-major,
        T' = T / tubelet_size (a single frame is repeated to fill one tubelet)."""
        self._check_frames(frames)
        x = frames if normalized else self.normalize(frames)
        return self._run_layers(self.target_encoder, self.target_encoder.embeddings(x), None)

    def token_grid(self, num_frames: int) -> tuple[int, int, int]:
        c = self.config
        g = c.img_size // c.patch_size
        return max(1, num_frames // c.tubelet_size), g, g

    @torch.no_grad()
    def publish(self, bus: LatentBus, frames: torch.Tensor, normalized: bool = False, fps: float | None = None) -> Message:
        """Encode `frames` and publish a "percept" message (per-token time index t' in tubelets)."""
        self._check_frames(frames)
        x = frames if normalized else self.normalize(frames)
        tokens = self.encode(x, normalized=True)  # [B, N, D]
        B, N, D = tokens.shape
        grid = self.token_grid(frames.shape[1])
        if self.objects is not None:
            self.publish_objects(bus, tokens, grid, x)
        t_index = torch.arange(grid[0], device=tokens.device)
        if self.config.pool_per_step:
            tokens = tokens.view(B, grid[0], grid[1] * grid[2], D).mean(2)  # [B, T', D]
            time = t_index.expand(B, -1)
        elif 0 < self.config.pool_grid < grid[1]:
            g = self.config.pool_grid
            x = tokens.view(B * grid[0], grid[1], grid[2], D).permute(0, 3, 1, 2)  # [B*T', D, H', W']
            x = torch.nn.functional.adaptive_avg_pool2d(x, g)  # [B*T', D, g, g]
            tokens = x.permute(0, 2, 3, 1).reshape(B, grid[0] * g * g, D)  # time-major, row-major
            grid = (grid[0], g, g)
            time = t_index.repeat_interleave(g * g).expand(B, -1)
        else:
            time = t_index.repeat_interleave(grid[1] * grid[2]).expand(B, -1)  # [B, N]
        meta = {"grid": list(grid), "tubelet": self.config.tubelet_size, "patch": self.config.patch_size,
                "pooled": bool(self.config.pool_per_step), "encoder": "target"}
        if fps is not None:
            meta["fps"] = float(fps)
        return bus.publish(Message("percept", self.name, tokens, time=time.contiguous(), meta=meta))

    @torch.no_grad()
    def publish_objects(self, bus: LatentBus, tokens: torch.Tensor, grid: tuple[int, int, int],
                        frames: torch.Tensor | None = None) -> Message:
        """Object slots from the full token grid [B, T'H'W', D] (and, for a head with a pixel branch,
        the normalised frames [B, T, 3, H, W]) -> an "objects" message [B, T'*K, 18]."""
        if tuple(grid) != tuple(self.objects.grid):
            raise UserError(f"perception: the object head reads a {tuple(self.objects.grid)} token grid, this clip "
                            f"gives {tuple(grid)} (it needs {self.config.num_frames} frames)")
        tubelet = self.config.tubelet_size
        if frames is not None and frames.shape[1] < tubelet:
            # the encoder repeats a short clip's frames to fill its one tubelet; the pixel branch too
            frames = frames.repeat(1, math.ceil(tubelet / frames.shape[1]), 1, 1, 1)[:, :tubelet]
        out = self.objects(tokens, frames)
        rows, time = ObjectHead.tokens(out)
        c = self.config
        # "slots" counts the rows per step (readers reshape by it); static rows have a zero gate
        # column, so readers of the object columns skip them as unseen.
        meta = {"slots": c.object_slots + c.object_statics, "grid": list(grid), "canvas": CANVAS, "colors": list(c.object_colors),
                "shapes": list(c.object_shapes), "materials": list(c.object_materials),
                "layout": "colour|shape|material probs, visible, x/64, y/64, vx/32, vy/32 (times p(exist)p(visible))"}
        if c.object_statics:
            meta.update(object_slots=c.object_slots, statics=c.object_statics, static_kinds=list(c.object_static_kinds),
                        static_layout="18 zeros, then kind probs, x0/64, y0/64, x1/64, y1/64 (times p(exist))")
        return bus.publish(Message("objects", self.name, rows.contiguous(), time=time.contiguous(), meta=meta))

    def step(self, bus: LatentBus, frames: torch.Tensor | None = None, normalized: bool = False) -> None:
        if frames is None:
            raise UserError("perception.step needs frames=[B, T, 3, H, W] (frames are not bus latents)")
        self.publish(bus, frames, normalized=normalized)

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, path: str | os.PathLike, inference_only: bool = False) -> None:
        """Full module (encoder, predictor, EMA target), or with `inference_only` the EMA target
        encoder alone: all that `encode`/`step` use, 45 % of the bytes (what a shipped pack needs)."""
        if not inference_only:
            save_module(path, self, self.name, self.config, extra={"step": self._step})
            return
        holder = nn.Module()
        holder.target_encoder = self.target_encoder  # keys stay "target_encoder.*"
        if self.objects is not None:
            holder.objects = self.objects
        save_module(path, holder, self.name, self.config, extra={"step": self._step, "inference_only": True})

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "PerceptionModule":
        cfg, meta = load_module_config(path, cls.name, PerceptionConfig)
        model = cls(cfg)
        if meta.get("inference_only"):
            # Only the target encoder was saved. The context encoder restarts from it and the
            # predictor from a fresh init, as V-JEPA 2-AC continues from encoder-only weights.
            holder = nn.Module()
            holder.target_encoder = model.target_encoder
            if model.objects is not None:
                holder.objects = model.objects
            load_weights(holder, path)
            model.encoder.load_state_dict(model.target_encoder.state_dict())
        else:
            load_weights(model, path)
        model._step = int(meta.get("step", 0))
        return model
