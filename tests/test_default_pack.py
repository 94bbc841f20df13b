"""The shipped default pack: it loads, answers, and scores what its pack.json says it scores.

The pack records its accuracy on a fixed, separately seeded question set (cogarch/pack_train.py,
CHECK_SET). This test regenerates that set and re-scores the shipped weights: the pack on disk and
the numbers the README reports cannot drift apart (± 2 points).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cogarch.assets import default_pack_path, example_clips

PACK = default_pack_path()
pytestmark = pytest.mark.skipif(PACK is None, reason="no default pack is shipped in cogarch/assets/default_pack")


def test_pack_is_small_and_self_describing() -> None:
    assert PACK is not None
    size = sum(f.stat().st_size for f in PACK.rglob("*") if f.is_file())
    assert size <= 40 * 2**20, f"default pack is {size / 2**20:.1f} MiB (limit 40)"
    meta = json.loads((PACK / "pack.json").read_text())
    for key in ("config", "data_seed", "git_revision", "eval", "check"):
        assert key in meta, key
    assert not list(PACK.rglob("*.bin")) and not list(PACK.rglob("*.pt")), "pickle-based weights in the pack"


def test_shipped_pack_scores_what_pack_json_records(tmp_path: Path) -> None:
    from cogarch.evalglue import install
    from cogarch.evals.runner import register_model_loader, run_eval
    from cogarch.evals.world.generate import generate

    meta = json.loads((PACK / "pack.json").read_text())
    spec = meta["check"]
    generate(spec["suite"], spec["n"], tmp_path / "check", seed=spec["seed"], progress=False)
    install()
    try:
        res = run_eval(spec["suite"], str(PACK), str(tmp_path / "check"), spec["limit"], str(tmp_path / "out"), seed=0, split=spec["split"])
    finally:
        register_model_loader(None)  # the loader is process-global: leave other tests as we found them
    got, want = res["metrics"]["overall"]["acc"], spec["metrics"]["acc"]
    assert abs(got - want) <= 0.02, f"shipped pack scores {got:.3f} on the check set, pack.json says {want:.3f}"


def test_default_pack_answers_a_bundled_clip() -> None:
    import cogarch

    clips = example_clips()
    assert clips, "the default pack ships with example clips"
    model = cogarch.load()
    obs = model.observe(clips[0])
    ans = model.ask(obs, "How many objects are there?", explain=True)
    assert isinstance(ans.answer, str)
    assert "surprise" in ans.evidence and ans.timings_ms["perception"] > 0
    # v8 packs: perception's object slots are on the bus and named in the evidence
    if json.loads((PACK / "perception" / "config.json").read_text())["config"].get("object_slots"):
        assert obs.bus.latest("objects") is not None and isinstance(ans.evidence.get("objects"), list)
    # v9 packs: the world model forecasts the slots, and the evidence says where each object goes
    if json.loads((PACK / "world_model" / "config.json").read_text())["config"].get("source") == "objects":
        forecast = ans.evidence["forecast"]
        assert obs.bus.latest("forecast").tokens.shape[-1] == obs.bus.latest("objects").tokens.shape[-1]
        assert {d["object"] for d in forecast["objects"]} <= {f"{d['color']} {d['material']} {d['shape']}" for d in ans.evidence["objects"]}
        assert forecast["objects"] and isinstance(forecast["contacts"], list)
