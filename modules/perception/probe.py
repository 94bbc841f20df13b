"""Frozen-feature attentive probe: how much physics does a perception encoder's output carry?

    cogarch train probe --config configs/probe/tiny.yaml encoder=runs/perception/tiny/final
    cogarch train probe --config configs/probe/tiny.yaml encoder=random      # random-init baseline
    cogarch train probe --config configs/probe/tiny.yaml encoder=pixels      # the encoder's own input

The standard V-JEPA evaluation (Bardes et al. 2024, Sec. 4; V-JEPA 2 App.): the encoder is frozen,
its tokens [B, T'H'W', D] are read by a small attentive pooler (learned queries cross-attending to
all tokens, transformers' VJEPA2PoolerCrossAttentionLayer) and a linear classifier per target.
Here one pooler carries one query token PER TARGET (queries do not interact in cross-attention, so
each target has its own pooled vector and classifier, while the key/value projections are shared;
that makes probing 5 targets cost about one, which matters on a 2-core CPU).

Positions (`position=sincos`, default): the encoder's output tokens carry no explicit position
(V-JEPA 2 uses RoPE inside attention only), and cross-attention pooling is permutation-invariant,
so a probe without positions can read WHAT is in a clip but only indirectly WHERE and WHEN. The
probe adds a learned MLP map of a fixed 3-D sin-cos code of each token's (t, h, w) to its
keys/values (the same for every encoder probed). `position=none` is the plain pooler.

Blocks (`blocks=N`): N pre-norm self-attention blocks over the tokens before the pooler. V-JEPA 2's
attentive probe is 4 layers deep (3 self-attention blocks + the cross-attention pooler, V-JEPA 2
App. "attentive probe"); one cross-attention alone cannot first find an object and then compare
where it is early and late, which a direction needs. `blocks=0` is the single pooler.

`encoder=pixels` probes the encoder's own input: each token is its normalised 2 x p x p x 3 tubelet
of pixels, in the same (t', h', w') grid as the `random_arch` encoder's tokens. It says what the
probe can read when nothing is lost, the ceiling an encoder's features are measured against.

Targets are derived from the clips' ground truth (`objects` / `annotations` JSON, see
docs/vocabulary.md and evals/world/truth.py) over the frames the encoder sees:
  num_objects    objects visible in any observed frame                        (static)
  num_moving     objects whose in-view position moves > `move_px` px          (motion)
  fastest_color  colour of the object with the largest mean in-view speed     (motion)
  direction      8-way direction of the fastest object's displacement         (motion)
  collision      does an object-object collision happen in the observed frames (motion)
The probe trains on `train`, picks each target's epoch by `val` accuracy, reports `test` accuracy
(held-out clips) with the majority-class rate of the test split as the chance level.
Entry point for the registry: `Config` + `run(cfg, resume) -> Path` (results JSON).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from cogarch.errors import ConfigError, UserError
from cogarch.fsutil import atomic_path, atomic_write_json

log = logging.getLogger(__name__)

TARGETS = ("num_objects", "num_moving", "fastest_color", "direction", "collision")
MOTION_TARGETS = ("num_moving", "fastest_color", "direction", "collision")


@dataclass
class Config:
    encoder: str = "random"  # saved perception module | HF V-JEPA 2 folder | "random" | "pixels"
    random_arch: str = "tiny"  # builder for encoder=random (config.BUILDERS)
    data_dir: str = "data/physqa"
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    max_clips: int = 0  # per split, 0: all
    targets: list[str] = field(default_factory=lambda: list(TARGETS))
    move_px: float = 2.0
    pooler_heads: int = 4
    position: str = "sincos"  # "sincos": add a learned map of 3-D sin-cos token positions; "none"
    blocks: int = 0  # self-attention blocks before the pooler (V-JEPA 2's probe: 3)
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0
    encode_batch: int = 16
    # A folder for the extracted frozen features, keyed by encoder, data and splits: a second probe of
    # the same encoder (another probe seed, blocks or position) skips the extraction. "" = no cache.
    cache_dir: str = ""
    progress: bool = True  # progress bars (stderr) for feature extraction and the probe's epochs
    out: str = "runs/probe/results.json"

    def validate(self) -> None:
        bad = [t for t in self.targets if t not in TARGETS]
        if bad or not self.targets:
            raise ConfigError(f"probe: unknown targets {bad}; choose from {', '.join(TARGETS)}")
        if self.position not in ("sincos", "none"):
            raise ConfigError(f"probe: position must be 'sincos' or 'none', got {self.position!r}")
        if self.blocks < 0:
            raise ConfigError(f"probe: blocks must be >= 0, got {self.blocks}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("probe: epochs, batch_size must be >= 1 and lr > 0")


# ---------------------------------------------------------------------------------------- labels
def _direction8(dx: float, dy: float) -> str:
    # y points down in the world's image coordinates; report compass-style with up = north.
    ang = math.degrees(math.atan2(-dy, dx)) % 360.0
    return ("E", "NE", "N", "NW", "W", "SW", "S", "SE")[int(((ang + 22.5) % 360.0) // 45.0)]


def clip_targets(objects: list[dict], ann: dict, frames: int, move_px: float = 2.0) -> dict[str, str]:
    """Ground-truth labels of one clip over its first `frames` frames (strings; classes per target)."""
    obs = min(int(ann.get("observed_frames", frames)), frames)
    color = {int(o["id"]): o["color"] for o in objects}
    seen, moving, speed, disp = set(), 0, {}, {}
    for sid, tr in ann["tracks"].items():
        oid = int(sid)
        vis = np.asarray(tr["visible"][:obs], dtype=bool)
        view = np.asarray(tr["in_view"][:obs], dtype=bool)
        pos = np.asarray(tr["pos"][:obs], dtype=float)
        vel = np.asarray(tr["vel"][:obs], dtype=float)
        if vis.any():
            seen.add(oid)
        if view.sum() >= 2:
            p = pos[view]
            d = p[-1] - p[0]
            path = float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())
            if path > move_px:
                moving += 1
            speed[oid] = float(np.linalg.norm(vel[view], axis=1).mean())
            disp[oid] = (float(d[0]), float(d[1]))
    fastest = max(speed, key=lambda k: speed[k]) if speed else None
    coll = any(
        e.get("type") == "collision" and isinstance(e.get("a"), int) and isinstance(e.get("b"), int) and e["frame"] < obs
        for e in ann.get("events", [])
    )
    return {
        "num_objects": str(len(seen)),
        "num_moving": str(moving),
        "fastest_color": color.get(fastest, "none") if fastest is not None else "none",
        "direction": _direction8(*disp[fastest]) if fastest is not None and speed[fastest] > 0.5 else "still",
        "collision": "yes" if coll else "no",
    }


# ---------------------------------------------------------------------------------------- probe
def sincos_3d(grid: tuple[int, int, int], freqs: int = 8) -> torch.Tensor:
    """[T*H*W, 6 * freqs] sin-cos code of each token's (t, h, w), time-major like the encoder's tokens."""
    axes = torch.meshgrid(*(torch.arange(n, dtype=torch.float32) / max(1, n) for n in grid), indexing="ij")
    scales = 2.0 ** torch.arange(freqs, dtype=torch.float32) * math.pi  # [F]
    parts = []
    for a in axes:
        ang = a.flatten()[:, None] * scales  # [L, F]
        parts += [ang.sin(), ang.cos()]
    return torch.cat(parts, dim=-1)


class MultiQueryProbe(nn.Module):
    """One learned query per target cross-attends to frozen tokens; one linear classifier per target.

    grid: the tokens' (T', H', W') layout; given, a learned MLP of their sin-cos positions is
    added to the tokens before pooling (see the file docstring); None: no positions.
    blocks: pre-norm self-attention blocks (width 4x MLP, GELU) run over the tokens before pooling.
    """

    def __init__(self, dim: int, heads: int, classes: list[int], grid: tuple[int, int, int] | None = None,
                 blocks: int = 0) -> None:
        super().__init__()
        from transformers import VJEPA2Config
        from transformers.models.vjepa2.modeling_vjepa2 import VJEPA2PoolerCrossAttentionLayer

        if dim % heads:
            raise ConfigError(f"probe: pooler_heads {heads} does not divide the feature width {dim}")
        pcfg = VJEPA2Config(hidden_size=dim, num_attention_heads=heads, num_pooler_layers=0)
        pcfg._attn_implementation = "sdpa"
        self.queries = nn.Parameter(torch.randn(1, len(classes), dim) * 0.02)
        self.cross = VJEPA2PoolerCrossAttentionLayer(pcfg)
        self.heads = nn.ModuleList([nn.Linear(dim, c) for c in classes])
        if grid is not None:
            self.register_buffer("pos_code", sincos_3d(grid), persistent=False)  # [N, 6F]
            # An MLP, not a linear map: reading a direction needs features like "row x sign(t - T/2)"
            # (where an object is early vs late), products of position codes a linear map cannot form.
            self.pos_proj = nn.Sequential(nn.Linear(self.pos_code.shape[1], 64), nn.GELU(), nn.Linear(64, dim))
            nn.init.normal_(self.pos_proj[2].weight, std=0.02)
            nn.init.zeros_(self.pos_proj[2].bias)
        else:
            self.pos_proj = None
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
            for _ in range(blocks)
        )

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """tokens [B, N, D] -> logits per target [B, C_k]."""
        if self.pos_proj is not None:
            if tokens.shape[1] != self.pos_code.shape[0]:
                raise UserError(f"probe: {tokens.shape[1]} tokens per clip, but the position grid has {self.pos_code.shape[0]}")
            tokens = tokens + self.pos_proj(self.pos_code)  # [B, N, D]
        for block in self.blocks:
            tokens = block(tokens)  # [B, N, D]
        q = self.queries.expand(tokens.shape[0], -1, -1)
        pooled = self.cross(q, tokens)[0]  # [B, K, D]
        return [head(pooled[:, k]) for k, head in enumerate(self.heads)]


class PixelTubelets(nn.Module):
    """The `encoder=pixels` baseline: tokens are the raw (normalised) tubelets the encoder embeds."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config

    def encode(self, frames: torch.Tensor, normalized: bool = True) -> torch.Tensor:
        """frames [B, T, 3, H, W] -> [B, T'*H'*W', tubelet*p*p*3], (t', h', w') row-major like encode()."""
        if not normalized:
            raise UserError("probe: the pixels baseline reads the data set's normalised frames")
        c = self.config
        tt, p = c.tubelet_size, c.patch_size
        if frames.shape[1] < tt:  # one image: repeated to fill a tubelet, as the encoder's embedding does
            frames = frames.repeat(1, tt, 1, 1, 1)
        B, T, C, H, W = frames.shape
        x = frames.reshape(B, T // tt, tt, C, H // p, p, W // p, p)
        x = x.permute(0, 1, 4, 6, 2, 3, 5, 7)  # [B, T', H', W', tt, C, p, p]
        return x.reshape(B, (T // tt) * (H // p) * (W // p), tt * C * p * p)


def load_encoder(spec: str, random_arch: str = "tiny", seed: int = 0):
    from cogarch.modules.perception.config import build_config
    from cogarch.modules.perception.hf_interop import is_hf_folder, load_hf_pretrained
    from cogarch.modules.perception.model import PerceptionModule

    if spec == "pixels":
        return PixelTubelets(build_config(random_arch))
    if spec == "random":
        torch.manual_seed(seed)
        return PerceptionModule(build_config(random_arch))
    path = Path(spec)
    if is_hf_folder(path):
        return load_hf_pretrained(path)
    if not path.is_dir():
        raise UserError(f"probe: encoder {spec!r} is neither 'random', 'pixels' nor a folder")
    if (path / "state.json").is_file() and not (path / "config.json").is_file():
        return _from_training_checkpoint(path)
    return PerceptionModule.from_pretrained(path)


def _from_training_checkpoint(path: Path):
    """A trainer checkpoint folder (checkpoints/step_N: model.safetensors + state.json with the run config)."""
    from cogarch.config import from_dict
    from cogarch.module import load_weights
    from cogarch.modules.perception.config import PerceptionConfig
    from cogarch.modules.perception.model import PerceptionModule

    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        model_cfg = state["config"]["model"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise UserError(f"{path / 'state.json'}: not a perception training checkpoint ({e})") from None
    model = PerceptionModule(from_dict(PerceptionConfig, model_cfg, origin=str(path / "state.json")))
    load_weights(model, path)
    model._step = int(state.get("step", 0))
    return model


@torch.no_grad()
def extract(encoder, data_dir: str, split: str, max_clips: int, batch: int, move_px: float, progress: bool = False):
    """Frozen target-encoder tokens [N, L, D] (fp16) and label dicts of one split."""
    from cogarch.modules.perception.data import ClipDataset

    c = encoder.config
    ds = ClipDataset(data_dir, split, c.num_frames, c.img_size, max_clips=max_clips, cache=True, with_index=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=False)
    feats = []
    for b in tqdm(loader, desc=f"probe features {split}", disable=not progress):
        feats.append(encoder.encode(b["frames"], normalized=True).to(torch.float16))
    labels = [clip_targets(ds.objects(i), ds.annotations(i), c.num_frames, move_px) for i in range(len(ds))]
    return torch.cat(feats), labels


# Bump when what a cached file holds changes (extraction, labels): old caches then miss.
CACHE_VERSION = 1


def _files_stamp(folder: Path, pattern: str) -> list:
    """(name, size, mtime) of the files under `folder` matching `pattern`: changes when they are rewritten."""
    return sorted((str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns)
                  for f in folder.glob(pattern) if f.is_file())


def _cache_file(cfg: Config, split: str) -> Path | None:
    """The cache file of one split's features, or None without a cache_dir.

    The key names everything the features depend on: the encoder (a folder by its resolved path and
    the size and mtime of each of its files, so a retrained or reconfigured encoder misses; random and
    pixels by their builder and, for random, the init seed), the data (the split's Arrow files and
    state, so regenerated clips miss), the clip limit, the move threshold (labels are cached with the
    features) and CACHE_VERSION.
    """
    if not cfg.cache_dir:
        return None
    enc = cfg.encoder
    if enc in ("random", "pixels"):
        key_enc = [enc, cfg.random_arch, cfg.seed if enc == "random" else None]
    else:
        path = Path(enc).resolve()
        key_enc = [str(path), _files_stamp(path, "*") if path.is_dir() else None]
    data = Path(cfg.data_dir).resolve()
    key = json.dumps([CACHE_VERSION, key_enc, str(data), _files_stamp(data / "clips" / split, "*"), split,
                      cfg.max_clips, cfg.move_px])
    return Path(cfg.cache_dir) / f"probe_features_{hashlib.sha256(key.encode()).hexdigest()[:16]}.safetensors"


def _write_cache(path: Path, feats: torch.Tensor, labels: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({"features": feats.contiguous()}, tmp, metadata={"labels": json.dumps(labels)})


def _read_cache(path: Path) -> tuple[torch.Tensor, list[dict]]:
    try:
        with safe_open(str(path), "pt") as f:
            return f.get_tensor("features"), json.loads(f.metadata()["labels"])
    except (OSError, ValueError, KeyError, SafetensorError) as e:
        raise UserError(f"probe feature cache {path} is unreadable ({e.__class__.__name__}); delete it") from None


def _correct(probe: MultiQueryProbe, x: torch.Tensor, ys: torch.Tensor, batch: int) -> torch.Tensor:
    """[N, targets] bool: is the probe's argmax right on each clip (an unseen class, -1, never is)."""
    probe.eval()
    rows = []
    with torch.no_grad():
        for s in range(0, x.shape[0], batch):
            logits = probe(x[s : s + batch].float())
            rows.append(torch.stack([lg.argmax(-1) == ys[s : s + batch, k] for k, lg in enumerate(logits)], dim=1))
    probe.train()
    return torch.cat(rows) if rows else torch.zeros(0, ys.shape[1], dtype=torch.bool)


def run(cfg: Config, resume: bool = False) -> Path:
    """Extract frozen features, train the probe, write results JSON; returns its path."""
    cfg.validate()
    t0 = time.perf_counter()
    encoder = load_encoder(cfg.encoder, cfg.random_arch, cfg.seed).eval()
    splits = {"train": cfg.train_split, "val": cfg.val_split, "test": cfg.test_split}
    feats, labels = {}, {}
    for role, sp in splits.items():
        cache = _cache_file(cfg, sp)
        if cache is not None and cache.exists():
            feats[role], labels[role] = _read_cache(cache)
            if feats[role].shape[0] != len(labels[role]):
                raise UserError(f"probe feature cache {cache} holds {feats[role].shape[0]} clips but "
                                f"{len(labels[role])} labels; delete it")
            log.info("probe: %s features %s from %s", sp, tuple(feats[role].shape), cache)
            continue
        feats[role], labels[role] = extract(encoder, cfg.data_dir, sp, cfg.max_clips, cfg.encode_batch, cfg.move_px,
                                            cfg.progress)
        if cache is not None:
            _write_cache(cache, feats[role], labels[role])
        log.info("probe: %s features %s", sp, tuple(feats[role].shape))
    t_feat = time.perf_counter() - t0
    classes = {t: sorted({lab[t] for lab in labels["train"]}) for t in cfg.targets}

    def encode_labels(rows: list[dict]) -> torch.Tensor:  # unseen class -> -1 (always wrong)
        return torch.tensor([[classes[t].index(r[t]) if r[t] in classes[t] else -1 for t in cfg.targets] for r in rows])

    y = {role: encode_labels(labels[role]) for role in splits}
    torch.manual_seed(cfg.seed)
    grid = tuple(encoder.config.grid)  # (T', H', W'): the order of encode()'s tokens
    probe = MultiQueryProbe(feats["train"].shape[-1], cfg.pooler_heads, [max(2, len(classes[t])) for t in cfg.targets],
                            grid if cfg.position == "sincos" else None, cfg.blocks)
    opt = torch.optim.AdamW(probe.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = feats["train"].shape[0]
    steps = cfg.epochs * math.ceil(n / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.1)
    best = {t: {"val": -1.0, "test": 0.0, "epoch": -1} for t in cfg.targets}
    best_correct: dict[str, str] = {}  # per target, the test clips' right/wrong at the chosen epoch
    gen = torch.Generator().manual_seed(cfg.seed)
    bar = tqdm(range(cfg.epochs), desc="probe epochs", disable=not cfg.progress)
    for epoch in bar:
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, cfg.batch_size):
            idx = perm[s : s + cfg.batch_size]
            logits = probe(feats["train"][idx].float())
            loss = sum(F.cross_entropy(lg, y["train"][idx, k]) for k, lg in enumerate(logits)) / len(logits)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        ok_test = _correct(probe, feats["test"], y["test"], 256)
        acc_val = _correct(probe, feats["val"], y["val"], 256).float().mean(0).tolist()
        acc_test = ok_test.float().mean(0).tolist()
        for k, t in enumerate(cfg.targets):
            if acc_val[k] > best[t]["val"]:
                best[t] = {"val": acc_val[k], "test": acc_test[k], "epoch": epoch}
                best_correct[t] = "".join("1" if b else "0" for b in ok_test[:, k].tolist())
        log.info("probe epoch %d: loss %.4f val %s", epoch, float(loss.detach()), [round(a, 3) for a in acc_val])
        bar.set_postfix(loss=round(float(loss.detach()), 4), val=" ".join(f"{a:.2f}" for a in acc_val))
    results = {"encoder": cfg.encoder, "data_dir": cfg.data_dir, "splits": splits,
               "n": {role: int(feats[role].shape[0]) for role in splits}, "targets": {},
               "feature_shape": list(feats["train"].shape[1:]), "seconds": {"features": round(t_feat, 1),
               "total": round(time.perf_counter() - t0, 1)}, "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}}
    for k, t in enumerate(cfg.targets):
        test_labels = [r[t] for r in labels["test"]]
        majority = max(test_labels.count(c) for c in set(test_labels)) / len(test_labels)
        results["targets"][t] = {**{kk: round(v, 4) if isinstance(v, float) else v for kk, v in best[t].items()},
                                 "chance_majority": round(majority, 4), "classes": classes[t],
                                 "motion": t in MOTION_TARGETS,
                                 # one character per test clip, in split order: lets two encoders'
                                 # probes be compared clip by clip (McNemar), evals/bench/probe_compare.py
                                 "test_correct": best_correct[t]}
    out = Path(cfg.out)
    atomic_write_json(out, results)
    print(json.dumps({t: (r["test"], r["chance_majority"]) for t, r in results["targets"].items()}))
    return out
