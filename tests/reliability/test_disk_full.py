"""A full disk or a read-only output folder during training (issue #9): one clear line naming
trainer.out_dir and the cause, exit code 2 through the CLI, the previous checkpoints byte-identical,
no half-written step folder or temporary file left behind, and `--resume` after space is freed
ends with the same weights as an uninterrupted run.

Tests run as root here, so chmod stops nothing. Two ways make the failure real:
- a 512 KiB tmpfs filled with a ballast file (and remounted read-only), where mounting is
  permitted (skipped elsewhere, with the reason);
- everywhere: the checkpoint writer fails mid-file exactly as safetensors does on a full disk
  (same exception type and text), after part of the file is on disk;
- slow tier: the CLI as the unprivileged uid 65534 against a root-owned 0555 folder (setpriv).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

import cogarch.checkpoint as checkpoint
from cogarch import cli
from cogarch.checkpoint import MODEL_FILE, OPTIM_TENSORS, list_checkpoints
from cogarch.errors import UserError
from cogarch.train import train_module

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "toy" / "tiny.yaml")
COMMON = ["model.input_noise=0.05", "trainer.ckpt_every=5", "trainer.keep_last=0", "trainer.progress=false"]


def _digests(out: Path) -> dict[str, str]:
    """sha256 of every file of every complete checkpoint and of the final export."""
    files = [f for d in [*list_checkpoints(out), out / "final"] if d.is_dir() for f in sorted(d.iterdir())]
    return {str(f.relative_to(out)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def _debris(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*"))


def _assert_same_final(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "final" / MODEL_FILE)), load_file(str(b / "final" / MODEL_FILE))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def ref(tmp_path_factory) -> Path:
    """The uninterrupted 20-step run every interrupted one must end up equal to."""
    out = tmp_path_factory.mktemp("ref")
    train_module("toy", TINY, [*COMMON, f"trainer.out_dir={out}", "trainer.max_steps=20"])
    return out


def test_enospc_mid_checkpoint_is_one_line_and_resumable(tmp_path, ref, monkeypatch):
    real_save = checkpoint.save_file
    seen: dict = {}

    def full_disk_at_step_15(tensors, filename, metadata=None):
        if ".step_00000015.tmp-" in filename and filename.endswith(OPTIM_TENSORS):
            seen["before"] = _digests(tmp_path)
            seen["tmp"] = Path(filename).parent
            real_save(tensors, filename, metadata=metadata)
            with open(filename, "r+b") as f:  # what made it to disk before the device filled up
                f.truncate(os.path.getsize(filename) // 2)
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(checkpoint, "save_file", full_disk_at_step_15)
    args = [*COMMON, f"trainer.out_dir={tmp_path}", "trainer.max_steps=20"]
    with pytest.raises(UserError) as e:
        train_module("toy", TINY, args)
    msg = str(e.value)
    assert "\n" not in msg and f"trainer.out_dir {tmp_path}" in msg
    assert "No space left on device [ENOSPC]" in msg and "step_00000015" in msg and "--resume" in msg
    assert seen["tmp"].name.startswith(".step_00000015.tmp-") and not seen["tmp"].exists()
    assert _digests(tmp_path) == seen["before"] and len(seen["before"]) > 0  # steps 5 and 10, untouched
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000005", "step_00000010"]
    assert _debris(tmp_path) == []
    for step in ("step_00000005", "step_00000010"):  # and they are the uninterrupted run's states
        for name in (MODEL_FILE, OPTIM_TENSORS):
            a = load_file(str(tmp_path / "checkpoints" / step / name))
            b = load_file(str(ref / "checkpoints" / step / name))
            assert all(torch.equal(a[k], b[k]) for k in a)
    monkeypatch.setattr(checkpoint, "save_file", real_save)  # space freed
    train_module("toy", TINY, args, resume=True)
    _assert_same_final(ref, tmp_path)
    assert _debris(tmp_path) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs (needs CAP_SYS_ADMIN; skipped where mounting is not permitted)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({(r.stderr.strip().splitlines() or ['?'])[0]}); the injected-ENOSPC test covers the code path")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    """Fill the file system with a ballast file, then give back `leave` bytes of it."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)
    os.truncate(ballast, ballast.stat().st_size - leave)
    return ballast


def test_real_full_disk_and_read_only_mount(small_disk, ref, capsys):
    out = small_disk / "run"
    args = ["train", "toy", "--config", TINY, *COMMON, f"trainer.out_dir={out}"]
    assert cli.main([*args, "trainer.max_steps=10"]) == 0
    before = _digests(out)
    # 24 KiB free: enough to start (metrics.csv, event file) and for the small checkpoint files,
    # not for rng.json (~33 KB): the step-15 checkpoint write is what fails.
    ballast = _fill(small_disk, 24 * 1024)
    cmd = [sys.executable, "-m", "cogarch.cli", *args, "trainer.max_steps=20", "--resume"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("cogarch train: error: cannot write to trainer.out_dir") and str(out) in last
    assert "No space left on device [ENOSPC]" in last and "step_00000015" in last
    assert _digests(out) == before and _debris(out) == []

    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        capsys.readouterr()
        assert cli.main([*args, "trainer.max_steps=20", "--resume"]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "Read-only file system [EROFS]" in err and f"trainer.out_dir {out}" in err
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert _digests(out) == before

    ballast.unlink()  # space freed: resume finishes and matches the uninterrupted run
    assert cli.main([*args, "trainer.max_steps=20", "--resume"]) == 0
    _assert_same_final(ref, out)
    assert _debris(out) == []


@pytest.mark.slow
def test_read_only_out_dir_for_an_unprivileged_user(tmp_path, ref):
    """No mount needed: uid 65534 cannot write into a root-owned 0555 folder (as root, chmod alone
    would not stop anything)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to drop privileges")
    out = tmp_path / "run"
    train_module("toy", TINY, [*COMMON, f"trainer.out_dir={out}", "trainer.max_steps=10"])
    before = _digests(out)
    modes = {p: p.stat().st_mode for p in [tmp_path, *tmp_path.parents] if p != Path("/")}
    try:
        for p, mode in modes.items():  # uid 65534 must be able to reach (not write) the folder
            p.chmod(mode | 0o005)
        for p in [out, *out.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "cogarch.cli",
               "train", "toy", "--config", TINY, *COMMON, f"trainer.out_dir={out}", "trainer.max_steps=20", "--resume"]
        env = dict(os.environ, HOME=str(tmp_path), PYTHONDONTWRITEBYTECODE="1", MPLCONFIGDIR=str(tmp_path / "mpl"))
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    finally:
        for p in [out, *out.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        for p, mode in modes.items():
            p.chmod(mode)
    assert r.returncode == 2, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr and "Permission denied [EACCES]" in last and f"trainer.out_dir {out}" in last
    assert _digests(out) == before and _debris(out) == []
    train_module("toy", TINY, [*COMMON, f"trainer.out_dir={out}", "trainer.max_steps=20"], resume=True)
    _assert_same_final(ref, out)
