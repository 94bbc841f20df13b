"""Scene description and deterministic pymunk simulation with per-frame ground truth.

A `Scene` is plain data (objects with initial states, static geometry, an optional occluder
screen, gravity, damping). `simulate(scene)` builds a fresh pymunk Space from it and steps it,
recording for every frame t = 0..T-1 the position, velocity, angle of every object, plus
collision events from a pymunk 7 collision handler (`space.on_collision(begin=...)`). Because the
scene is data, a counterfactual is just `simulate(scene, remove={obj_id})` — a real re-simulation
with the same initial conditions (CLEVRER's counterfactual questions, Yi et al. 2020).

Coordinates: x right, y DOWN, in units of a 64-unit canvas (1 unit = 1 px at 64x64); gravity is
therefore +y. Chipmunk2D (under pymunk) is deterministic for the same sequence of operations on
the same build, which is what makes same seed -> same bytes possible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pymunk

from cogarch.evals.world.vocab import MATERIAL_PHYSICS, SHAPE_SIZE

CANVAS = 64.0  # world units across the view (square view)


@dataclass
class ObjSpec:
    """One dynamic object: vocabulary attributes + initial state."""

    id: int
    color: str
    shape: str
    material: str
    x: float
    y: float
    vx: float = 0.0
    vy: float = 0.0
    angle: float = 0.0
    omega: float = 0.0

    def to_json(self) -> dict:
        return {
            # Unrounded: Python's float repr round-trips exactly, so a scene rebuilt from this
            # JSON re-simulates bit-identically (tests re-run counterfactuals from it).
            "id": self.id, "color": self.color, "shape": self.shape, "material": self.material,
            "x": self.x, "y": self.y, "vx": self.vx, "vy": self.vy, "angle": self.angle,
            "omega": self.omega,
        }


@dataclass
class Static:
    """A static thick segment (wall, floor, ramp, ledge) named e.g. "wall0"; radius = half-thickness."""

    name: str
    kind: str
    a: tuple[float, float]
    b: tuple[float, float]
    radius: float = 1.5

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "a": list(self.a), "b": list(self.b),
                "radius": self.radius}


@dataclass
class Scene:
    family: str                       # "table" (top-down) | "side" (gravity)
    objects: list[ObjSpec]
    statics: list[Static] = field(default_factory=list)
    occluder: tuple[float, float, float, float] | None = None   # x0, y0, x1, y1 (drawn on top)
    gravity: float = 0.0              # units/s^2 along +y (down)
    damping: float = 1.0              # pymunk: fraction of velocity kept per second
    fps: float = 8.0
    substeps: int = 8                 # physics steps per frame (dt = 1/(fps*substeps))
    num_frames: int = 32

    def to_json(self) -> dict:
        return {
            "family": self.family, "statics": [s.to_json() for s in self.statics],
            "occluder": list(self.occluder) if self.occluder else None, "gravity": self.gravity,
            "damping": self.damping, "fps": self.fps, "substeps": self.substeps,
            "num_frames": self.num_frames,
        }


def scene_from_json(scene_json: dict, objects_json: list[dict]) -> Scene:
    """Rebuild a Scene from a clip row's annotations["scene"] and objects JSON (exact floats)."""
    objs = [ObjSpec(o["id"], o["color"], o["shape"], o["material"], o["x"], o["y"], o["vx"],
                    o["vy"], o["angle"], o["omega"]) for o in objects_json]
    st = [Static(s["name"], s["kind"], tuple(s["a"]), tuple(s["b"]), s["radius"])
          for s in scene_json["statics"]]
    occ = tuple(scene_json["occluder"]) if scene_json["occluder"] else None
    return Scene(scene_json["family"], objs, st, occ, scene_json["gravity"], scene_json["damping"],
                 scene_json["fps"], scene_json["substeps"], scene_json["num_frames"])


@dataclass
class Trajectory:
    """Ground truth of one simulation. Arrays are indexed [frame, object-slot]."""

    ids: list[int]
    pos: np.ndarray        # [T, N, 2] float64
    vel: np.ndarray        # [T, N, 2]
    angle: np.ndarray      # [T, N]
    omega: np.ndarray      # [T, N] angular velocity (rad/s)
    present: np.ndarray    # [T, N] bool (False: object does not exist in this frame, e.g. VoE)
    events: list[dict]     # collisions {"type","frame","a","b"}; enter/exit/fall added later

    def slot(self, obj_id: int) -> int:
        return self.ids.index(obj_id)

    def copy(self) -> "Trajectory":
        """A deep copy (arrays and event list), for editing a VoE variant of a simulated clip."""
        return Trajectory(list(self.ids), self.pos.copy(), self.vel.copy(), self.angle.copy(),
                          self.omega.copy(), self.present.copy(), list(self.events))


def make_shape(body: pymunk.Body, shape: str) -> pymunk.Shape:
    """The collision shape of a vocabulary shape (see vocab.py for the 2-D mapping)."""
    s = SHAPE_SIZE[shape]
    if shape == "sphere":
        return pymunk.Circle(body, s)
    if shape == "cube":
        return pymunk.Poly.create_box(body, (2 * s, 2 * s))
    if shape == "cylinder":
        return pymunk.Poly(body, hexagon(s))
    raise ValueError(f"unknown shape {shape!r}")


def seg_distance(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance from point p to the segment a-b."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    L2 = dx * dx + dy * dy or 1e-12
    t = max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / L2))
    return math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy)


def hexagon(r: float) -> list[tuple[float, float]]:
    return [(r * math.cos(math.pi / 3 * k), r * math.sin(math.pi / 3 * k)) for k in range(6)]


def shape_area(shape: str) -> float:
    s = SHAPE_SIZE[shape]
    return {"sphere": math.pi * s * s, "cube": 4 * s * s, "cylinder": 1.5 * math.sqrt(3) * s * s}[shape]


def _add_object(space: pymunk.Space, o: ObjSpec, labels: dict) -> pymunk.Body:
    phys = MATERIAL_PHYSICS[o.material]
    mass = phys["density"] * shape_area(o.shape) / 25.0
    s = SHAPE_SIZE[o.shape]
    if o.shape == "sphere":
        moment = pymunk.moment_for_circle(mass, 0, s)
    elif o.shape == "cube":
        moment = pymunk.moment_for_box(mass, (2 * s, 2 * s))
    else:
        moment = pymunk.moment_for_poly(mass, hexagon(s))
    body = pymunk.Body(mass, moment)
    body.position = (o.x, o.y)
    body.velocity = (o.vx, o.vy)
    body.angle = o.angle
    body.angular_velocity = o.omega
    shp = make_shape(body, o.shape)
    shp.elasticity = phys["elasticity"]
    shp.friction = phys["friction"]
    shp._hashid = 1000 + o.id   # see build_space: process-independent hash ids
    space.add(body, shp)
    labels[shp] = o.id
    return body


def build_space(scene: Scene, remove: set[int] = frozenset(), no_collide: dict | None = None):
    """Fresh pymunk Space for `scene` minus the objects in `remove`.

    no_collide maps an object id to a set of static names it passes through (VoE solidity).
    Returns (space, bodies {id: Body}, labels {Shape: id-or-static-name}).
    """
    space = pymunk.Space()
    space.gravity = (0.0, scene.gravity)
    space.damping = scene.damping
    space.iterations = 10
    labels: dict = {}
    for st in scene.statics:
        seg = pymunk.Segment(space.static_body, st.a, st.b, st.radius)
        seg.elasticity = 0.6
        seg.friction = 0.8
        # Chipmunk numbers shapes from a process-global counter and its spatial hash / arbiter
        # order follows those ids, so results would depend on how many shapes this process made
        # before. Fixed ids (statics 1.., objects 1000+id, stable under removal) make every
        # simulation bit-identical in any process, worker or order.
        seg._hashid = 1 + len(labels)
        space.add(seg)
        labels[seg] = st.name
    bodies = {}
    for o in scene.objects:
        if o.id not in remove:
            bodies[o.id] = _add_object(space, o, labels)
    if no_collide:
        # Shapes sharing a non-zero filter group never collide: put the pass-through object and
        # the statics it ignores in one group (one group per object; a static joins one group).
        for k, (oid, names) in enumerate(sorted(no_collide.items())):
            for shp, lab in labels.items():
                if lab == oid or (isinstance(lab, str) and lab in names):
                    shp.filter = pymunk.ShapeFilter(group=100 + k)
    return space, bodies, labels


def simulate(
    scene: Scene,
    remove: set[int] = frozenset(),
    num_frames: int | None = None,
    no_collide: dict | None = None,
) -> Trajectory:
    """Step `scene` for num_frames frames (default scene.num_frames) and record ground truth.

    Frame t is the state after t*substeps physics steps (frame 0 = initial conditions). A
    collision event {"frame": t, ...} means the contact began during the steps leading to frame t.
    """
    T = scene.num_frames if num_frames is None else num_frames
    space, bodies, labels = build_space(scene, remove, no_collide)
    ids = [o.id for o in scene.objects if o.id not in remove]
    n = len(ids)
    pos = np.zeros((T, n, 2))
    vel = np.zeros((T, n, 2))
    ang = np.zeros((T, n))
    omg = np.zeros((T, n))
    events: list[dict] = []
    last_seen: dict[tuple, int] = {}
    state = {"frame": 0}

    def begin(arbiter: pymunk.Arbiter, space_: pymunk.Space, data) -> None:
        la, lb = labels.get(arbiter.shapes[0]), labels.get(arbiter.shapes[1])
        if la is None or lb is None:
            return
        # Canonical order: objects (ints) first by id, statics (str) last.
        key = tuple(sorted((la, lb), key=lambda v: (isinstance(v, str), str(v) if isinstance(v, str) else v)))
        f = state["frame"]
        # Resting or rattling contacts begin/separate repeatedly; one event per pair within
        # 3 frames keeps "collision" meaning an impact, not every micro-bounce.
        if key in last_seen and f - last_seen[key] <= 3:
            last_seen[key] = f
            return
        last_seen[key] = f
        events.append({"type": "collision", "frame": f, "a": key[0], "b": key[1]})

    space.on_collision(None, None, begin=begin)
    body_list = [bodies[i] for i in ids]
    dt = 1.0 / (scene.fps * scene.substeps)
    for t in range(T):
        if t > 0:
            state["frame"] = t
            for _ in range(scene.substeps):
                space.step(dt)
        for j, b in enumerate(body_list):
            p, v = b.position, b.velocity
            pos[t, j] = (p.x, p.y)
            vel[t, j] = (v.x, v.y)
            ang[t, j] = b.angle
            omg[t, j] = b.angular_velocity
    present = np.ones((T, n), dtype=bool)
    return Trajectory(ids=ids, pos=pos, vel=vel, angle=ang, omega=omg, present=present, events=events)
