"""cogarch: a hybrid modular cognitive architecture.

JEPA world models perceive, predict and plan in latent space; a LoRA-adapted language model reads
their latents from a latent bus and answers. See README.md and docs/architecture.md.
"""

__version__ = "0.1.0"

from cogarch.bus import LatentBus, Message  # noqa: E402
from cogarch.errors import UserError  # noqa: E402

__all__ = ["LatentBus", "Message", "UserError", "__version__"]
