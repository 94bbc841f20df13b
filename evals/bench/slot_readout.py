"""Do perception's object slots carry the answers to descriptive questions? A fixed-rule readout.

A DIAGNOSTIC, not a model: it never answers for the pack. The language module answers physqa from
the bus; when it misses a descriptive question, either the slots do not hold the fact (perception
is the limit) or the reader does not find it (the language module is the limit). This script
applies one fixed rule per template to the pack's OBSERVED object slots (perception, the same rows
the language module reads) and, with --truth, to the simulator's observed tracks sampled at the
same latent steps (the rule's ceiling):

  desc_count             present slots whose most likely shape (material) is the one asked;
  desc_moving_end        the object's speed at the last step over `moving` units/s, and in view;
  desc_exit              seen at some step, gone (presence < 0.5 or centre off the canvas) at the last;
  desc_collide           the two centres come within `contact_px` at a step where both are present;
  desc_count_collisions  the number of slot pairs that do;
  desc_first_hit         the choice whose centre first comes within contact_px of the object's;
  desc_which_moving      the choice fastest at the last step;  desc_which_exits  the choice whose
                         presence at the last step is lowest (or whose centre is off the canvas).

Objects are found among the slots by name (evals/bench/forecast_readout.slot_of: the present slot
whose colour x material x shape probability best matches). Rule constants are fixed in advance
(MOVING_SPEED = the generator's own threshold, 10 px contact as forecast_readout), never tuned on
the split. If the rule on the slots beats the language module on a template, the slots hold
information the module does not read; if the rule on the true tracks is far above the rule on
the slots, perception is the limit there.

    python -m cogarch.evals.bench.slot_readout --pack cogarch/assets/default_pack --data runs/vf/physqa \
        --split test --truth --samples runs/l7/samples_shipped_test/model.samples.jsonl
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import torch

from cogarch.errors import UserError
from cogarch.evals.bench import cli
from cogarch.evals.bench.forecast_readout import answered, question_rows, slot_of, truth_clips
from cogarch.evals.world.physqa import MOVING_SPEED

TEMPLATES = ("desc_count", "desc_moving_end", "desc_exit", "desc_collide", "desc_count_collisions",
             "desc_first_hit", "desc_which_moving", "desc_which_exits")
SPEED = 32.0  # the object rows' velocity scale (modules/perception/objects.py SPEED, oracle_bus.SPEED)
NOUNS = {"rubber objects": ("material", "rubber"), "metal objects": ("material", "metal"),
         "spheres": ("shape", "sphere"), "cubes": ("shape", "cube"), "cylinders": ("shape", "cylinder")}


def between(q: str, head: str, tail: str) -> str:
    if not (q.startswith(head) and q.endswith(tail)):
        raise UserError(f"cannot parse question {q!r}")
    return q[len(head): len(q) - len(tail)]


def names_in(template: str, q: str) -> list[str]:
    """The object names a question mentions, in order."""
    if template == "desc_moving_end":
        return [between(q, "Is the ", " moving at the end of the video?")]
    if template == "desc_exit":
        return [between(q, "Does the ", " leave the scene?")]
    if template == "desc_first_hit":
        return [between(q, "Which object does the ", " hit first?")]
    if template == "desc_collide":
        return between(q, "Does the ", "?").split(" collide with the ")
    return []


def readout(template: str, q: str, choices: list[str], find, xy: torch.Tensor, on: torch.Tensor,
            speed: torch.Tensor, kinds: dict[str, list[str]], contact_px: float) -> str:
    """One question by the fixed rule. xy [T, K, 2] px, on [T, K] present and on the canvas,
    speed [K] units/s at the last step, kinds {"shape": [K], "material": [K]}; find(name) -> k or -1."""
    K = xy.shape[1]
    seen = on.any(0)

    def dist(a: int, b: int) -> torch.Tensor:  # [T], inf where either is absent
        return (xy[:, a] - xy[:, b]).norm(dim=-1).masked_fill(~(on[:, a] & on[:, b]), float("inf"))

    if template == "desc_count":
        noun = between(q, "How many ", " are there?")
        if noun not in NOUNS:
            raise UserError(f"cannot parse question {q!r} (unknown noun {noun!r})")
        attr, value = NOUNS[noun]
        return str(sum(1 for k in range(K) if seen[k] and kinds[attr][k] == value))
    if template == "desc_count_collisions":
        return str(sum(1 for a in range(K) for b in range(a + 1, K) if bool((dist(a, b) < contact_px).any())))
    if template in ("desc_which_moving", "desc_which_exits"):
        ks = [find(c) for c in choices]
        if template == "desc_which_moving":
            vals = [float(speed[k]) if k >= 0 and on[-1, k] else -1.0 for k in ks]
        else:  # gone at the last step (not on); among several, the first listed choice
            vals = [(0.0 if on[-1, k] else 1.0) if k >= 0 else -1.0 for k in ks]
        return choices[max(range(len(ks)), key=lambda i: vals[i])]
    ks = [find(n) for n in names_in(template, q)]
    if -1 in ks or len(set(ks)) < len(ks):  # a name not found, or two names on one slot (distance 0)
        return "?"
    a = ks[0]
    if template == "desc_moving_end":
        return "yes" if bool(on[-1, a]) and float(speed[a]) > MOVING_SPEED else "no"
    if template == "desc_exit":
        return "yes" if bool(seen[a]) and not bool(on[-1, a]) else "no"
    if template == "desc_collide":
        return "yes" if bool((dist(a, ks[1]) < contact_px).any()) else "no"
    best, key = choices[0], (float("inf"), float("inf"))  # desc_first_hit
    for c in choices:
        k = find(c)
        if k < 0 or k == a:
            continue
        d = dist(a, k)
        hit = (d < contact_px).nonzero().flatten()
        cand = (float(hit[0]) if hit.numel() else float("inf"), float(d.min()))
        if cand < key:
            best, key = c, cand
    return best


def perceived(bus, canvas_default: float = 64.0):
    """The pack's observed slot rows -> (xy, on, speed, kinds, find)."""
    o = bus.latest("objects")
    if o is None:
        raise UserError("the pack's perception publishes no object slots (objects)")
    names = [o.meta["colors"], o.meta["shapes"], o.meta["materials"]]
    K, canvas = int(o.meta["slots"]), float(o.meta.get("canvas", canvas_default))
    return slot_view(o.tokens[0].float().reshape(-1, K, o.tokens.shape[-1]), names, canvas)


def slot_view(rows: torch.Tensor, names: list[list[str]], canvas: float = 64.0):
    """Gated object rows [T', K, D] (perception's layout) -> (xy, on, speed, kinds, find) as `readout`
    reads them: positions ungated in px, "on" = visible (gate > 0.5) and on the canvas, the last
    step's speed in units/s, each slot's shape and material, find(name) -> the best-matching present slot."""
    n_id, K = sum(map(len, names)), rows.shape[1]
    gate = rows[:, :, n_id].clamp(min=1e-6)
    ident = rows[gate.argmax(0), torch.arange(K), :n_id] / gate.max(0).values[:, None]  # [K, n_id]
    xy = rows[:, :, n_id + 1: n_id + 3] / gate[..., None] * canvas
    vel = rows[-1, :, n_id + 3: n_id + 5] / gate[-1, :, None] * SPEED
    on = (rows[:, :, n_id] > 0.5) & ((xy >= 0) & (xy <= canvas)).all(-1)
    present = on.any(0)
    nc, ns = len(names[0]), len(names[1])
    kinds = {"shape": [names[1][int(i)] for i in ident[:, nc: nc + ns].argmax(-1)],
             "material": [names[2][int(i)] for i in ident[:, nc + ns:].argmax(-1)]}
    return xy, on, vel.norm(dim=-1), kinds, lambda name: slot_of(name, ident, names, present)


def true_rows(objects: list[dict], ann: dict, steps: int):
    """The simulator's observed tracks at the end of each latent step -> (xy, on, speed, kinds, find).
    For videos that hold exactly the observed frames (checked by main), read as perception reads
    them: `steps` latent steps of observed / steps frames. "On" here is the simulator's in_view (the
    object's box overlaps the frame); on the slot side it is gate > 0.5 with the centre on the canvas."""
    tracks, seen = ann["tracks"], int(ann["observed_frames"])
    per = max(seen // steps, 1)
    frames = [min((t + 1) * per - 1, seen - 1) for t in range(steps)]
    tr = [tracks[str(ob["id"])] for ob in objects]
    xy = torch.tensor([[t["pos"][f] for t in tr] for f in frames], dtype=torch.float32)
    on = torch.tensor([[bool(t["in_view"][f]) for t in tr] for f in frames])
    speed = torch.tensor([float(torch.tensor(t["vel"][frames[-1]]).norm()) for t in tr])
    kinds = {"shape": [ob["shape"] for ob in objects], "material": [ob["material"] for ob in objects]}
    ids = {f"{ob['color']} {ob['material']} {ob['shape']}": i for i, ob in enumerate(objects)}
    return xy, on, speed, kinds, lambda name: ids.get(name, -1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pack", required=True)
    ap.add_argument("--data", required=True, help="generated physqa folder")
    ap.add_argument("--split", default="test")
    ap.add_argument("--contact-px", type=float, default=10.0)
    ap.add_argument("--samples", nargs="*", default=[], metavar="NAME=FILE",
                    help="samples.jsonl files of answers on the same split to score beside the rule (e.g. model=…/model.samples.jsonl)")
    ap.add_argument("--truth", action="store_true", help="also apply the rule to the simulator's observed tracks (its ceiling)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    import cogarch

    if not args.contact_px > 0:
        raise UserError(f"--contact-px must be > 0, got {args.contact_px}")
    rows = question_rows(args.data, args.split, TEMPLATES)
    answers = {}
    for spec in args.samples:
        name, _, path = spec.rpartition("=")
        answers[name or Path(path).stem] = answered(path, rows)
    truth = truth_clips(args.data, args.split, observed_video=True) if args.truth else {}
    model = cogarch.load(args.pack)
    by_clip: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_clip[r["video"]].append(r)
    hits: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for video, items in by_clip.items():
        views = {"rule on the pack's slots": perceived(model.observe(str(Path(args.data) / video)).bus)}
        if args.truth:
            views["rule on the true tracks"] = true_rows(*truth[video], views["rule on the pack's slots"][0].shape[0])
        for r in items:
            for src, (xy, on, speed, kinds, find) in views.items():
                pred = readout(r["template"], r["question"], list(r["choices"] or []), find, xy, on, speed, kinds, args.contact_px)
                hits[src][r["template"]].append(float(pred == r["answer"]))
            for name, got in answers.items():
                if r["qid"] in got:
                    hits[name][r["template"]].append(float(got[r["qid"]]))
    table = {src: {t: round(100 * sum(v) / len(v), 1) for t, v in per.items()} for src, per in hits.items()}
    n = {t: sum(1 for r in rows if r["template"] == t) for t in TEMPLATES}
    print("| readout | " + " | ".join(f"{t} ({n[t]})" for t in TEMPLATES) + " |\n|---|" + "---|" * len(TEMPLATES))
    for src, per in table.items():
        print(f"| {src} | " + " | ".join(str(per.get(t, "")) for t in TEMPLATES) + " |")
    if args.out:
        from cogarch.fsutil import atomic_write_json

        atomic_write_json(args.out, {"args": vars(args), "n": n, "accuracy": table})
    return 0


if __name__ == "__main__":
    cli(main)
