"""Random scene samplers for the two families, driven only by a numpy Generator (determinism).

table — top-down (CLEVRER-like): no gravity, linear damping so objects slide in, collide and
        stop; some objects enter from the edges, some leave the view; optional walls.
side  — side view: gravity, a floor, optional side walls, a ramp, a ledge (objects may fall off
        it), dropped objects, rollers, a small stack, and an occluder screen (IntPhys-like).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cogarch.evals.world.sim import CANVAS, ObjSpec, Scene, Static, seg_distance
from cogarch.evals.world.vocab import COLORS, MATERIALS, OOD_COMBOS, SHAPE_SIZE, SHAPES


@dataclass
class SceneConfig:
    min_objects: int = 3
    max_objects: int = 5
    observed_frames: int = 16
    future_frames: int = 16
    fps: float = 8.0
    substeps: int = 4
    ood: bool = False            # use (and require) held-out (color, shape) combinations
    side_prob: float = 0.5       # probability of the side family (else table)

    @property
    def num_frames(self) -> int:
        return self.observed_frames + self.future_frames


def sample_attributes(rng: np.random.Generator, n: int, ood: bool) -> list[tuple[str, str, str]]:
    """n distinct (color, shape, material) triples; OOD combos excluded, or one forced if ood."""
    colors, out = list(COLORS), []
    held = set(OOD_COMBOS)
    if ood:
        c, s = OOD_COMBOS[int(rng.integers(len(OOD_COMBOS)))]
        out.append((c, s, MATERIALS[int(rng.integers(2))]))
    while len(out) < n:
        c = colors[int(rng.integers(len(colors)))]
        s = SHAPES[int(rng.integers(len(SHAPES)))]
        m = MATERIALS[int(rng.integers(2))]
        if (not ood and (c, s) in held) or (c, s, m) in out:
            continue
        out.append((c, s, m))
    order = rng.permutation(n)
    return [out[i] for i in order]


def _free(x: float, y: float, r: float, placed: list[tuple[float, float, float]], gap: float = 1.5,
          statics: list[Static] = ()) -> bool:
    """No overlap with placed objects (x, y, r) nor with static segments (pymunk would otherwise
    resolve the overlap with a violent push at frame 1)."""
    return (all(math.hypot(x - px, y - py) > r + pr + gap for px, py, pr in placed)
            and all(seg_distance((x, y), st.a, st.b) > r + st.radius + 0.3 for st in statics))


def outer_radius(shape: str) -> float:
    return SHAPE_SIZE[shape] * (1.42 if shape == "cube" else 1.0)


def sample_table(rng: np.random.Generator, cfg: SceneConfig) -> Scene:
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    attrs = sample_attributes(rng, n, cfg.ood)
    statics: list[Static] = []
    sides = rng.permutation(4)[: int(rng.choice([0, 1, 1, 2]))]
    for k, side in enumerate(sides):
        lo, hi = float(rng.uniform(4, 16)), float(rng.uniform(48, 60))
        if side == 0:
            a, b = (4.0, lo), (4.0, hi)
        elif side == 1:
            a, b = (60.0, lo), (60.0, hi)
        elif side == 2:
            a, b = (lo, 4.0), (hi, 4.0)
        else:
            a, b = (lo, 60.0), (hi, 60.0)
        statics.append(Static(f"wall{k}", "wall", a, b, 1.5))
    placed: list[tuple[float, float, float]] = []
    objs: list[ObjSpec] = []
    roles = ["rest"] * n
    n_move = int(rng.integers(1, max(2, n - 1) + 1))
    for i in rng.permutation(n)[:n_move]:
        roles[i] = "enter" if rng.random() < 0.35 else "move"
    # Resting/moving objects first (inside), enterers afterwards (outside the view).
    for i in sorted(range(n), key=lambda i: roles[i] == "enter"):
        c, s, m = attrs[i]
        r = outer_radius(s)
        for _ in range(60):
            if roles[i] == "enter":
                side = int(rng.integers(4))
                u = float(rng.uniform(12, 52))
                x, y = [(-r - 1, u), (CANVAS + r + 1, u), (u, -r - 1), (u, CANVAS + r + 1)][side]
            else:
                x, y = (float(v) for v in rng.uniform(10, 54, size=2))
            if _free(x, y, r, placed, 2.0, statics):
                break
        placed.append((x, y, r))
        objs.append(ObjSpec(i, c, s, m, x, y, angle=float(rng.uniform(0, math.pi))))
    objs.sort(key=lambda o: o.id)
    for o in objs:
        if roles[o.id] == "rest":
            continue
        others = [p for p in objs if p.id != o.id]
        if others and rng.random() < 0.75:
            tgt = others[int(rng.integers(len(others)))]
            tx, ty = tgt.x + rng.normal(0, 4), tgt.y + rng.normal(0, 4)
        else:
            tx, ty = (float(v) for v in rng.uniform(8, 56, size=2))
        d = math.hypot(tx - o.x, ty - o.y) or 1.0
        speed = float(rng.uniform(22, 45) if roles[o.id] == "move" else rng.uniform(32, 50))
        o.vx, o.vy = speed * (tx - o.x) / d, speed * (ty - o.y) / d
        o.omega = float(rng.normal(0, 1.0))
    return Scene("table", objs, statics, None, gravity=0.0, damping=0.45, fps=cfg.fps,
                 substeps=cfg.substeps, num_frames=cfg.num_frames)


FLOOR_Y = 60.0


def sample_side(rng: np.random.Generator, cfg: SceneConfig) -> Scene:
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    attrs = sample_attributes(rng, n, cfg.ood)
    statics = [Static("floor", "floor", (-30.0, FLOOR_Y), (CANVAS + 30.0, FLOOR_Y), 2.0)]
    if rng.random() < 0.35:
        statics.append(Static("wall0", "wall", (2.0, 20.0), (2.0, FLOOR_Y), 1.5))
    if rng.random() < 0.35:
        statics.append(Static("wall1", "wall", (62.0, 20.0), (62.0, FLOOR_Y), 1.5))
    left = rng.random() < 0.5
    feature = rng.choice(["ramp", "ledge", "none"], p=[0.4, 0.4, 0.2])
    slots: list[tuple[str, float, float]] = []   # (role, x, y) candidate starts
    if feature == "ramp":
        top_y = float(rng.uniform(26, 36))
        a, b = ((-4.0, top_y), (28.0, FLOOR_Y - 1)) if left else ((68.0, top_y), (36.0, FLOOR_Y - 1))
        statics.append(Static("ramp0", "ramp", a, b, 1.5))
        x0 = 5.0 if left else 59.0
        slope_y = a[1] + (b[1] - a[1]) * (x0 - a[0]) / (b[0] - a[0])
        slots.append(("ramp", x0, slope_y - 8.0))
    elif feature == "ledge":
        ly = float(rng.uniform(30, 40))
        lx = float(rng.uniform(18, 28))
        a, b = ((-10.0, ly), (lx, ly)) if left else ((CANVAS + 10.0, ly), (CANVAS - lx, ly))
        statics.append(Static("ledge0", "ledge", a, b, 1.5))
        # 0.5 units above the surface: clear of the segment for _free, settles in a frame.
        slots.append(("ledge", (lx - 12.0) if left else (CANVAS - lx + 12.0), ly - 2.0))
    occluder = None
    if rng.random() < 0.5:
        cx = float(rng.uniform(26, 40))
        occluder = (cx - 7.0, float(rng.uniform(34, 44)), cx + 7.0, FLOOR_Y - 0.5)
    placed: list[tuple[float, float, float]] = []
    objs: list[ObjSpec] = []
    for i in range(n):
        c, s, m = attrs[i]
        r = outer_radius(s)
        role = slots.pop(0) if slots else None
        for _ in range(60):
            kind = role[0] if role else str(rng.choice(["drop", "roll", "drop", "stack"]))
            if kind == "ramp":
                x, y, vx = role[1], role[2] - r, 0.0
            elif kind == "ledge":
                x, y = role[1], role[2] - r
                vx = float(rng.uniform(10, 40)) * (1 if left else -1)
            elif kind == "roll":
                x, y = float(rng.uniform(12, 52)), FLOOR_Y - 2.0 - r - 0.2
                vx = float(rng.uniform(15, 45)) * (1 if rng.random() < 0.5 else -1)
            elif kind == "stack":
                x, y, vx = float(rng.uniform(14, 50)), FLOOR_Y - 2.0 - r - 0.2, 0.0
            else:
                x, y = float(rng.uniform(10, 54)), float(rng.uniform(5, 22))
                vx = float(rng.normal(0, 12))
            if _free(x, y, r, placed, statics=[st for st in statics if st.kind != "floor"]):
                break
            role = None
        placed.append((x, y, r))
        objs.append(ObjSpec(i, c, s, m, x, y, vx=vx))
    return Scene("side", objs, statics, occluder, gravity=120.0, damping=0.9, fps=cfg.fps,
                 substeps=cfg.substeps, num_frames=cfg.num_frames)


def sample_scene(rng: np.random.Generator, cfg: SceneConfig, family: str | None = None) -> Scene:
    fam = family or ("side" if rng.random() < cfg.side_prob else "table")
    return sample_side(rng, cfg) if fam == "side" else sample_table(rng, cfg)
