"""Replace a pack's language module and blind baseline, then re-score it as the pipeline does.

How the v11 and v12 default packs were made (docs/benchmarks.md, "What the object slots hold",
parts 3 and 4): the perception, world model, planning and memory of the pack are kept; its
`language` and `language_blind` folders are replaced by retrained ones; pack.json records the
recipe keys given with --set and a `language_rebuild` note; physqa test (from --data, the pack's
own generated suite) and the check set are re-scored through the pack (`cogarch eval`, as
`Pipeline.evaluate` / `Pipeline.check` do); the VoE and planning entries are kept, since those
modules did not change. Writes --out; installing it as cogarch/assets/default_pack is a separate
step (`cp -r`).

    python evals/bench/repack_language.py --pack V10_PACK --language runs/l8/norm_cont/final \\
        --blind runs/l8/blind_r2/final --out runs/l8/pack11 --set stage2_rounds=2 --how "..."     # v11
    python evals/bench/repack_language.py --pack V11_PACK --language runs/l9/rep2/final \\
        --blind runs/l9/blind_rep2/final --out runs/l9/pack12 --set stage2_rounds=3 \\
        --set 'stage2_round_overrides=[[], [], ["trainer.max_steps=3000", "template_repeat.desc_count=4"]]' --how "..."   # v12
(V10_PACK / V11_PACK: cogarch/assets/default_pack at a commit that shipped it, e.g. `git archive 422d4f3
cogarch/assets/default_pack | tar -x -C /tmp/v11` for v11. v11 was made by this script's predecessor,
pack_v11.py; rerun on the v11 pack with v11's inputs, this script reproduces v11's physqa test and
check numbers exactly.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import yaml

from cogarch.config import load_config
from cogarch.errors import UserError
from cogarch.evals.bench import cli
from cogarch.fsutil import atomic_write_json
from cogarch.pack_train import Config, Pipeline, git_revision


def repack(src: Path, language: Path, blind: Path, out: Path, data: Path, sets: dict, how: str, drop: list[str] = ()) -> dict:
    from cogarch.evalglue import install
    from cogarch.evals.runner import run_eval

    for p, what in ((src / "pack.json", "pack"), (src / "language_blind", "pack with a blind baseline"),
                    (language / "language_config.json", "language folder"),
                    (blind / "language_config.json", "blind language folder"), (data / "questions", "physqa suite")):
        if not p.exists():
            raise UserError(f"{p.parent} is not a {what} (no {p.name})")
    o = out.resolve()
    for p in (src, language, blind, data):  # out is replaced: it must hold none of the inputs, nor sit in the pack
        if o == p.resolve() or o in p.resolve().parents or p.resolve() in o.parents:
            raise UserError(f"--out {out} overlaps the input {p}: write the new pack elsewhere")
    if out.exists() and not (out / "pack.json").is_file():
        raise UserError(f"--out {out} exists and is not a pack: refusing to replace it")
    meta = json.loads((src / "pack.json").read_text())
    if not isinstance(meta.get("config"), dict) or "physqa" not in meta.get("eval", {}):
        raise UserError(f"{src / 'pack.json'} has no recipe config or physqa evaluation (not a trained pack)")
    missing = [k for k in drop if k not in meta["config"]]
    if missing:
        raise UserError(f"--drop {', '.join(missing)}: not a key of {src / 'pack.json'}'s recipe")
    dropped = {k: meta["config"].pop(k) for k in drop}
    cfg = dict(meta["config"], **sets)
    load_config(Config, None, [f"{k}={json.dumps(v)}" for k, v in cfg.items()])  # the recorded recipe must load
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out)
    for sub, new in (("language", language), ("language_blind", blind)):
        shutil.rmtree(out / sub)
        shutil.copytree(new, out / sub)
    meta["config"] = cfg
    meta["language_rebuild"] = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git_revision": git_revision(),
                                "language": str(language), "language_blind": str(blind), "how": how,
                                **({"dropped_recipe_keys": dropped} if dropped else {})}
    atomic_write_json(out / "pack.json", meta)
    install()
    res = run_eval("physqa", str(out), str(data), None, str(out.parent / f"{out.name}_eval" / "physqa"), seed=0, split="test")
    meta = json.loads((out / "pack.json").read_text())
    meta["eval"]["physqa"] = {"metrics": res["metrics"], "baselines": res.get("baselines", {}), "n": res.get("n")}
    atomic_write_json(out / "pack.json", meta)
    Pipeline(load_config(Config, None, [f"out_dir={out.parent / (out.name + '_eval')}"]), resume=False).check(out)
    return json.loads((out / "pack.json").read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pack", default="cogarch/assets/default_pack", help="the pack whose other modules are kept")
    ap.add_argument("--language", required=True, help="the new language module (a saved …/final folder)")
    ap.add_argument("--blind", required=True, help="the new blind baseline, trained with the same recipe")
    ap.add_argument("--out", required=True, help="where the new pack is written (replaced if it exists)")
    ap.add_argument("--data", default="runs/vf/physqa", help="the pack's own physqa suite (its test split is scored)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=YAML", help="recipe keys to record in pack.json's config")
    ap.add_argument("--drop", action="append", default=[], metavar="KEY",
                    help="recorded recipe keys the current schema no longer has (e.g. binder_pretrain_args, "
                    "binder_curriculum_args of v14/v15: since renamed *_overrides); the note in pack.json keeps their values")
    ap.add_argument("--how", required=True, help="how the new language folders were trained (recorded in pack.json)")
    args = ap.parse_args(argv)
    sets = {}
    for item in args.set:
        if "=" not in item:
            raise UserError(f"--set {item!r} must look like key=value")
        key, value = item.split("=", 1)
        try:
            sets[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UserError(f"--set {item!r}: the value is not valid YAML") from None
    meta = repack(Path(args.pack), Path(args.language), Path(args.blind), Path(args.out), Path(args.data), sets, args.how, args.drop)
    print(json.dumps({k: v["acc"] for k, v in meta["eval"]["physqa"]["metrics"].items()}), meta["check"]["metrics"])
    return 0


if __name__ == "__main__":  # the evaluation spawns workers that re-import this file
    cli(main)
