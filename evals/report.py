"""Reports of an eval run: the side-by-side table (text and markdown), the bar chart, the files.

`format_table(results)` is what `cogarch eval` prints: one row per (category, metric), one column
for the model and one per baseline, so a number is never read without its floor next to it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from cogarch.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text

METRIC_ORDER = ("acc", "acc_norm", "pairwise_accuracy", "auroc", "success_rate")


def _columns(results: dict) -> list[tuple[str, dict]]:
    cols = [(f"model: {results['model']}", results["metrics"])]
    cols += [(name, m) for name, m in results.get("baselines", {}).items()]
    return cols


def _rows(results: dict) -> list[tuple[str, str, int | None, list[float | None]]]:
    """(category, metric, n, [value per column]) for metrics defined in at least one column."""
    cols = _columns(results)
    cats = list(results["metrics"])
    out = []
    for cat in cats:
        n = results["metrics"][cat].get("n")
        for key in METRIC_ORDER:
            vals = [m.get(cat, {}).get(key) for _, m in cols]
            if any(v is not None for v in vals):
                out.append((cat, key, n, vals))
    return out


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def format_table(results: dict) -> str:
    """Plain-text table: category | metric | n | model | chance | prior | (blind)."""
    head = ["category", "metric", "n"] + [name for name, _ in _columns(results)]
    body = [[cat, key, str(n)] + [_fmt(v) for v in vals] for cat, key, n, vals in _rows(results)]
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    title = f"{results['suite']} [{results['split']}] n={results['n']}"
    return "\n".join([title, line(head), line(["-" * w for w in widths])] + [line(r) for r in body])


def format_markdown(results: dict) -> str:
    head = ["category", "metric", "n"] + [name for name, _ in _columns(results)]
    lines = [f"# {results['suite']} ({results['split']}, n={results['n']})", "",
             f"git {results.get('git_revision', 'unknown')}, seed {results.get('seed')}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cat, key, n, vals in _rows(results):
        lines.append("| " + " | ".join([cat, key, str(n)] + [_fmt(v) for v in vals]) + " |")
    return "\n".join(lines) + "\n"


def _primary(m: dict) -> tuple[str, float | None]:
    for key in ("acc", "pairwise_accuracy", "auroc", "success_rate"):
        if m.get(key) is not None:
            return key, m[key]
    return "acc", None


def plot_png(results: dict) -> bytes:
    """Grouped bars: per category, the primary metric of the model and each baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = _columns(results)
    cats = list(results["metrics"])
    fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(cats) + 1.5), 3.2), dpi=100)
    width = 0.8 / len(cols)
    for j, (name, m) in enumerate(cols):
        vals = [_primary(m.get(c, {}))[1] for c in cats]
        xs = [i + (j - (len(cols) - 1) / 2) * width for i in range(len(cats))]
        ax.bar(xs, [0.0 if v is None else v for v in vals], width, label=name)
    ax.set_xticks(range(len(cats)))
    ax.set_xticklabels([f"{c}\n({_primary(results['metrics'][c])[0]})" for c in cats], fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_title(f"{results['suite']} [{results['split']}]", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_outputs(results: dict, samples: list[dict[str, Any]], output: str | Path) -> Path:
    """results.json, samples.jsonl, results.md, results.png in `output` (each atomically)."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "samples.jsonl",
                      "".join(json.dumps(s, sort_keys=True) + "\n" for s in samples))
    atomic_write_text(out / "results.md", format_markdown(results))
    atomic_write_bytes(out / "results.png", plot_png(results))
    atomic_write_json(out / "results.json", results)  # last: its presence means the run finished
    return out
