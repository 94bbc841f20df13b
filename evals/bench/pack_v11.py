"""The v11 default pack, as it was made (2026-12-07): the v10 pack with its language module and
blind baseline replaced by the two-round stage 2 (`stage2_rounds: 2`), physqa test and the check
set re-scored through the pack, the VoE and planning entries kept (those modules are unchanged).

Inputs (made on the development machine, docs/benchmarks.md "What the object slots hold", part 3):
runs/l8/norm_cont/final (the retrained one-round control of `bash evals/bench/language_variants.sh
runs/l7 norm`, continued for a second stage-2 round), runs/l8/blind_r2/final (v10's blind LM plus a
second round), runs/vf/physqa (the pack's own data: `. evals/bench/recipe_lib.sh; bench_suites
physqa`). Writes runs/l8/pack11; installing it as cogarch/assets/default_pack is a separate step.

    python evals/bench/pack_v11.py
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from cogarch.config import load_config
from cogarch.evalglue import install
from cogarch.evals.runner import run_eval
from cogarch.fsutil import atomic_write_json
from cogarch.pack_train import Config, Pipeline, git_revision


def main() -> None:
    src, dst = Path("cogarch/assets/default_pack"), Path("runs/l8/pack11")
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    for sub, new in (("language", "runs/l8/norm_cont/final"), ("language_blind", "runs/l8/blind_r2/final")):
        shutil.rmtree(dst / sub)
        shutil.copytree(new, dst / sub)
    meta = json.loads((dst / "pack.json").read_text())
    meta["config"]["stage2_rounds"] = 2
    meta["language_rebuild"] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git_revision": git_revision(),
        "how": "v10's perception, world model, planning, memory and base LM kept; language stage 1 + stage 2 "
               "retrained at one thread on v10's bus features (evals/bench/language_variants.sh norm), then a second "
               "stage-2 round from its final weights; blind baseline: v10's blind LM plus a second round. "
               "physqa test and the check set re-scored; voe and planning entries are v10's (modules unchanged). "
               "docs/benchmarks.md, 'What the object slots hold', part 3.",
    }
    atomic_write_json(dst / "pack.json", meta)
    install()
    res = run_eval("physqa", str(dst), "runs/vf/physqa", None, "runs/l8/eval11/physqa", seed=0, split="test")
    meta = json.loads((dst / "pack.json").read_text())
    meta["eval"]["physqa"] = {"metrics": res["metrics"], "baselines": res.get("baselines", {}), "n": res.get("n")}
    atomic_write_json(dst / "pack.json", meta)
    cfg = load_config(Config, None, ["out_dir=runs/l8/eval11"])
    Pipeline(cfg, resume=False).check(dst)
    print(json.dumps({k: v["acc"] for k, v in res["metrics"].items()}), json.loads((dst / "pack.json").read_text())["check"]["metrics"])


if __name__ == "__main__":  # the evaluation spawns workers that re-import this file
    main()
