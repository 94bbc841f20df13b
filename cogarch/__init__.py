"""cogarch: a hybrid modular cognitive architecture.

JEPA world models perceive, predict and plan in latent space; a LoRA-adapted language model reads
their latents from a latent bus and answers. See README.md and docs/architecture.md.
"""

__version__ = "0.1.0"

from cogarch.bus import LatentBus, Message  # noqa: E402
from cogarch.errors import UserError  # noqa: E402

__all__ = ["LatentBus", "Message", "UserError", "__version__", "load"]


def load(pack=None, memory=None, trace=False, disable=()):
    """Load a model pack (default: the shipped one); see cogarch/api.py."""
    from cogarch.api import load as _load

    return _load(pack, memory=memory, trace=trace, disable=disable)
