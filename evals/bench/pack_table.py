"""Render a pack's recorded evaluation (pack.json "eval") as the README results table.

    python -m cogarch.evals.bench.pack_table cogarch/assets/default_pack [--untrained runs/pack_untrained/pack]

The numbers come from `cogarch train pack`'s evaluate stage, which runs exactly
`cogarch eval --suite physqa|voe|planning --model PACK --data DATA --split test` (planning: the
first `planning_eval_limit` test episodes); rerun those commands to regenerate them. Baselines
(chance, answer prior, blind LM; for planning the stored random-action episodes) come from the same
runner, same split. --untrained adds the model column of a second pack trained by the same recipe
with an untrained encoder (configs/pack/untrained_encoder.yaml).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cogarch.errors import UserError


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def physqa_table(res: dict, untrained: dict | None = None) -> list[str]:
    m, b = res["metrics"], dict(res.get("baselines", {}))
    if untrained is not None:
        b["untrained encoder"] = untrained["metrics"]
    cols = [c for c in ("chance", "prior", "blind", "untrained encoder") if c in b]
    lines = ["| physqa (test) | n | model acc | " + " | ".join(f"{c} acc" for c in cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    order = ["descriptive", "explanatory", "predictive", "counterfactual", "overall"]
    for cat in [c for c in order if c in m]:
        row = [cat, str(m[cat]["n"]), _pct(m[cat]["acc"])] + [_pct(b[c].get(cat, {}).get("acc")) for c in cols]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def voe_table(res: dict, untrained: dict | None = None) -> list[str]:
    m, b = res["metrics"], dict(res.get("baselines", {}))
    if untrained is not None:
        b["untrained encoder"] = untrained["metrics"]
    cols = [c for c in ("chance", "prior", "motion", "untrained encoder") if c in b]
    lines = ["| voe (test) | pairs×2 | model pairwise / AUROC | " + " | ".join(f"{c} pairwise / AUROC" for c in cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    cats = sorted(k for k in m if k != "overall") + ["overall"]
    for cat in cats:
        cell = lambda r: f"{_pct(r.get('pairwise_accuracy'))} / {r.get('auroc') if r.get('auroc') is None else round(r['auroc'], 3)}"
        row = [cat, str(m[cat]["n"]), cell(m[cat])] + [cell(b[c].get(cat, {})) for c in cols]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def planning_table(res: dict, untrained: dict | None = None) -> list[str]:
    """Success rate per goal category: the pack's planner vs the stored random-action episodes."""
    m, b = res["metrics"], res.get("baselines", {})
    extra = " | untrained encoder success" if untrained is not None else ""
    lines = ["| planning (test) | episodes | model success | random-action success (stored)" + extra + " |",
             "|---|---|---|---|" + ("---|" if untrained is not None else "")]
    cats = sorted(k for k in m if k != "overall") + ["overall"]
    for cat in cats:
        row = [cat, str(m[cat]["n"]), _pct(m[cat]["success_rate"]), _pct(b.get("chance", {}).get(cat, {}).get("success_rate"))]
        if untrained is not None:
            row.append(_pct(untrained["metrics"].get(cat, {}).get("success_rate")))
        lines.append("| " + " | ".join(row) + " |")
    t = m["overall"].get("plan_s_per_action")
    if t is not None:
        lines += ["", f"Planning time per action (flat CEM, mean over steps): {1000 * t:.0f} ms"]
    return lines


TABLES = {"physqa": physqa_table, "voe": voe_table, "planning": planning_table}


def _pack_json(pack: str | Path) -> dict:
    path = Path(pack) / "pack.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a readable pack.json ({e.__class__.__name__})") from None


def render(pack: str | Path, untrained: str | Path | None = None) -> str:
    meta = _pack_json(pack)
    ev = meta.get("eval", {})
    other = _pack_json(untrained).get("eval", {}) if untrained else {}
    out = []
    for suite, table in TABLES.items():
        if suite in ev:
            out += table(ev[suite], other.get(suite) if untrained else None) + [""]
    if "check" in meta:
        c = meta["check"]
        out.append(f"Check set (physqa seed {c['seed']}, n={c['n']}, first {c['limit']} test questions): acc {_pct(c['metrics']['acc'])}")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pack", nargs="?", default="cogarch/assets/default_pack")
    ap.add_argument("--untrained", help="a pack trained by configs/pack/untrained_encoder.yaml")
    args = ap.parse_args()
    print(render(args.pack, args.untrained))
    return 0


if __name__ == "__main__":
    from cogarch.evals.bench import cli

    cli(main)
