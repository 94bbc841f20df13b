"""Training checkpoints: atomic folders of safetensors + JSON, exact resume, keep-last rotation.

Layout written by the trainer (cogarch/train.py) every `trainer.ckpt_every` optimizer steps:

    <out_dir>/checkpoints/step_00000050/
        model.safetensors       full (unsharded) model state dict
        optimizer.safetensors   every tensor of the optimizer state ("state/<param>/<name>")
        optimizer.json          the rest of the optimizer state (param_groups, non-tensor state)
        scheduler.json          LR scheduler state (plain numbers)
        rng.json                per-process RNG states: python `random`, numpy, torch CPU, CUDA
        state.json              step, epoch, batches consumed in the epoch, config, versions,
                                and the byte size of every file above (truncation check)
    <out_dir>/checkpoints/latest   text file naming the newest folder (written atomically)

Nothing is pickled: tensors go to safetensors, everything else to JSON. Each folder is written
under a temporary dot-name and renamed into place when complete (cogarch.fsutil.atomic_dir), so a
crash or SIGKILL leaves either the previous checkpoints or the new one, never half of one; readers
skip dot-names. `state.json` records file sizes so a truncated file is named in a one-line
`CheckpointError` instead of surfacing as a deep safetensors/JSON error mid-resume.

The second half gathers that state from a (possibly distributed) Accelerate run: full model
weights via `accelerator.get_state_dict`, full optimizer state (torch.distributed.checkpoint's
state_dict API under FSDP), and every process's RNG state. Only the main process writes.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cogarch.errors import CheckpointError, UserError
from cogarch.fsutil import atomic_dir, atomic_write_text
from cogarch.train_guard import storage_errno

FORMAT_VERSION = 1
CKPT_SUBDIR = "checkpoints"
LATEST_NAME = "latest"
STATE_NAME = "state.json"
MODEL_FILE = "model.safetensors"
OPTIM_TENSORS = "optimizer.safetensors"
OPTIM_JSON = "optimizer.json"
SCHED_JSON = "scheduler.json"
RNG_JSON = "rng.json"
_STEP_RE = re.compile(r"^step_(\d{8,})$")


def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def checkpoint_root(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / CKPT_SUBDIR


@dataclass
class Checkpoint:
    """Everything `load_checkpoint` read back from one folder."""

    path: Path
    state: dict  # contents of state.json
    model: dict[str, torch.Tensor]
    optimizer: dict  # torch optimizer state_dict() shape: {"state": {...}, "param_groups": [...]}
    scheduler: dict
    rng: list[dict]  # one entry per process rank at save time

    @property
    def step(self) -> int:
        return int(self.state["step"])


# ----------------------------------------------------------------------------------------- RNG
def rng_state() -> dict:
    """This process's RNG states as JSON-able data (restored by `set_rng_state`)."""
    version, mt, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    out: dict[str, Any] = {
        "python": [version, list(mt), gauss],
        "numpy": [np_name, np.asarray(np_keys).tolist(), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state().tolist(),  # uint8 bytes of the CPU Mersenne Twister
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(state: dict) -> None:
    """Inverse of `rng_state`."""
    try:
        version, mt, gauss = state["python"]
        random.setstate((version, tuple(mt), gauss))
        name, keys, pos, has_gauss, gauss_np = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss_np))
        torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
        if "cuda" in state and torch.cuda.is_available():
            cuda = [torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]]
            if len(cuda) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"corrupt RNG state in checkpoint ({e})") from None


# ------------------------------------------------------------------- optimizer state <-> files
def _tensor_key(pid: Any, name: str) -> str:
    return f"state/{pid}/{name}"


def optimizer_to_files(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state_dict into (tensors for safetensors, JSON-able rest).

    Parameter keys stay as they are (ints for a plain optimizer, FQN strings for a full FSDP
    state dict); JSON keeps them apart because the state is stored as [key, entry] pairs.
    """
    tensors: dict[str, torch.Tensor] = {}
    state_pairs = []
    for pid, entry in sd.get("state", {}).items():
        json_entry = {}
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                key = _tensor_key(pid, name)
                tensors[key] = value.detach().to("cpu").contiguous()
                json_entry[name] = {"__tensor__": key}
            else:
                json_entry[name] = value
        state_pairs.append([pid, json_entry])
    groups = json.loads(json.dumps(sd.get("param_groups", []), default=_json_default))
    return tensors, {"state": state_pairs, "param_groups": groups}


def optimizer_from_files(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of `optimizer_to_files`."""
    state = {}
    for pid, entry in meta["state"]:
        state[pid] = {
            name: tensors[v["__tensor__"]] if isinstance(v, dict) and "__tensor__" in v else v
            for name, v in entry.items()
        }
    return {"state": state, "param_groups": meta["param_groups"]}


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint JSON file")


def cpu_state_dict(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, and no two entries sharing memory (safetensors refuses tied storage)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for k, v in tensors.items():
        t = v.detach().to("cpu").contiguous()
        if t.numel():
            ptr = t.untyped_storage().data_ptr()
            if ptr in seen:  # tied weights or views of one buffer: store a private copy
                t = t.clone()
            seen.add(t.untyped_storage().data_ptr())
        out[k] = t
    return out


# ------------------------------------------------------------------------------ write / rotate
def save_checkpoint(
    out_dir: str | os.PathLike,
    step: int,
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict | None,
    scheduler_state: dict,
    rng_states: list[dict],
    state: dict,
    keep_last: int = 2,
) -> Path:
    """Write `<out_dir>/checkpoints/step_{step:08d}` atomically, update `latest`, rotate.

    `state` is trainer bookkeeping (epoch, batch position, config, ...); `step`, the format
    version and the file sizes are added here. `optimizer_state=None` writes no optimizer files
    (used where the optimizer state cannot be gathered, e.g. DeepSpeed). Returns the folder.
    """
    root = checkpoint_root(out_dir)
    final = root / step_dir_name(step)
    try:
        with atomic_dir(final) as tmp:
            save_file(cpu_state_dict(model_state), str(tmp / MODEL_FILE), metadata={"format": "pt"})
            if optimizer_state is not None:
                tensors, meta = optimizer_to_files(optimizer_state)
                save_file(cpu_state_dict(tensors), str(tmp / OPTIM_TENSORS), metadata={"format": "pt"})
                (tmp / OPTIM_JSON).write_text(json.dumps(meta) + "\n")
            (tmp / SCHED_JSON).write_text(json.dumps(scheduler_state, default=_json_default) + "\n")
            (tmp / RNG_JSON).write_text(json.dumps(rng_states) + "\n")
            files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
            full = dict(state, step=int(step), format_version=FORMAT_VERSION, files=files)
            (tmp / STATE_NAME).write_text(json.dumps(full, indent=2, sort_keys=True, default=_json_default) + "\n")
    except Exception as e:
        # A full disk or read-only folder surfaces as an OSError without a file name, or as
        # safetensors' SafetensorError: name the checkpoint that could not be written instead.
        n = storage_errno(e)
        if n is None:
            raise
        raise OSError(n, os.strerror(n), str(final)) from e
    atomic_write_text(root / LATEST_NAME, final.name + "\n")
    rotate(out_dir, keep_last)
    return final


def rotate(out_dir: str | os.PathLike, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` checkpoints (keep_last <= 0 keeps all), and the
    temporary folders a killed run left behind (only the main process writes, so none is live)."""
    root = checkpoint_root(out_dir)
    for junk in root.glob(".step_*"):
        shutil.rmtree(junk, ignore_errors=True)
    if keep_last <= 0:
        return []
    removed = []
    for old in list_checkpoints(out_dir)[:-keep_last]:
        # Rename first so an interrupted delete never looks like a (partial) checkpoint.
        doomed = old.parent / f".{old.name}.del-{os.getpid()}"
        os.rename(old, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        removed.append(old)
    return removed


# ---------------------------------------------------------------------------------------- read
def list_checkpoints(out_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders, oldest first. Temporary (dot-named) folders are ignored."""
    root = checkpoint_root(out_dir)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_RE.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder, or None.

    Scans the folder names rather than trusting `latest` alone: a crash between the folder
    rename and the pointer update leaves the pointer one checkpoint behind.
    """
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file missing: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated JSON ({getattr(e, 'msg', e)})") from None


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file missing: {path}")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({str(e).splitlines()[0]})") from None


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint folder written by `save_checkpoint`; one-line CheckpointError if bad."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint not found: {str(path)!r} is not a folder")
    state = _read_json(folder / STATE_NAME)
    if not isinstance(state, dict) or "step" not in state or "files" not in state:
        raise CheckpointError(f"{folder / STATE_NAME}: not a cogarch training checkpoint")
    version = state.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{folder}: written by a newer cogarch (checkpoint format {version})")
    for name, size in state["files"].items():
        f = folder / name
        if not f.is_file():
            raise CheckpointError(f"checkpoint file missing: {f}")
        if f.stat().st_size != size:
            raise CheckpointError(f"{f}: truncated or modified ({f.stat().st_size} bytes, expected {size})")
    optimizer = None
    if OPTIM_JSON in state["files"]:
        try:
            optimizer = optimizer_from_files(_read_tensors(folder / OPTIM_TENSORS), _read_json(folder / OPTIM_JSON))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{folder / OPTIM_JSON}: corrupt optimizer state ({e})") from None
    rng = _read_json(folder / RNG_JSON)
    if not isinstance(rng, list):
        raise CheckpointError(f"{folder / RNG_JSON}: expected a list of per-process RNG states")
    return Checkpoint(
        path=folder,
        state=state,
        model=_read_tensors(folder / MODEL_FILE),
        optimizer=optimizer if optimizer is not None else {},
        scheduler=_read_json(folder / SCHED_JSON),
        rng=rng,
    )


# ------------------------------------------------------ gathering state from a (distributed) run
# These take the trainer's Accelerator; every process must call the gathering ones together
# (they are collectives under DDP/FSDP/DeepSpeed), and only the main process writes.


def resume_point(out: Path, resume: bool, is_main: bool) -> Checkpoint | None:
    """The checkpoint to resume from, None to start fresh, or a UserError (see cogarch/train.py)."""
    latest = latest_checkpoint(out)
    if latest is None:
        if resume and is_main:
            logging.getLogger("cogarch.train").warning("resume: no checkpoint under %s, starting fresh", out)
        return None
    if not resume:
        raise UserError(
            f"{out} already holds checkpoints (newest {latest.name}): pass --resume to continue, "
            "or set trainer.out_dir to a new folder"
        )
    return load_checkpoint(latest)


def load_model_state(model: torch.nn.Module, ckpt: Checkpoint) -> None:
    """Full weights into the (not yet prepared) model; a one-line error if they do not fit."""
    try:
        model.load_state_dict(ckpt.model, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt.path}: weights do not fit this model ({str(e).splitlines()[0]})") from None


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix[:-1]: d}
    return {k: v for key, sub in d.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}


def restore_training_state(
    acc: Any, model: Any, optimizer: Any, scheduler: Any, ckpt: Checkpoint, config: dict | None = None
) -> tuple[int, int, int, int]:
    """Optimizer, scheduler and this process's RNG from `ckpt`; returns (step, epoch, batch, skipped).

    `config` (the current run's, as a dict) is compared with the checkpoint's: differences are
    allowed (e.g. a longer max_steps, which also reshapes the LR schedule) but named in a warning.
    """
    log = logging.getLogger("cogarch.train")
    if config is not None and acc.is_main_process:
        old, new = _flat(ckpt.state.get("config", {})), _flat(config)
        diff = [f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        if diff:
            log.warning("resume: config differs from the checkpoint's: %s", ", ".join(diff))
    restore_optimizer_state(acc, model, optimizer, ckpt.optimizer)
    scheduler.load_state_dict(ckpt.scheduler)
    s = ckpt.state
    try:
        pos = (int(s["step"]), int(s["epoch"]), int(s["batch_in_epoch"]), int(s.get("nonfinite_skipped", 0)))
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{ckpt.path / STATE_NAME}: missing step/epoch/batch_in_epoch") from None
    if int(s.get("world_size", 1)) == acc.num_processes and len(ckpt.rng) == acc.num_processes:
        set_rng_state(ckpt.rng[acc.process_index])
    elif acc.is_main_process:
        log.warning("resume: checkpoint was written by %s process(es), now %d: data order and RNG streams "
                    "will not match an uninterrupted run", s.get("world_size"), acc.num_processes)
    if acc.is_main_process:
        log.info("resumed from %s (step %d, epoch %d, batch %d)", ckpt.path, *pos[:3])
    return pos


def distributed_kind(acc: Any) -> str:
    """One of: plain (one process, or DDP), fsdp, deepspeed (ZeRO-1/2), zero3."""
    dt = str(acc.distributed_type).rsplit(".", 1)[-1]
    if dt == "DEEPSPEED":
        return "zero3" if acc.state.deepspeed_plugin.zero_stage == 3 else "deepspeed"
    return "fsdp" if dt == "FSDP" else "plain"


def gather_optimizer_state(acc: Any, model: Any, optimizer: Any) -> dict | None:
    """Full optimizer state (collective under FSDP); None under DeepSpeed (its own partitioning)."""
    kind = distributed_kind(acc)
    if kind in ("deepspeed", "zero3"):
        return None
    if kind == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_optimizer_state_dict(model, optimizer.optimizer, options=opts)
    return optimizer.state_dict()


def restore_optimizer_state(acc: Any, model: Any, optimizer: Any, sd: dict) -> None:
    """Load a state written by `gather_optimizer_state` into the prepared optimizer."""
    if distributed_kind(acc) in ("deepspeed", "zero3") or not sd:
        if acc.is_main_process:
            logging.getLogger("cogarch.train").warning(
                "resume: no optimizer state restored (DeepSpeed, or none in the checkpoint): moments restart from zero"
            )
        return
    kind = distributed_kind(acc)
    if kind == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer.optimizer, sd, options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(sd)


def gather_rng_states(acc: Any) -> list[dict]:
    """Every process's RNG state, on every process. Sent as JSON bytes (no pickle)."""
    mine = rng_state()
    if acc.num_processes == 1:
        return [mine]
    blob = torch.frombuffer(bytearray(json.dumps(mine).encode()), dtype=torch.uint8).to(acc.device)
    sizes = acc.gather(torch.tensor([blob.numel()], device=acc.device)).cpu()
    padded = torch.zeros(int(sizes.max()), dtype=torch.uint8, device=acc.device)
    padded[: blob.numel()] = blob
    rows = acc.gather(padded).view(acc.num_processes, -1).cpu()
    return [json.loads(bytes(rows[r, : int(sizes[r])].tolist()).decode()) for r in range(acc.num_processes)]


def write_training_checkpoint(
    acc: Any, model: Any, optimizer: Any, scheduler: Any, cfg: Any, step: int, epoch: int, pos: int, skipped: int
) -> Path:
    """Gather (collectively) and write (main process) one checkpoint; returns its folder."""
    import cogarch
    from cogarch.config import to_dict

    model_sd = acc.get_state_dict(model)
    optim_sd = gather_optimizer_state(acc, model, optimizer)
    rngs = gather_rng_states(acc)
    t = cfg.trainer
    failure: BaseException | None = None
    if acc.is_main_process:
        state = {
            "epoch": epoch, "batch_in_epoch": pos, "nonfinite_skipped": skipped, "seed": t.seed,
            "world_size": acc.num_processes, "distributed": distributed_kind(acc), "mixed_precision": str(acc.mixed_precision),
            "config": to_dict(cfg), "cogarch_version": cogarch.__version__, "torch_version": torch.__version__,
        }
        try:
            save_checkpoint(t.out_dir, step, model_sd, optim_sd, scheduler.state_dict(), rngs, state, t.keep_last)
        except Exception as e:  # e.g. a full disk: the others must not wait for it forever at a barrier
            failure = e
    if acc.num_processes > 1:  # every process learns whether the write worked (doubles as the barrier)
        flag = torch.tensor([float(failure is not None)], device=acc.device)
        if acc.reduce(flag, "sum").item() > 0 and failure is None:
            raise UserError(f"the main process failed to write checkpoint {step_dir_name(step)} under {t.out_dir}")
    if failure is not None:
        raise failure
    return checkpoint_root(t.out_dir) / step_dir_name(step)
