"""World model: block-causal latent predictor (forecast + surprise), V-JEPA 2-AC style."""

from cogarch.modules.world_model.config import WorldModelConfig
from cogarch.modules.world_model.model import WorldModel, block_causal_mask, message_to_steps

__all__ = ["WorldModel", "WorldModelConfig", "block_causal_mask", "message_to_steps"]
