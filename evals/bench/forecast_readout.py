"""Does the world model's forecast carry the answers to predictive questions? A fixed-rule readout.

A DIAGNOSTIC, not a model: it never answers for the pack. For each predictive physqa question of
a held-out split it finds the named objects among perception's slots (the slot whose identity
probabilities best match the name), reads the object world model's forecast rows
(modules/world_model, source=objects) and applies one fixed geometric rule:
  pred_exit      yes iff the object's predicted presence drops under 0.5 or its centre leaves the canvas;
  pred_collide   yes iff the two objects' predicted centres come within `contact_px`;
  pred_next_hit  the choice whose predicted centre comes closest to the object's (first within contact_px).
The same rule reads two baselines built from the same slots: copy-last (nothing moves) and
constant velocity (each slot keeps its last observed step-to-step displacement). If the rule on
the forecast beats both and beats the language module on the same questions, the forecast holds
predictive information the language module does not use (docs/benchmarks.md, "Object world model").

    python -m cogarch.evals.bench.forecast_readout --pack runs/pack9/pack --data runs/pack9/data/physqa --split test --truth
With --truth the rule also reads the simulator's tracks: the true future is the rule's ceiling.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch

from cogarch.evals.bench import cli
from cogarch.errors import UserError

TEMPLATES = ("pred_exit", "pred_collide", "pred_next_hit")


def slot_of(name: str, ident: torch.Tensor, names: list[list[str]], present: torch.Tensor) -> int:
    """The present slot whose colour x material x shape probability best matches `name`."""
    words = name.split()
    if len(words) != 3:
        raise UserError(f"cannot parse object name {name!r} (expected 'colour material shape')")
    color, material, shape = words
    cols, shapes, mats = names
    off = (0, len(cols), len(cols) + len(shapes))
    try:
        idx = (cols.index(color), off[1] + shapes.index(shape), off[2] + mats.index(material))
    except ValueError:
        return -1
    score = ident[:, idx[0]] * ident[:, idx[1]] * ident[:, idx[2]]  # [K]
    score = score.masked_fill(~present, -1.0)
    return int(score.argmax())


def question_rows(data: str, split: str, templates: tuple[str, ...]) -> list[dict]:
    """The questions of `templates` in a generated physqa folder's split (one-line errors)."""
    import datasets

    qdir = Path(data) / "questions"
    if not qdir.is_dir():
        raise UserError(f"{data!r} is not a generated physqa folder (no questions/)")
    splits = datasets.load_from_disk(str(qdir))
    if split not in splits:
        raise UserError(f"{data!r} has no split {split!r} (it has {sorted(splits)})")
    rows = [r for r in splits[split] if r["template"] in templates]
    if not rows:
        raise UserError(f"no {'/'.join(templates)} questions in {data} split {split}")
    return rows


def truth_clips(data: str, split: str, observed_video: bool = False) -> dict[str, tuple[list[dict], dict]]:
    """video -> (objects, annotations) of a split's clips: the simulator's tracks. `observed_video`:
    refuse clips whose video holds more than the observed frames (readers of observed steps)."""
    import datasets

    if not (Path(data) / "clips").is_dir():
        raise UserError(f"--truth: {data!r} has no clips/ (the simulator's tracks)")
    clips = datasets.load_from_disk(str(Path(data) / "clips"))[split]
    if observed_video and any(int(n) != int(o) for n, o in zip(clips["num_frames"], clips["observed_frames"])):
        raise UserError("--truth reads clips whose video holds exactly the observed frames (physqa's default)")
    return {v: (json.loads(o), json.loads(a)) for v, o, a in zip(clips["video"], clips["objects"], clips["annotations"])}


def answered(path: str, rows: list[dict]) -> dict[str, bool]:
    """qid -> correct from an eval's samples.jsonl (evals/bench/paired.load), covering every row."""
    from cogarch.evals.bench.paired import load

    got = {q: ok for q, (_, ok) in load(path).items()}
    missing = sum(1 for r in rows if r["qid"] not in got)
    if missing:
        raise UserError(f"{path}: {missing} of the split's {len(rows)} questions are missing (another split?)")
    return got


def readout(template: str, choices: list[str], slots: dict[str, int], xy: torch.Tensor,
            inside: torch.Tensor, contact_px: float) -> str:
    """One question answered by the fixed rule from future positions xy [H, K, 2] and inside [H, K]."""
    a = slots["a"]
    if template == "pred_exit":
        return "yes" if not bool(inside[:, a].all()) else "no"
    if template == "pred_collide":
        b = slots["b"]
        d = (xy[:, a] - xy[:, b]).norm(dim=-1).masked_fill(~(inside[:, a] & inside[:, b]), float("inf"))
        return "yes" if bool((d < contact_px).any()) else "no"
    best, key = choices[0], (float("inf"), float("inf"))
    for c, k in zip(choices, slots["choices"]):
        if k < 0 or k == a:
            continue
        d = (xy[:, a] - xy[:, k]).norm(dim=-1).masked_fill(~(inside[:, a] & inside[:, k]), float("inf"))
        hit = (d < contact_px).nonzero().flatten()
        cand = (float(hit[0]) if hit.numel() else float("inf"), float(d.min()))
        if cand < key:
            best, key = c, cand
    return best


def true_futures(objects: list[dict], annotations: dict, horizon: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The simulator's tracks as (positions [H, N, 2], in view [H, N]) per object (index = position in
    `objects`): the true future at the end of each future latent step, and constant velocity from
    the last two observed steps. Latent steps are 2 frames (tubelet 2), as the pack's perception."""
    tracks, seen = annotations["tracks"], int(annotations["observed_frames"])
    per = 2
    fut_frames = [min(seen + per * h - 1, len(tracks[str(objects[0]["id"])]["pos"]) - 1) for h in range(1, horizon + 1)]
    pos = torch.tensor([[tracks[str(ob["id"])]["pos"][f] for ob in objects] for f in fut_frames], dtype=torch.float32)
    view = torch.tensor([[bool(tracks[str(ob["id"])]["in_view"][f]) for ob in objects] for f in fut_frames])
    last = torch.tensor([tracks[str(ob["id"])]["pos"][seen - 1] for ob in objects], dtype=torch.float32)
    prev = torch.tensor([tracks[str(ob["id"])]["pos"][seen - 1 - per] for ob in objects], dtype=torch.float32)
    now = torch.tensor([bool(tracks[str(ob["id"])]["in_view"][seen - 1]) for ob in objects])
    steps = torch.arange(1, horizon + 1, dtype=torch.float32)[:, None, None]
    return {"truth: simulated future": (pos, view),
            "truth: constant velocity": (last[None] + steps * (last - prev)[None], now[None].expand(horizon, -1))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pack", required=True)
    ap.add_argument("--data", required=True, help="generated physqa folder")
    ap.add_argument("--split", default="test")
    ap.add_argument("--contact-px", type=float, default=10.0)
    ap.add_argument("--samples", default=None, help="the pack's samples.jsonl on the same split, to score it beside the rule")
    ap.add_argument("--truth", action="store_true",
                    help="also apply the rule to the simulator's tracks: the true future (the rule's ceiling) and "
                         "constant velocity from the true observed positions")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    import cogarch

    rows = question_rows(args.data, args.split, TEMPLATES)
    lm = answered(args.samples, rows) if args.samples else {}
    truth = truth_clips(args.data, args.split) if args.truth else {}
    model = cogarch.load(args.pack)
    by_clip: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_clip[r["video"]].append(r)
    hits: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for video, items in by_clip.items():
        obs = model.observe(str(Path(args.data) / video))
        o, f = obs.bus.latest("objects"), obs.bus.latest("forecast")
        if o is None or f is None or f.meta.get("source") != "objects":
            raise UserError(f"{args.pack}: needs perception's objects and a world model with source=objects")
        names = [o.meta["colors"], o.meta["shapes"], o.meta["materials"]]
        n_id, K, canvas = sum(map(len, names)), int(o.meta["slots"]), float(o.meta.get("canvas", 64.0))
        seen = o.tokens[0].float().reshape(-1, K, o.tokens.shape[-1])  # [T', K, 18]
        fut = f.tokens[0].float().reshape(-1, K, f.tokens.shape[-1])  # [H, K, 18]
        H = fut.shape[0]
        gate_seen = seen[:, :, n_id].clamp(min=1e-6)
        ident = seen[gate_seen.argmax(0), torch.arange(K), :n_id] / gate_seen.max(0).values[:, None]  # [K, n_id]
        present = seen[-1, :, n_id] > 0.5
        pos_seen = seen[:, :, n_id + 1 : n_id + 3] / gate_seen[..., None] * canvas  # [T', K, 2]
        steps = torch.arange(1, H + 1, dtype=torch.float32)[:, None, None]
        futures = {
            "world model": (fut[:, :, n_id + 1 : n_id + 3] / fut[:, :, n_id, None].clamp(min=1e-6) * canvas,
                            fut[:, :, n_id] > 0.5),
            "copy last": (pos_seen[-1:].expand(H, -1, -1), present[None].expand(H, -1)),
            "constant velocity": (pos_seen[-1:] + steps * (pos_seen[-1:] - pos_seen[-2:-1]), present[None].expand(H, -1)),
        }
        if args.truth:
            futures.update(true_futures(*truth[video], H))
        for r in items:
            q = r["question"]
            if r["template"] == "pred_collide":
                a_name, b_name = q[len("Will the "):].split(" collide with the ")
                b_name = b_name.split(" after")[0]
            else:
                a_name = q.split("the ", 1)[1].split(" leave")[0].split(" hit")[0]
                b_name = None
            slots = {"a": slot_of(a_name, ident, names, present)}
            if b_name is not None:
                slots["b"] = slot_of(b_name, ident, names, present)
            slots["choices"] = [slot_of(c, ident, names, present) for c in r["choices"]]
            true_slots = {}
            if args.truth:  # truth rows are indexed by object id, found by the exact name
                ids = {f"{ob['color']} {ob['material']} {ob['shape']}": i for i, ob in enumerate(truth[video][0])}
                true_slots = {"a": ids.get(a_name, -1), "choices": [ids.get(c, -1) for c in r["choices"]]}
                if b_name is not None:
                    true_slots["b"] = ids.get(b_name, -1)
            for src, (xy, alive) in futures.items():
                slots_here = true_slots if src.startswith("truth") else slots
                inside = alive & ((xy >= 0) & (xy <= canvas)).all(-1)
                ok = -1 not in (slots_here["a"], slots_here.get("b", 0))
                pred = readout(r["template"], r["choices"], slots_here, xy, inside, args.contact_px) if ok else "?"
                hits[src][r["template"]].append(float(pred == r["answer"]))
            if r["qid"] in lm:
                hits["language module (pack)"][r["template"]].append(float(lm[r["qid"]]))
    table = {src: {t: round(100 * sum(v) / len(v), 1) for t, v in per.items()} | {"n": {t: len(v) for t, v in per.items()}}
             for src, per in hits.items()}
    print("| readout | " + " | ".join(TEMPLATES) + " |\n|---|" + "---|" * len(TEMPLATES))
    for src, per in table.items():
        print(f"| {src} | " + " | ".join(f"{per.get(t, float('nan'))} (n={per['n'].get(t, 0)})" for t in TEMPLATES) + " |")
    if args.out:
        from cogarch.fsutil import atomic_write_json

        atomic_write_json(args.out, {"args": vars(args), "accuracy": table})
    return 0


if __name__ == "__main__":
    cli(main)
