"""Guards of the generic trainer (cogarch/train.py) against what users' runs meet: a full disk or a
read-only output folder, a NaN/Inf loss or gradient, weights poisoned without a bad gradient, and
the debris a killed run leaves behind.

- `storage_error` turns the OSError (or safetensors' SafetensorError, which wraps the same OS
  error as text: "... (os error 28)") of a full disk, quota, read-only mount or permission problem
  into a one-line UserError naming trainer.out_dir and the cause. Checkpoints are written through
  cogarch.fsutil.atomic_dir, so by the time this error reaches the user the failed write is gone
  and every complete checkpoint is intact: the message says so and how to continue.
- `nonfinite_stop` decides when a non-finite step ends the run: always under
  trainer.nonfinite=stop, and under "skip" once trainer.max_consecutive_nonfinite steps in a row
  were skipped. Skipping is right for a rare spike (what torch.amp's GradScaler does for fp16
  overflow, Micikevicius et al. 2018, "Mixed Precision Training"), but a run that diverged skips
  every step and would otherwise "finish" with its weights frozen at the divergence point.
- `nonfinite_tensor` is checked before every checkpoint and the final export: a skipped optimizer
  step cannot undo what the forward pass already did to buffers (BatchNorm running statistics
  updated from a NaN batch), so the loss-and-gradient check alone does not keep NaN weights out of
  a checkpoint.
- `sweep_debris` removes temporary files and folders of writes a SIGKILL interrupted.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from itertools import chain
from pathlib import Path
from typing import Any, Iterator

import torch

from cogarch.errors import UserError

# The user's environment, not a bug: full disk, quota, file too large, read-only, no permission.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}
_HINTS = {
    errno.ENOSPC: "free some space", errno.EDQUOT: "free some space", errno.EFBIG: "free some space",
    errno.EROFS: "make it writable or pick another trainer.out_dir",
    errno.EACCES: "make it writable or pick another trainer.out_dir",
    errno.EPERM: "make it writable or pick another trainer.out_dir",
}
_OS_ERROR_RE = re.compile(r"os error (\d+)")


def storage_errno(e: BaseException) -> int | None:
    """The errno of a storage failure caused by the environment (see STORAGE_ERRNOS), else None."""
    if isinstance(e, OSError):
        n = e.errno
    elif type(e).__name__ == "SafetensorError":  # Rust I/O error, reported as text only
        m = _OS_ERROR_RE.search(str(e))
        n = int(m.group(1)) if m else None
    else:
        return None
    return n if n in STORAGE_ERRNOS else None


def storage_error(e: BaseException, out_dir: str | os.PathLike) -> UserError | None:
    """A one-line UserError for a storage failure under (or about) `out_dir`, or None if `e` is
    not one (then the caller re-raises it: a bug keeps its traceback)."""
    n = storage_errno(e)
    if n is None:
        return None
    out = Path(out_dir)
    cause = f"{os.strerror(n)} [{errno.errorcode.get(n, n)}]"
    name = getattr(e, "filename", None)
    name = os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else None
    if name and not _under(Path(name), out):  # e.g. a data file the dataset could not open
        return UserError(f"{cause}: {name}")
    where = f" ({name})" if name else ""
    verb = "access" if n in (errno.EACCES, errno.EPERM) else "write to"  # a permission error may be a read
    return UserError(
        f"cannot {verb} trainer.out_dir {out}: {cause}{where}; any write in progress was discarded and "
        f"complete checkpoints are intact: {_HINTS[n]}, then rerun with --resume"
    )


def _under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError):
        return False


def nonfinite_stop(streak: int, policy: str, max_consecutive: int) -> bool:
    """Whether the `streak`-th non-finite optimizer step in a row ends the run (see module doc)."""
    return streak > 0 and (policy == "stop" or 0 < max_consecutive <= streak)


def nonfinite_stop_message(step: int, streak: int, policy: str, max_consecutive: int, last_ckpt: Any) -> str:
    last = f"last good checkpoint: {last_ckpt or 'none'}"
    if policy == "stop":
        return f"non-finite loss or gradient at optimizer step {step} (trainer.nonfinite=stop); {last}"
    return (
        f"non-finite loss or gradient in {streak} optimizer steps in a row (steps {step - streak + 1}-{step}, "
        f"trainer.max_consecutive_nonfinite={max_consecutive}): the run diverged, lower optim.lr or check "
        f"the data; {last}"
    )


def _saved_buffers(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Buffers that go into a state dict (non-persistent ones, e.g. pixel statistics, do not)."""
    for prefix, m in model.named_modules():
        for name, b in m._buffers.items():
            if b is not None and name not in m._non_persistent_buffers_set:
                yield (f"{prefix}.{name}" if prefix else name), b


def nonfinite_tensor(acc: Any, model: torch.nn.Module) -> str | None:
    """Name of a parameter holding NaN/Inf or a saved buffer holding NaN, "" if only another
    process found one, None if all are sound. A collective (every process must call it).

    Buffers may hold -inf on purpose (additive attention masks), so only NaN counts there.
    Sharded tensors (FSDP's DTensor) are checked shard by shard, each process its own; one stacked
    reduction keeps it to one device sync per call.
    """
    names, flags = [], []
    tensors = chain(((n, p, True) for n, p in model.named_parameters()), ((n, b, False) for n, b in _saved_buffers(model)))
    for name, t, is_param in tensors:
        local = (t.to_local() if hasattr(t, "to_local") else t).detach()
        if local.is_floating_point() and local.numel():
            names.append(name)
            flags.append(torch.isfinite(local).all() if is_param else ~torch.isnan(local).any())
    bad = ~torch.stack(flags) if flags else torch.zeros(0, dtype=torch.bool, device=acc.device)
    count = bad.sum().to(acc.device, torch.float32).reshape(1)
    if acc.num_processes > 1:
        count = acc.reduce(count, "sum")
    if count.item() == 0:
        return None
    mine = [n for n, b in zip(names, bad.tolist()) if b]
    return mine[0].removeprefix("module.") if mine else ""


def check_finite_state(acc: Any, model: torch.nn.Module, step: int, last_ckpt: Any) -> None:
    """Raise a UserError (on every process) instead of writing a checkpoint of non-finite weights."""
    name = nonfinite_tensor(acc, model)
    if name is not None:
        what = f"{name!r}" if name else "a tensor on another process"
        raise UserError(
            f"model state became non-finite ({what}) by optimizer step {step}: not writing a checkpoint "
            f"of it; last good checkpoint: {last_ckpt or 'none'}"
        )


def sweep_debris(out_dir: str | os.PathLike) -> list[Path]:
    """Delete what interrupted atomic writes left under `out_dir` (temporary dot-named files and
    folders of checkpoints, the `latest` pointer, metrics.csv and the final export); main process
    only, before training starts, so none of them is a live write. Returns what was removed."""
    out = Path(out_dir)
    from cogarch.checkpoint import CKPT_SUBDIR, LATEST_NAME

    patterns = [(out, ".final.tmp-*"), (out, ".final.old-*"), (out, ".metrics.csv.tmp-*"),
                (out / CKPT_SUBDIR, ".step_*"), (out / CKPT_SUBDIR, f".{LATEST_NAME}.tmp-*")]
    removed = []
    for folder, pattern in patterns:
        for p in folder.glob(pattern) if folder.is_dir() else ():
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed
