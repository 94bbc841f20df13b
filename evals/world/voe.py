"""voe: IntPhys-style violation-of-expectation pairs (Riochet et al., 2018/2021, "IntPhys").

Each pair is one simulated POSSIBLE clip and an IMPOSSIBLE twin made by editing the trajectory
of ONE object from a violation frame f on (same seed, same objects; all other objects and all
frames < f are copied unchanged):
  permanence  an object vanishes while fully hidden behind the occluder (never reappears);
  continuity  an object jumps (teleports) sideways at f and continues from there;
  solidity    an object passes through a wall it bounced off in the possible clip (the tail is
              re-simulated with that wall made non-solid for it);
  gravity     a falling object floats in place or falls upward (tail re-simulated with g -> -g);
  inertia     a freely sliding object changes direction at f without any cause (tail
              re-simulated from a rotated velocity).
Scenes are resampled until the violated object has no object-object contact at frames >= f in
either clip, so the copied trajectories of the other objects stay physically valid.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from cogarch.evals.world.common import write_clip
from cogarch.evals.world.scenes import FLOOR_Y, SceneConfig, sample_attributes
from cogarch.evals.world.sim import ObjSpec, Scene, Static, Trajectory, simulate
from cogarch.evals.world.truth import dumps, in_view, visible

VIOLATIONS = ("permanence", "continuity", "solidity", "gravity", "inertia")
GRAVITY = 120.0


def floor_segment() -> Static:
    return Static("floor", "floor", (-40.0, FLOOR_Y), (104.0, FLOOR_Y), 2.0)


def _table_scene(kind: str, rng: np.random.Generator, cfg: SceneConfig, attrs) -> Scene:
    """Top-down slide across the centre; distractors parked off the line of motion."""
    c, s, m = attrs[0]
    ang = float(rng.uniform(0, 2 * math.pi))
    d = (math.cos(ang), math.sin(ang))
    sp = float(rng.uniform(30, 40))
    hero = ObjSpec(0, c, s, m, 32 - 24 * d[0], 32 - 24 * d[1], sp * d[0], sp * d[1],
                   angle=float(rng.uniform(0, math.pi)))
    extras = []
    for k, (c2, s2, m2) in enumerate(attrs[1:]):
        t = float(rng.uniform(-22, 0)) + 10 * k
        off = (1 if k % 2 == 0 else -1) * float(rng.uniform(18, 22))
        extras.append(ObjSpec(1 + k, c2, s2, m2, 32 + t * d[0] - off * d[1], 32 + t * d[1] + off * d[0]))
    statics, occ = [], None
    if kind == "permanence":
        occ = (21.0, 21.0, 43.0, 43.0)
    elif kind == "solidity":
        w = (32 + 8 * d[0], 32 + 8 * d[1])
        statics.append(Static("wall0", "wall", (w[0] + 12 * d[1], w[1] - 12 * d[0]),
                              (w[0] - 12 * d[1], w[1] + 12 * d[0]), 1.5))
    return Scene("table", [hero] + extras, statics, occ, 0.0, 0.7, cfg.fps, cfg.substeps, cfg.num_frames)


def violation_scene(kind: str, rng: np.random.Generator, cfg: SceneConfig) -> tuple[Scene, int]:
    """A possible-world scene built for violation `kind`; returns (scene, violated object id 0).

    permanence / continuity / solidity / inertia use the table (every shape slides the same way
    there); gravity uses the side view (an object dropped onto the floor).
    """
    attrs = sample_attributes(rng, 1 + int(rng.integers(0, 3)), cfg.ood)
    if kind != "gravity":
        return _table_scene(kind, rng, cfg, attrs), 0
    c, s, m = attrs[0]
    hero = ObjSpec(0, c, s, m, float(rng.uniform(14, 50)), float(rng.uniform(5, 12)),
                   vx=float(rng.normal(0, 5)))
    return Scene("side", [hero] + park_on_floor(rng, attrs[1:], hero.x), [floor_segment()], None,
                 GRAVITY, 0.9, cfg.fps, cfg.substeps, cfg.num_frames), 0


def park_on_floor(rng: np.random.Generator, attrs, hero_x: float) -> list[ObjSpec]:
    """Distractors (ids 1, 2, ...) resting on the side view's floor, 14+ units from the hero and
    from each other (one that finds no room after 30 draws is left out)."""
    extras, xs = [], [hero_x]
    for k, (c2, s2, m2) in enumerate(attrs):
        for _ in range(30):
            x = float(rng.uniform(6, 58))
            if all(abs(x - q) > 14 for q in xs):
                xs.append(x)
                extras.append(ObjSpec(1 + k, c2, s2, m2, x, FLOOR_Y - 2.0 - 6.5))
                break
    return extras


def _solo_tail(scene: Scene, traj: Trajectory, oid: int, f: int, **edit) -> Trajectory:
    """Re-simulate object `oid` alone from its state at frame f-1 (with edits); frames f-1..T-1."""
    j = traj.slot(oid)
    o = next(p for p in scene.objects if p.id == oid)
    vx, vy = edit.get("vel", traj.vel[f - 1, j])
    solo = ObjSpec(oid, o.color, o.shape, o.material, float(traj.pos[f - 1, j, 0]),
                   float(traj.pos[f - 1, j, 1]), float(vx), float(vy), float(traj.angle[f - 1, j]),
                   float(traj.omega[f - 1, j]))
    sc = dataclasses.replace(scene, objects=[solo], gravity=edit.get("gravity", scene.gravity),
                             num_frames=scene.num_frames - f + 1)
    return simulate(sc, no_collide=edit.get("no_collide"))


def hero_contacts_after(traj: Trajectory, oid: int, f: int) -> bool:
    """Object `oid` touches another OBJECT (not a static) at any frame >= f."""
    return any(e["type"] == "collision" and e["frame"] >= f and isinstance(e["b"], int)
               and oid in (e["a"], e["b"]) for e in traj.events)


def make_pair(kind: str, rng: np.random.Generator, cfg: SceneConfig):
    """(scene, possible Trajectory, impossible Trajectory, info) for violation `kind`."""
    for _ in range(40):
        scene, oid = violation_scene(kind, rng, cfg)
        pos = simulate(scene)
        T, j = pos.pos.shape[0], pos.slot(oid)
        view = in_view(scene, pos)
        imp = pos.copy()
        info: dict = {"violated_obj": oid}
        f = None
        if kind == "permanence":
            vis = visible(scene, pos, view)
            hidden = np.nonzero(view[:, j] & ~vis[:, j])[0]
            if len(hidden) and hidden[0] > 1 and vis[hidden[0]:, j].any():
                f = int(hidden[0])
                imp.present[f:, j] = False
        elif kind == "continuity":
            moving = np.nonzero((np.hypot(pos.vel[:, j, 0], pos.vel[:, j, 1]) > 5) & view[:, j])[0]
            if len(moving) > 6 and moving[-1] >= 4:
                f = int(rng.integers(3, min(T - 3, int(moving[-1])) + 1))
                vx, vy = pos.vel[f, j]
                sp = math.hypot(vx, vy) or 1.0
                # Jump sideways (perpendicular to the motion) so it cannot pass for motion.
                amt = float(rng.choice([-1, 1])) * float(rng.uniform(12, 18))
                jump = np.array([-vy / sp * amt, vx / sp * amt])
                p = pos.pos[f, j] + jump
                if not (6 < p[0] < 58 and 6 < p[1] < 58):
                    jump = -jump
                imp.pos[f:, j] += jump
                info["jump"] = np.round(jump, 3).tolist()
        elif kind == "solidity":
            hits = [e["frame"] for e in pos.events
                    if e["type"] == "collision" and e["a"] == oid and e["b"] == "wall0"]
            if hits and hits[0] > 1:
                f = hits[0]
                tail = _solo_tail(scene, pos, oid, f, no_collide={oid: {"wall0"}})
        elif kind == "gravity":
            first = min([e["frame"] for e in pos.events if oid in (e["a"], e.get("b"))] or [T])
            if first >= 5:
                f = int(rng.integers(2, first - 1))
                info["mode"] = "float" if rng.random() < 0.5 else "up"
                if info["mode"] == "float":
                    imp.pos[f:, j] = pos.pos[f - 1, j]
                    imp.vel[f:, j] = 0.0
                    imp.angle[f:, j] = pos.angle[f - 1, j]
                    imp.omega[f:, j] = 0.0
                else:
                    tail = _solo_tail(scene, pos, oid, f, gravity=-scene.gravity)
        else:  # inertia
            first = min([e["frame"] for e in pos.events if oid in (e["a"], e.get("b"))] or [T])
            last_in = np.nonzero(view[:, j])[0]
            hi = min(first - 1, int(last_in[-1]) if len(last_in) else 0, T - 4)
            if hi >= 4:
                f = int(rng.integers(3, hi + 1))
                turn = float(rng.choice([-1, 1])) * float(rng.uniform(math.pi / 3, 2 * math.pi / 3))
                vx, vy = pos.vel[f - 1, j]
                c, s = math.cos(turn), math.sin(turn)
                info["turn"] = round(turn, 4)
                tail = _solo_tail(scene, pos, oid, f, vel=(vx * c - vy * s, vx * s + vy * c))
        if f is None:
            continue
        if kind in ("solidity", "inertia") or (kind == "gravity" and info["mode"] == "up"):
            imp.pos[f:, j], imp.vel[f:, j] = tail.pos[1:, 0], tail.vel[1:, 0]
            imp.angle[f:, j], imp.omega[f:, j] = tail.angle[1:, 0], tail.omega[1:, 0]
        # Events of the impossible clip: the violated object's own events after f are dropped
        # (the edited tail's contacts with statics are re-labelled from the solo re-simulation).
        imp.events = [e for e in pos.events if e["frame"] < f or oid not in (e["a"], e.get("b"))]
        if kind in ("solidity", "inertia") or info.get("mode") == "up":
            imp.events += [dict(e, frame=e["frame"] + f - 1) for e in tail.events if e["frame"] >= 1]
        if hero_contacts_after(pos, oid, f) or _near_others(imp, j, f):
            continue
        info["violation_frame"] = f
        return scene, pos, imp, info
    raise RuntimeError(f"could not build a {kind} pair in 40 attempts (scene sampler bug)")


def _near_others(traj: Trajectory, j: int, f: int) -> bool:
    """Edited object overlapping another object at frames >= f (would look like a collision)."""
    if traj.pos.shape[1] < 2:
        return False
    d = np.linalg.norm(traj.pos[f:, :, :] - traj.pos[f:, j:j + 1, :], axis=-1)
    d[:, j] = np.inf
    both = traj.present[f:, j:j + 1] & traj.present[f:]
    return bool((np.where(both, d, np.inf) < 11.0).any())


def group_task(task: dict) -> tuple[SceneConfig, str, np.random.Generator]:
    """A VoE worker task -> (fully observed scene config, violation type, seeded rng). Types cycle
    over the group index, so every split holds them in equal numbers."""
    cfg = SceneConfig(**task["scene"])
    cfg = dataclasses.replace(cfg, observed_frames=cfg.num_frames, future_frames=0)
    return cfg, VIOLATIONS[task["index"] % len(VIOLATIONS)], np.random.default_rng(task["seed"])


def write_group(task: dict, kind: str, members: list[tuple[str, bool, Scene, Trajectory, dict]]) -> dict:
    """Render one VoE group (a pair or a quadruplet) -> its clip rows and question rows.

    members: (clip-id suffix, possible, scene, trajectory, extra metadata) per clip; the clips share
    the task's clip_id as their pair_id."""
    group = task["clip_id"]
    clips, qs = [], []
    for suffix, possible, scene, traj, extra in members:
        sub = dict(task, clip_id=f"{group}_{suffix}", observed_frames=scene.num_frames)
        meta = {"possible": possible, "violation": kind, **extra}
        row = write_clip(sub, scene, traj, {"voe": meta})
        clips.append(row)
        qs.append({"qid": sub["clip_id"], "clip_id": sub["clip_id"], "video": row["video"],
                   "category": kind, "template": f"voe_{kind}", "question": "", "choices": [],
                   "answer": "possible" if possible else "impossible", "answer_index": -1,
                   "pair_id": group, "extra": dumps(meta)})
    return {"clips": clips, "questions": qs}


def make_clip(task: dict) -> dict:
    """Worker job: one matched pair -> two clip rows and two question rows."""
    cfg, kind, rng = group_task(task)
    scene, pos, imp, info = make_pair(kind, rng, cfg)
    return write_group(task, kind, [("p", True, scene, pos, info), ("i", False, scene, imp, info)])
