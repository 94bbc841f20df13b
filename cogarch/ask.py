"""CLI glue for `cogarch ask` and `cogarch memory` (the Python API is cogarch/api.py).

Order of checks matters for users: the questions and the clip are checked first (a bad clip is
the user's to fix whatever the model), then the pack is loaded, then the clip is encoded ONCE and
every question is answered from the same bus.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from cogarch.errors import UserError


def _interactive_questions() -> list[str]:
    if not sys.stdin.isatty():
        raise UserError("no question given (pass QUESTION or -q QUESTION)")
    print("interactive mode: one question per line, empty line or Ctrl-D to quit", file=sys.stderr)
    out = []
    while True:
        try:
            line = input("? ")
        except EOFError:
            break
        if not line.strip():
            break
        out.append(line)
    return out


def _format_evidence(ev: dict[str, Any]) -> list[str]:
    lines = []
    s = ev.get("surprise")
    if s:
        curve = [v for v in s["curve"] if v is not None]
        lines.append(
            f"  surprise: peak {s['peak_value']:.3f} at step {s['peak_step']} (clip score {s['clip_score']:.3f}; "
            f"curve {' '.join(f'{v:.2f}' for v in curve)})"
            if s.get("peak_value") is not None
            else "  surprise: clip too short to measure"
        )
    f = ev.get("forecast")
    if f:
        if f.get("objects") is not None:  # the object world model: where each object is headed
            moves = [f"{d['object']} " + ("leaves the view" if d["predicted_xy"] is None else
                                          f"-> ({d['predicted_xy'][0]:.0f},{d['predicted_xy'][1]:.0f})"
                                          + (f" at step {d['last_predicted_step']}, then leaves the view" if d["leaves_view"] else ""))
                     for d in f["objects"]]
            lines.append(f"  forecast ({f['horizon']} steps): " + ("; ".join(moves) or "no object in view"))
            for c in f.get("contacts") or []:
                lines.append(f"  predicted contact: {c['objects'][0]} and {c['objects'][1]} at future step {c['step']}")
        else:
            lines.append(f"  forecast: {f['horizon']} future steps; latent change per step {f['step_change']}")
    r = ev.get("recall")
    if r is not None:
        if r:
            lines.append("  recall: " + ", ".join(f"episode {h['episode']} (sim {h['similarity']:.3f})" for h in r))
        else:
            lines.append("  recall: no similar episode in memory")
    o = ev.get("objects")
    if o is not None:
        lines.append("  objects: " + ("; ".join(
            f"{d['color']} {d['material']} {d['shape']} ({d['first_xy'][0]:.0f},{d['first_xy'][1]:.0f})"
            + (f" -> ({d['last_xy'][0]:.0f},{d['last_xy'][1]:.0f})" if d["steps"][1] > d["steps"][0] else "")
            for d in o) or "none seen"))
    b = ev.get("binder")
    if b:
        lines.append("  binder (the objects the language module took the question to name): " + "; ".join(map(_binder_pick, b)))
    c = ev.get("cost")
    if c:
        lines.append("  cost: " + ", ".join(f"{k}={v:.3f}" for k, v in c.items()))
    return lines


def _binder_pick(p: dict[str, Any]) -> str:
    """One binder pick in words: a role's slot, or the slot its first token reads (binder_first)."""
    seen = f"{p['object'] or 'an unseen slot'} (slot {p['slot']}"
    if p["role"] != "first":
        return f"role {p['role']}: {seen}, weight {p['weight']:.2f})"
    return f"first touched by role 0 in {p['kind']}: " + (f"{seen})" if p["slot"] is not None else "nothing")


def save_explain_png(path: str, frames, ev: dict[str, Any]) -> None:
    """Frames strip on top, surprise curve below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cogarch.fsutil import atomic_write_bytes

    T = frames.shape[0]
    fig, axes = plt.subplots(2, 1, figsize=(max(6, T * 0.6), 3.6), gridspec_kw={"height_ratios": [1, 1.2]})
    strip = frames.permute(2, 0, 3, 1).reshape(frames.shape[2], -1, 3).clamp(0, 1).numpy()
    axes[0].imshow(strip)
    axes[0].axis("off")
    axes[0].set_title("observed frames")
    s = ev.get("surprise")
    if s:
        xs = [t for t, v in zip(s["time"], s["curve"]) if v is not None]
        ys = [v for v in s["curve"] if v is not None]
        axes[1].plot(xs, ys, marker="o")
        axes[1].set_xlabel("latent step")
        axes[1].set_ylabel("surprise")
    else:
        axes[1].text(0.5, 0.5, "no world model in this pack", ha="center")
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def run_ask(
    clip: str,
    questions: list[str],
    model: str | None = None,
    memory: str | None = None,
    explain: bool = False,
    explain_png: str | None = None,
    trace: bool = False,
    as_json: bool = False,
) -> int:
    from cogarch.api import check_question, load
    from cogarch.video import read_clip

    questions = [check_question(q) for q in questions]
    if not questions and not sys.stdin.isatty():  # before the pack loads: fail in milliseconds
        raise UserError("no question given (pass QUESTION or -q QUESTION)")
    # Decode once before loading anything: a missing / empty / truncated / non-video file is a
    # one-line VideoError naming the clip, whatever the state of the model.
    read_clip(clip, num_frames=16, size=64)
    model_obj = load(model, memory=memory, trace=trace)
    if not questions:
        questions = [check_question(q) for q in _interactive_questions()]
    obs = model_obj.observe(clip)
    answers = [model_obj.ask(obs, q, explain=explain or explain_png is not None) for q in questions]
    if memory is not None:
        for a in answers:
            model_obj.remember(obs, a.question, a.answer)
    if explain_png:
        save_explain_png(explain_png, obs.frames, answers[0].evidence if answers else {})
    if as_json:
        out: dict[str, Any] = {"clip": clip, "model": model_obj.path, "answers": [a.to_json() for a in answers]}
        if trace:
            out["trace"] = [e.__dict__ for e in obs.bus.trace]
        print(json.dumps(out, indent=2, default=str))
        return 0
    for a in answers:
        print(f"Q: {a.question}\nA: {a.answer or '(the model generated no text)'}")
        if explain:
            print("\n".join(_format_evidence(a.evidence)))
    if trace:
        print("bus trace:\n" + obs.bus.format_trace())
    if explain_png:
        print(f"evidence plot: {explain_png}")
    return 0


def memory_cli(action: str, store: str, target: str | None, k: int = 5, as_json: bool = False, model: str | None = None) -> int:
    from cogarch.modules.memory.cli import run

    embed_fn = None
    if action == "search" and target is not None and model is not None:
        from cogarch.api import load

        m = load(model)

        def embed_fn(path: str):
            obs = m.observe(path)
            percept = obs.bus.latest("percept")
            mem = m.arch.get("memory")
            return (mem.pool(percept) if mem is not None else percept.tokens.mean(1))[0].numpy()

    return run(action, store, target, k=k, as_json=as_json, embed_fn=embed_fn)
