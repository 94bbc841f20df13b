"""Architecture: DAG scheduling, cycle / missing-producer errors, disabled modules, packs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cogarch.architecture import Architecture, ArchitectureError, read_pack_meta, schedule
from cogarch.bus import LatentBus, Message
from cogarch.errors import CheckpointError


class Producer:
    """A fake module that sums what it reads and publishes it: enough to watch the scheduler."""

    def __init__(self, name, reads, writes):
        self.name, self.reads, self.writes = name, tuple(reads), tuple(writes)

    def step(self, bus: LatentBus, frames=None) -> None:
        base = frames if frames is not None else torch.zeros(1, 1, 2)
        for kind in self.reads:
            for m in bus.read(kind):
                base = base + m.tokens.sum()
        for kind in self.writes:
            bus.publish(Message(kind, self.name, base + 1))


def test_schedule_orders_by_reads_and_writes() -> None:
    specs = {
        "language": (["percept", "forecast", "recall"], []),
        "world_model": (["percept"], ["forecast", "surprise"]),
        "memory": (["percept"], ["recall"]),
        "perception": (["frames"], ["percept"]),
    }
    order = schedule(specs)
    assert order.index("perception") < order.index("world_model") < order.index("language")
    assert order.index("memory") < order.index("language")
    assert order == schedule(dict(reversed(list(specs.items()))))  # deterministic


def test_cycle_and_missing_producer_are_build_errors() -> None:
    with pytest.raises(ArchitectureError, match="cycle"):
        schedule({"a": (["x"], ["y"]), "b": (["y"], ["x"])})
    with pytest.raises(ArchitectureError, match="'reader' reads 'forecast'"):
        schedule({"reader": (["forecast"], [])})
    # a kind whose producer is disabled is optional: readers must cope
    assert schedule({"reader": (["forecast"], [])}, disabled_writes={"forecast"}) == ["reader"]


def test_run_passes_inputs_and_disabled_module_is_absent() -> None:
    mods = {
        "perception": Producer("perception", ["frames"], ["percept"]),
        "reader": Producer("reader", ["percept", "forecast"], ["cost"]),
    }
    arch = Architecture(mods, disabled=("world_model",))
    bus = LatentBus(record=True)
    timings = arch.run(bus, frames=torch.ones(1, 1, 2))
    assert [t.module for t in timings] == ["perception", "reader"]
    assert not bus.has("forecast")
    # percept = frames + 1 = 2 per entry; the reader's step also accepts `frames`, so it gets them:
    # reader = frames (1) + sum(percept) (4) + 1
    assert torch.allclose(bus.latest("cost").tokens, torch.full((1, 1, 2), 6.0))
    with pytest.raises(ArchitectureError):
        Architecture({"reader": Producer("reader", ["forecast"], [])})


def test_pack_meta_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a folder"):
        read_pack_meta(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="no pack.json"):
        read_pack_meta(tmp_path)
    (tmp_path / "pack.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        read_pack_meta(tmp_path)
    (tmp_path / "pack.json").write_text(json.dumps({"format_version": 99, "modules": {}}))
    with pytest.raises(CheckpointError, match="newer"):
        read_pack_meta(tmp_path)
