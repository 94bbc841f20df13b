"""Render scenes to uint8 RGB frames with PIL ImageDraw (no per-pixel Python loops).

Each frame is drawn at `ss`x supersampling and box-downsampled, which anti-aliases ~10 px
objects so a square, a disc and a hexagon stay distinguishable at 64x64. The static background
(table or sky, walls, floor, ramps, ledges, planning goal/obstacles) is drawn once per clip and
copied per frame; the occluder screen is drawn last so objects behind it are hidden.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from cogarch.evals.world.sim import CANVAS, Scene, Static, Trajectory
from cogarch.evals.world.vocab import (
    AGENT_COLOR, BACKGROUND_SIDE, BACKGROUND_TABLE, COLORS, HIGHLIGHT, OCCLUDER_COLOR,
    OCCLUDER_EDGE, SHAPE_SIZE, STATIC_COLOR,
)


def _ring(c: tuple[int, int, int]) -> tuple[int, int, int]:
    """Cap ring colour of a cylinder: darker on light colours, lighter on dark ones (gray,
    green, brown, purple), so it stays visible on all eight."""
    lum = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
    if lum > 110:
        return tuple(int(v * 0.45) for v in c)
    return tuple(int(v + (255 - v) * 0.55) for v in c)


class Renderer:
    """Draws one scene at `size` x `size` pixels.

    `agent_ids` are drawn as the planning agent (white puck with a dark centre) instead of a
    vocabulary object; `goal` = (x, y, r) draws a goal ring into the background.
    """

    def __init__(self, scene: Scene, size: int = 64, ss: int = 2, agent_ids=(), goal=None):
        if size < 16 or size % 2:
            raise ValueError("render size must be an even number >= 16 (yuv420p needs even sizes)")
        self.scene, self.size, self.ss = scene, size, ss
        self.k = size * ss / CANVAS          # world unit -> supersampled pixel
        self.objs = {o.id: o for o in scene.objects}
        self.agent_ids = set(agent_ids)
        bg = BACKGROUND_TABLE if scene.family != "side" else BACKGROUND_SIDE
        self.bg = Image.new("RGB", (size * ss, size * ss), bg)
        d = ImageDraw.Draw(self.bg)
        if goal is not None:
            from cogarch.evals.world.vocab import GOAL_COLOR

            gx, gy, gr = (v * self.k for v in goal)
            d.ellipse((gx - gr, gy - gr, gx + gr, gy + gr), fill=(190, 230, 195),
                      outline=GOAL_COLOR, width=max(1, ss))
        for st in scene.statics:
            self._segment(d, st)

    def _segment(self, d: ImageDraw.ImageDraw, st: Static) -> None:
        (ax, ay), (bx, by) = st.a, st.b
        r = st.radius
        L = math.hypot(bx - ax, by - ay) or 1.0
        nx, ny = -(by - ay) / L * r, (bx - ax) / L * r
        k = self.k
        poly = [((ax + nx) * k, (ay + ny) * k), ((bx + nx) * k, (by + ny) * k),
                ((bx - nx) * k, (by - ny) * k), ((ax - nx) * k, (ay - ny) * k)]
        d.polygon(poly, fill=STATIC_COLOR)
        for cx, cy in ((ax, ay), (bx, by)):
            d.ellipse(((cx - r) * k, (cy - r) * k, (cx + r) * k, (cy + r) * k), fill=STATIC_COLOR)

    def _object(self, d: ImageDraw.ImageDraw, oid: int, x: float, y: float, a: float) -> None:
        o = self.objs[oid]
        k = self.k
        cx, cy = x * k, y * k
        s = SHAPE_SIZE[o.shape] * k
        if oid in self.agent_ids:
            d.ellipse((cx - s, cy - s, cx + s, cy + s), fill=AGENT_COLOR, outline=(20, 20, 20),
                      width=max(1, self.ss))
            q = s * 0.35
            d.ellipse((cx - q, cy - q, cx + q, cy + q), fill=(20, 20, 20))
            return
        col = COLORS[o.color]
        if o.shape == "sphere":
            d.ellipse((cx - s, cy - s, cx + s, cy + s), fill=col)
        elif o.shape == "cube":
            c, sn = math.cos(a), math.sin(a)
            pts = [(cx + s * (u * c - v * sn), cy + s * (u * sn + v * c))
                   for u, v in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
            d.polygon(pts, fill=col)
        else:  # cylinder: hexagon + dark inner ring (the cap)
            pts = [(cx + s * math.cos(a + math.pi / 3 * j), cy + s * math.sin(a + math.pi / 3 * j))
                   for j in range(6)]
            d.polygon(pts, fill=col)
            q = s * 0.55
            d.ellipse((cx - q, cy - q, cx + q, cy + q), outline=_ring(col), width=max(1, self.ss))
        if o.material == "metal":
            # Specular highlight: fixed light from the upper left, so it does not rotate.
            hx, hy, hr = cx - 0.38 * s, cy - 0.38 * s, 0.3 * s
            d.ellipse((hx - hr, hy - hr, hx + hr, hy + hr), fill=HIGHLIGHT)

    def frame(self, pos: np.ndarray, angle: np.ndarray, present: np.ndarray, ids: list[int]) -> np.ndarray:
        """pos [N,2], angle [N], present [N] of objects `ids` -> uint8 [H, W, 3]."""
        im = self.bg.copy()
        d = ImageDraw.Draw(im)
        for j, oid in enumerate(ids):
            if present[j]:
                self._object(d, oid, float(pos[j, 0]), float(pos[j, 1]), float(angle[j]))
        if self.scene.occluder is not None:
            x0, y0, x1, y1 = (v * self.k for v in self.scene.occluder)
            d.rectangle((x0, y0, x1, y1), fill=OCCLUDER_COLOR, outline=OCCLUDER_EDGE,
                        width=max(1, self.ss))
        if self.ss > 1:
            im = im.resize((self.size, self.size), Image.BOX)
        return np.asarray(im)

    def frames(self, traj: Trajectory, upto: int | None = None) -> np.ndarray:
        """All (or the first `upto`) frames of a trajectory -> uint8 [T, H, W, 3]."""
        T = traj.pos.shape[0] if upto is None else min(upto, traj.pos.shape[0])
        return np.stack([self.frame(traj.pos[t], traj.angle[t], traj.present[t], traj.ids)
                         for t in range(T)])
