"""Which slots does a language module's slot binder pick? Its picks against the named objects.

For each question of a template and split ("Does the X collide with the Y?", or with --template
desc_first_hit "Which object does the X hit first?", and pred_next_hit, desc_moving_end), the
module's binder (modules/language/binder.py) weighs the object slots per role for the prompt exactly
as answering builds it (LanguageModule.binder_picks); the named objects are found in the clip's
`objects` rows by code (slot_signal.named_slots, as template_probe --bound binds them). Reported:
how often the first roles' top slots are the named objects (the pair, or the subject), how often
role 0's is one of them, how often roles 0 and 1 take the same slot, and the mean top weight of the
first roles. With the binder's first token (model.binder_first) on "hits first" / "hits next": how
often the token reads the answer's slot (first_<kind>_answer) and how often it reads nothing
(first_<kind>_none), per kind it reads (forecast, objects). A diagnostic of a trained module (docs/benchmarks.md, "What the object slots hold",
parts 7 and 8); nothing here answers.

    python -m cogarch.evals.bench.binder_check --language runs/l13/bind2/final --data runs/vf/physqa \
        --features runs/l7/features --split val [--template desc_first_hit]
"""

from __future__ import annotations

import argparse
import collections

from cogarch.errors import UserError
from cogarch.evals.bench import cli
from cogarch.evals.bench.forecast_readout import question_rows


ANSWER_IS_OBJECT = ("desc_first_hit", "pred_next_hit")  # templates whose answer names an object of the clip


def check(language: str, data: str, features: str, split: str, slots: int = 6, template: str = "desc_collide") -> dict:
    from cogarch.evals.bench.slot_signal import find_slot, named_slots
    from cogarch.modules.language.data import FeatureShard
    from cogarch.modules.language.model import LanguageModule

    module = LanguageModule.from_pretrained(language)
    module.eval()
    if module.adapter.binder is None:
        raise UserError(f"{language} has no slot binder (language.binder is empty)")
    shard = FeatureShard(features, split)
    n = pair = role0 = same = 0
    first = collections.defaultdict(collections.Counter)
    weight = 0.0
    for q in question_rows(data, split, (template,)):
        bus = shard.bus(q["clip_id"])
        objects = bus.latest("objects")
        if objects is None:
            raise UserError(f"{features} has no objects rows")
        named = named_slots(template, q["question"], objects.tokens[0], slots)
        if named is None:
            continue  # the rows do not hold such slots
        picks = module.binder_picks(bus, q["question"], list(q.get("choices") or []) or None)
        top = [p["slot"] for p in picks if p["role"] != "first"]
        if template in ANSWER_IS_OBJECT:  # the answer is an object: does the first token read its slot?
            ans = find_slot(objects.tokens[0], slots)(q["choices"][int(q["answer_index"])])
            for p in picks:
                if p["role"] == "first":
                    first[p["kind"]]["answer"] += p["slot"] is not None and p["slot"] == ans
                    first[p["kind"]]["none"] += p["slot"] is None
        n += 1
        pair += set(named) == set(top[: len(named)])
        role0 += top[0] in named
        same += top[0] == top[1]
        weight += sum(p["weight"] for p in picks[: len(named)]) / len(named)
    if n == 0:
        raise UserError(f"no {template} question of {split} has its named objects in the rows")
    pct = lambda k: round(100 * k / n, 1)
    return {"language": language, "split": split, "template": template, "n": n, "named": pct(pair), "role0_named": pct(role0),
            "roles_0_1_same_slot": pct(same), "mean_top_weight": round(weight / n, 3),
            **{f"first_{kind}_{k}": pct(c[k]) for kind, c in first.items() for k in ("answer", "none")}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--language", required=True, help="a saved language folder with a slot binder")
    ap.add_argument("--data", required=True, help="generated physqa suite (its questions/)")
    ap.add_argument("--features", required=True, help="language feature shards of that suite")
    ap.add_argument("--split", default="val")
    ap.add_argument("--slots", type=int, default=6)
    ap.add_argument("--template", default="desc_collide", help="desc_collide (the pair) or a one-subject form: "
                    "desc_first_hit, pred_next_hit, desc_moving_end")
    args = ap.parse_args(argv)
    print(check(args.language, args.data, args.features, args.split, args.slots, args.template))
    return 0


if __name__ == "__main__":
    cli(main)
