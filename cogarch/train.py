"""The one generic trainer: drives any module's `forward(batch) -> (loss, metrics)` with Accelerate.

CONTRACT (what a module's `modules/<name>/train.py` provides; see cogarch/registry.py):

    @dataclass
    class Config:                      # the YAML schema for `cogarch train <name> --config ...`
        ...module/data fields...
        optim: OptimConfig = field(default_factory=OptimConfig)
        trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def make_job(cfg: Config) -> TrainJob   # builds the model and the map-style dataset

The trainer owns everything else: device placement, DDP/FSDP/DeepSpeed via `accelerate launch`,
bf16 autocast, gradient accumulation, clipping, warmup+cosine LR, `model.update(step)` on
`sync_gradients`, logging (TensorBoard + CSV + tqdm), atomic periodic checkpoints and exact resume.

Entry points: `fit(job, cfg, resume)` runs the loop for a built job; `train_module(name, ...)` is
what `cogarch train NAME --config FILE [k=v ...] [--resume]` calls (also `python -m cogarch.train`).

Decisions worth knowing (each is explained where it is implemented):
- Accelerate is used thinly: `prepare`, `accumulate`, `backward`, `clip_grad_norm_`,
  `skip_first_batches`, `get_state_dict`. Its own `save_state` is not used because it pickles;
  checkpoints are safetensors + JSON (cogarch/checkpoint.py).
- Data order is a pure function of (trainer.seed, epoch); a checkpoint stores (epoch, batches
  consumed in the epoch) and resume skips exactly those, so a resumed run is bitwise identical
  to an uninterrupted one on the same hardware and process count.
- `--resume` with no checkpoint in out_dir starts fresh (with a log line), so a preemptible job
  can always be launched with `--resume`. Starting WITHOUT `--resume` in an out_dir that already
  holds checkpoints is refused: it would silently mix two runs.
- A non-finite loss or grad norm either skips the optimizer step (which still counts toward
  max_steps, like torch.amp's GradScaler, so a run always ends) or stops the run with a UserError;
  too many skips in a row stop it too, and no checkpoint of non-finite weights is ever written.
  A full disk or read-only out_dir is a one-line UserError, never a corrupt checkpoint
  (cogarch/train_guard.py). Metrics logging lives in cogarch/train_log.py.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    warmup_steps: int = 0  # linear warmup, in optimizer steps
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio at trainer.max_steps
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    grad_accum: int = 1  # micro-batches per optimizer step


@dataclass
class TrainerConfig:
    out_dir: str = "runs/default"
    max_steps: int = 100  # optimizer steps
    batch_size: int = 8  # per process, per micro-batch
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 50  # 0: only the final checkpoint
    keep_last: int = 2  # periodic checkpoints kept on disk
    mixed_precision: str = "auto"  # "no" | "bf16" | "auto" (bf16 where the accelerator supports it)
    num_workers: int = 0
    nonfinite: str = "skip"  # what a NaN/Inf loss or grad does: "skip" the step or "stop" the run
    max_consecutive_nonfinite: int = 10  # "skip" turns into "stop" after this many in a row; 0: never
    progress: bool = True  # tqdm bar on the main process


@dataclass
class TrainJob:
    """What a module's `make_job(cfg)` hands the trainer."""

    model: torch.nn.Module  # forward(batch) -> (loss, metrics); optional update(step)
    dataset: torch.utils.data.Dataset  # map-style; order is drawn from trainer.seed
    collate_fn: Callable[[list], Any] | None = None
    # save(model, folder): writes the final/periodic *module* export (default: model.save_pretrained)
    save: Callable[[torch.nn.Module, Any], None] | None = None
    # parameters to optimise (default: all with requires_grad)
    params: Callable[[torch.nn.Module], Any] | None = None


log = logging.getLogger("cogarch.train")

MIXED_PRECISION = ("no", "bf16", "auto")
NONFINITE = ("skip", "stop")


def _validate(cfg: Any) -> None:
    from cogarch.errors import ConfigError

    t, o = cfg.trainer, cfg.optim
    checks = [
        (t.max_steps >= 1, f"trainer.max_steps must be >= 1, got {t.max_steps}"),
        (t.batch_size >= 1, f"trainer.batch_size must be >= 1, got {t.batch_size}"),
        (t.seed >= 0, f"trainer.seed must be >= 0, got {t.seed}"),
        (t.log_every >= 1, f"trainer.log_every must be >= 1, got {t.log_every}"),
        (t.ckpt_every >= 0, f"trainer.ckpt_every must be >= 0, got {t.ckpt_every}"),
        (t.num_workers >= 0, f"trainer.num_workers must be >= 0, got {t.num_workers}"),
        (t.mixed_precision in MIXED_PRECISION, f"trainer.mixed_precision must be one of {MIXED_PRECISION}, got {t.mixed_precision!r}"),
        (t.nonfinite in NONFINITE, f"trainer.nonfinite must be one of {NONFINITE}, got {t.nonfinite!r}"),
        (t.max_consecutive_nonfinite >= 0, f"trainer.max_consecutive_nonfinite must be >= 0 (0: never stop), got {t.max_consecutive_nonfinite}"),
        (o.lr > 0, f"optim.lr must be > 0, got {o.lr}"),
        (o.grad_accum >= 1, f"optim.grad_accum must be >= 1, got {o.grad_accum}"),
        (o.warmup_steps >= 0, f"optim.warmup_steps must be >= 0, got {o.warmup_steps}"),
        (0.0 <= o.min_lr_ratio <= 1.0, f"optim.min_lr_ratio must be in [0, 1], got {o.min_lr_ratio}"),
        (o.grad_clip >= 0, f"optim.grad_clip must be >= 0 (0 disables), got {o.grad_clip}"),
    ]
    if any(not ok for ok, _ in checks):
        raise ConfigError(next(m for ok, m in checks if not ok))


def lr_factor(step: int, warmup: int, max_steps: int, min_ratio: float) -> float:
    """LR multiplier for optimizer step `step` (0-based).

    Linear warmup (Goyal et al. 2017, "Accurate, Large Minibatch SGD") then half-cosine decay to
    `min_ratio` at `max_steps` (Loshchilov & Hutter 2017, SGDR, without restarts).
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(params: Any, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on matrices only.

    Biases, norm gains and other 1-D parameters get no weight decay (standard since BERT/GPT-2;
    decoupled decay as in Loshchilov & Hutter 2019): shrinking them constrains scale, not capacity.
    """
    decay, no_decay = [], []
    for p in params:
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def _reapply_optim_config(optimizer: Any, scheduler: Any, groups: list[dict], o: OptimConfig) -> None:
    """After a resume the current optim.* values win: optimizer.load_state_dict restores every
    group's lr, betas, eps and weight decay from the checkpoint and LambdaLR its base_lrs, which
    would silently ignore e.g. the lower optim.lr a diverged run is resumed with. Re-applying the
    same values is exact (same formula), so a same-config resume stays bitwise identical."""
    sched = getattr(scheduler, "scheduler", scheduler)  # accelerate's wrapper holds the LambdaLR
    sched.base_lrs = [o.lr] * len(optimizer.param_groups)
    for g, built in zip(optimizer.param_groups, groups):
        g.update(initial_lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, weight_decay=built["weight_decay"])
        g["lr"] = o.lr * sched.lr_lambdas[0](sched.last_epoch)
    sched._last_lr = [g["lr"] for g in optimizer.param_groups]


def _mix(*ints: int) -> int:
    """A well-mixed 63-bit seed from several ints (numpy SeedSequence hashing)."""
    import numpy as np

    return int(np.random.SeedSequence(list(ints)).generate_state(1, dtype=np.uint64)[0] >> 1)


class EpochSampler(torch.utils.data.Sampler):
    """A permutation of range(n) that depends on (seed, epoch) only.

    Deliberately has no `generator` attribute: accelerate would otherwise seed it from the global
    RNG and broadcast it, making the order depend on everything that ran before. Under several
    processes accelerate shards the batches of this one global order (BatchSamplerShard).
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(_mix(self.seed, self.epoch))
        return iter(torch.randperm(self.n, generator=g).tolist())


def worker_context(preload: tuple[str, ...] = ("torch", "numpy")) -> Any:
    """Where DataLoader workers start: a forkserver (spawn where there is none, e.g. Windows), never a
    fork of this process. The caller may hold threads (a video codec's, a server's, tqdm's monitor),
    and a child forked from a threaded process can deadlock on a lock one of them held: workers
    decoding clips with av 18.1.1 did. The server is one fresh single-threaded process (one per
    process that uses it), started when workers are first needed with the `preload` list in force
    then imported (a later call's list changes nothing), so workers start fast."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(preload))
    return ctx


def _accelerator(cfg: Any) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import GradientAccumulationPlugin

    mp = cfg.trainer.mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    # sync_with_dataloader=False: an optimizer step always spans exactly grad_accum micro-batches,
    # even across an epoch boundary, so step counts and checkpoint positions never depend on epoch
    # length. step_scheduler_with_optimizer=False: accelerate would otherwise step the scheduler
    # num_processes times per optimizer step; our schedule is defined in optimizer steps.
    plugin = GradientAccumulationPlugin(num_steps=cfg.optim.grad_accum, sync_with_dataloader=False)
    # Under plain torchrun on a CPU-only machine accelerate only goes multi-process (gloo) when told
    # cpu=True; otherwise every rank would train alone and they would all write the same files.
    world = int(os.environ.get("WORLD_SIZE", "1"))
    acc = Accelerator(mixed_precision=mp, gradient_accumulation_plugin=plugin, step_scheduler_with_optimizer=False,
                      cpu=world > 1 and not torch.cuda.is_available())
    if world > 1 and acc.num_processes == 1:
        raise RuntimeError(f"WORLD_SIZE={world} but accelerate set up a single process")
    return acc


def _release(acc: Any) -> None:
    """Forget accelerate's process-wide singletons so another `fit` can run in this process
    (e.g. a pack trained module by module) with a different precision or accumulation."""
    from accelerate.state import AcceleratorState, GradientState

    acc.free_memory()
    AcceleratorState._reset_state()
    GradientState._reset_state()


def _position(epoch: int, pos: int, n_batches: int) -> tuple[int, int]:
    """(epoch, batches consumed in it), with a finished epoch written as the next one at 0."""
    return (epoch + 1, 0) if pos >= n_batches else (epoch, pos)


def fit(job: TrainJob, cfg: Any, resume: bool = False) -> Path:
    """Train `job.model` on `job.dataset` as `cfg.optim` / `cfg.trainer` say; return `out_dir/final`.

    With `resume`, continue from the newest checkpoint under `trainer.out_dir` (or start fresh if
    there is none). Only the main process writes files.
    """
    from cogarch.train_guard import storage_error

    _validate(cfg)
    acc = _accelerator(cfg)
    try:
        return _fit(acc, job, cfg, resume)
    except Exception as e:  # a full disk or read-only out_dir: one line, not a traceback
        err = storage_error(e, cfg.trainer.out_dir)
        if err is None:
            raise
        raise err from e
    finally:
        _release(acc)


def _fit(acc: Any, job: TrainJob, cfg: Any, resume: bool) -> Path:
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from cogarch.checkpoint import load_model_state, resume_point, restore_training_state, write_training_checkpoint
    from cogarch.config import to_dict
    from cogarch.errors import ConfigError, UserError
    from cogarch.train_guard import check_finite_state, nonfinite_stop, nonfinite_stop_message, sweep_debris
    from cogarch.train_log import CORE_COLUMNS, MetricsLog, Window

    t, o = cfg.trainer, cfg.optim
    out = Path(t.out_dir)
    ckpt = resume_point(out, resume, acc.is_main_process)
    if acc.is_main_process:  # temp files of writes a kill interrupted (only this process writes)
        sweep_debris(out)
    model = job.model
    if ckpt is not None:  # full weights go in before prepare() shards or wraps the model
        load_model_state(model, ckpt)
    groups = param_groups(job.params(model) if job.params else model.parameters(), o.weight_decay)
    if not groups:
        raise ConfigError("the model has no trainable parameters (requires_grad is False everywhere)")
    optimizer = torch.optim.AdamW(groups, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps)

    def schedule(s: int) -> float:  # a plain function: LambdaLR then keeps it out of state_dict()
        return lr_factor(s, o.warmup_steps, t.max_steps, o.min_lr_ratio)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    sampler = EpochSampler(len(job.dataset), t.seed)
    # Own generator: worker seeds are drawn from it (re-seeded per epoch below), not from the
    # global RNG, so building a loader on resume does not shift the model's random stream.
    loader_gen = torch.Generator()
    loader = torch.utils.data.DataLoader(
        job.dataset, batch_size=t.batch_size, sampler=sampler, drop_last=True,  # equal batch sizes
        collate_fn=job.collate_fn, num_workers=t.num_workers, generator=loader_gen,
        multiprocessing_context=worker_context() if t.num_workers > 0 else None,  # never a fork of this process
    )
    model, optimizer, loader, scheduler = acc.prepare(model, optimizer, loader, scheduler)
    n_batches = len(loader)
    if n_batches == 0:
        raise ConfigError(
            f"the dataset has {len(job.dataset)} samples, fewer than trainer.batch_size={t.batch_size} "
            f"x {acc.num_processes} process(es): no full batch to train on"
        )

    step, epoch, pos, skipped, streak = 0, 0, 0, 0, 0  # streak: non-finite optimizer steps in a row
    set_seed(t.seed, device_specific=True)  # per-process stream (e.g. different masks per rank)
    if ckpt is not None:
        step, epoch, pos, skipped = restore_training_state(acc, model, optimizer, scheduler, ckpt, to_dict(cfg))
        _reapply_optim_config(optimizer, scheduler, groups, o)
    last_ckpt, ckpt = (ckpt.path if ckpt is not None else None), None  # free the host copy of the state

    unwrapped = acc.unwrap_model(model)
    update = getattr(unwrapped, "update", None)
    metrics_log = MetricsLog(out, acc.is_main_process, step)
    bar = tqdm(total=t.max_steps, initial=step, desc=f"train {out.name}", disable=not (acc.is_main_process and t.progress))
    window = Window()
    bad = torch.zeros((), dtype=torch.bool, device=acc.device)
    grad_norm = torch.tensor(float("nan"))
    max_norm = o.grad_clip if o.grad_clip > 0 else math.inf  # inf: measure the norm, never clip
    model.train()
    t_last = time.perf_counter()
    try:
        while step < t.max_steps:
            loader_gen.manual_seed(_mix(t.seed, epoch, 1))
            batches = acc.skip_first_batches(loader, pos) if pos else loader
            # accelerate's loader re-applies its own pass count as the sampler epoch: align it with
            # ours, and set the sampler directly too (a sharded skip-loader does not reach it).
            getattr(batches, "set_epoch", sampler.set_epoch)(epoch)
            sampler.set_epoch(epoch)
            for batch in batches:
                pos += 1
                with acc.accumulate(model):
                    loss, metrics = model(batch)
                    loss_d = loss.detach().float()
                    finite = torch.isfinite(loss_d)
                    bad |= ~finite
                    window.add(loss_d, finite, metrics)
                    # Always backward, even on a NaN loss: under DDP every rank must join the
                    # gradient all-reduce; the poisoned gradients are discarded below.
                    acc.backward(loss)
                    nonfinite = False
                    if acc.sync_gradients:
                        gn = acc.clip_grad_norm_(model.parameters(), max_norm)
                        if gn is not None:
                            grad_norm = torch.as_tensor(gn, dtype=torch.float32, device=acc.device).detach()
                        # The decision must be the same on every process or DDP would diverge.
                        flag = (bad | ~torch.isfinite(grad_norm.to(acc.device))).float().reshape(1)
                        nonfinite = bool((acc.reduce(flag, "sum") if acc.num_processes > 1 else flag).item() > 0)
                        streak = streak + 1 if nonfinite else 0
                        if nonfinite_stop(streak, t.nonfinite, t.max_consecutive_nonfinite):
                            raise UserError(nonfinite_stop_message(step + 1, streak, t.nonfinite, t.max_consecutive_nonfinite, last_ckpt))
                        if not nonfinite:
                            optimizer.step()
                        lr = scheduler.get_last_lr()[0]  # the LR this step used (logged below)
                        scheduler.step()
                        optimizer.zero_grad(set_to_none=True)
                        bad.zero_()
                if not acc.sync_gradients:
                    continue
                step += 1
                if nonfinite:
                    skipped += 1
                    if acc.is_main_process:
                        log.warning("step %d: non-finite loss or gradient, optimizer step skipped (%d so far)", step, skipped)
                elif callable(update):
                    update(step)  # e.g. an EMA target: only after a real optimizer step
                now = time.perf_counter()
                window.times.append(now - t_last)
                t_last = now
                bar.update(1)
                if step % t.log_every == 0 or step == t.max_steps:
                    sums = torch.stack([window.loss, window.n]).to(acc.device)
                    if acc.num_processes > 1:
                        sums = acc.reduce(sums, "sum")
                    loss_sum, n = sums.tolist()
                    row = {"step": step, "epoch": epoch, "loss": loss_sum / n if n else float("nan"),
                           "lr": lr, "grad_norm": float(grad_norm),
                           "step_time_s": sum(window.times) / len(window.times), "nonfinite_skipped": skipped}
                    for k, v in window.metrics.items():
                        row[f"module_{k}" if k in CORE_COLUMNS else k] = v / max(1, window.metric_n)
                    metrics_log.write(row)
                    bar.set_postfix(loss=f"{row['loss']:.4g}", lr=f"{row['lr']:.3g}")
                    window = Window()
                if (t.ckpt_every and step % t.ckpt_every == 0) or step == t.max_steps:
                    check_finite_state(acc, model, step, last_ckpt)  # collective; also guards the export
                    last_ckpt = write_training_checkpoint(acc, model, optimizer, scheduler, cfg, step, *_position(epoch, pos, n_batches), skipped)
                if step >= t.max_steps:
                    break
            if pos >= n_batches:
                epoch, pos = epoch + 1, 0
    except BaseException:
        bar.close()
        metrics_log.close(failing=True)
        raise
    bar.close()
    metrics_log.close()
    return _export(acc, job, model, out / "final")


def _export(acc: Any, job: TrainJob, model: Any, final: Path) -> Path:
    """Write the module export (job.save or save_pretrained) to `final` from the main process."""
    from safetensors.torch import save_file

    from cogarch.checkpoint import cpu_state_dict, distributed_kind
    from cogarch.fsutil import atomic_dir

    kind = distributed_kind(acc)
    full = acc.get_state_dict(model) if kind in ("fsdp", "zero3") else None  # collective
    if acc.is_main_process:
        unwrapped = acc.unwrap_model(model)
        if full is None and job.save is not None:
            job.save(unwrapped, final)
        elif full is None and hasattr(unwrapped, "save_pretrained"):
            unwrapped.save_pretrained(final)
        else:  # sharded parameters (gathered full weights), or a model without save_pretrained
            with atomic_dir(final) as tmp:
                save_file(cpu_state_dict(full if full is not None else unwrapped.state_dict()), str(tmp / "model.safetensors"))
    acc.wait_for_everyone()
    return final


def train_module(name: str, config_path: str | None, overrides: list[str], resume: bool = False) -> Path:
    """What `cogarch train NAME --config FILE [k=v ...] [--resume]` runs; returns the export folder.

    A registry entry with `run(cfg, resume)` (a pipeline) is called as is; otherwise the
    `make_job(cfg)` job is driven by `fit`.
    """
    from accelerate.utils import set_seed

    from cogarch.config import load_config
    from cogarch.registry import trainable

    mod = trainable(name)
    cfg = load_config(mod.Config, config_path, list(overrides))
    if hasattr(mod, "run"):
        return Path(mod.run(cfg, resume))
    # Same seed on every process before the model is built: identical initial weights everywhere.
    set_seed(cfg.trainer.seed)
    return fit(mod.make_job(cfg), cfg, resume)


def main(argv: list[str] | None = None) -> int:
    """`python -m cogarch.train NAME [--config FILE] [k=v ...] [--resume]` (same as `cogarch train`)."""
    from cogarch.errors import UserError

    p = argparse.ArgumentParser(prog="python -m cogarch.train", description="Train one cogarch module.")
    p.add_argument("module", help="registered module name, e.g. toy")
    p.add_argument("--config", default=None, help="YAML preset, e.g. configs/toy/tiny.yaml")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in trainer.out_dir")
    p.add_argument("overrides", nargs="*", help="dotted overrides such as optim.lr=3e-4")
    args = p.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        out = train_module(args.module, args.config, args.overrides, args.resume)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":
        print(out)
    return 0


if __name__ == "__main__":
    from cogarch.train import main as _main  # the canonical module, not a second copy as __main__

    sys.exit(_main())
