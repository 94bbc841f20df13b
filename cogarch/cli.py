"""The `cogarch` command line: one verb per use.

    cogarch ask CLIP QUESTION [-q QUESTION ...] [--model PACK] [--memory DIR] [--explain] [--trace] [--json]
    cogarch train MODULE --config FILE [key=value ...] [--resume]
    cogarch eval --suite NAME [--model PACK|blind|baseline:chance|baseline:prior] [--data DIR] [--limit N] [--output DIR]
                 [--planner cem|hier|random|YAML] [--category near|far|...]   (planning only)
    cogarch generate --suite NAME --n N [--seed S] --out DIR [KEY=VALUE ...]
    cogarch info [PACK]
    cogarch memory list|search|forget|rebuild [TARGET] --store DIR
    cogarch plan --env table-push [--goal near|far[+obstacles]] [--planner cem|hier|random] [--model PACK|simulator] [--out PNG]
    cogarch serve [--model PACK] [--host 127.0.0.1] [--port 8000]

User errors (bad paths, videos, config keys, checkpoints) print ONE line to stderr and exit 2;
verbs whose module is not built yet say so and exit 2. A traceback means a bug in cogarch.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path

from cogarch.errors import UserError

EXAMPLES = {
    "ask": """examples:
  cogarch ask examples/collision.mp4 "Will the red sphere hit the cube?"
  cogarch ask clip.mp4 "What color is the cube?" -q "How many objects are there?" --explain
  cogarch ask clip.mp4 "Did anything vanish?" --model runs/pack --trace --json""",
    "train": """examples:
  cogarch train toy --config configs/toy/tiny.yaml
  cogarch train perception --config configs/perception/tiny.yaml optim.lr=3e-4 trainer.max_steps=200
  cogarch train perception --config configs/perception/tiny.yaml --resume
  accelerate launch --config_file configs/accelerate/multi_gpu_ddp.yaml -m cogarch.cli train perception --config configs/perception/vitl.yaml""",
    "eval": """examples:
  cogarch eval --suite physqa --model baseline:prior --data data/physqa --output outputs/physqa-prior
  cogarch eval --suite voe --model runs/pack --limit 200
  cogarch eval --suite intphys2 --data ~/datasets/IntPhys2/Main --model blind
  cogarch eval --suite planning --model runs/pack/pack --limit 20                  # the pack's own planner
  cogarch eval --suite planning --model runs/pack/pack --planner hier              # same pack, hierarchical CEM
  cogarch eval --suite planning --model runs/pack/pack --planner my/plan.yaml      # a PlannerConfig YAML
  cogarch eval --suite planning --model runs/pack/pack --category near --limit 100  # 100 near-goal episodes""",
    "generate": """examples:
  cogarch generate --suite physqa --n 2000 --out data/physqa
  cogarch generate --suite voe --n 400 --seed 1 --out data/voe
  cogarch generate --suite planning --n 200 --out data/planning
  cogarch generate --suite physqa --n 2000 --out data/physqa4 train_per_template=4   # 4 questions per template per train clip""",
    "info": """examples:
  cogarch info                 # version, device, installed modules, default pack
  cogarch info runs/pack       # modules, sizes and eval results of a pack""",
    "memory": """examples:
  cogarch memory list --store ~/.cogarch/memory
  cogarch memory search clip.mp4 --store ~/.cogarch/memory -k 5
  cogarch memory forget 12 --store ~/.cogarch/memory
  cogarch memory rebuild --store ~/.cogarch/memory""",
    "plan": """examples:
  cogarch plan --env table-push --goal near --out plan.png              # the default pack's planner
  cogarch plan --goal far+obstacles --planner hier --model runs/pack/pack
  cogarch plan --goal near --model simulator                           # perfect-model upper bound""",
    "serve": """examples:
  cogarch serve                                  # http://127.0.0.1:8000/ with the default pack
  cogarch serve --model runs/pack/pack --port 8080 --max-upload-mb 64
  curl -F clip=@clip.mp4 -F question="Will the red sphere hit the cube?" http://127.0.0.1:8000/v1/ask""",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line + exit 2 (not a usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _sub(subs, name: str, help: str) -> argparse.ArgumentParser:
    return subs.add_parser(
        name, help=help, description=help, epilog=EXAMPLES.get(name), formatter_class=argparse.RawDescriptionHelpFormatter
    )


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cogarch", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="store_true", help="print the version and exit")
    subs = p.add_subparsers(dest="verb", parser_class=_Parser)

    a = _sub(subs, "ask", "answer questions about a video clip, from the model's latents")
    a.add_argument("clip", help="video file (mp4, webm, avi, mkv, gif) or a folder of frames")
    a.add_argument("question", nargs="?", help="the question (or use -q, or omit for interactive mode)")
    a.add_argument("-q", "--question", dest="more", action="append", default=[], help="another question (repeatable)")
    a.add_argument("--model", help="model pack folder (default: the shipped default pack)")
    a.add_argument("--memory", help="episodic memory store folder to use and fill")
    a.add_argument("--explain", action="store_true", help="show evidence: surprise peak, forecast, recall")
    a.add_argument("--explain-png", help="with --explain: save a frames strip + surprise curve PNG here")
    a.add_argument("--trace", action="store_true", help="print the bus traffic (kind, source, shape, norm, time)")
    a.add_argument("--json", action="store_true", help="machine-readable output")

    t = _sub(subs, "train", "train one module (or the whole pack) with the generic trainer")
    t.add_argument("module", help="toy | perception | probe | world_model | critic | language-pretrain | language | pack")
    t.add_argument("--config", required=True, help="YAML preset under configs/")
    t.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=3e-4 trainer.max_steps=100")
    t.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in trainer.out_dir")

    e = _sub(subs, "eval", "run an evaluation suite with baselines side by side")
    e.add_argument("--suite", required=True, help="physqa|voe|planning|clevrer|intphys2|piqa|mvp|perception_test")
    e.add_argument("--model", help="pack folder, blind, baseline:chance or baseline:prior (default: default pack)")
    e.add_argument("--data", help="data folder (default: data/<suite>)")
    e.add_argument("--split", default=None, help="split to evaluate (default: the suite's labelled split: test, or val where test labels are withheld)")
    e.add_argument("--limit", type=int, help="evaluate only the first N items (pairs kept whole)")
    e.add_argument("--output", help="output folder (default: outputs/eval-<suite>-<model>)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--planner", help="planning suite only: plan with this planner instead of the pack's stored one: "
                                     "a preset in configs/planner/ (random | cem | hier) or a planner YAML file")
    e.add_argument("--category", help="planning suite only: evaluate only this goal category "
                                      "(near | far | near+obstacles | far+obstacles), taken before --limit")

    g = _sub(subs, "generate", "generate a physics-world suite with exact answers")
    g.add_argument("--suite", required=True, help="physqa | voe | planning")
    g.add_argument("--n", type=int, required=True, help="number of clips (episodes for planning)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    g.add_argument("--workers", type=int, help="processes (default: all cores)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    g.add_argument("options", nargs="*", metavar="KEY=VALUE",
                   help="generator options (evals/world/generate.py GenOptions), e.g. train_per_template=4 size=96")

    i = _sub(subs, "info", "show the installation, or what is in a pack")
    i.add_argument("pack", nargs="?")

    m = _sub(subs, "memory", "inspect and manage the episodic memory store")
    m.add_argument("action", choices=["list", "search", "forget", "rebuild"])
    m.add_argument("target", nargs="?", help="search: a clip; forget: an episode id")
    m.add_argument("--store", required=True)
    m.add_argument("-k", type=int, default=5)
    m.add_argument("--json", action="store_true")
    m.add_argument("--model", help="pack whose perception embeds the clip for search")

    pl = _sub(subs, "plan", "plan in latent space against the physics world's push environment")
    pl.add_argument("--env", default="table-push")
    pl.add_argument("--goal", default="near", help="near | far")
    pl.add_argument("--planner", default="cem", help="random | cem (flat) | hier")
    pl.add_argument("--seed", type=int, default=0)
    pl.add_argument("--model", default="default",
                    help="pack folder with planning/ (default: the shipped default pack), a planning model "
                         "folder, or 'simulator' (the env's own simulator: a perfect-model upper bound)")
    pl.add_argument("--out", default="plan.png", help="rollout strip PNG")

    sv = _sub(subs, "serve", "serve a web page and a JSON API that answer questions about uploaded clips")
    sv.add_argument("--model", help="model pack folder (default: the shipped default pack)")
    sv.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="TCP port (0: any free port)")
    sv.add_argument("--max-upload-mb", type=float, default=32.0, help="largest accepted upload in MiB (413 past it)")
    sv.add_argument("--max-duration", type=float, default=120.0, help="longest accepted clip in seconds (422 past it)")

    lg = _sub(subs, "language", "language-module utilities")
    lg.add_argument("action", choices=["merge"])
    lg.add_argument("src", help="trained language module folder (LoRA adapter + projectors)")
    lg.add_argument("out", help="where to write the merged LM")
    return p


# ---------------------------------------------------------------------------------------------
# Verbs. Heavy imports happen inside each verb so `cogarch --help` is instant.


def cmd_train(args: argparse.Namespace) -> int:
    from cogarch.train import train_module

    out = train_module(args.module, args.config, args.overrides, resume=args.resume)
    print(f"trained {args.module}: {out}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from cogarch.evals.world.generate import generate, parse_options

    options = parse_options(args.options)
    summary = generate(args.suite, args.n, args.out, seed=args.seed, workers=args.workers, overwrite=args.overwrite, **options)
    print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return 0


def _eval_planner(args: argparse.Namespace) -> dict | None:
    """The resolved --planner override, checked before any pack or data is loaded."""
    if args.planner is None:
        return None
    if args.suite != "planning":
        raise UserError(f"--planner applies only to --suite planning, not --suite {args.suite}")
    from cogarch.evalglue import planner_override

    return planner_override(args.planner)


def cmd_eval(args: argparse.Namespace) -> int:
    from cogarch.evalglue import install
    from cogarch.evals.runner import format_table, run_eval

    planner = _eval_planner(args)
    install()
    model = args.model or default_pack_or_error()
    tag = Path(model).name if os.path.sep in model else model.replace(":", "-")
    if planner is not None:  # its own default folder: never overwrite the pack planner's results
        tag += "-" + Path(args.planner).stem
    if args.category:
        tag += "-" + args.category.replace("+", "-")
    output = args.output or f"outputs/eval-{args.suite}-{tag}"
    results = run_eval(args.suite, model, args.data, args.limit, output, seed=args.seed, split=args.split,
                       planner=planner, category=args.category)
    print(format_table(results))
    if planner is not None:  # the table does not say which planner ran
        print(f"planner: {planner['name']} (kind {planner['kind']}) in place of the pack's stored planner")
    print(f"wrote {output}/results.json, samples.jsonl, results.md, results.png")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from cogarch.info import info

    print(info(args.pack))
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from cogarch.ask import run_ask

    questions = ([args.question] if args.question is not None else []) + list(args.more)
    return run_ask(
        clip=args.clip,
        questions=questions,
        model=args.model,
        memory=args.memory,
        explain=args.explain,
        explain_png=args.explain_png,
        trace=args.trace,
        as_json=args.json,
    )


def cmd_memory(args: argparse.Namespace) -> int:
    from cogarch.ask import memory_cli

    return memory_cli(args.action, args.store, args.target, k=args.k, as_json=args.json, model=args.model)


def cmd_plan(args: argparse.Namespace) -> int:
    from cogarch.modules.cost.cli import run_plan

    model = args.model
    if model == "default":
        from cogarch.assets import default_pack_path

        found = default_pack_path()
        if found is None:
            raise UserError("no default pack is installed: pass --model PACK (or --model simulator)")
        model = str(found)
    planner = "cem" if args.planner == "flat" else args.planner
    result = run_plan(env=args.env, goal=args.goal, planner=planner, seed=args.seed, out_png=args.out,
                      model=None if model == "simulator" else model)
    print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0


def cmd_language(args: argparse.Namespace) -> int:
    from cogarch.modules.language.merge import merge

    merge(args.src, args.out)
    print(f"merged LM written to {args.out}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from cogarch.serve import ServeLimits, serve

    limits = ServeLimits(max_upload_bytes=int(args.max_upload_mb * 2**20), max_duration_s=args.max_duration)
    return serve(args.model, host=args.host, port=args.port, limits=limits)


def default_pack_or_error() -> str:
    from cogarch.assets import default_pack_path

    path = default_pack_path()
    if path is None:
        from cogarch.errors import NotBuiltError

        raise NotBuiltError("no default model pack is shipped yet; pass --model PACK or a baseline:chance|baseline:prior")
    return str(path)


VERBS = {
    "ask": cmd_ask,
    "train": cmd_train,
    "eval": cmd_eval,
    "generate": cmd_generate,
    "info": cmd_info,
    "memory": cmd_memory,
    "plan": cmd_plan,
    "language": cmd_language,
    "serve": cmd_serve,
}


def _one_line(msg: str) -> str:
    return " ".join(str(msg).split()) or "unknown error"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may come after options (`train x --config f a.b=1`), which plain argparse rejects.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.verb == "train" and all("=" in x and not x.startswith("-") for x in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.version:
        from cogarch import __version__

        print(f"cogarch {__version__}")
        return 0
    if not args.verb:
        parser.print_help()
        return 2
    try:
        return VERBS[args.verb](args) or 0
    except UserError as e:
        sys.stderr.write(f"cogarch {args.verb}: error: {_one_line(str(e))}\n")
        return 2
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("cogarch."):
            sys.stderr.write(f"cogarch {args.verb}: error: {e.name} is not built yet\n")
            return 2
        raise
    except KeyboardInterrupt:
        sys.stderr.write(f"cogarch {args.verb}: interrupted\n")
        return 130
    except OSError as e:
        # Disk full, read-only folder, permissions: the user's environment, not a bug.
        if e.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT):
            where = f" ({e.filename})" if e.filename else ""
            sys.stderr.write(f"cogarch {args.verb}: error: {e.strerror}{where}\n")
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())
