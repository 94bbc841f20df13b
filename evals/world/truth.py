"""Derived ground truth: in-view / visible flags, enter / exit / fall events, annotation JSON.

Everything here is a pure function of a `Scene` and its `Trajectory`, so the same code labels
factual clips, counterfactual re-simulations and edited VoE twins.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from cogarch.evals.world.sim import CANVAS, Scene, Trajectory, hexagon
from cogarch.evals.world.vocab import SHAPE_SIZE

COORDS_NOTE = "x right, y down; units of a 64-unit canvas (1 unit = 1 px at 64x64); frame 0 = start"


def extents(scene: Scene, traj: Trajectory) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned half-extents (hx, hy), each [T, N], of every object at every frame."""
    by_id = {o.id: o for o in scene.objects}
    T, N = traj.angle.shape
    hx, hy = np.zeros((T, N)), np.zeros((T, N))
    for j, oid in enumerate(traj.ids):
        shape = by_id[oid].shape
        s = SHAPE_SIZE[shape]
        if shape == "sphere":
            hx[:, j] = hy[:, j] = s
            continue
        verts = np.array([(-s, -s), (s, -s), (s, s), (-s, s)]) if shape == "cube" else np.array(hexagon(s))
        c, sn = np.cos(traj.angle[:, j])[:, None], np.sin(traj.angle[:, j])[:, None]
        hx[:, j] = np.abs(verts[None, :, 0] * c - verts[None, :, 1] * sn).max(1)
        hy[:, j] = np.abs(verts[None, :, 0] * sn + verts[None, :, 1] * c).max(1)
    return hx, hy


def in_view(scene: Scene, traj: Trajectory) -> np.ndarray:
    """[T, N] bool: any part of the object's bounding box overlaps the view."""
    hx, hy = extents(scene, traj)
    x, y = traj.pos[..., 0], traj.pos[..., 1]
    inside = (x + hx > 0) & (x - hx < CANVAS) & (y + hy > 0) & (y - hy < CANVAS)
    return inside & traj.present


def visible(scene: Scene, traj: Trajectory, view: np.ndarray | None = None) -> np.ndarray:
    """[T, N] bool: in view and not entirely hidden behind the occluder screen."""
    view = in_view(scene, traj) if view is None else view
    if scene.occluder is None:
        return view.copy()
    x0, y0, x1, y1 = scene.occluder
    hx, hy = extents(scene, traj)
    x, y = traj.pos[..., 0], traj.pos[..., 1]
    hidden = (x - hx >= x0) & (x + hx <= x1) & (y - hy >= y0) & (y + hy <= y1)
    return view & ~hidden


def view_events(traj: Trajectory, view: np.ndarray) -> list[dict]:
    """Enter (out -> in view) and exit (in -> out of view) events per object."""
    ev = []
    for j, oid in enumerate(traj.ids):
        v = view[:, j]
        for t in range(1, len(v)):
            if v[t] and not v[t - 1] and traj.present[t, j]:
                ev.append({"type": "enter", "frame": t, "obj": oid})
            elif v[t - 1] and not v[t] and traj.present[t, j]:
                ev.append({"type": "exit", "frame": t, "obj": oid})
    return ev


def fall_events(scene: Scene, traj: Trajectory) -> list[dict]:
    """An object that rested/slid on a ledge and later is entirely below its surface fell off it."""
    ev = []
    r = extents(scene, traj)[1].max(axis=0)
    for st in scene.statics:
        if st.kind != "ledge":
            continue
        lx0, lx1 = sorted((st.a[0], st.b[0]))
        ly = st.a[1] - st.radius
        for j, oid in enumerate(traj.ids):
            x, y = traj.pos[:, j, 0], traj.pos[:, j, 1]
            on = (x >= lx0) & (x <= lx1) & (y < ly) & (y > ly - r[j] - 4.0)
            if not on.any():
                continue
            t_on = int(np.argmax(on))
            below = np.nonzero(y[t_on:] > ly + 2 * st.radius + r[j])[0]
            if len(below):
                ev.append({"type": "fall", "frame": int(t_on + below[0]), "obj": oid, "ledge": st.name})
    return ev


def all_events(scene: Scene, traj: Trajectory, view: np.ndarray | None = None) -> list[dict]:
    """Collision + enter/exit + fall events, sorted by (frame, type, participants)."""
    view = in_view(scene, traj) if view is None else view
    ev = list(traj.events) + view_events(traj, view) + fall_events(scene, traj)
    return sorted(ev, key=event_key)


def event_key(e: dict) -> tuple:
    return (e["frame"], e["type"], str(e.get("a", e.get("obj"))), str(e.get("b", "")))


def events_hash(events: list[dict]) -> str:
    """Stable short hash of an event list (counterfactual evidence)."""
    blob = json.dumps(events, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def annotations(scene: Scene, traj: Trajectory, observed: int, extra: dict | None = None) -> dict:
    """The `annotations` JSON of a clip: per-object tracks over ALL frames + events."""
    view = in_view(scene, traj)
    vis = visible(scene, traj, view)
    tracks = {}
    for j, oid in enumerate(traj.ids):
        tracks[str(oid)] = {
            "pos": np.round(traj.pos[:, j], 2).tolist(),
            "vel": np.round(traj.vel[:, j], 2).tolist(),
            "angle": np.round(traj.angle[:, j], 3).tolist(),
            "present": traj.present[:, j].astype(int).tolist(),
            "in_view": view[:, j].astype(int).tolist(),
            "visible": vis[:, j].astype(int).tolist(),
        }
    ann = {
        "coords": COORDS_NOTE,
        "num_frames": int(traj.pos.shape[0]),
        "observed_frames": int(observed),
        "scene": scene.to_json(),
        "tracks": tracks,
        "events": all_events(scene, traj, view),
    }
    if extra:
        ann.update(extra)
    return ann


def dumps(obj) -> str:
    """Canonical JSON (sorted keys, no spaces): same content -> same bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
