"""Memory module: working memory of recent bus traffic + a persistent episodic store with ANN recall.

    from cogarch.modules.memory import MemoryModule, MemoryConfig, EpisodeStore
"""

from cogarch.modules.memory.config import MemoryConfig
from cogarch.modules.memory.model import MemoryModule
from cogarch.modules.memory.episode import Episode, Hit
from cogarch.modules.memory.store import EpisodeStore
from cogarch.modules.memory.working import WorkingMemory, pool_tokens

__all__ = ["Episode", "EpisodeStore", "Hit", "MemoryConfig", "MemoryModule", "WorkingMemory", "pool_tokens"]
