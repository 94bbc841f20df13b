"""Render a pack's recorded evaluation (pack.json "eval") as the README results table.

    python -m cogarch.evals.bench.pack_table cogarch/assets/default_pack

The numbers come from `cogarch train pack`'s evaluate stage, which runs exactly
`cogarch eval --suite physqa|voe --model PACK --data DATA --split test`; rerun those commands to
regenerate them. Baselines (chance, answer prior, blind LM) come from the same runner, same split.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def physqa_table(res: dict) -> list[str]:
    m, b = res["metrics"], res.get("baselines", {})
    cols = [c for c in ("chance", "prior", "blind") if c in b]
    lines = ["| physqa (test) | n | model acc | " + " | ".join(f"{c} acc" for c in cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    order = ["descriptive", "explanatory", "predictive", "counterfactual", "overall"]
    for cat in [c for c in order if c in m]:
        row = [cat, str(m[cat]["n"]), _pct(m[cat]["acc"])] + [_pct(b[c].get(cat, {}).get("acc")) for c in cols]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def voe_table(res: dict) -> list[str]:
    m, b = res["metrics"], res.get("baselines", {})
    cols = [c for c in ("chance", "prior") if c in b]
    lines = ["| voe (test) | pairs×2 | model pairwise / AUROC | " + " | ".join(f"{c} pairwise / AUROC" for c in cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    cats = sorted(k for k in m if k != "overall") + ["overall"]
    for cat in cats:
        cell = lambda r: f"{_pct(r.get('pairwise_accuracy'))} / {r.get('auroc') if r.get('auroc') is None else round(r['auroc'], 3)}"
        row = [cat, str(m[cat]["n"]), cell(m[cat])] + [cell(b[c].get(cat, {})) for c in cols]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def render(pack: str | Path) -> str:
    meta = json.loads((Path(pack) / "pack.json").read_text())
    ev = meta.get("eval", {})
    out = []
    if "physqa" in ev:
        out += physqa_table(ev["physqa"]) + [""]
    if "voe" in ev:
        out += voe_table(ev["voe"]) + [""]
    if "check" in meta:
        c = meta["check"]
        out.append(f"Check set (physqa seed {c['seed']}, n={c['n']}, first {c['limit']} test questions): acc {_pct(c['metrics']['acc'])}")
    return "\n".join(out)


if __name__ == "__main__":
    print(render(sys.argv[1] if len(sys.argv) > 1 else "cogarch/assets/default_pack"))
