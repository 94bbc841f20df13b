"""The generic trainer on the toy module: it learns, resumes bitwise after SIGKILL, accumulates
gradients correctly, calls update() on sync steps only, handles NaNs, and runs 2-process DDP."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cogarch.bus import LatentBus, Message
from cogarch.checkpoint import MODEL_FILE, latest_checkpoint, load_checkpoint
from cogarch.config import load_config
from cogarch.errors import CheckpointError, ConfigError, UserError
from cogarch.modules.toy.model import ToyRegressor
from cogarch.modules.toy.train import Config, evaluate, make_dataset, make_job
from cogarch.train import EpochSampler, TrainJob, fit, lr_factor, param_groups, train_module

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "toy" / "tiny.yaml")
THRESHOLD = 0.02  # eval MSE; the tiny preset's noise floor is 0.01, an untrained model ~1.5


def _cfg(out: Path, *overrides: str) -> Config:
    return load_config(Config, TINY, [f"trainer.out_dir={out}", "trainer.progress=false", *overrides])


def _rows(out: Path) -> list[dict]:
    with open(out / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _fit(cfg: Config, model: torch.nn.Module | None = None, dataset=None) -> Path:
    torch.manual_seed(cfg.trainer.seed)
    job = make_job(cfg)
    return fit(TrainJob(model=model or job.model, dataset=dataset or job.dataset), cfg)


def test_toy_trains_below_threshold(tmp_path):
    out = tmp_path / "run"
    final = train_module("toy", TINY, [f"trainer.out_dir={out}", "trainer.progress=false"])
    assert final == out / "final"
    cfg = _cfg(out)
    data = make_dataset(cfg)
    torch.manual_seed(0)
    assert evaluate(ToyRegressor(cfg.model), data) > 1.0  # an untrained model is far off
    mse = evaluate(ToyRegressor.from_pretrained(final), data)
    assert mse < THRESHOLD, mse
    rows = _rows(out)
    assert [int(r["step"]) for r in rows] == list(range(25, 301, 25))
    assert float(rows[0]["loss"]) > 10 * float(rows[-1]["loss"])
    assert {"lr", "grad_norm", "step_time_s", "mae"} <= set(rows[0])
    assert float(rows[-1]["lr"]) == pytest.approx(0.05 * lr_factor(299, 10, 300, 0.05))  # LR step 300 used
    assert float(rows[-1]["lr"]) < 0.05 * 0.06  # cosine ends near lr * min_lr_ratio
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert [p.name for p in (out / "checkpoints").glob("step_*")] and latest_checkpoint(out).name == "step_00000300"
    state = load_checkpoint(latest_checkpoint(out)).state
    assert state["config"]["optim"]["lr"] == 0.05 and state["world_size"] == 1


def test_lr_schedule_and_param_groups():
    f = [lr_factor(s, 10, 100, 0.1) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == 1.0 and f[10] == 1.0
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    groups = param_groups(m.parameters(), 0.05)
    assert [len(g["params"]) for g in groups] == [1, 3] and [g["weight_decay"] for g in groups] == [0.05, 0.0]


def test_epoch_sampler_is_a_function_of_seed_and_epoch():
    a, b = EpochSampler(50, seed=3), EpochSampler(50, seed=3)
    torch.rand(10)  # global RNG use must not matter
    assert list(a) == list(b) and sorted(a) == list(range(50))
    b.set_epoch(1)
    assert list(a) != list(b)


def test_grad_accumulation_matches_big_batch(tmp_path):
    common = ("trainer.max_steps=20", "trainer.ckpt_every=0", "trainer.log_every=10", "optim.grad_clip=0")
    big = _fit(_cfg(tmp_path / "big", "trainer.batch_size=8", "optim.grad_accum=1", *common))
    acc = _fit(_cfg(tmp_path / "acc", "trainer.batch_size=4", "optim.grad_accum=2", *common))
    wa, wb = load_file(str(big / MODEL_FILE)), load_file(str(acc / MODEL_FILE))
    torch.manual_seed(0)
    init = ToyRegressor(_cfg(tmp_path).model).state_dict()
    assert not torch.allclose(wa["linear.weight"], init["linear.weight"], atol=1e-2)  # it did train
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6)


class _Counting(ToyRegressor):
    def __init__(self, config):
        super().__init__(config)
        self.updates: list[int] = []
        self.forwards = 0

    def forward(self, batch):
        self.forwards += 1
        return super().forward(batch)

    def update(self, step: int) -> None:
        self.updates.append(step)


def test_update_called_only_on_sync_steps(tmp_path):
    cfg = _cfg(tmp_path, "optim.grad_accum=3", "trainer.max_steps=7", "trainer.ckpt_every=0")
    model = _Counting(cfg.model)
    _fit(cfg, model=model)
    assert model.updates == list(range(1, 8))
    assert model.forwards == 21


class _Plain(torch.nn.Module):
    """A model with only the training half of the contract (no save_pretrained)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(8, 1)

    def forward(self, batch):
        return torch.nn.functional.mse_loss(self.lin(batch["x"]), batch["y"]), {}


def test_final_export_paths(tmp_path):
    cfg = _cfg(tmp_path / "plain", "trainer.max_steps=5", "trainer.ckpt_every=0")
    final = fit(TrainJob(model=_Plain(), dataset=make_dataset(cfg)), cfg)
    assert set(load_file(str(final / MODEL_FILE))) == {"lin.weight", "lin.bias"}
    cfg = _cfg(tmp_path / "custom", "trainer.max_steps=5", "trainer.ckpt_every=0")
    saved = []
    job = TrainJob(model=_Plain(), dataset=make_dataset(cfg), save=lambda m, d: saved.append((type(m), Path(d))))
    assert fit(job, cfg) == tmp_path / "custom" / "final" and saved == [(_Plain, tmp_path / "custom" / "final")]


def _poisoned(cfg: Config, batch_index: int) -> tuple[object, int]:
    """The toy dataset with a NaN target in the sample that epoch 0 puts in batch `batch_index`."""
    data = make_dataset(cfg)
    k = list(EpochSampler(len(data), cfg.trainer.seed))[batch_index * cfg.trainer.batch_size]
    data.y[k] = float("nan")
    return data, k


def test_nonfinite_skip(tmp_path, caplog):
    cfg = _cfg(tmp_path, "trainer.max_steps=64", "trainer.ckpt_every=0", "trainer.log_every=32")
    data, _ = _poisoned(cfg, batch_index=5)  # 32 batches per epoch: hit once in each of 2 epochs
    final = _fit(cfg, dataset=data)
    state = load_checkpoint(latest_checkpoint(tmp_path)).state
    assert state["nonfinite_skipped"] == 2
    assert int(_rows(tmp_path)[-1]["nonfinite_skipped"]) == 2
    assert float(_rows(tmp_path)[-1]["loss"]) == float(_rows(tmp_path)[-1]["loss"])  # finite mean
    w = load_file(str(final / MODEL_FILE))
    assert all(torch.isfinite(v).all() for v in w.values())
    assert "optimizer step skipped" in caplog.text


def test_nonfinite_stop_keeps_last_good_checkpoint(tmp_path):
    cfg = _cfg(tmp_path, "trainer.nonfinite=stop", "trainer.ckpt_every=5", "trainer.max_steps=40")
    data, _ = _poisoned(cfg, batch_index=12)  # optimizer step 13 sees the NaN
    with pytest.raises(UserError, match="optimizer step 13") as e:
        _fit(cfg, dataset=data)
    assert "\n" not in str(e.value) and "step_00000010" in str(e.value)
    last = load_checkpoint(latest_checkpoint(tmp_path))
    assert last.step == 10 and all(torch.isfinite(v).all() for v in last.model.values())
    assert not (tmp_path / "final").exists()


def test_resume_policies(tmp_path):
    args = [f"trainer.out_dir={tmp_path}", "trainer.progress=false", "trainer.max_steps=10", "trainer.ckpt_every=5"]
    train_module("toy", TINY, args, resume=True)  # nothing to resume: starts fresh
    with pytest.raises(UserError, match="already holds checkpoints"):
        train_module("toy", TINY, args)
    f = latest_checkpoint(tmp_path) / MODEL_FILE
    f.write_bytes(f.read_bytes()[:-4])
    with pytest.raises(CheckpointError, match="truncated"):
        train_module("toy", TINY, args, resume=True)
    with pytest.raises(ConfigError, match="nonfinite"):
        train_module("toy", TINY, [*args, "trainer.nonfinite=maybe"], resume=True)


def test_resume_after_sigkill_is_bitwise_identical(tmp_path):
    # Input noise makes the forward pass random (restored RNG matters); accumulation 2 makes the
    # accelerate micro-step counter matter. Log/checkpoint cadence does not change the maths, so
    # the run to be killed logs every step (slower: the kill lands well before the end).
    common = ["model.input_noise=0.05", "optim.grad_accum=2", "trainer.max_steps=240", "trainer.progress=false"]
    ref = train_module("toy", TINY, [*common, f"trainer.out_dir={tmp_path / 'ref'}", "trainer.ckpt_every=0"])
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "cogarch.train", "toy", "--config", TINY, *common, f"trainer.out_dir={run}",
           "trainer.ckpt_every=10", "trainer.log_every=1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latest, deadline = run / "checkpoints" / "latest", time.monotonic() + 120
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"run ended before the kill (rc={proc.returncode}): {err[-500:]!r}"
    step = load_checkpoint(latest_checkpoint(run)).step
    assert 0 < step < 240
    out = train_module("toy", TINY, [*common, f"trainer.out_dir={run}", "trainer.ckpt_every=100"], resume=True)
    a, b = load_file(str(ref / MODEL_FILE)), load_file(str(out / MODEL_FILE))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [int(r["step"]) for r in _rows(run)]
    assert steps == sorted(set(steps)) and steps[-1] == 240  # rows after the checkpoint were dropped
    assert not list((run / "checkpoints").glob(".*"))  # a write the kill interrupted was cleaned up


def test_toy_module_contract(tmp_path):
    torch.manual_seed(0)
    model = ToyRegressor(_cfg(tmp_path).model).eval()
    bus = LatentBus()
    tokens = torch.randn(2, 5, 8)  # [B, N, D]
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    bus.publish(Message(kind="percept", source="perception", tokens=tokens, mask=mask))
    model.step(bus)
    cost = bus.latest("cost")
    assert cost.source == "toy" and tuple(cost.tokens.shape) == (2, 1, 1) and list(cost.meta["terms"]) == ["toy_0"]
    expect = model.predict(torch.stack([tokens[0].mean(0), tokens[1, :2].mean(0)]))
    torch.testing.assert_close(cost.tokens[:, :, 0], expect)
    model.save_pretrained(tmp_path / "m")
    again = ToyRegressor.from_pretrained(tmp_path / "m")
    assert torch.equal(again.linear.weight, model.linear.weight)
    with pytest.raises(UserError, match="in_dim=8"):
        bad = LatentBus()
        bad.publish(Message(kind="percept", source="perception", tokens=torch.randn(1, 2, 3)))
        model.step(bad)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_on_cpu_and_exact_resume(tmp_path):
    """2-process DDP (gloo): trains, only rank 0 writes, and resuming mid-epoch is bitwise exact."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    common = ["trainer.max_steps=120", "trainer.ckpt_every=60", "trainer.keep_last=0", "trainer.log_every=20",
              "trainer.progress=false", "model.input_noise=0.05"]

    def launch(out: Path, *extra: str) -> None:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(_free_port()), "-m", "cogarch.train", "toy", "--config", TINY,
               f"trainer.out_dir={out}", *common, *extra]
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]

    ref, res = tmp_path / "ref", tmp_path / "res"
    launch(ref)
    mid = load_checkpoint(ref / "checkpoints" / "step_00000060")
    assert mid.state["world_size"] == 2 and len(mid.rng) == 2 and mid.state["epoch"] > 0 < mid.state["batch_in_epoch"]
    cfg = _cfg(tmp_path)
    assert evaluate(ToyRegressor.from_pretrained(ref / "final"), make_dataset(cfg)) < THRESHOLD
    assert [int(r["step"]) for r in _rows(ref)] == [20, 40, 60, 80, 100, 120]  # one writer
    assert sorted(p.name for p in (ref / "final").iterdir()) == ["config.json", "model.safetensors"]
    assert not [p for p in tmp_path.rglob(".*")]  # no temp leftovers from a second writer
    shutil.copytree(mid.path, res / "checkpoints" / mid.path.name)  # as if killed after step 60
    launch(res, "--resume")
    a, b = load_file(str(ref / "final" / MODEL_FILE)), load_file(str(res / "final" / MODEL_FILE))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_loader_workers_give_the_same_run(tmp_path):
    """trainer.num_workers > 0: workers start from a forkserver (cogarch.train.worker_context), never
    a fork of the trainer's process; the batches, and so the final weights, equal a run without them."""
    import multiprocessing

    from cogarch.train import worker_context

    finals = [_fit(_cfg(tmp_path / f"w{n}", f"trainer.num_workers={n}", "trainer.max_steps=80")) for n in (0, 2)]
    a, b = (load_file(str(f / MODEL_FILE)) for f in finals)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert worker_context().get_start_method() in ({"forkserver"} & set(multiprocessing.get_all_start_methods()) or {"spawn"})
