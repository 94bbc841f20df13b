"""Training metrics of the generic trainer (cogarch/train.py): `metrics.csv` + TensorBoard events.

`MetricsLog` writes one row per log step from the main process; on resume it keeps only the rows
up to the checkpoint being resumed (a killed run may have logged past it) and drops a torn last
line (a write cut short by a full disk). `Window` sums loss and module metrics between log steps
as tensors, so logging costs no device sync per micro-batch.
"""

from __future__ import annotations

import csv
import io
import threading
from pathlib import Path
from typing import Any

import torch

CORE_COLUMNS = ["step", "epoch", "loss", "lr", "grad_norm", "step_time_s", "nonfinite_skipped"]


class MetricsLog:
    """TensorBoard events + `metrics.csv` (one row per log step). Main process only."""

    def __init__(self, out_dir: Path, enabled: bool, start_step: int) -> None:
        self.enabled = enabled
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / "metrics.csv"
        self.header = list(CORE_COLUMNS)
        rows: list[dict] = []
        if start_step and self.path.is_file():  # resume: keep rows up to the checkpoint only
            header, rows = self._read()
            self.header = header or self.header
            rows = [r for r in rows if (r.get("step") or "").isdigit() and int(r["step"]) <= start_step]
        # Before the event writer: an unwritable out_dir fails here, in this thread, with a file name.
        self._rewrite(rows)
        _quiet_event_writer_storage_errors()
        # purge_step drops events a killed run logged after the checkpoint we resume from.
        self.tb = SummaryWriter(str(out_dir / "tb"), purge_step=start_step + 1 if start_step else None)

    def _read(self) -> tuple[list[str], list[dict]]:
        """Header and complete rows. A last line without its newline is a torn append (ENOSPC
        mid-write): dropped, or its cut-short numbers ("12" of "120") would pass as data."""
        text = self.path.read_text(encoding="utf-8")
        reader = csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1]))
        rows = [{k: v for k, v in r.items() if k is not None} for r in reader]
        return list(reader.fieldnames or []), rows

    def _rewrite(self, rows: list[dict]) -> None:
        from cogarch.fsutil import atomic_write_text

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.header, restval="")
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(self.path, buf.getvalue())

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        new = sorted(k for k in row if k not in self.header)
        if new:  # a metric appeared: widen the header (rare, so rewriting the file is fine)
            old = self._read()[1]
            self.header += new
            self._rewrite(old + [row])
        else:
            with open(self.path, "a", newline="", encoding="utf-8") as f:
                csv.DictWriter(f, fieldnames=self.header, restval="").writerow(row)
        for k, v in row.items():
            if k not in ("step", "epoch"):
                self.tb.add_scalar(f"train/{k}", v, row["step"])
        self.tb.flush()

    def close(self, failing: bool = False) -> None:
        """Flush and close. While another error propagates (`failing`), a second one from the
        event writer (e.g. the same full disk) must not replace it, so it is dropped."""
        if not self.enabled:
            return
        try:
            self.tb.close()
        except OSError:
            if not failing:
                raise


def _quiet_event_writer_storage_errors() -> None:
    """Keep TensorBoard's writer thread from printing a traceback for a full or read-only disk.

    The thread stores the error and the next `flush()`/`close()` re-raises it in the training
    thread, where the trainer turns it into one line (cogarch/train_guard.py); the thread's own
    traceback (threading.excepthook) would be a second, noisy report of the same thing.
    """
    previous = threading.excepthook
    if getattr(previous, "cogarch_quiet_storage", False):
        return

    def hook(args: Any) -> None:
        from cogarch.train_guard import storage_errno

        if type(args.thread).__name__ == "_AsyncWriterThread" and storage_errno(args.exc_value) is not None:
            return
        previous(args)

    hook.cogarch_quiet_storage = True  # type: ignore[attr-defined]
    threading.excepthook = hook


class Window:
    """Sums between log steps (tensors: no sync per micro-batch); module metrics are rank 0's."""

    def __init__(self) -> None:
        self.loss = torch.zeros((), dtype=torch.float64)
        self.n = torch.zeros((), dtype=torch.float64)
        self.metrics: dict[str, float] = {}
        self.metric_n = 0
        self.times: list[float] = []

    def add(self, loss: torch.Tensor, finite: torch.Tensor, metrics: dict) -> None:
        self.loss = self.loss.to(loss.device) + torch.where(finite, loss, torch.zeros_like(loss)).double()
        self.n = self.n.to(loss.device) + finite.double()
        for k, v in (metrics or {}).items():
            self.metrics[k] = self.metrics.get(k, 0.0) + float(v)
        self.metric_n += 1
