"""Cost module tests: energy terms, return targets, the critic learning a known return, bus
publishing, save/load, and the critic's training-data split rule."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from cogarch.bus import LatentBus, Message
from cogarch.errors import ConfigError, UserError
from cogarch.modules.cost.config import CostConfig
from cogarch.modules.cost.model import CostModel, discounted_returns, lambda_returns
from cogarch.modules.cost.train import Config, DataConfig, make_job


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and the test suite shares 2 cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_goal_term_is_zero_at_goal_and_weights_sum():
    cm = CostModel(CostConfig(latent_dim=8, goal_weight=2.0, surprise_weight=0.5, constraint_weight=3.0))
    g = torch.randn(2, 4, 8)
    traj = torch.stack([torch.randn(2, 4, 8), g], dim=1)  # [B, H=2, P, D], last step at the goal
    out = cm.cost(traj, g, surprise=torch.tensor([1.0, 2.0]), constraints={"off_table": torch.tensor([0.0, 1.0])})
    assert torch.allclose(out["goal"], torch.zeros(2), atol=1e-5)
    assert torch.allclose(out["total"], 2.0 * out["goal"] + 0.5 * torch.tensor([1.0, 2.0]) + 3.0 * torch.tensor([0.0, 1.0]))
    # farther predicted latents -> larger goal energy; pooled goal vs token grid still works
    near, far = g + 0.1 * torch.randn_like(g), g + 2.0 * torch.randn_like(g)
    d = cm.goal_distance(torch.stack([near, far], 1), g)
    assert (d[:, 0] < d[:, 1]).all()
    assert cm.goal_distance(traj, g.mean(1)).shape == (2, 2)
    with pytest.raises(UserError, match="clashes"):
        cm.cost(traj, g, constraints={"goal": torch.zeros(2)})


def test_return_targets():
    c = torch.tensor([[1.0, 2.0, 3.0]])
    g = discounted_returns(c, 0.5)
    assert torch.allclose(g, torch.tensor([[1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0]]))
    v = torch.tensor([[10.0, 20.0, 30.0]])
    assert torch.allclose(lambda_returns(c, v, 0.5, 1.0), g)  # lambda = 1: Monte-Carlo
    assert torch.allclose(lambda_returns(c, v, 0.5, 0.0), torch.tensor([[1 + 0.5 * 20, 2 + 0.5 * 30, 3.0]]))
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # padded last step contributes nothing
    assert torch.allclose(discounted_returns(c, 0.5, mask), torch.tensor([[2.0, 2.0, 0.0]]))


@pytest.mark.parametrize("target", ["mc", "td_lambda"])
def test_critic_learns_known_return(target):
    """Latents one-hot-encode the time step; unit cost per step; gamma = 0.5 over T = 5 steps:
    the true cost-to-go of step t is sum_{k<5-t} 0.5^k, which the critic must recover."""
    torch.manual_seed(0)
    T, D, gamma = 5, 8, 0.5
    cm = CostModel(CostConfig(latent_dim=D, critic_hidden=32, critic_depth=2, gamma=gamma, target=target, lam=0.7))
    lat = torch.zeros(T, D)
    lat[torch.arange(T), torch.arange(T)] = 3.0
    batch = {"latents": lat.expand(4, T, D), "goal": torch.zeros(4, D), "costs": torch.ones(4, T)}
    opt = torch.optim.Adam(cm.parameters(), lr=1e-2)
    for _ in range(300):
        loss, _ = cm(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    true = torch.tensor([sum(gamma**k for k in range(T - t)) for t in range(T)])
    with torch.no_grad():
        pred = cm.critic_value(lat[None], torch.zeros(1, D))[0]
    assert torch.allclose(pred, true, atol=0.05), (pred, true)


def test_step_publishes_cost_and_save_load(tmp_path):
    cm = CostModel(CostConfig(latent_dim=8, critic_weight=0.5, surprise_weight=1.0))
    bus = LatentBus()
    fut = torch.randn(2, 3 * 4, 8)
    bus.publish(Message("forecast", "world_model", fut, meta={"grid": [3, 4]}))
    goal = torch.randn(2, 2 * 4, 8)  # a 2-step goal clip grid: its last step is the goal
    bus.publish(Message("goal", "perception", goal, meta={"grid": [2, 2, 2]}))
    s = torch.tensor([[0.0, 1.0, 3.0], [0.0, 2.0, 2.0]])
    bus.publish(Message("surprise", "world_model", s[..., None], mask=torch.tensor([[False, True, True]] * 2)))
    cm.step(bus)
    msg = bus.latest("cost")
    assert msg.meta["terms"] == ["goal", "critic", "surprise", "total"]
    assert msg.tokens.shape == (2, 4, 1)
    assert torch.allclose(msg.tokens[:, 2, 0], torch.tensor([2.0, 2.0]))
    expect = cm.cost(fut.reshape(2, 3, 4, 8), goal.reshape(2, 2, 4, 8)[:, -1], torch.tensor([2.0, 2.0]))
    assert torch.allclose(msg.tokens[:, 3, 0], expect["total"])
    cm.save_pretrained(tmp_path / "cost")
    back = CostModel.from_pretrained(tmp_path / "cost")
    z, g = torch.randn(3, 2, 8), torch.randn(3, 8)
    assert torch.equal(back.critic_value(z, g), cm.critic_value(z, g))


def test_critic_job_uses_train_split_only(tmp_path):
    n, T, D = 4, 5, 8
    save_file(
        {"latents": torch.randn(n, T, D), "goal": torch.randn(n, D)},
        str(tmp_path / "ep.safetensors"),
        metadata={"splits": json.dumps(["train", "test", "train", "val"]), "suite": "planning"},
    )
    job = make_job(Config(model=CostConfig(latent_dim=D), data=DataConfig(features_dir=str(tmp_path))))
    assert len(job.dataset) == 2
    loss, m = job.model(job.collate_fn([job.dataset[0], job.dataset[1]]))
    assert torch.isfinite(loss) and m["target_mean"] > 0  # default per-step cost: goal distance
    with pytest.raises(ConfigError, match="evaluation split"):
        Config(data=DataConfig(features_dir=str(tmp_path), train_splits=["test_ood"])).validate()
