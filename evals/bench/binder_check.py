"""Which slots does a language module's slot binder pick? Its picks against the named pair.

For each desc_collide question of a split ("Does the X collide with the Y?"), the module's binder
(modules/language/binder.py) weighs the object slots per role for the prompt exactly as answering
builds it (LanguageModule.binder_picks); the two named objects are found in the clip's `objects`
rows by code (slot_readout.slot_view, as slot_signal and template_probe --bound bind them). Reported:
how often the first two roles' top slots are the named pair, how often role 0's is one of them,
how often roles 0 and 1 take the same slot, and the mean top weight. A diagnostic of a trained
module (docs/benchmarks.md, "What the object slots hold", part 7); nothing here answers.

    python -m cogarch.evals.bench.binder_check --language runs/l13/bind2/final --data runs/vf/physqa \
        --features runs/l7/features --split val
"""

from __future__ import annotations

import argparse

from cogarch.errors import UserError
from cogarch.evals.bench import cli
from cogarch.evals.bench.forecast_readout import question_rows


def check(language: str, data: str, features: str, split: str, slots: int = 6) -> dict:
    from cogarch.evals.bench.slot_signal import named_pair
    from cogarch.modules.language.data import FeatureShard
    from cogarch.modules.language.model import LanguageModule

    module = LanguageModule.from_pretrained(language)
    module.eval()
    if module.adapter.binder is None:
        raise UserError(f"{language} has no slot binder (language.binder is empty)")
    shard = FeatureShard(features, split)
    n = pair = role0 = same = 0
    weight = 0.0
    for q in question_rows(data, split, ("desc_collide",)):
        bus = shard.bus(q["clip_id"])
        objects = bus.latest("objects")
        if objects is None:
            raise UserError(f"{features} has no objects rows")
        named = named_pair(q["question"], objects.tokens[0], slots)
        if named is None:
            continue  # the rows do not hold two such slots
        a, b = named
        picks = module.binder_picks(bus, q["question"], list(q.get("choices") or []) or None)
        top = [p["slot"] for p in picks]
        n += 1
        pair += {a, b} == set(top[:2])
        role0 += top[0] in (a, b)
        same += top[0] == top[1]
        weight += sum(p["weight"] for p in picks[:2]) / 2
    if n == 0:
        raise UserError(f"no desc_collide question of {split} has two named slots in the rows")
    pct = lambda k: round(100 * k / n, 1)
    return {"language": language, "split": split, "n": n, "named_pair": pct(pair), "role0_in_pair": pct(role0),
            "roles_0_1_same_slot": pct(same), "mean_top_weight": round(weight / n, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--language", required=True, help="a saved language folder with a slot binder")
    ap.add_argument("--data", required=True, help="generated physqa suite (its questions/)")
    ap.add_argument("--features", required=True, help="language feature shards of that suite")
    ap.add_argument("--split", default="val")
    ap.add_argument("--slots", type=int, default=6)
    args = ap.parse_args(argv)
    print(check(args.language, args.data, args.features, args.split, args.slots))
    return 0


if __name__ == "__main__":
    cli(main)
