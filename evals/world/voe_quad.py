"""voe_quad: IntPhys-balanced violation-of-expectation quadruplets (Riochet et al., "IntPhys", 2018/2021).

Matched pairs (voe.py) leak: the impossible twin of a permanence or gravity clip simply moves less,
so "the stiller clip is impossible" scores 100 % on those types without any physics. IntPhys
fixes this by building each test item from FOUR clips, two possible (P1, P2) and two impossible
(I1, I2), such that every single frame (or every scene element, and every trajectory) occurs
equally often among the possible and the impossible clips. Only the *combination* over time, or
of trajectory with scene, is impossible. A per-clip statistic that SUMS over frames (total motion,
time present) is then equal over {P1, P2} and {I1, I2}. Other statistics are not guaranteed 50 %
in the cross comparisons (each impossible vs each possible clip): the largest pixel change of a
clip ties I1 with P1 where P1 holds it, and where the impossible object crosses a wall or shelf
its pixel change is a little lower (docs/benchmarks.md, "Balanced VoE quadruplets").

Two constructions, both from one seeded scene:
  temporal splice (permanence, continuity, inertia): P1 is simulated, P2 is the same scene with
    the hero's whole trajectory changed in a physically valid way; I1 = P1 before frame f then
    P2, I2 = P2 before f then P1. The frames of {I1, I2} are exactly those of {P1, P2}.
      permanence  P2: the hero is absent. I1: it vanishes while fully hidden behind the
                  occluder; I2: it appears from behind the occluder without having entered.
      continuity  P2: the hero's path translated sideways (the table has no boundary, so a
                  translated free slide is as lawful as the original). I1/I2 jump at f, while
                  the hero is hidden behind the occluder on both paths: it goes in on one line
                  and comes out on a parallel one.
      inertia     P2: the hero's path rotated about its position at frame f-1 (friction on the
                  table is isotropic, so a rotated slide is lawful; the body keeps its
                  orientation). I1/I2 turn at f without cause, in view.
  factorial 2x2 (solidity, gravity): a scene element x a trajectory.
      solidity    {wall, no wall} x {bounces off the wall, slides straight}: possible are
                  (wall, bounce) and (no wall, straight); impossible (wall, straight: passes
                  through it) and (no wall, bounce: rebounds off nothing).
      gravity     {shelf, no shelf} x {rests, falls}: the hero starts at rest on / where a
                  shelf is. Possible (shelf, rests) and (no shelf, falls); impossible (no shelf,
                  rests: floats unsupported) and (shelf, falls: drops through its support).
The hero never touches another object in any of the four clips (resampled otherwise), so the
other objects' trajectories are identical in all four.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from cogarch.evals.world.scenes import SceneConfig, outer_radius, sample_attributes
from cogarch.evals.world.sim import ObjSpec, Scene, Static, Trajectory, simulate
from cogarch.evals.world.truth import in_view, visible
from cogarch.evals.world.vocab import SHAPE_SIZE
from cogarch.evals.world.voe import (GRAVITY, floor_segment, group_task, hero_contacts_after,
                                     park_on_floor, violation_scene, write_group)

ROLES = ("P1", "P2", "I1", "I2")   # possible, possible, impossible, impossible


def _splice(a: Trajectory, b: Trajectory, j: int, f: int) -> Trajectory:
    """`a`, with object slot j's state from frame f on taken from `b`."""
    out = a.copy()
    for name in ("pos", "vel", "angle", "omega", "present"):
        getattr(out, name)[f:, j] = getattr(b, name)[f:, j]
    return out


def _moved_spec(spec: ObjSpec, t: Trajectory, j: int) -> ObjSpec:
    """The hero's initial ObjSpec matching frame 0 of trajectory t (for the clip's objects row)."""
    return dataclasses.replace(spec, x=float(t.pos[0, j, 0]), y=float(t.pos[0, j, 1]),
                               vx=float(t.vel[0, j, 0]), vy=float(t.vel[0, j, 1]),
                               angle=float(t.angle[0, j]))


def _clear(scene: Scene, t: Trajectory, j: int, margin: float = 1.0) -> bool:
    """Object slot j keeps `margin` between its outer radius and every other object's, at every
    frame where both exist. An EDITED path (shifted or rotated, never simulated) must pass it, or
    the hero could overlap another object without a collision."""
    radius = {o.id: outer_radius(o.shape) for o in scene.objects}
    for k, oid in enumerate(t.ids):
        if k == j:
            continue
        d = np.linalg.norm(t.pos[:, k] - t.pos[:, j], axis=-1)
        both = t.present[:, k] & t.present[:, j]
        if (d[both] < radius[t.ids[j]] + radius[oid] + margin).any():
            return False
    return True


def _with_hero(scene: Scene, spec: ObjSpec) -> Scene:
    return dataclasses.replace(scene, objects=[spec if o.id == spec.id else o for o in scene.objects])


def _continuity_setup(rng: np.random.Generator, cfg: SceneConfig):
    """(scene, P1, P2, f, info) or None: P2 is P1's path shifted sideways by `jump`; the hero is
    fully hidden behind a wide occluder at frames f-1 and f on both paths, and seen before and
    after on both. The splice at f is then invisible: the hero goes in on one line and comes out
    on a parallel one (IntPhys O3 hides its discontinuity the same way, so that no pixel
    transient gives it away)."""
    scene, oid = violation_scene("permanence", rng, cfg)
    hero = scene.objects[0]
    sp = math.hypot(hero.vx, hero.vy)
    amt = float(rng.choice([-1, 1])) * float(rng.uniform(8, 12))
    jump = np.array([-hero.vy / sp * amt, hero.vx / sp * amt])
    # The two parallel lines straddle the centre, both inside the hidden band of the occluder.
    hero = dataclasses.replace(hero, x=hero.x - jump[0] / 2, y=hero.y - jump[1] / 2)
    scene = dataclasses.replace(scene, objects=[hero] + scene.objects[1:], occluder=(16.0, 16.0, 48.0, 48.0))
    p1 = simulate(scene)
    j = p1.slot(oid)
    p2 = p1.copy()
    p2.pos[:, j] += jump
    view1, view2 = in_view(scene, p1), in_view(scene, p2)
    v1, v2 = visible(scene, p1, view1)[:, j], visible(scene, p2, view2)[:, j]
    h1, h2 = view1[:, j] & ~v1, view2[:, j] & ~v2
    ok = [t for t in range(2, len(h1)) if h1[t - 1] and h1[t] and h2[t - 1] and h2[t]
          and v1[:t].any() and v2[:t].any() and v1[t:].any() and v2[t:].any()]
    if not ok:
        return None
    f = int(rng.choice(ok))
    if hero_contacts_after(p1, oid, 0):
        return None
    return scene, p1, p2, f, {"jump": np.round(jump, 3).tolist()}


def _permanence_setup(rng: np.random.Generator, cfg: SceneConfig):
    """(scene, P1, P2, f, info) or None: P2 is the scene without the hero; f is the first frame at
    which P1's hero is fully hidden behind the occluder (it comes out again later)."""
    scene, oid = violation_scene("permanence", rng, cfg)
    p1 = simulate(scene)
    j = p1.slot(oid)
    if hero_contacts_after(p1, oid, 0):
        return None
    view = in_view(scene, p1)
    vis = visible(scene, p1, view)
    hidden = np.nonzero(view[:, j] & ~vis[:, j])[0]
    if not len(hidden) or hidden[0] < 2 or not vis[hidden[0]:, j].any():
        return None
    p2 = p1.copy()
    p2.present[:, j] = False
    return scene, p1, p2, int(hidden[0]), {}


def _inertia_setup(rng: np.random.Generator, cfg: SceneConfig):
    """(scene, P1, P2, f, info) or None: P2 is P1's slide rotated about the hero's position at
    frame f-1; the turn is in view on both paths."""
    scene, oid = violation_scene("inertia", rng, cfg)
    p1 = simulate(scene)
    T, j = p1.pos.shape[0], p1.slot(oid)
    if hero_contacts_after(p1, oid, 0):
        return None
    view = in_view(scene, p1)
    moving = np.nonzero((np.hypot(p1.vel[:, j, 0], p1.vel[:, j, 1]) > 5) & view[:, j])[0]
    if len(moving) < 6 or moving[-1] < 4:
        return None
    f = int(rng.integers(3, min(T - 3, int(moving[-1])) + 1))
    turn = float(rng.choice([-1, 1])) * float(rng.uniform(math.pi / 3, 2 * math.pi / 3))
    c, s = math.cos(turn), math.sin(turn)
    rot = np.array([[c, -s], [s, c]])
    x = p1.pos[f - 1, j].copy()
    p2 = p1.copy()
    p2.pos[:, j] = x + (p1.pos[:, j] - x) @ rot.T
    p2.vel[:, j] = p1.vel[:, j] @ rot.T
    # The body keeps its orientation: a sliding, non-spinning body that touches nothing moves the
    # same whatever way it faces, and a rotated body would make I1/I2 spin at f, a second cue
    # beside the turn.
    seen = slice(f - 1, f + 2)
    if not (view[seen, j].all() and in_view(scene, p2)[seen, j].all()):
        return None
    return scene, p1, p2, f, {"turn": round(turn, 4)}


SPLICE_SETUPS = {"permanence": _permanence_setup, "continuity": _continuity_setup, "inertia": _inertia_setup}


def _splice_quad(kind: str, rng: np.random.Generator, cfg: SceneConfig):
    """permanence / continuity / inertia: P1 simulated, P2 = a lawful variant, I = cross splices."""
    got = SPLICE_SETUPS[kind](rng, cfg)
    if got is None:
        return None
    scene, p1, p2, f, info = got
    oid = scene.objects[0].id                      # violation_scene puts the hero first
    j = p1.slot(oid)
    if not _clear(scene, p2, j):
        return None
    # P2's objects row starts where its (edited) path starts; an absent hero keeps P1's.
    scene2 = scene if kind == "permanence" else _with_hero(scene, _moved_spec(scene.objects[0], p2, j))
    clips = [(scene, p1), (scene2, p2), (scene, _splice(p1, p2, j, f)), (scene2, _splice(p2, p1, j, f))]
    return clips, oid, f, info


def _solidity_quad(rng: np.random.Generator, cfg: SceneConfig):
    scene_w, oid = violation_scene("solidity", rng, cfg)
    scene_n = dataclasses.replace(scene_w, statics=[])
    bounce, straight = simulate(scene_w), simulate(scene_n)
    j = bounce.slot(oid)
    hits = [e["frame"] for e in bounce.events if e["type"] == "collision" and e["a"] == oid and e["b"] == "wall0"]
    if not hits or hits[0] < 2 or hero_contacts_after(bounce, oid, 0) or hero_contacts_after(straight, oid, 0):
        return None
    if not (_clear(scene_w, straight, j) and _clear(scene_w, bounce, j)):
        return None
    others = [k for k in range(len(bounce.ids)) if k != j]
    if not np.allclose(bounce.pos[:, others], straight.pos[:, others]):
        return None
    # A rebound off a wall that is not there has no collision to record.
    ghost = bounce.copy()
    ghost.events = [e for e in bounce.events if e.get("b") != "wall0"]
    clips = [(scene_w, bounce), (scene_n, straight), (scene_w, straight), (scene_n, ghost)]
    return clips, oid, int(hits[0]), {"variants": ["wall+bounce", "open+straight", "wall+straight", "open+bounce"]}


def _gravity_quad(rng: np.random.Generator, cfg: SceneConfig):
    attrs = sample_attributes(rng, 1 + int(rng.integers(0, 3)), cfg.ood)
    c, s, m = attrs[0]
    x, ys = float(rng.uniform(14, 50)), float(rng.uniform(18, 36))
    # Resting pose: flat side down (sim.hexagon has flat top and bottom at angle 0).
    half = SHAPE_SIZE[s] * (math.sqrt(3) / 2 if s == "cylinder" else 1.0)
    hero = ObjSpec(0, c, s, m, x, ys - 1.5 - half - 0.05)
    extras = park_on_floor(rng, attrs[1:], x)
    shelf = Static("shelf0", "ledge", (x - 9.0, ys), (x + 9.0, ys), 1.5)
    scene_s = Scene("side", [hero] + extras, [floor_segment(), shelf], None, GRAVITY, 0.9, cfg.fps,
                    cfg.substeps, cfg.num_frames)
    scene_n = dataclasses.replace(scene_s, statics=[floor_segment()])
    rest, fall = simulate(scene_s), simulate(scene_n)
    j = rest.slot(0)
    if np.abs(rest.pos[:, j] - rest.pos[0, j]).max() > 0.5 or hero_contacts_after(fall, 0, 0):
        return None
    others = [k for k in range(len(rest.ids)) if k != j]
    if not np.allclose(rest.pos[:, others], fall.pos[:, others]):
        return None
    if fall.pos[-1, j, 1] <= ys:
        return None
    # Resting on a shelf that is not there has no contact to record.
    floating = rest.copy()
    floating.events = [e for e in rest.events if e.get("b") != "shelf0"]
    clips = [(scene_s, rest), (scene_n, fall), (scene_n, floating), (scene_s, fall)]
    # Both violations start with the first step: the unsupported hero should fall at once, and the
    # supported one starts to sink through its shelf.
    return clips, 0, 1, {"variants": ["shelf+rest", "open+fall", "open+rest", "shelf+fall"]}


def make_quad(kind: str, rng: np.random.Generator, cfg: SceneConfig):
    """([(scene, trajectory)] in ROLES order, violated object id, violation frame, info)."""
    for _ in range(60):
        if kind == "solidity":
            res = _solidity_quad(rng, cfg)
        elif kind == "gravity":
            res = _gravity_quad(rng, cfg)
        else:
            res = _splice_quad(kind, rng, cfg)
        if res is not None:
            return res
    raise RuntimeError(f"could not build a {kind} quadruplet in 60 attempts (scene sampler bug)")


def make_clip(task: dict) -> dict:
    """Worker job: one quadruplet -> four clip rows and four question rows sharing a pair_id."""
    cfg, kind, rng = group_task(task)
    clips_in, oid, f, info = make_quad(kind, rng, cfg)
    extra = {"design": "quad", "violated_obj": oid, "violation_frame": f, **info}
    return write_group(task, kind, [(role.lower(), role.startswith("P"), scene, traj, dict(extra, role=role))
                                    for role, (scene, traj) in zip(ROLES, clips_in)])
