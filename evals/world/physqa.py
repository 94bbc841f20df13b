"""physqa: CLEVRER-style questions from templates over exact ground truth (Yi et al., 2020).

Four categories, as CLEVRER asks them:
  descriptive    attributes, counts, what moves / collides / leaves, within the observed frames;
  explanatory    causes: what made an object start moving; is object C responsible for the
                 collision of A and B (C is responsible iff removing C and RE-SIMULATING
                 prevents that collision — CLEVRER's counterfactual notion of responsibility);
  predictive     events after the observed frames (the simulation keeps running past the video);
  counterfactual "without C, would ...?" answered by an actual re-simulation with C removed
                 over the observed horizon; `extra` stores the evidence (removed id, re-simulated
                 event list and its hash) so a test can re-run it and compare.
`candidates()` returns EVERY instance per template with its answer; the generator then samples
per clip (stratified by answer) and balances answers per template across the split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cogarch.evals.world.sim import Scene, Trajectory, simulate
from cogarch.evals.world.truth import all_events, events_hash, in_view
from cogarch.evals.world.vocab import SHAPE_SIZE, describe

MOVING_SPEED = 2.0   # units/s above which an object counts as moving
CATEGORY = {"desc": "descriptive", "expl": "explanatory", "pred": "predictive", "cf": "counterfactual"}


@dataclass
class Q:
    template: str
    question: str
    answer: str
    choices: list[str]
    extra: dict

    @property
    def category(self) -> str:
        return CATEGORY[self.template.split("_")[0]]


def _pairs_collided(events: list[dict], lo: int, hi: int) -> set[frozenset]:
    return {frozenset((e["a"], e["b"])) for e in events
            if e["type"] == "collision" and lo <= e["frame"] < hi}


def _has(events: list[dict], typ: str, obj: int, lo: int, hi: int) -> bool:
    return any(e["type"] == typ and e["obj"] == obj and lo <= e["frame"] < hi for e in events)


def _obj_collisions(events: list[dict], lo: int, hi: int) -> list[dict]:
    return [e for e in events if e["type"] == "collision" and lo <= e["frame"] < hi
            and isinstance(e["b"], int)]


def _yn(b: bool) -> str:
    return "yes" if b else "no"


class ClipQA:
    """Question candidates for one simulated clip."""

    def __init__(self, scene: Scene, traj: Trajectory, observed: int, rng: np.random.Generator,
                 cf_removals: int = 2):
        self.scene, self.traj, self.O, self.rng = scene, traj, observed, rng
        self.T = traj.pos.shape[0]
        self.view = in_view(scene, traj)
        self.events = all_events(scene, traj, self.view)
        # Objects a viewer can talk about: in view in at least one observed frame.
        seen = self.view[:observed].any(axis=0)
        self.objs = [o for o in scene.objects if seen[traj.slot(o.id)]]
        self.name = {o.id: describe(o.color, o.material, o.shape) for o in scene.objects}
        self.cf: dict[int, list[dict]] = {}
        # Objects we re-simulate without (each removal is one extra simulation; ~2 per clip keeps
        # the per-clip cost bounded while every clip still gets counterfactual questions).
        order = rng.permutation(len(self.objs))[:cf_removals]
        self.removable = sorted(self.objs[i].id for i in order)

    # ---- helpers -------------------------------------------------------------------------
    def ref_without(self, o, attr: str) -> str | None:
        """Shortest unique noun phrase for `o` that does not mention `attr`."""
        keys = [k for k in ("shape", "material", "color") if k != attr]
        options = [(keys[0],), (keys[1],), (keys[0], keys[1])]
        for opt in options:
            match = [p for p in self.objs if all(getattr(p, k) == getattr(o, k) for k in opt)]
            if len(match) == 1:
                return describe(*(getattr(o, k) if k in opt else None
                                  for k in ("color", "material", "shape")))
        return None

    def counterfactual(self, removed: int) -> list[dict]:
        """Events of a re-simulation without `removed` over the observed horizon (cached)."""
        if removed not in self.cf:
            tr = simulate(self.scene, remove={removed}, num_frames=self.O)
            self.cf[removed] = all_events(self.scene, tr)
        return self.cf[removed]

    def evidence(self, removed: int) -> dict:
        ev = self.counterfactual(removed)
        return {"removed": removed, "resim_frames": self.O, "resim_events": ev,
                "resim_hash": events_hash(ev)}

    def mc(self, answer_id: int, pool: list[int]) -> tuple[list[str], str]:
        """Up to 4 object choices (answer + distractors from pool), shuffled."""
        others = [i for i in pool if i != answer_id]
        self.rng.shuffle(others)
        ch = [self.name[answer_id]] + [self.name[i] for i in others[:3]]
        order = self.rng.permutation(len(ch))
        return [ch[i] for i in order], self.name[answer_id]

    # ---- templates -----------------------------------------------------------------------
    def candidates(self) -> list[Q]:
        out: list[Q] = []
        O, T, ev = self.O, self.T, self.events
        ids = [o.id for o in self.objs]
        sl = self.traj.slot
        coll_obs = _pairs_collided(ev, 0, O)
        coll_fut = _pairs_collided(ev, O, T)
        for o in self.objs:
            for attr, tmpl in (("color", "desc_color"), ("shape", "desc_shape"), ("material", "desc_material")):
                ref = self.ref_without(o, attr)
                if ref:
                    word = "What color" if attr == "color" else f"What {attr}"
                    out.append(Q(tmpl, f"{word} is the {ref}?", getattr(o, attr), [], {"obj": o.id}))
            speed = float(np.hypot(*self.traj.vel[O - 1, sl(o.id)]))
            out.append(Q("desc_moving_end", f"Is the {self.name[o.id]} moving at the end of the video?",
                         _yn(speed > MOVING_SPEED and self.view[O - 1, sl(o.id)]), [], {"obj": o.id}))
            out.append(Q("desc_exit", f"Does the {self.name[o.id]} leave the scene?",
                         _yn(_has(ev, "exit", o.id, 0, O)), [], {"obj": o.id}))
            hits = [e for e in _obj_collisions(ev, 0, O) if o.id in (e["a"], e["b"])]
            if hits and len(ids) >= 3:
                first = hits[0]["b"] if hits[0]["a"] == o.id else hits[0]["a"]
                if first in ids:
                    ch, ans = self.mc(first, [i for i in ids if i != o.id])
                    out.append(Q("desc_first_hit", f"Which object does the {self.name[o.id]} hit first?",
                                 ans, ch, {"obj": o.id}))
        for attr, values in (("material", ("rubber", "metal")), ("shape", ("sphere", "cube", "cylinder"))):
            for v in values:
                cnt = sum(getattr(o, attr) == v for o in self.objs)
                noun = f"{v} objects" if attr == "material" else f"{v}s"
                out.append(Q("desc_count", f"How many {noun} are there?", str(cnt), [], {}))
        n_coll = len({(e["a"], e["b"]) for e in _obj_collisions(ev, 0, O)})
        out.append(Q("desc_count_collisions", "How many pairs of objects collide?", str(n_coll), [], {}))
        # "Which object ...?" (multiple choice) when exactly one seen object does it.
        if len(ids) >= 2:
            exiting = [a for a in ids if _has(ev, "exit", a, 0, O)]
            if len(exiting) == 1:
                ch, ans = self.mc(exiting[0], ids)
                out.append(Q("desc_which_exits", "Which object leaves the scene?", ans, ch, {"obj": exiting[0]}))
            speed = np.hypot(self.traj.vel[O - 1, :, 0], self.traj.vel[O - 1, :, 1])
            moving = [a for a in ids if speed[sl(a)] > MOVING_SPEED and self.view[O - 1, sl(a)]]
            if len(moving) == 1:
                ch, ans = self.mc(moving[0], ids)
                out.append(Q("desc_which_moving", "Which object is still moving at the end of the video?",
                             ans, ch, {"obj": moving[0]}))
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                out.append(Q("desc_collide", f"Does the {self.name[a]} collide with the {self.name[b]}?",
                             _yn(frozenset((a, b)) in coll_obs), [], {"a": a, "b": b}))
                # Predictive: only view-relevant pairs (both in view at the last observed frame).
                if self.view[O - 1, sl(a)] and self.view[O - 1, sl(b)]:
                    out.append(Q("pred_collide",
                                 f"Will the {self.name[a]} collide with the {self.name[b]} after the video ends?",
                                 _yn(frozenset((a, b)) in coll_fut), [], {"a": a, "b": b}))
        out += self._explanatory(ids)
        out += self._predictive(ids)
        out += self._counterfactual(ids)
        return out

    def _explanatory(self, ids: list[int]) -> list[Q]:
        out: list[Q] = []
        O, sl = self.O, self.traj.slot
        for e in _obj_collisions(self.events, 1, O):
            for struck, striker in ((e["a"], e["b"]), (e["b"], e["a"])):
                if struck not in ids or striker not in ids or len(ids) < 3:
                    continue
                v = self.traj.vel[: e["frame"], sl(struck)]
                # The struck object rested until this collision: the striker set it moving.
                if np.hypot(v[:, 0], v[:, 1]).max() < 1.0:
                    ch, ans = self.mc(striker, [i for i in ids if i != struck])
                    out.append(Q("expl_start", f"What caused the {self.name[struck]} to start moving?",
                                 ans, ch, {"obj": struck, "frame": e["frame"]}))
        for pair in sorted({(e["a"], e["b"]) for e in _obj_collisions(self.events, 0, O)}):
            a, b = pair
            if a not in ids or b not in ids:
                continue
            for c in self.removable:
                if c in pair:
                    continue
                happened = frozenset(pair) in _pairs_collided(self.counterfactual(c), 0, O)
                out.append(Q("expl_responsible",
                             f"Is the {self.name[c]} responsible for the collision between the "
                             f"{self.name[a]} and the {self.name[b]}?",
                             _yn(not happened), [], {"a": a, "b": b, **self.evidence(c)}))
        out += self._which_responsible(ids)
        return out

    def _which_responsible(self, ids: list[int]) -> list[Q]:
        """MC "which object is responsible for the collision between A and B?" for each observed
        object-object collision: re-simulate without EACH other object (CLEVRER's notion:
        responsible = the collision disappears without it); asked when exactly one is."""
        O = self.O
        out = []
        pairs = sorted({(e["a"], e["b"]) for e in _obj_collisions(self.events, 0, O)
                        if e["a"] in ids and e["b"] in ids})
        for a, b in pairs:
            others = [i for i in ids if i not in (a, b)][:4]
            if not others:
                continue
            tested = []
            for c in others:
                prevents = frozenset((a, b)) not in _pairs_collided(self.counterfactual(c), 0, O)
                tested.append({"removed": c, "resim_hash": events_hash(self.cf[c]), "prevents": prevents})
            resp = [t["removed"] for t in tested if t["prevents"]]
            # Asked only with exactly one responsible object: "none" would otherwise be the answer
            # most of the time (most collisions need no third object), a pure prior.
            if len(resp) != 1:
                continue
            choices, ans = self.mc(resp[0], others)
            out.append(Q("expl_which", f"Which object is responsible for the collision between the "
                         f"{self.name[a]} and the {self.name[b]}?", ans, choices,
                         {"a": a, "b": b, "resim_frames": O, "tested": tested, "responsible": resp[0]}))
        return out

    def _predictive(self, ids: list[int]) -> list[Q]:
        out: list[Q] = []
        O, T, ev, sl = self.O, self.T, self.events, self.traj.slot
        ledges = [s for s in self.scene.statics if s.kind == "ledge"]
        for a in ids:
            if not self.view[O - 1, sl(a)]:
                continue
            out.append(Q("pred_exit", f"Will the {self.name[a]} leave the scene?",
                         _yn(_has(ev, "exit", a, O, T)), [], {"obj": a}))
            if ledges and not _has(ev, "fall", a, 0, O):
                x, y = self.traj.pos[O - 1, sl(a)]
                st = ledges[0]
                lx0, lx1 = sorted((st.a[0], st.b[0]))
                # Still supported by (or overhanging) the ledge, not yet visibly falling.
                r = float(SHAPE_SIZE[next(o.shape for o in self.objs if o.id == a)])
                if lx0 - r <= x <= lx1 + r and st.a[1] - r - 4.0 < y < st.a[1]:
                    out.append(Q("pred_fall", f"Will the {self.name[a]} fall off the ledge?",
                                 _yn(_has(ev, "fall", a, O, T)), [], {"obj": a}))
            fut = [e for e in _obj_collisions(ev, O, T) if a in (e["a"], e["b"])]
            if fut and len(ids) >= 3:
                nxt = fut[0]["b"] if fut[0]["a"] == a else fut[0]["a"]
                if nxt in ids:
                    ch, ans = self.mc(nxt, [i for i in ids if i != a])
                    out.append(Q("pred_next_hit", f"Which object will the {self.name[a]} hit next?",
                                 ans, ch, {"obj": a}))
        return out

    def _counterfactual(self, ids: list[int]) -> list[Q]:
        out: list[Q] = []
        O = self.O
        walls = [s.name for s in self.scene.statics if s.kind == "wall"]
        for c in self.removable:
            cev = self.counterfactual(c)
            evid = self.evidence(c)
            pairs = _pairs_collided(cev, 0, O)
            rest = [i for i in ids if i != c]
            nc = len({(e["a"], e["b"]) for e in _obj_collisions(cev, 0, O)})
            out.append(Q("cf_count", f"Without the {self.name[c]}, how many pairs of objects would collide?",
                         str(nc), [], dict(evid)))
            for i, a in enumerate(rest):
                out.append(Q("cf_exit", f"Without the {self.name[c]}, would the {self.name[a]} leave the scene?",
                             _yn(_has(cev, "exit", a, 0, O)), [], {"obj": a, **evid}))
                if walls:
                    hit = any(frozenset((a, w)) in pairs for w in walls)
                    out.append(Q("cf_wall", f"Without the {self.name[c]}, would the {self.name[a]} hit a wall?",
                                 _yn(hit), [], {"obj": a, **evid}))
                for b in rest[i + 1:]:
                    out.append(Q("cf_collide",
                                 f"Without the {self.name[c]}, would the {self.name[a]} collide with the {self.name[b]}?",
                                 _yn(frozenset((a, b)) in pairs), [], {"a": a, "b": b, **evid}))
        return out


def resimulate_events(scene: Scene, removed: int, observed: int) -> list[dict]:
    """Events of a fresh re-simulation of `scene` without object `removed` (observed horizon)."""
    return all_events(scene, simulate(scene, remove={removed}, num_frames=observed))


def recompute_counterfactual(scene: Scene, extra: dict, template: str, observed: int) -> str:
    """Re-derive a counterfactual / responsibility answer from a fresh re-simulation (tests)."""
    ev = resimulate_events(scene, extra["removed"], observed)
    pairs = _pairs_collided(ev, 0, observed)
    if template == "cf_count":
        return str(len({(e["a"], e["b"]) for e in _obj_collisions(ev, 0, observed)}))
    if template == "cf_exit":
        return _yn(_has(ev, "exit", extra["obj"], 0, observed))
    if template == "cf_wall":
        walls = [s.name for s in scene.statics if s.kind == "wall"]
        return _yn(any(frozenset((extra["obj"], w)) in pairs for w in walls))
    if template == "cf_collide":
        return _yn(frozenset((extra["a"], extra["b"])) in pairs)
    if template == "expl_responsible":
        return _yn(frozenset((extra["a"], extra["b"])) not in pairs)
    if template == "expl_which":   # extra["removed"] is one of the tested objects
        return _yn(frozenset((extra["a"], extra["b"])) not in pairs)
    raise ValueError(f"not a re-simulated template: {template}")


def make_clip(task: dict) -> dict:
    """Worker job: sample, simulate, render + write one physqa clip; return its rows."""
    from cogarch.evals.world.common import pick_stratified, write_clip
    from cogarch.evals.world.scenes import SceneConfig, sample_scene
    from cogarch.evals.world.truth import dumps

    cfg = SceneConfig(**task["scene"])
    scene = sample_scene(np.random.default_rng(task["seed"]), cfg)
    traj = simulate(scene)
    clip = write_clip(task, scene, traj)
    qa = ClipQA(scene, traj, cfg.observed_frames, np.random.default_rng([task["seed"], 1]),
                task.get("cf_removals", 2))
    picked = pick_stratified(qa.candidates(), task["per_template"], qa.rng)
    qs = []
    for j, q in enumerate(picked):
        qs.append({
            "qid": f"{task['clip_id']}_q{j:02d}", "clip_id": task["clip_id"], "video": clip["video"],
            "category": q.category, "template": q.template, "question": q.question,
            "choices": list(q.choices), "answer": q.answer,
            "answer_index": q.choices.index(q.answer) if q.choices else -1,
            "pair_id": "", "extra": dumps(q.extra),
        })
    return {"clips": [clip], "questions": qs}
