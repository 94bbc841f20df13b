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

(The loop itself is implemented below this header.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

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
