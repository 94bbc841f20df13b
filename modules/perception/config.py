"""Typed configuration of the perception module (V-JEPA; I-JEPA when num_frames == 1) and builders.

One flat dataclass describes encoder, predictor, masking, EMA and collapse monitors; `to_hf_config`
turns it into a `transformers.VJEPA2Config` so the building blocks (VJEPA2Encoder, VJEPA2Predictor)
are exactly the ones stock V-JEPA 2 checkpoints use, which is what makes import/export lossless.

Builders:
- `vjepa_tiny()`: the CPU preset (64 px, 16 frames, patch 8, tubelet 2, 192/6/3, predictor 96/4/3).
- `vjepa_vitl()`, `vjepa_vith()`, `vjepa_vitg()`: the official V-JEPA 2 shapes (Assran et al. 2025,
  "V-JEPA 2"; facebookresearch/vjepa2 configs and transformers' VJEPA2Config defaults): 256 px,
  patch 16, tubelet 2, 64 frames, predictor 384/12/12 heads.
- `ijepa_tiny()`: the image variant (Assran et al. 2023, "I-JEPA"): T = 1, tubelet 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cogarch.errors import ConfigError
from cogarch.evals.world.vocab import COLORS, MATERIALS, SHAPES, STATIC_KINDS

# ImageNet statistics: V-JEPA / V-JEPA 2 normalise inputs with them (and so does the HF video processor).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class MaskSetConfig:
    """One multi-block 3-D mask set (V-JEPA, Bardes et al. 2024, Sec. 3.2 / App. C).

    The target of a set is the union of `num_blocks` blocks; each block covers `spatial_scale` of a
    frame's area with aspect ratio (h/w) in `aspect_ratio` and `temporal_scale` of the time steps
    (1.0: the block spans all frames, so the model cannot copy a target from a neighbouring frame).
    The context is the complement, optionally limited to the first `max_temporal_keep` of time.

    `future: n > 0` makes it a future-prediction set instead (the blocks, `max_temporal_keep` and
    `min_context` are then unused; the context is at least one whole step's tokens): one cut
    step c per batch, uniform in [1, T'-1]; the context is every token of steps < c and the target
    every token of steps c .. c+n-1. The predictor then learns what the surprise of Garrido et al.
    (2025) reads at test time: the next steps from the past only (V-JEPA 2-AC's predictor is trained
    the same way, Assran et al. 2025, Sec. 3), which the whole-clip tubes above never ask of it.
    """

    num_blocks: int = 8
    spatial_scale: list[float] = field(default_factory=lambda: [0.15, 0.15])
    temporal_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    aspect_ratio: list[float] = field(default_factory=lambda: [0.75, 1.5])
    max_temporal_keep: float = 1.0
    future: int = 0


def vjepa2_mask_sets() -> list[MaskSetConfig]:
    """The V-JEPA / V-JEPA 2 pretraining masks: short-range (8 x 0.15) and long-range (2 x 0.7)."""
    return [MaskSetConfig(num_blocks=8, spatial_scale=[0.15, 0.15]), MaskSetConfig(num_blocks=2, spatial_scale=[0.7, 0.7])]


@dataclass
class PerceptionConfig:
    # --- input / tokenizer
    img_size: int = 64  # square crop, pixels
    num_frames: int = 16  # frames per training clip (inference accepts any multiple of tubelet_size)
    patch_size: int = 8
    tubelet_size: int = 2
    in_chans: int = 3
    # --- encoder (context encoder; the EMA target encoder has the same shape)
    hidden_size: int = 192
    depth: int = 6
    num_heads: int = 3
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path_rate: float = 0.0
    layer_norm_eps: float = 1e-6
    # --- predictor (narrow ViT over context + mask tokens)
    pred_hidden_size: int = 96
    pred_depth: int = 4
    pred_num_heads: int = 3
    pred_mlp_ratio: float = 4.0
    pred_num_mask_tokens: int = 10  # one learned mask token per mask set (reference: 10 slots)
    init_std: float = 0.02
    attn_implementation: str = "sdpa"  # "sdpa" | "eager": transformers' attention (unfused path, export)
    fused_rope: bool = True  # layers.py: RoPE tables once per pass + SDPA (same maths as the stock layers)
    grad_checkpointing: bool = False  # recompute layer activations in backward (large configs)
    # --- objective
    masks: list[MaskSetConfig] = field(default_factory=vjepa2_mask_sets)
    min_context: int = 4  # resample a clip's blocks if fewer context tokens remain
    loss_exp: float = 1.0  # 1.0: L1 (V-JEPA); 2.0: L2/2
    # Optional anti-collapse terms on the context encoder's outputs (VICReg, Bardes et al. 2022, as
    # C-JEPA, Mo & Tong 2024, adds them to I-JEPA): var_weight * mean(relu(1 - std_d)) +
    # cov_weight * sum of squared off-diagonal covariances / D. 0 = plain V-JEPA (the default).
    var_weight: float = 0.0
    cov_weight: float = 0.0
    # --- EMA target encoder: momentum goes linearly ema_start -> ema_end over ema_steps optimizer
    # steps (V-JEPA 1: 0.998 -> 1.0 over training; V-JEPA 2: constant 0.99925). ema_steps = 0 with
    # ema_start != ema_end means "over trainer.max_steps" (train.py fills it in).
    ema_start: float = 0.99925
    ema_end: float = 0.99925
    ema_steps: int = 0
    # --- collapse monitors (every monitor_every optimizer steps; 0 disables)
    monitor_every: int = 25
    monitor_tokens: int = 2048  # tokens sampled for the SVD
    collapse_min_std: float = 0.05  # mean per-dim std of layer-normed target features
    collapse_min_rank: float = 8.0  # effective rank (exp entropy of normalised singular values)
    # --- inference
    pool_per_step: bool = False  # publish [B, T', D] (mean over space) instead of [B, T'H'W', D]
    # Publish each time step's H'xW' patch grid average-pooled to pool_grid x pool_grid (0: off).
    # Keeps coarse layout (where things are) while cutting downstream cost: the world model's
    # block-causal attention and the language prefix scale with tokens per step.
    pool_grid: int = 0
    # --- object slots (objects.py): a DETR-style set predictor over the encoder tokens, published
    # as "objects" beside "percept". 0 slots: off. Trained by `cogarch train objects` on a frozen
    # encoder; the vocabularies name the classes its colour / shape / material logits stand for.
    object_slots: int = 0
    object_hidden: int = 128
    object_layers: int = 3  # decoder layers (self-attention over slots + cross-attention to tokens)
    object_heads: int = 4
    object_blocks: int = 0  # self-attention blocks over the tokens before the decoder (DETR's encoder)
    # Decoder layers of the per-step track readout (each slot reads each step's own tokens, which
    # are step-local only with object_blocks = 0); 0: the track comes from the clip-level slot
    # vector (v8), which smooths sudden changes away.
    object_step_layers: int = 0
    # Channels of the pixel branch (objects.py: a CNN on the frames, down to the patch grid, added
    # to the encoder tokens the slots read); 0: the slots read the encoder tokens only (v9 and earlier).
    object_pixels: int = 0
    object_colors: list[str] = field(default_factory=lambda: list(COLORS))
    object_shapes: list[str] = field(default_factory=lambda: list(SHAPES))
    object_materials: list[str] = field(default_factory=lambda: list(MATERIALS))
    # Static slots (objects.py): queries for the scene's walls, floor, ramps, ledges and occluder,
    # published after the object slots in rows 18 + len(object_static_kinds) + 4 wide. 0: none.
    object_statics: int = 0
    object_static_kinds: list[str] = field(default_factory=lambda: list(STATIC_KINDS))
    norm_mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    norm_std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))

    def validate(self) -> None:
        if self.img_size % self.patch_size:
            raise ConfigError(f"perception: img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        if self.num_frames > 1 and self.num_frames % self.tubelet_size:
            raise ConfigError(f"perception: num_frames {self.num_frames} is not a multiple of tubelet_size {self.tubelet_size}")
        if self.hidden_size % self.num_heads or self.pred_hidden_size % self.pred_num_heads:
            raise ConfigError("perception: hidden sizes must be multiples of their head counts")
        if (self.hidden_size // self.num_heads) < 6 or (self.pred_hidden_size // self.pred_num_heads) < 6:
            raise ConfigError("perception: head dim must be >= 6 (3-D RoPE splits it over t, h, w)")
        if not self.masks:
            raise ConfigError("perception: masks must list at least one mask set")
        if len(self.masks) > self.pred_num_mask_tokens:
            raise ConfigError(f"perception: {len(self.masks)} mask sets but only {self.pred_num_mask_tokens} mask tokens")
        for i, m in enumerate(self.masks):
            for key in ("spatial_scale", "temporal_scale", "aspect_ratio"):
                v = getattr(m, key)
                if len(v) != 2 or not 0 < v[0] <= v[1]:
                    raise ConfigError(f"perception: masks[{i}].{key} must be [lo, hi] with 0 < lo <= hi, got {list(v)}")
            if m.spatial_scale[1] >= 1.0 or m.temporal_scale[1] > 1.0 or m.num_blocks < 1:
                raise ConfigError(f"perception: masks[{i}] scales must be < 1 (spatial), <= 1 (temporal), num_blocks >= 1")
            if m.future < 0:
                raise ConfigError(f"perception: masks[{i}].future must be >= 0 (0 = block masks), got {m.future}")
        if any(m.future for m in self.masks) and self.grid[0] < 2:
            raise ConfigError("perception: future mask sets need at least 2 latent time steps (num_frames / tubelet_size >= 2)")
        if self.var_weight < 0 or self.cov_weight < 0:
            raise ConfigError("perception: var_weight and cov_weight must be >= 0")
        if not (0.0 < self.ema_start <= 1.0 and 0.0 < self.ema_end <= 1.0):
            raise ConfigError("perception: ema_start / ema_end must lie in (0, 1]")
        if self.attn_implementation not in ("sdpa", "eager"):
            raise ConfigError(f"perception: attn_implementation must be 'sdpa' or 'eager', got {self.attn_implementation!r}")
        if self.object_slots < 0 or (self.object_slots and (min(self.object_hidden, self.object_heads, self.object_layers) < 1
                                                             or self.object_hidden % self.object_heads or self.object_blocks < 0 or self.object_step_layers < 0
                                                             or self.object_pixels < 0)):
            raise ConfigError("perception: object_slots must be >= 0; object_hidden, object_heads, object_layers >= 1, "
                              "object_hidden a multiple of object_heads, object_blocks, object_step_layers and object_pixels >= 0")
        if self.object_slots and self.object_pixels and (self.patch_size < 2 or self.patch_size & (self.patch_size - 1)):
            raise ConfigError(f"perception: object_pixels needs a power-of-two patch_size, got {self.patch_size}")
        if self.object_statics < 0 or (self.object_statics and not (self.object_slots and self.object_static_kinds)):
            raise ConfigError("perception: object_statics must be >= 0, and static slots need object_slots > 0 "
                              "and a non-empty object_static_kinds")
        unknown = [k for k in self.object_static_kinds if k not in STATIC_KINDS]
        if unknown or len(set(self.object_static_kinds)) != len(self.object_static_kinds):
            raise ConfigError(f"perception: object_static_kinds must be distinct kinds of {list(STATIC_KINDS)} "
                              f"(got {self.object_static_kinds})")
        if self.object_slots and not (self.object_colors and self.object_shapes and self.object_materials):
            raise ConfigError("perception: object_colors / object_shapes / object_materials must not be empty")
        if len(self.norm_mean) != self.in_chans or len(self.norm_std) != self.in_chans:
            raise ConfigError("perception: norm_mean / norm_std need one value per input channel")

    # Derived grid sizes (tokens): T' x H' x W'.
    @property
    def grid(self) -> tuple[int, int, int]:
        t = max(1, self.num_frames // self.tubelet_size)
        g = self.img_size // self.patch_size
        return t, g, g

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w


def to_hf_config(cfg: PerceptionConfig):
    """The equivalent `transformers.VJEPA2Config` (attention implementation set explicitly)."""
    from transformers import VJEPA2Config

    hf = VJEPA2Config(
        patch_size=cfg.patch_size,
        crop_size=cfg.img_size,
        frames_per_clip=cfg.num_frames,
        tubelet_size=cfg.tubelet_size,
        hidden_size=cfg.hidden_size,
        in_chans=cfg.in_chans,
        num_attention_heads=cfg.num_heads,
        num_hidden_layers=cfg.depth,
        drop_path_rate=cfg.drop_path_rate,
        mlp_ratio=cfg.mlp_ratio,
        layer_norm_eps=cfg.layer_norm_eps,
        qkv_bias=cfg.qkv_bias,
        initializer_range=cfg.init_std,
        pred_hidden_size=cfg.pred_hidden_size,
        pred_num_attention_heads=cfg.pred_num_heads,
        pred_num_hidden_layers=cfg.pred_depth,
        pred_num_mask_tokens=cfg.pred_num_mask_tokens,
        pred_zero_init_mask_tokens=True,
        pred_mlp_ratio=cfg.pred_mlp_ratio,
    )
    hf.architectures = ["VJEPA2Model"]
    # Standalone VJEPA2 layers read config._attn_implementation; None would silently fall back to
    # the eager (materialised attention matrix) path.
    hf._attn_implementation = cfg.attn_implementation
    return hf


def from_hf_config(hf, base: PerceptionConfig | None = None) -> PerceptionConfig:
    """PerceptionConfig with the architecture of a `VJEPA2Config`; objective fields from `base`."""
    import dataclasses

    patch = hf.patch_size if isinstance(hf.patch_size, int) else int(hf.patch_size[0])
    arch = dict(
        img_size=int(hf.crop_size), num_frames=int(hf.frames_per_clip), patch_size=int(patch),
        tubelet_size=int(hf.tubelet_size), in_chans=int(hf.in_chans), hidden_size=int(hf.hidden_size),
        depth=int(hf.num_hidden_layers), num_heads=int(hf.num_attention_heads), mlp_ratio=float(hf.mlp_ratio),
        qkv_bias=bool(hf.qkv_bias), drop_path_rate=float(hf.drop_path_rate), layer_norm_eps=float(hf.layer_norm_eps),
        pred_hidden_size=int(hf.pred_hidden_size), pred_depth=int(hf.pred_num_hidden_layers),
        pred_num_heads=int(hf.pred_num_attention_heads), pred_mlp_ratio=float(hf.pred_mlp_ratio),
        pred_num_mask_tokens=int(hf.pred_num_mask_tokens), init_std=float(hf.initializer_range),
    )
    cfg = dataclasses.replace(base or PerceptionConfig(), **arch)
    cfg.validate()
    return cfg


def vjepa_tiny() -> PerceptionConfig:
    """CPU preset. The EMA runs faster than V-JEPA 2's 0.99925 because a CPU run is ~1e3 steps, not
    ~2e5: with m = 0.99925 the target would barely leave its initialisation (time constant 1333 steps)."""
    return PerceptionConfig(
        img_size=64, num_frames=16, patch_size=8, tubelet_size=2, hidden_size=192, depth=6, num_heads=3,
        pred_hidden_size=96, pred_depth=4, pred_num_heads=3, masks=vjepa2_mask_sets(),
        ema_start=0.99, ema_end=0.999, ema_steps=0,
    )


def _official(hidden: int, depth: int, heads: int, mlp_ratio: float = 4.0) -> PerceptionConfig:
    # V-JEPA 2 pretraining: 256 px, patch 16, tubelet 2, 64 frames (fpc64), predictor 384/12/12,
    # constant EMA 0.99925 (V-JEPA 2 paper, Sec. 2 / App. A).
    return PerceptionConfig(
        img_size=256, num_frames=64, patch_size=16, tubelet_size=2, hidden_size=hidden, depth=depth,
        num_heads=heads, mlp_ratio=mlp_ratio, pred_hidden_size=384, pred_depth=12, pred_num_heads=12,
        masks=vjepa2_mask_sets(), ema_start=0.99925, ema_end=0.99925, monitor_tokens=4096,
    )


def vjepa_vitl() -> PerceptionConfig:
    return _official(1024, 24, 16)


def vjepa_vith() -> PerceptionConfig:
    return _official(1280, 32, 16)


def vjepa_vitg() -> PerceptionConfig:
    # ViT-g/16 ("giant", Zhai et al. 2022 shape used by V-JEPA 2): MLP ratio 48/11 -> 6144 hidden units.
    return _official(1408, 40, 22, mlp_ratio=48 / 11)


def ijepa_tiny() -> PerceptionConfig:
    """Image mode: T = 1, tubelet 1; the same multi-block masks on a single frame."""
    cfg = vjepa_tiny()
    cfg.num_frames = 1
    cfg.tubelet_size = 1
    return cfg


BUILDERS = {"tiny": vjepa_tiny, "vitl": vjepa_vitl, "vith": vjepa_vith, "vitg": vjepa_vitg, "ijepa_tiny": ijepa_tiny}


def build_config(name: str) -> PerceptionConfig:
    if name not in BUILDERS:
        raise ConfigError(f"unknown perception preset {name!r}; known: {', '.join(BUILDERS)}")
    return BUILDERS[name]()
