"""Non-finite values in training (issue #9): a NaN loss or an Inf gradient at a chosen optimizer
step is skipped without touching weights or optimizer moments (trainer.nonfinite=skip), or stops
the run with one line and exit code 2 (nonfinite=stop) while the last good checkpoint stays
byte-identical; a diverged run stops after trainer.max_consecutive_nonfinite skips in a row; and
no checkpoint of non-finite weights is ever written, even when a skipped step already poisoned a
BatchNorm buffer in its forward pass.

The faults are injected by a test-local module registered through the TrainJob API (and, for the
CLI, through the registry): marked samples tell the model to return a NaN loss or to turn its
gradient to Inf, at optimizer steps chosen from the trainer's own data order.
"""

from __future__ import annotations

import hashlib
import math
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from cogarch import cli, registry
from cogarch.checkpoint import list_checkpoints, load_checkpoint
from cogarch.config import load_config
from cogarch.errors import UserError
from cogarch.modules.toy.model import SyntheticRegression, ToyRegressor
from cogarch.modules.toy.train import Config as ToyTrainConfig
from cogarch.train import EpochSampler, TrainJob, fit

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "toy" / "tiny.yaml")


@dataclass
class SpikyConfig(ToyTrainConfig):
    nan_steps: list[int] = field(default_factory=list)  # optimizer steps whose loss is NaN
    inf_grad_steps: list[int] = field(default_factory=list)  # steps whose gradient is Inf (loss finite)


class MarkedData(torch.utils.data.Dataset):
    """The toy data plus per-sample fault marks (one marked sample per faulty micro-batch)."""

    def __init__(self, base: SyntheticRegression, nan: set[int], inf_grad: set[int]) -> None:
        self.base, self.nan, self.inf_grad = base, nan, inf_grad

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        return dict(self.base[i], nan=torch.tensor(i in self.nan), inf_grad=torch.tensor(i in self.inf_grad))


class Spiky(ToyRegressor):
    def forward(self, batch: dict):
        x, y = batch["x"], batch["y"]  # [B, in_dim], [B, out_dim]
        pred = self.predict(x)
        if batch["inf_grad"].any():  # finite loss, Inf gradient (an overflow in backward)
            pred.register_hook(lambda g: torch.full_like(g, math.inf))
        loss = torch.nn.functional.mse_loss(pred, y)
        if batch["nan"].any():
            loss = loss * math.nan
        return loss, {}


class Normed(torch.nn.Module):
    """BatchNorm then linear: a NaN input poisons running_mean in the forward pass itself."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(in_dim)
        self.linear = torch.nn.Linear(in_dim, 1)

    def forward(self, batch: dict):
        return torch.nn.functional.mse_loss(self.linear(self.norm(batch["x"])), batch["y"]), {}


def _samples_at(cfg, steps) -> set[int]:
    """The first sample of optimizer step s (1-based) in the trainer's epoch-0 order."""
    order = list(EpochSampler(cfg.data.n_samples, cfg.trainer.seed))
    per_step = cfg.trainer.batch_size * cfg.optim.grad_accum
    assert all(s * per_step <= len(order) for s in steps), "keep fault steps inside epoch 0"
    return {order[(s - 1) * per_step] for s in steps}


def make_job(cfg: SpikyConfig) -> TrainJob:
    base = SyntheticRegression(cfg.data, cfg.model.in_dim, cfg.model.out_dim)
    data = MarkedData(base, _samples_at(cfg, cfg.nan_steps), _samples_at(cfg, cfg.inf_grad_steps))
    return TrainJob(model=Spiky(cfg.model), dataset=data)


@pytest.fixture
def spiky(monkeypatch):
    """`cogarch train spiky` for this test: a registry entry pointing at a module built here."""
    mod = types.ModuleType("cogarch_test_spiky")
    mod.Config, mod.make_job = SpikyConfig, make_job
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(registry.TRAINABLE, "spiky", mod.__name__)
    return "spiky"


def _cfg(out: Path, *overrides: str) -> SpikyConfig:
    return load_config(SpikyConfig, TINY, [f"trainer.out_dir={out}", "trainer.progress=false", *overrides])


def _fit(cfg: SpikyConfig) -> Path:
    torch.manual_seed(cfg.trainer.seed)
    return fit(make_job(cfg), cfg)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_skip_leaves_the_bad_step_untouched_and_training_goes_on(tmp_path):
    cfg = _cfg(tmp_path, "trainer.max_steps=12", "trainer.ckpt_every=1", "trainer.keep_last=0", "trainer.log_every=1",
               "nan_steps=[4]", "inf_grad_steps=[7]")
    _fit(cfg)
    ck = {c.step: c for c in map(load_checkpoint, list_checkpoints(tmp_path))}
    assert sorted(ck) == list(range(1, 13))
    for bad in (4, 7):
        before, at, after = ck[bad - 1], ck[bad], ck[bad + 1]
        assert _same(before.model, at.model), f"step {bad} changed the weights"
        moments = [(k, v) for k, v in before.optimizer["state"][0].items()]  # exp_avg, exp_avg_sq, step
        assert moments and all(torch.equal(v, at.optimizer["state"][0][k]) for k, v in moments)
        assert not _same(at.model, after.model)  # the next step trains again
        assert at.state["nonfinite_skipped"] == before.state["nonfinite_skipped"] + 1
    assert ck[12].state["nonfinite_skipped"] == 2
    assert all(torch.isfinite(v).all() for c in ck.values() for v in c.model.values())
    import csv

    rows = {int(r["step"]): r for r in csv.DictReader(open(tmp_path / "metrics.csv"))}
    assert math.isnan(float(rows[4]["loss"])) and math.isfinite(float(rows[7]["loss"]))  # NaN loss; Inf grad only
    assert not math.isfinite(float(rows[7]["grad_norm"]))
    assert float(rows[12]["loss"]) < 0.5 * float(rows[1]["loss"])  # it still learned


def test_stop_through_cli_keeps_last_good_checkpoint_byte_identical(tmp_path, spiky, capsys):
    args = ["train", spiky, "--config", TINY, f"trainer.out_dir={tmp_path}", "trainer.progress=false", "trainer.ckpt_every=5"]
    assert cli.main([*args, "trainer.max_steps=10"]) == 0
    good = list_checkpoints(tmp_path)
    before = {p.name: _digest(p) for p in good} | {"final": _digest(tmp_path / "final")}
    capsys.readouterr()
    rc = cli.main([*args, "trainer.max_steps=20", "trainer.nonfinite=stop", "nan_steps=[13]", "--resume"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "non-finite loss or gradient at optimizer step 13" in err and "step_00000010" in err
    assert list_checkpoints(tmp_path) == good  # nothing newer than the last good one
    assert {p.name: _digest(p) for p in good} | {"final": _digest(tmp_path / "final")} == before
    assert load_checkpoint(good[-1]).step == 10


def test_skip_turns_into_stop_after_too_many_in_a_row(tmp_path):
    steps = "nan_steps=[3,4,5,6]"
    with pytest.raises(UserError, match=r"in 3 optimizer steps in a row \(steps 3-5") as e:
        _fit(_cfg(tmp_path / "a", "trainer.max_steps=8", "trainer.max_consecutive_nonfinite=3", steps))
    assert "\n" not in str(e.value) and not (tmp_path / "a" / "final").exists()
    # 0 disables the limit: the same faults are skipped and the run ends.
    _fit(_cfg(tmp_path / "b", "trainer.max_steps=8", "trainer.max_consecutive_nonfinite=0", steps))
    assert load_checkpoint(list_checkpoints(tmp_path / "b")[-1]).state["nonfinite_skipped"] == 4


def test_diverging_lr_stops_with_default_settings(tmp_path, capsys):
    """An absurd learning rate (a typo) overflows the loss from step 2 on; the default
    max_consecutive_nonfinite=10 ends the run instead of "finishing" with frozen weights."""
    rc = cli.main(["train", "toy", "--config", TINY, f"trainer.out_dir={tmp_path}", "trainer.progress=false",
                   "optim.lr=1e30", "trainer.max_steps=50"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "in 10 optimizer steps in a row" in err and "lower optim.lr" in err
    assert not (tmp_path / "final").exists() and not list_checkpoints(tmp_path)


def test_no_checkpoint_of_a_poisoned_buffer(tmp_path):
    """A skipped step cannot undo its forward pass: BatchNorm already averaged the NaN input into
    running_mean. Training continues (train-mode BN uses batch statistics), but the checkpoint
    guard refuses to write that state."""
    cfg = _cfg(tmp_path, "trainer.max_steps=8", "trainer.ckpt_every=2", "trainer.keep_last=0")
    data = SyntheticRegression(cfg.data, cfg.model.in_dim, cfg.model.out_dim)
    data.x[next(iter(_samples_at(cfg, [3])))] = math.nan
    torch.manual_seed(0)
    with pytest.raises(UserError, match=r"'norm.running_mean'\) by optimizer step 4") as e:
        fit(TrainJob(model=Normed(cfg.model.in_dim), dataset=data), cfg)
    assert "step_00000002" in str(e.value) and "\n" not in str(e.value)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002"]
    good = load_checkpoint(list_checkpoints(tmp_path)[0])
    assert all(not v.is_floating_point() or torch.isfinite(v).all() for v in good.model.values())


def test_a_diverged_run_resumes_with_the_lr_it_is_given(tmp_path, capsys):
    """The stop message says "lower optim.lr ... rerun with --resume": the optim.* values of the
    resuming command must win over the checkpoint's (optimizer.load_state_dict would restore the
    old ones, and the absurd lr of the second command would then never have diverged)."""
    args = ["train", "toy", "--config", TINY, f"trainer.out_dir={tmp_path}", "trainer.progress=false",
            "trainer.ckpt_every=5", "trainer.log_every=1", "trainer.nonfinite=stop"]
    assert cli.main([*args, "trainer.max_steps=10"]) == 0
    capsys.readouterr()
    assert cli.main([*args, "trainer.max_steps=20", "optim.lr=1e30", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "optimizer step 12" in err and "step_00000010" in err  # step 11's update overflowed step 12
    assert cli.main([*args, "trainer.max_steps=20", "--resume"]) == 0  # the preset's lr again
    import csv

    from cogarch.train import lr_factor

    rows = {int(r["step"]): float(r["lr"]) for r in csv.DictReader(open(tmp_path / "metrics.csv"))}
    assert sorted(rows) == list(range(1, 21))
    assert all(rows[s] == pytest.approx(0.05 * lr_factor(s - 1, 10, 20, 0.05)) for s in range(11, 21))
    final = load_checkpoint(list_checkpoints(tmp_path)[-1])
    assert final.step == 20 and all(torch.isfinite(v).all() for v in final.model.values())
