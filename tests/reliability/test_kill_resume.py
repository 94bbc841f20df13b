"""Kill and resume (issue #9): a `cogarch train` run SIGKILLed at random moments, and in the
middle of writing a checkpoint, resumes with `--resume` from its newest COMPLETE checkpoint and
ends with weights (and metrics rows) bitwise equal to an uninterrupted run with the same seed.

tests/test_train.py already kills one run once, after its first checkpoint. Here a run is killed
repeatedly across its own resumes: at seeded-random offsets after its n-th new checkpoint, and at
fixed points inside the checkpoint writer (files half written in the temporary folder; the folder
renamed but the `latest` pointer not yet updated). After every kill, each `step_*` folder on disk
must load, and the next launch must report resuming from the newest of them.

Starting a Python process that imports torch costs ~3-5 s here, so ten kills would spend most of
a minute importing. Each run is instead forked from a "zygote" process that imported everything
once and never ran a torch op (so no OpenMP pool is forked): every run is still a separate process
that starts from the files on disk only, and SIGKILL ends it without any cleanup, as in production.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cogarch.checkpoint import MODEL_FILE, list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "toy" / "tiny.yaml")
# Input noise makes every forward pass draw from the RNG (restored RNG state matters); grad_accum 2
# makes accelerate's micro-step counter matter; 512 samples / 16 = 32 batches = 16 steps per epoch,
# so resumes land mid-epoch and across epoch boundaries; a metrics row every 2 steps (between
# checkpoints too: rows a killed run logged after its checkpoint must be dropped on resume).
COMMON = ["model.input_noise=0.05", "optim.grad_accum=2", "trainer.ckpt_every=4", "trainer.keep_last=2",
          "trainer.log_every=2", "trainer.progress=false"]

ZYGOTE = r'''
import json, logging, os, sys, time, traceback
# Import (never run) what every training run imports, lazily imported parts included: AdamW's
# constructor alone imports torch._dynamo (~3 s).
import torch, torch._dynamo, accelerate, accelerate.utils, tqdm.auto, omegaconf, safetensors.torch
import torch.utils.tensorboard
import cogarch.cli, cogarch.checkpoint, cogarch.config, cogarch.train, cogarch.train_guard, cogarch.train_log
import cogarch.modules.toy.train

def install_stall(step, where):
    """Make the run hang inside the writer of checkpoint `step` (the test then SIGKILLs it)."""
    name = "step_%08d" % step
    def hang(marker):
        open(marker, "w").close()
        time.sleep(120)
    if where == "files":  # model.safetensors written, optimizer.safetensors half written
        real = cogarch.checkpoint.save_file
        def save_file(tensors, filename, metadata=None):
            real(tensors, filename, metadata=metadata)
            if ".%s.tmp-" % name in filename and filename.endswith("optimizer.safetensors"):
                with open(filename, "r+b") as f:
                    f.truncate(os.path.getsize(filename) // 2)
                hang(os.path.join(os.path.dirname(os.path.dirname(filename)), "STALLED"))
        cogarch.checkpoint.save_file = save_file
    else:  # "pointer": folder renamed into place, `latest` not yet updated
        real_text = cogarch.checkpoint.atomic_write_text
        def atomic_write_text(path, text):
            if text.strip() == name:
                hang(os.path.join(os.path.dirname(path), "STALLED"))
            return real_text(path, text)
        cogarch.checkpoint.atomic_write_text = atomic_write_text

for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "start":
        pid = os.fork()
        if pid == 0:
            fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
            if req.get("stall"):
                install_stall(*req["stall"])
            try:
                rc = cogarch.cli.main(req["argv"])
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 1
            except BaseException:
                traceback.print_exc()
                rc = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)
        print(json.dumps({"pid": pid}), flush=True)
    elif req["op"] == "wait":
        _, status = os.waitpid(req["pid"], 0)
        print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)
'''


class Zygote:
    """Forks training runs on request; see the module docstring."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.live: set[int] = set()  # started, not yet reaped

    def _ask(self, req: dict) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"zygote died (rc={self.proc.poll()})"
        return json.loads(line)

    def start(self, argv: list[str], log: Path, stall: tuple[int, str] | None = None) -> int:
        pid = self._ask({"op": "start", "argv": argv, "log": str(log), "stall": stall})["pid"]
        self.live.add(pid)
        return pid

    def wait(self, pid: int) -> int:
        rc = self._ask({"op": "wait", "pid": pid})["rc"]
        self.live.discard(pid)
        return rc

    def close(self) -> None:
        for pid in self.live:  # a failed test may leave a run stalled in its writer: end it
            os.kill(pid, signal.SIGKILL)
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote():
    z = Zygote()
    yield z
    z.close()


def _argv(out: Path, max_steps: int) -> list[str]:
    return ["train", "toy", "--config", TINY, *COMMON, f"trainer.out_dir={out}", f"trainer.max_steps={max_steps}",
            "--resume"]


def _wait_for(cond, proc_alive, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc_alive(), "the run ended before the kill point"
        assert time.monotonic() < deadline, "kill point not reached in time"
        time.sleep(0.001)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"  # a zombie has exited, awaiting its reaper
    except FileNotFoundError:
        return False


def _complete_steps(out: Path) -> list[int]:
    """Steps of the complete checkpoint folders; each must load (a kill never leaves a broken one)."""
    return [load_checkpoint(p).step for p in list_checkpoints(out)]


def _steps_on_disk(out: Path) -> list[int]:
    return [int(p.name[5:]) for p in list_checkpoints(out)]


def _resumed_from(log: Path) -> int | None:
    """The step a run reported resuming from (0: started fresh; None: killed before saying)."""
    text = log.read_text()
    m = re.search(r"resumed from \S+ \(step (\d+)", text)
    if m:
        return int(m.group(1))
    return 0 if "no checkpoint under" in text else None


def _rows(out: Path) -> list[dict]:
    with open(out / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "step_time_s"} for r in csv.DictReader(f)]


def _kill_and_resume(zygote: Zygote, tmp: Path, max_steps: int, plan: list, seed: int) -> None:
    """Run `plan` (one kill per entry) on one out_dir, finish with --resume, compare with a clean run."""
    rng = random.Random(seed)
    ref, run = tmp / "ref", tmp / "killed"
    assert zygote.wait(zygote.start(_argv(ref, max_steps), tmp / "ref.log")) == 0, (tmp / "ref.log").read_text()[-2000:]
    expect = 0  # the step the next launch must resume from
    for i, kind in enumerate(plan):
        log = tmp / f"run{i}.log"
        before = _complete_steps(run)
        if kind == "random":  # after 0-2 new checkpoints, then a random 0-30 ms into the run
            pid = zygote.start(_argv(run, max_steps), log)
            goal = (before[-1] if before else 0) + 4 * rng.randint(0, 2)
            _wait_for(lambda: max(_steps_on_disk(run), default=0) >= goal, lambda: _alive(pid))
            time.sleep(rng.uniform(0.0, 0.03))
        else:  # inside the writer of the next checkpoint but one
            target = (before[-1] if before else 0) + 8
            pid = zygote.start(_argv(run, max_steps), log, stall=(target, kind))
            _wait_for((run / "checkpoints" / "STALLED").exists, lambda: _alive(pid))
        os.kill(pid, signal.SIGKILL)
        rc = zygote.wait(pid)
        assert rc == -signal.SIGKILL, f"run {i} ({kind}) ended before the kill: rc={rc}\n{log.read_text()[-2000:]}"
        got = _resumed_from(log)
        assert got in (expect, None), f"run {i} resumed from step {got}, the newest complete checkpoint was {expect}"
        steps = _complete_steps(run)
        if kind == "files":
            assert list((run / "checkpoints").glob(f".step_{target:08d}.tmp-*")), "the kill did not land mid-write"
            assert target not in steps  # the half-written folder is not a checkpoint
            (run / "checkpoints" / "STALLED").unlink()
        elif kind == "pointer":
            assert steps[-1] == target and (run / "checkpoints" / "latest").read_text().strip() != f"step_{target:08d}"
            (run / "checkpoints" / "STALLED").unlink()
        assert steps == sorted(steps)  # (more than keep_last while a kill interrupted the rotation)
        expect = steps[-1] if steps else 0
    log = tmp / "final.log"
    assert zygote.wait(zygote.start(_argv(run, max_steps), log)) == 0, log.read_text()[-2000:]
    assert _resumed_from(log) == expect
    a, b = load_file(str(ref / "final" / MODEL_FILE)), load_file(str(run / "final" / MODEL_FILE))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ra, rb = _rows(ref), _rows(run)
    assert len(ra) == max_steps // 2 and ra == rb  # every log step exactly once, same numbers
    assert _steps_on_disk(run) == [max_steps - 4, max_steps]  # rotation caught up (keep_last=2)
    assert not list(run.rglob(".*")) and not list(run.rglob("STALLED"))  # debris of every kill swept


def test_two_kills_one_mid_checkpoint_write(zygote, tmp_path):
    _kill_and_resume(zygote, tmp_path, max_steps=40, plan=["random", "files"], seed=0)


@pytest.mark.slow
def test_ten_plus_kills_across_resumes(zygote, tmp_path):
    plan = ["random", "files", "random", "random", "pointer", "random", "random", "files", "random", "random",
            "pointer", "random"]
    _kill_and_resume(zygote, tmp_path, max_steps=144, plan=plan, seed=9)
