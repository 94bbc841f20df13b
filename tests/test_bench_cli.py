"""Benchmark scripts report bad input as one line and exit code 2 (evals/bench/__init__.py::cli)."""

import subprocess
import sys

import pytest
import torch

from cogarch.errors import UserError
from cogarch.evals.bench import cli


def test_cli_maps_user_error_to_exit_2(capsys):
    def bad() -> int:
        raise UserError("no such pack")

    with pytest.raises(SystemExit) as e:
        cli(bad)
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == "error: no such pack"
    with pytest.raises(SystemExit) as e:
        cli(lambda: 0)
    assert e.value.code == 0


@pytest.mark.parametrize("args", [["pack_table", "/nonexistent"], ["probe_compare", "--a", "/nonexistent", "--b", "/x"],
                                  ["perception_mixed_step", "--preset", "tiny", "--batch", "0"],
                                  ["planning_critic", "dynamics", "--pack", "/nonexistent", "--data", "/nonexistent"],
                                  ["voe_scores", "--world-model", "/nonexistent", "--data", "/nonexistent"],
                                  ["vjepa_surprise", "--perception", "/nonexistent", "--data", "/nonexistent"],
                                  ["voe_oracle", "--data", "/nonexistent", "--out", "/tmp/x"],
                                  ["voe_oracle_ood", "--world-model", "/nonexistent", "--data", "/nonexistent"],
                                  ["voe_hero_rows", "--perceived", "/nonexistent", "--true", "/x", "--data", "/x"],
                                  ["shard_slice", "--shard", "/nonexistent.safetensors", "--out", "/tmp/x", "--slots", "1", "--width", "1"],
                                  ["slot_readout", "--pack", "/nonexistent", "--data", "/nonexistent"],
                                  ["count_probe", "--data", "/nonexistent", "--features", "/nonexistent"],
                                  ["template_probe", "--data", "/nonexistent", "--features", "/nonexistent"],
                                  ["repack_language", "--language", "/nonexistent", "--blind", "/x", "--out", "/tmp/x", "--how", "x"],
                                  ["paired", "/nonexistent/a.jsonl", "/nonexistent/b.jsonl"]])
def test_bench_script_bad_path(args):
    r = subprocess.run([sys.executable, "-m", f"cogarch.evals.bench.{args[0]}", *args[1:]], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("error: ") and len(r.stderr.strip().splitlines()) == 1


def test_mixed_step_bench_counts_flops_and_reports_mfu(capsys):
    # The accelerator benchmark runs the same code on the CPU: tiny preset, bf16 autocast, one step.
    from cogarch.evals.bench.perception_mixed_step import bench, main

    torch.set_num_threads(1)
    r = bench("tiny", "cpu", batch=1, steps=1, warmup=0)
    # the tiny encoder alone is ~2.7 M params x 512 tokens x 2 FLOPs forward; a training step is more
    assert r["flops_per_step"] > 2 * 2.5e6 * 512 and r["median_s"] > 0 and r["peak_mem_gib"] is None
    assert main(["--preset", "tiny", "--device", "cpu", "--batch", "1", "--steps", "1", "--warmup", "0",
                 "--peak-tflops", "1"]) == 0
    out = capsys.readouterr().out
    assert "| MFU |" in out and " % |" in out


def test_voe_score_variants_localise_one_object():
    """One slot mispredicted by 1 in every entry: slot_max sees all of it, row_mean 1/K of it, the
    visibility score only that entry; a perfect prediction scores 0; ratio divides by the scene's change."""
    from cogarch.evals.bench.voe_scores import VISIBLE, clip_score, step_scores

    z = torch.zeros(1, 4, 6, 18)  # [N, T', K, 18]
    pred = z[:, 1:].clone()
    assert all(float(s.abs().max()) == 0 for s in step_scores(pred, z).values())
    pred[0, 2, 3] += 1.0  # slot 3 at the prediction of step 3
    s = step_scores(pred, z)
    assert float(s["slot_max"][0, 2]) == pytest.approx(1.0) and float(s["row_mean"][0, 2]) == pytest.approx(1 / 6)
    assert float(s["presence"][0, 2]) == pytest.approx(1.0) and float(s["presence"][0, 1]) == 0.0
    assert float(s["ratio"][0, 2]) == pytest.approx((1 / 6) / 0.01)  # nothing changed in the scene
    assert float(clip_score(s["slot_max"], 1)[0]) == pytest.approx(1.0)  # the peak step
    assert float(clip_score(s["slot_max"], 0)[0]) == pytest.approx(0.5)  # steps 2-3 of the clip
    assert float(clip_score(s["slot_max"], 0, min_context=3)[0]) == pytest.approx(1.0)  # step 3 only
    # VISIBLE indexes the visibility entry of perception's published rows
    from cogarch.modules.perception.objects import ObjectHead

    out = {"color": torch.zeros(1, 1, 8), "shape": torch.zeros(1, 1, 3), "material": torch.zeros(1, 1, 2),
           "exist": torch.full((1, 1), 20.0), "visible": torch.full((1, 1, 2), 20.0),
           "pos": torch.full((1, 1, 2, 2), 0.5), "vel": torch.full((1, 1, 2, 2), -0.5)}
    rows = ObjectHead.tokens(out)[0][0, 0]  # [18]
    assert rows[VISIBLE] == pytest.approx(1.0) and rows[VISIBLE + 1] == pytest.approx(0.5)
    assert rows[VISIBLE - 1] < 0.9 and rows.shape == (18,)


def test_paired_mcnemar_counts_and_p(tmp_path):
    """Discordant questions are counted per category; the exact McNemar p of 6 vs 0 is 2 / 2**6."""
    import json

    from cogarch.evals.bench.paired import compare, load

    def write(name, correct):
        rows = [{"qid": f"q{i}", "category": "predictive" if i < 8 else "descriptive", "correct": c}
                for i, c in enumerate(correct)]
        (tmp_path / name).write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        return load(str(tmp_path / name))

    a = write("a.jsonl", [True] * 8 + [True, False])
    b = write("b.jsonl", [True, True] + [False] * 6 + [False, True])
    res = compare(a, b)
    assert (res["predictive"]["only_a"], res["predictive"]["only_b"]) == (6, 0)
    assert res["predictive"]["p"] == pytest.approx(2 / 2**6)
    assert res["overall"]["n"] == 10 and (res["overall"]["only_a"], res["overall"]["only_b"]) == (7, 1)
    assert res["descriptive"]["acc_a"] == 0.5 and res["descriptive"]["p"] == 1.0
    with pytest.raises(UserError, match="different questions"):
        compare(a, {k: v for k, v in b.items() if k != "q0"})


def test_vjepa_step_surprise_scores_and_control():
    """Steps 0-1 are unscored; the control is copy-last's error on the target tokens; the ratio
    divides the predictor's mean error by it; a frozen clip changes nothing."""
    from cogarch.evals.bench.vjepa_surprise import step_surprise
    from cogarch.modules.perception.config import MaskSetConfig, PerceptionConfig, vjepa2_mask_sets
    from cogarch.modules.perception.model import PerceptionModule

    torch.manual_seed(0)
    cfg = PerceptionConfig(img_size=16, num_frames=8, patch_size=8, tubelet_size=2, hidden_size=24, depth=1,
                           num_heads=2, pred_hidden_size=12, pred_depth=1, pred_num_heads=2,
                           masks=[*vjepa2_mask_sets(), MaskSetConfig(future=1)], min_context=2)
    m = PerceptionModule(cfg).eval()
    frames = torch.rand(2, 8, 3, 16, 16)
    with torch.no_grad():
        s = step_surprise(m, frames, mask_index=2)
        target = m.encode_target(m.normalize(frames))  # [B, 4 steps * 4 tokens, D]
    assert s.shape == (2, 4, 4) and torch.all(s[:, :2] == 0)
    P = 4
    for t in (2, 3):
        copy = (target[:, (t - 1) * P:t * P] - target[:, t * P:(t + 1) * P]).abs().mean((1, 2))
        assert torch.allclose(s[:, t, 3], copy, atol=1e-5)
        assert torch.allclose(s[:, t, 2], s[:, t, 0] / (copy + 1e-6), rtol=1e-4)
        assert torch.all(s[:, t, 1] >= s[:, t, 0])  # the max over tokens bounds their mean
    frozen = frames[:, :1].expand(-1, 8, -1, -1, -1)
    with torch.no_grad():
        f = step_surprise(m, frozen, mask_index=2)
    assert torch.all(f[:, 2:, 3] < 1e-4) and torch.all(s[:, 2:, 3] > 0.1)  # (float error only)


def test_voe_oracle_shard_holds_the_true_tracks(tmp_path):
    """The oracle world-model shard: [N, 8 steps, slots, 18] rows of the simulator's tracks over all
    simulated frames, with each clip's possible flag, in the format world_model/train.py reads."""
    import json

    from datasets import load_from_disk
    from safetensors import safe_open

    from cogarch.evals.bench.voe_oracle import write
    from cogarch.evals.world.generate import generate

    generate("voe", 8, tmp_path / "voe", seed=2, workers=1, progress=False, voe_design="quad")
    path = write(str(tmp_path / "voe"), str(tmp_path / "feat"))
    with safe_open(str(path), "pt") as f:
        lat, meta = f.get_tensor("latents").float(), f.metadata()
    ids, extras = json.loads(meta["clip_ids"]), json.loads(meta["extras"])
    assert lat.shape == (8, 8, 8, 18) and meta["suite"] == "voe" and len(ids) == 8
    assert sorted(e["possible"] for e in extras) == [False] * 4 + [True] * 4
    rows = {r["clip_id"]: r for r in load_from_disk(str(tmp_path / "voe" / "clips"))["train"]}
    seen = 0
    for n, cid in enumerate(ids):
        tracks = json.loads(rows[cid]["annotations"])["tracks"]
        for k, ob in enumerate(json.loads(rows[cid]["objects"])):
            tr = tracks[str(ob["id"])]
            for t in range(8):
                f = 4 * t + 3  # step t ends on frame 4t+3 of the 32 simulated frames
                if tr["visible"][f]:
                    want = [1.0, tr["pos"][f][0] / 64, tr["pos"][f][1] / 64, tr["vel"][f][0] / 32, tr["vel"][f][1] / 32]
                    assert torch.allclose(lat[n, t, k, 13:], torch.tensor(want), atol=2e-3)
                    seen += 1
                else:
                    assert lat[n, t, k].abs().sum() == 0
    assert seen > 20


def test_voe_oracle_static_slots_carry_the_scene(tmp_path):
    """--statics: the object columns are unchanged, and S more slots per step hold the scene's walls,
    floor, ledges and occluder (kind one-hot | end points or box / 64), the same at every step."""
    import json

    from datasets import load_from_disk
    from safetensors import safe_open

    from cogarch.errors import UserError
    from cogarch.evals.bench.voe_oracle import STATIC_KINDS, write
    from cogarch.evals.world.generate import generate

    generate("voe", 40, tmp_path / "voe", seed=3, workers=1, progress=False, voe_design="quad")
    with safe_open(str(write(str(tmp_path / "voe"), str(tmp_path / "plain"))), "pt") as f:
        plain = f.get_tensor("latents").float()
    with safe_open(str(write(str(tmp_path / "voe"), str(tmp_path / "st"), statics=3)), "pt") as f:
        lat, ids = f.get_tensor("latents").float(), json.loads(f.metadata()["clip_ids"])
    n = len(ids)
    assert lat.shape == (n, 8, 11, 27)
    assert torch.equal(lat[:, :, :8, :18], plain) and lat[:, :, :8, 18:].abs().sum() == 0
    assert lat[:, :, 8:, :18].abs().sum() == 0
    assert torch.equal(lat[:, :, 8:], lat[:, :1, 8:].expand(-1, 8, -1, -1))  # static over time
    clips = load_from_disk(str(tmp_path / "voe" / "clips"))
    rows = {r["clip_id"]: r for split in clips for r in clips[split]}
    kinds_seen = set()
    for i, cid in enumerate(ids):
        scene = json.loads(rows[cid]["annotations"])["scene"]
        want = [(s["kind"], s["a"] + s["b"]) for s in scene["statics"]]
        want += [("occluder", scene["occluder"])] if scene["occluder"] else []
        for k, (kind, box) in enumerate(want):
            assert lat[i, 0, 8 + k, 18 + STATIC_KINDS.index(kind)] == 1
            assert torch.allclose(lat[i, 0, 8 + k, 23:], torch.tensor(box) / 64, atol=2e-3)
            kinds_seen.add(kind)
        assert lat[i, 0, 8 + len(want):].abs().sum() == 0
    assert {"wall", "floor", "ledge", "occluder"} <= kinds_seen  # solidity, gravity and screens occur
    with pytest.raises(UserError, match="static slots"):
        write(str(tmp_path / "voe"), str(tmp_path / "few"), statics=1)


def test_voe_oracle_ood_reads_long_clips_at_the_training_time_scale(tmp_path, capsys):
    """test_ood VoE clips are 1.5x longer (48 frames): scored as 12 steps of 4 frames, with the
    trained, untrained and copy-last rows; a world model too narrow for the rows is a clear error."""
    from cogarch.errors import UserError
    from cogarch.evals.bench.voe_oracle_ood import main
    from cogarch.evals.world.generate import generate
    from cogarch.modules.world_model.config import WorldModelConfig
    from cogarch.modules.world_model.model import WorldModel

    generate("voe", 40, tmp_path / "voe", seed=3, workers=1, progress=False, voe_design="quad")
    torch.manual_seed(0)
    cfg = dict(source="objects", normalize=False, hidden_dim=32, depth=1, heads=2, max_steps=16)
    WorldModel(WorldModelConfig(latent_dim=27, max_patches=11, **cfg)).save_pretrained(tmp_path / "wm")
    assert main(["--world-model", str(tmp_path / "wm"), "--data", str(tmp_path / "voe"), "--statics", "3"]) == 0
    out = capsys.readouterr().out
    assert "test_ood, 12 steps of 4 frames" in out
    assert [ln.split("|")[1].strip() for ln in out.splitlines() if ln.startswith("| ") and "predictor" not in ln] == \
        ["trained", "untrained", "copy-last"]
    WorldModel(WorldModelConfig(latent_dim=18, max_patches=8, **cfg)).save_pretrained(tmp_path / "narrow")
    with pytest.raises(UserError, match="latent width 18"):
        main(["--world-model", str(tmp_path / "narrow"), "--data", str(tmp_path / "voe"), "--statics", "3"])
    with pytest.raises(UserError, match="--statics 2 do not fit"):  # scene rows would sit in object slots
        main(["--world-model", str(tmp_path / "wm"), "--data", str(tmp_path / "voe"), "--statics", "2"])


def test_shard_slice_keeps_leading_slots_columns_and_metadata(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from cogarch.errors import UserError
    from cogarch.evals.bench.shard_slice import slice_shard

    lat = torch.arange(2 * 3 * 4 * 5, dtype=torch.float16).view(2, 3, 4, 5)
    meta = {"clip_ids": '["a", "b"]', "splits": '["train", "val"]', "extras": "[{}, {}]", "suite": "voe"}
    save_file({"latents": lat}, str(tmp_path / "voe.safetensors"), metadata=meta)
    out = slice_shard(str(tmp_path / "voe.safetensors"), str(tmp_path / "cut"), slots=2, width=3)
    with safe_open(str(out), "pt") as f:
        assert f.metadata() == meta and torch.equal(f.get_tensor("latents"), lat[:, :, :2, :3])
    with pytest.raises(UserError, match="cannot keep 5 slots"):
        slice_shard(str(tmp_path / "voe.safetensors"), str(tmp_path / "cut"), slots=5, width=3)
    with pytest.raises(UserError, match="is the input shard"):  # never overwrites what it reads
        slice_shard(str(tmp_path / "voe.safetensors"), str(tmp_path), slots=2, width=3)
    (tmp_path / "bad.safetensors").write_bytes(b"not a shard")
    with pytest.raises(UserError, match="not a world-model feature shard"):
        slice_shard(str(tmp_path / "bad.safetensors"), str(tmp_path / "cut2"), slots=1, width=1)
    save_file({"latents": lat}, str(tmp_path / "nometa.safetensors"))
    with pytest.raises(UserError, match="no clip_ids"):
        slice_shard(str(tmp_path / "nometa.safetensors"), str(tmp_path / "cut2"), slots=1, width=1)
    out = slice_shard(str(tmp_path / "voe.safetensors"), str(tmp_path / "pad"), slots=4, width=5, insert=(2, 3))
    with safe_open(str(out), "pt") as f:
        padded = f.get_tensor("latents")
    assert padded.shape == (2, 3, 7, 5) and float(padded[:, :, 2:5].abs().max()) == 0.0
    assert torch.equal(padded[:, :, :2], lat[:, :, :2]) and torch.equal(padded[:, :, 5:], lat[:, :, 2:])


def test_voe_hero_rows_finds_the_hero_in_permuted_slots(tmp_path):
    """Perceived rows that are the true rows in another slot order: the hero is found, agrees at
    every step, zero position error; with its row blanked, it agrees only where it is truly hidden."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from cogarch.evals.bench.voe_hero_rows import hero_rows
    from cogarch.evals.bench.voe_oracle import write
    from cogarch.evals.world.generate import generate

    generate("voe", 8, tmp_path / "voe", seed=2, workers=1, progress=False, voe_design="quad")
    true = write(str(tmp_path / "voe"), str(tmp_path / "true"))
    with safe_open(str(true), "pt") as f:
        lat, meta = f.get_tensor("latents"), f.metadata()
    save_file({"latents": lat.roll(3, dims=2).contiguous()}, str(tmp_path / "perm.safetensors"), metadata=meta)
    rows = hero_rows(str(tmp_path / "perm.safetensors"), str(true), str(tmp_path / "voe"), "train", object_slots=8)
    assert rows and sum(r["n_clips"] for r in rows if r["phase"] == "after") == 8
    assert all(r["visible_agree"] == 1.0 for r in rows)
    assert all(r["pos_err_px"] is None or r["pos_err_px"] < 0.1 for r in rows)
    save_file({"latents": torch.zeros_like(lat)}, str(tmp_path / "blank.safetensors"), metadata=meta)
    blank = hero_rows(str(tmp_path / "blank.safetensors"), str(true), str(tmp_path / "voe"), "train", object_slots=8)
    for r in blank:
        assert abs(r["visible_agree"] - (1 - r["true_visible"])) < 1e-6
    with pytest.raises(UserError, match="object-slots"):
        hero_rows(str(tmp_path / "perm.safetensors"), str(true), str(tmp_path / "voe"), "train", object_slots=9)


def test_count_probe_learns_counts_the_rows_carry(tmp_path):
    """count_probe on a synthetic suite: the answer is how many of a clip's 3 slots have the asked
    noun's column on (steps 2 x slots 3, rows of 4). Trained on the train split's count questions
    it answers held-out clips far above the majority answer; features lacking a clip or rows that
    are not steps x slots are one-line errors."""
    from datasets import Dataset, DatasetDict

    from cogarch.evals.bench.count_probe import main, run
    from cogarch.modules.language.data import write_shard

    g = torch.Generator().manual_seed(0)
    nouns = ["cubes", "spheres"]
    qs, feats = {}, {}
    for split, n in (("train", 160), ("val", 40), ("test", 40)):
        on = torch.rand(n, 3, 2, generator=g) < 0.5  # [clip, slot, noun]
        rows = torch.zeros(n, 2, 3, 4)
        rows[..., :2] = on[:, None].float()
        rows[..., 2:] = torch.rand(n, 2, 3, 2, generator=g)  # noise columns
        ids = [f"{split}{i:03d}" for i in range(n)]
        feats[split] = (ids, rows.reshape(n, 6, 4))
        qs[split] = [{"qid": f"{c}_q{j}", "clip_id": c, "template": "desc_count", "question": f"How many {w} are there?",
                      "answer": str(int(on[i, :, j].sum()))} for i, c in enumerate(ids) for j, w in enumerate(nouns)]
        qs[split].append({"qid": f"{ids[0]}_x", "clip_id": ids[0], "template": "desc_color", "question": "What color?", "answer": "red"})
    DatasetDict({s: Dataset.from_list(r) for s, r in qs.items()}).save_to_disk(str(tmp_path / "questions"))
    for s, (ids, rows) in feats.items():
        write_shard(tmp_path / "f", s, ids, {"objects": {"tokens": rows, "time": torch.arange(2).repeat_interleave(3).float().expand(len(ids), 6)}})
    res = run(str(tmp_path), str(tmp_path / "f"), steps=300, batch=32, every=300, slots=3)
    assert res["n"] == {"train": 320, "val": 80, "test": 80}
    last = res["curve"][-1]
    assert last["step"] == 300 and last["test"] >= 85 and last["test"] > res["prior"]["test"] + 30
    with pytest.raises(UserError, match="steps x 4 slots"):
        run(str(tmp_path), str(tmp_path / "f"), steps=1, slots=4)
    write_shard(tmp_path / "g", "train", feats["train"][0][:5], {"objects": {"tokens": feats["train"][1][:5]}})
    with pytest.raises(UserError, match="no train features"):
        run(str(tmp_path), str(tmp_path / "g"), steps=1, slots=3)
    with pytest.raises(UserError, match="--steps"):
        main(["--data", str(tmp_path), "--features", str(tmp_path / "f"), "--steps", "0"])


def test_template_probe_binds_the_asked_object_to_its_row(tmp_path):
    """template_probe on a synthetic suite: "Is the X moving?" is answered by the moving column of
    the slot whose identity column is X (3 slots, each a different noun in a random order, 2
    steps). The probe must find the named slot among the rows: trained on the train split it answers
    held-out clips far above the prior. A kind the shards lack, or a template without questions, is
    a one-line error."""
    from datasets import Dataset, DatasetDict

    from cogarch.evals.bench.template_probe import main, run
    from cogarch.modules.language.data import write_shard

    g = torch.Generator().manual_seed(0)
    nouns = ["cube", "sphere", "cylinder"]
    qs = {}
    for split, n in (("train", 300), ("val", 60), ("test", 60)):
        perm = torch.stack([torch.randperm(3, generator=g) for _ in range(n)])  # slot -> noun
        moving = torch.rand(n, 3, generator=g) < 0.5  # per slot
        rows = torch.zeros(n, 2, 3, 5)
        rows[..., :3] = torch.nn.functional.one_hot(perm, 3)[:, None].float()
        rows[:, 1, :, 3] = moving.float()  # moving at the last step
        rows[..., 4] = torch.rand(n, 2, 3, generator=g)
        ids = [f"{split}{i:03d}" for i in range(n)]
        write_shard(tmp_path / "f", split, ids, {"objects": {"tokens": rows.reshape(n, 6, 5),
                                                             "time": torch.arange(2).repeat_interleave(3).float().expand(n, 6)}})
        qs[split] = [{"qid": f"{c}_q{j}", "clip_id": c, "template": "desc_moving_end", "question": f"Is the {w} moving at the end?",
                      "answer": "yes" if bool(moving[i][perm[i] == j].item()) else "no"} for i, c in enumerate(ids) for j, w in enumerate(nouns)]
    DatasetDict({s: Dataset.from_list(r) for s, r in qs.items()}).save_to_disk(str(tmp_path / "questions"))
    res = run(str(tmp_path), str(tmp_path / "f"), "desc_moving_end", ("objects",), steps=400, batch=32, every=400, slots=3)
    assert res["n"] == {"train": 900, "val": 180, "test": 180}
    last = res["curve"][-1]
    assert last["step"] == 400 and last["test"] >= 85 and last["test"] > res["prior"]["test"] + 30, res
    with pytest.raises(UserError, match="no 'forecast' tokens"):
        run(str(tmp_path), str(tmp_path / "f"), "desc_moving_end", ("objects", "forecast"), steps=1, slots=3)
    with pytest.raises(UserError, match="desc_count"):
        run(str(tmp_path), str(tmp_path / "f"), "desc_count", ("objects",), steps=1, slots=3)
    # trained on another suite's train split (here: the first 100 train clips only), scored on this one's val / test
    other = tmp_path / "other"
    DatasetDict({"train": Dataset.from_list(qs["train"][:300])}).save_to_disk(str(other / "questions"))
    again = run(str(tmp_path), str(tmp_path / "f"), "desc_moving_end", ("objects",), steps=1, every=1, slots=3,
                train_from=(str(other), str(tmp_path / "f")))
    assert again["n"] == {"train": 300, "val": 180, "test": 180}
    with pytest.raises(UserError, match="go together"):
        main(["--data", str(tmp_path), "--features", str(tmp_path / "f"), "--train-data", str(tmp_path)])
    with pytest.raises(UserError, match="18-wide object rows"):
        run(str(tmp_path), str(tmp_path / "f"), "desc_moving_end", ("objects",), steps=1, slots=3, relations=True)
    with pytest.raises(UserError, match="--kinds"):
        main(["--data", str(tmp_path), "--features", str(tmp_path / "f"), "--kinds", ","])
    with pytest.raises(UserError, match="--bound is for --template desc_collide"):
        run(str(tmp_path), str(tmp_path / "f"), "desc_moving_end", ("objects",), steps=1, slots=3, bound=True)
    with pytest.raises(UserError, match="--layers"):
        main(["--data", str(tmp_path), "--features", str(tmp_path / "f"), "--layers", "0"])


def test_pair_tokens_hold_each_pairs_distance_and_first_contact():
    """template_probe.pair_tokens: one token per pair of slots, the two identities summed (ungated),
    the smallest distance while both are visible, the first step closer than `contact`; a slot
    never visible contributes no identity and its pairs sit at the largest distance (2)."""
    from cogarch.evals.bench.template_probe import pair_tokens

    rows = torch.zeros(1, 4, 3, 18)  # [Q, T'=4, K=3, 18]
    for t, x in enumerate([0.1, 0.3, 0.45, 0.5]):  # slot 0 moves right towards slot 1 (gate 0.8)
        rows[0, t, 0, [0, 8, 11, 13]] = 1.0
        rows[0, t, 0, 14:16] = torch.tensor([x, 0.5])
        rows[0, t, 1, [1, 9, 12, 13]] = 0.8
        rows[0, t, 1, 14:16] = torch.tensor([0.6, 0.5]) * 0.8
    p = pair_tokens(rows.reshape(1, 12, 18), 3, contact=0.2)
    assert p.shape == (1, 3, 17)
    ident = torch.zeros(13)
    ident[[0, 1, 8, 9, 11, 12]] = 1.0
    assert torch.allclose(p[0, 0, :13], ident)  # pair (0, 1): both identities, ungated
    assert p[0, 0, 13].item() == pytest.approx(0.1, abs=1e-5)  # closest at the last step
    assert p[0, 0, 14].item() == pytest.approx(2 / 4) and p[0, 0, 15].item() == pytest.approx(3 / 4)  # first < 0.2 at step 2
    assert p[0, 0, 16].item() == 1.0
    assert p[0, 1, 13].item() == 2.0 and p[0, 1, 14].item() == 1.0 and p[0, 1, 16].item() == 0.0  # slot 2 never seen
    # ordered: (a, b) for a != b, the identities side by side, the same pair statistics
    o = pair_tokens(rows.reshape(1, 12, 18), 3, contact=0.2, ordered=True)
    assert o.shape == (1, 6, 30)
    red, blue = torch.zeros(13), torch.zeros(13)
    red[[0, 8, 11]], blue[[1, 9, 12]] = 1.0, 1.0
    assert torch.allclose(o[0, 0, :13], red) and torch.allclose(o[0, 0, 13:26], blue)  # (0, 1)
    assert torch.allclose(o[0, 2, :13], blue) and torch.allclose(o[0, 2, 13:26], red)  # (1, 0)
    assert torch.allclose(o[0, 0, 26:], p[0, 0, 13:]) and torch.allclose(o[0, 2, 26:], p[0, 0, 13:])
    # bound: the two named slots' closest approach (6.4 px at the last step) on the relation channels' soft steps
    from cogarch.evals.bench.template_probe import bound_token
    from cogarch.evals.world.vocab import COLORS, MATERIALS, SHAPES
    from cogarch.modules.language.relations import RADII, STEP_PX

    (c0, c1), (s0, s1), (m0, m1) = (list(v)[:2] for v in (COLORS, SHAPES, MATERIALS))
    q = f"Does the {c0} {m0} {s0} collide with the {c1} {m1} {s1}?"
    b = bound_token(rows.reshape(1, 12, 18), [q], 3)
    assert b.shape == (1, 1, len(RADII))
    assert torch.allclose(b[0, 0], torch.sigmoid((torch.tensor(RADII) - 6.4) / STEP_PX), atol=1e-4)
    # binder_picks: the named pair is slots {0, 1}; it counts when the binder's first two picks are those
    from cogarch.evals.bench.template_probe import TemplateProbe, binder_picks

    probe = TemplateProbe({"objects": 18}, 4, 3, 4, 2, binder=True)
    split = (torch.ones(2, 5, dtype=torch.long), {"objects": rows.reshape(1, 12, 18).expand(2, -1, -1)}, torch.zeros(2))
    for order, want in (([1, 0, 2], 100.0), ([0, 2, 1], 0.0)):
        probe.binder.select = lambda *a, o=order: torch.eye(3)[o].expand(a[0].shape[0], 3, 3)
        assert binder_picks(probe, split, [q, q], 3) == want
    # a one-subject question counts when role 0 takes the subject (slot 1 here); a bad form is a one-line error
    hit = f"Which object does the {c1} {m1} {s1} hit first?"
    for order, want in (([1, 0, 2], 100.0), ([0, 1, 2], 0.0)):
        probe.binder.select = lambda *a, o=order: torch.eye(3)[o].expand(a[0].shape[0], 3, 3)
        assert binder_picks(probe, split, [hit, hit], 3, "desc_first_hit") == want
    from cogarch.errors import UserError
    from cogarch.evals.bench.slot_signal import named_slots

    assert named_slots("pred_next_hit", f"Which object will the {c0} {m0} {s0} hit next?", rows.reshape(12, 18), 3) == (0,)
    with pytest.raises(UserError, match="not a desc_first_hit question"):
        named_slots("desc_first_hit", q, rows.reshape(12, 18), 3)


def test_slot_signal_reads_distance_and_speed_of_the_named_slots(tmp_path):
    """slot_signal on a synthetic suite: the named objects sit in random slots among empty ones,
    "collide" is yes iff their centres come within 15 px, "moving at the end" iff the speed passes
    2 units/s. Binding the names and the one scalar separate the answers (AUC 1 on every split,
    100 % on train at the fitted threshold, >= 90 % on val and test), and the threshold lands
    between the classes."""
    from datasets import Dataset, DatasetDict

    from cogarch.evals.bench.slot_signal import run
    from cogarch.modules.language.data import write_shard

    g = torch.Generator().manual_seed(0)
    red_cube, blue_sphere = [1, 9, 12], [2, 8, 11]  # red metal cube, blue rubber sphere
    qs = {}
    for split, n in (("train", 40), ("val", 20), ("test", 20)):
        rows = torch.zeros(n, 2, 6, 18)  # [clip, step, slot, 18]
        d = torch.rand(n, generator=g) * 40  # px between the two at step 1
        v = torch.rand(n, generator=g) * 4  # the cube's speed at the last step, units/s
        ids, q = [f"{split}{i:03d}" for i in range(n)], []
        for i in range(n):
            a, b = torch.randperm(6, generator=g)[:2].tolist()
            for t in range(2):
                rows[i, t, a, red_cube + [13]] = 1.0
                rows[i, t, a, 14:18] = torch.tensor([0.3, 0.5, v[i] / 32, 0.0])
                rows[i, t, b, blue_sphere + [13]] = 1.0
                rows[i, t, b, 14:16] = torch.tensor([0.3 + (d[i] / 64 if t else 0.5), 0.5])
            q += [{"qid": f"{ids[i]}_c", "clip_id": ids[i], "template": "desc_collide", "question":
                   "Does the red metal cube collide with the blue rubber sphere?", "answer": "yes" if d[i] < 15 else "no"},
                  {"qid": f"{ids[i]}_m", "clip_id": ids[i], "template": "desc_moving_end", "question":
                   "Is the red metal cube moving at the end of the video?", "answer": "yes" if v[i] > 2 else "no"}]
        qs[split] = q
        write_shard(tmp_path / "f", split, ids, {"objects": {"tokens": rows.reshape(n, 12, 18),
                                                             "time": torch.arange(2).repeat_interleave(6).float().expand(n, 12)}})
    DatasetDict({s: Dataset.from_list(r) for s, r in qs.items()}).save_to_disk(str(tmp_path / "questions"))
    res = run(str(tmp_path), str(tmp_path / "f"))
    for template, r in res.items():
        assert all(s["auc"] == 1.0 and s["accuracy"] >= 90.0 for s in r["splits"].values()), (template, r)
        assert r["splits"]["train"]["accuracy"] == 100.0
    assert -17 < res["desc_collide"]["threshold"] < -13 and 1.5 < res["desc_moving_end"]["threshold"] < 2.5, res


def test_repack_drop_names_a_recorded_key(tmp_path):
    """repack_language --drop: a key the recorded recipe lacks is a one-line error before anything is
    copied; without --drop, a recorded key of an older schema (v15's binder_pretrain_args) stops the
    repack there too, with the key named."""
    import json

    from cogarch.errors import UserError
    from cogarch.evals.bench.repack_language import repack

    src, lang, blind, data = (tmp_path / n for n in ("pack", "lang", "blind", "data"))
    for d in (src / "language_blind", lang, blind, data / "questions"):
        d.mkdir(parents=True)
    for d in (lang, blind):
        (d / "language_config.json").write_text("{}")
    config = {"stage2_rounds": 6, "binder_pretrain_args": ["--templates", "desc_collide"]}
    (src / "pack.json").write_text(json.dumps({"config": config, "eval": {"physqa": {}}}))
    with pytest.raises(UserError, match="--drop binder_curriculum_args: not a key of"):
        repack(src, lang, blind, tmp_path / "out", data, {}, "how", ["binder_curriculum_args"])
    with pytest.raises(UserError, match="unknown config key 'binder_pretrain_args'"):  # the old key no longer loads
        repack(src, lang, blind, tmp_path / "out", data, {}, "how")
    assert not (tmp_path / "out").exists()
