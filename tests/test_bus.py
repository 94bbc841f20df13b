"""Latent bus: immutable messages, validation, read by kind, trace."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cogarch.bus import BusError, LatentBus, Message


def msg(kind="percept", source="perception", shape=(2, 5, 4), **kw) -> Message:
    return Message(kind=kind, source=source, tokens=torch.randn(*shape), **kw)


def test_publish_read_round_trip_in_order() -> None:
    bus = LatentBus()
    a = bus.publish(msg(meta={"grid": [1, 5]}))
    b = bus.publish(msg(kind="surprise", source="world_model", shape=(2, 8, 1)))
    c = bus.publish(msg())
    assert bus.read("percept") == [a, c] and bus.latest("percept") is c
    assert bus.read("recall") == [] and bus.latest("recall") is None
    assert bus.kinds() == ["percept", "surprise"]
    assert bus.messages() == [a, b, c]
    assert torch.equal(bus.read("percept")[0].tokens, a.tokens)
    bus.drop("percept")
    assert not bus.has("percept") and bus.messages() == [b]


def test_message_is_immutable() -> None:
    m = msg(meta={"fps": 8})
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.kind = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        m.meta["fps"] = 9  # type: ignore[index]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(shape=(5, 4)), r"\[B, N, D\]"),
        (dict(kind="not a kind"), "bad message kind"),
        (dict(source=""), "source"),
        (dict(time=torch.zeros(2, 4)), r"time must be \[B, N\]"),
        (dict(mask=torch.ones(2, 5)), "mask must be bool"),
        (dict(mask=torch.ones(3, 5, dtype=torch.bool)), r"mask must be \[B, N\]"),
    ],
)
def test_validation_errors_are_clear(kwargs, match) -> None:
    with pytest.raises(BusError, match=match):
        msg(**kwargs)


def test_integer_tokens_rejected_and_dims_enforced() -> None:
    with pytest.raises(BusError, match="floating point"):
        Message("percept", "p", torch.zeros(1, 2, 3, dtype=torch.long))
    bus = LatentBus(dims={"percept": 4})
    bus.publish(msg())
    with pytest.raises(BusError, match="expects 8|width 4"):
        LatentBus(dims={"percept": 8}).publish(msg())


def test_trace_records_kind_source_shape_norm() -> None:
    bus = LatentBus(record=True)
    t = torch.ones(1, 3, 4)  # every token has norm 2
    bus.publish(Message("percept", "perception", t, time=torch.arange(3)[None]))
    bus.publish(msg(kind="surprise", source="world_model", shape=(1, 8, 1)))
    assert [(e.kind, e.source, e.shape) for e in bus.trace] == [
        ("percept", "perception", (1, 3, 4)),
        ("surprise", "world_model", (1, 8, 1)),
    ]
    assert bus.trace[0].norm == pytest.approx(2.0)
    assert bus.trace[1].ms >= bus.trace[0].ms
    text = bus.format_trace()
    assert "perception -> percept" in text and "1x3x4" in text
    assert "empty" in LatentBus().format_trace()
