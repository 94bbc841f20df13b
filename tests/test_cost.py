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


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


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


def test_critic_reduce_final_reads_the_last_step_and_mean_every_step():
    torch.manual_seed(0)
    z, g = torch.randn(3, 4, 2, 8), torch.randn(3, 2, 8)  # [B, H, P, D] rollouts, [B, P, D] goal
    final = CostModel(CostConfig(latent_dim=8, critic_weight=1.0, goal_weight=0.0))
    mean = CostModel(CostConfig(latent_dim=8, critic_weight=1.0, goal_weight=0.0, critic_reduce="mean"))
    mean.load_state_dict(final.state_dict())
    per_step = final.critic_value(z, g)  # [B, H]
    assert torch.allclose(final.cost(z, g)["critic"], per_step[:, -1])
    assert torch.allclose(mean.cost(z, g)["total"], per_step.mean(dim=1))
    with pytest.raises(ConfigError, match="critic_reduce"):
        CostConfig(critic_reduce="max").validate()


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


def test_keypoint_critic_learns_a_distance_from_token_grids():
    """Token grids 4x4 carry one object: the token of its cell holds a marker plus its in-cell
    offset. Trained only on costs = true object-goal distance (gamma 0), the keypoint critic must
    rank held-out (state, goal) pairs by distance; the pooled MLP critic sees a mean over the grid
    (which still carries the offset, not the cell) and must do clearly worse."""
    torch.manual_seed(0)
    side, D, n = 4, 8, 512

    def grids(pos: torch.Tensor) -> torch.Tensor:  # pos [N, 2] in [0, 1) -> tokens [N, 16, D]
        cell = (pos * side).floor().long()
        off = pos * side - cell - 0.5
        tok = torch.zeros(pos.shape[0], side * side, D)
        idx = cell[:, 1] * side + cell[:, 0]
        tok[torch.arange(pos.shape[0]), idx, 0] = 4.0
        tok[torch.arange(pos.shape[0]), idx, 1:3] = off
        return tok

    def data(n: int) -> dict[str, torch.Tensor]:
        s, g = torch.rand(n, 2), torch.rand(n, 2)
        return {"latents": grids(s)[:, None], "goal": grids(g), "costs": (s - g).norm(dim=-1)[:, None]}

    train, test = data(n), data(256)
    scores = {}
    for arch in ("keypoint", "mlp"):
        cm = CostModel(CostConfig(latent_dim=D, critic_arch=arch, critic_hidden=32, gamma=0.0, target="mc"))
        opt = torch.optim.Adam(cm.parameters(), lr=1e-2)
        for i in range(300):
            idx = torch.arange(64 * (i % 8), 64 * (i % 8 + 1))
            loss, _ = cm({k: v[idx] for k, v in train.items()})
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            pred = cm.critic_value(test["latents"], test["goal"])[:, 0]
        ranks = lambda x: x.argsort().argsort().float()  # noqa: E731
        scores[arch] = float(torch.corrcoef(torch.stack([ranks(pred), ranks(test["costs"][:, 0])]))[0, 1])
    assert scores["keypoint"] > 0.9 and scores["keypoint"] > scores["mlp"] + 0.2, scores
    with pytest.raises(UserError, match="square token grid"):
        CostModel(CostConfig(latent_dim=D, critic_arch="keypoint")).critic_value(torch.zeros(1, 1, 5, D), torch.zeros(1, 5, D))
    with pytest.raises(ConfigError, match="critic_arch"):
        CostConfig(critic_arch="tree").validate()


def test_relabel_and_keypoint_supervision():
    """Relabelled episodes get another episode's goal and costs recomputed from true positions;
    keypoint_weight adds an L1 pull of the keypoints onto the true positions."""
    torch.manual_seed(0)
    B, T, P, D = 6, 3, 4, 8
    pos, goal_pos = torch.rand(B, T, 2), torch.rand(B, 2)
    batch = {"latents": torch.randn(B, T, P, D), "goal": torch.arange(B).float()[:, None, None].expand(B, P, D).clone(),
             "costs": (pos - goal_pos[:, None]).norm(dim=-1), "positions": pos, "goal_position": goal_pos}
    cm = CostModel(CostConfig(latent_dim=D, critic_arch="keypoint", relabel=1.0, gamma=0.0, target="mc"))
    goal, costs = cm._relabel(batch["goal"], pos, goal_pos, batch["costs"])
    other = goal[:, 0, 0].long()
    assert (other != torch.arange(B)).all()  # every episode got ANOTHER episode's goal ...
    assert torch.allclose(costs, (pos - goal_pos[other][:, None]).norm(dim=-1))  # ... and the matching costs
    cm.config.keypoint_weight = 1.0
    loss, m = cm(batch)
    assert m["keypoint_l1"] > 0 and loss.item() == pytest.approx(m["value_loss"] + m["keypoint_l1"], rel=1e-5)
    with pytest.raises(UserError, match="keypoint_weight"):
        CostModel(CostConfig(latent_dim=D, keypoint_weight=1.0))({k: v for k, v in batch.items()})
