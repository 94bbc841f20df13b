"""Cost module: energy terms (goal distance, surprise, constraints) + critic, and the latent CEM planner."""

from cogarch.modules.cost.config import CEMConfig, CostConfig, HierConfig, PlannerConfig
from cogarch.modules.cost.model import CostModel
from cogarch.modules.cost.planner import LatentDynamics, Planner, SimulatorDynamics, cem, run_episode

__all__ = ["CEMConfig", "CostConfig", "CostModel", "HierConfig", "LatentDynamics", "Planner", "PlannerConfig",
           "SimulatorDynamics", "cem", "run_episode"]
