"""Typed config of the language module: which base LM, how bus messages become prefix tokens, LoRA.

The module reads other modules only through bus `Message`s. Each kind it understands gets its own
projector, built from the width declared here (`kind_dims`); a message whose width disagrees is a
one-line error naming the kind. Kinds missing from the bus are simply absent from the prefix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cogarch.errors import ConfigError

# The attention and MLP projections LoRA adapts (Llama / Qwen2 / Mistral naming); names a given
# family lacks are dropped when the adapter is built (see model.lora_targets).
DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LanguageConfig:
    # Local folder of any transformers causal LM (AutoModelForCausalLM); never fetched from a hub.
    base_lm: str = ""
    # Token width D of each bus kind the module reads (one projector per kind), e.g.
    # {percept: 192, forecast: 192, surprise: 1, recall: 192, cost: 1}; 0 = take the width from the
    # feature shards when training starts (`cogarch train language`). Empty by default on purpose:
    # OmegaConf merges dicts key by key, so a default here would leak into every YAML preset.
    kind_dims: dict[str, int] = field(default_factory=dict)
    # Pooling of long token sequences before projection: "none", "adaptive" (adaptive average
    # pool over the token axis to <= max_tokens), or "time_mean" (mean over the tokens of each
    # time step, then adaptive if still longer than max_tokens), or "grid" (time-major square patch
    # grids, e.g. V-JEPA's T' x H' x W': each step pooled to grid x grid, then time pooled to fit
    # max_tokens; kinds without that layout fall back to time_mean).
    pool: str = "time_mean"
    # Per-kind pooling overrides, e.g. {objects: none}: object slots must not be averaged together.
    # "slot" (per kind only): a time-major [T' x K] message (perception's object slots, the world
    # model's object forecast) becomes K tokens, one per slot, each its T' rows concatenated, so
    # the LM sees one token per object instead of T' copies of it (see adapters.slot_pool). It
    # gives K tokens whatever max_tokens says (slots are never averaged together).
    pool_per_kind: dict[str, str] = field(default_factory=dict)
    # Time steps one "slot" token holds: its projector reads kind_dims[kind] * slot_steps values
    # (a message with fewer steps is zero-padded, as an unseen object's rows are zero; more is an error).
    slot_steps: int = 8
    grid: int = 2
    max_tokens: int = 32  # per kind, after pooling
    max_tokens_per_kind: dict[str, int] = field(default_factory=dict)  # overrides max_tokens
    proj_hidden: int = 0  # hidden width of the 2-layer MLP projector; 0: the LM's hidden size
    input_norm: bool = True  # LayerNorm on each kind's input (kinds with D > 1); see model.py
    # Per-kind overrides of input_norm, e.g. {objects: false, forecast: false}. A LayerNorm is
    # scale-invariant: perception's object rows are gated (p(exist) x p(visible) times the row), so
    # under it a slot at gate 0.05 reaches the LM like a confident one, and the LM cannot tell which
    # slots hold an object (counting) or when one is gone (exits). Such kinds skip the norm.
    input_norm_per_kind: dict[str, bool] = field(default_factory=dict)
    max_time: int = 256  # size of the learned time-embedding table; times clamp into it
    # Learned embedding of a token's index among the tokens of its own time step (0 = off): the
    # slot number of an `objects` or `forecast` row, the cell of a pooled `percept` grid. One table
    # shared by all kinds, so slot k's observed rows and its forecast rows carry the same vector
    # (which object a forecast row is about) and a slot's rows at different steps can be grouped
    # (how many objects there are). Without it the LM must infer the index from its own position
    # code over the prefix, as a ViT without position embeddings must. Indices clamp into the table.
    index_embed: int = 0
    # Kinds whose tokens are time-major object-slot rows (perception's `objects`, the world model's
    # object `forecast`) that also get relation channels (relations.py): each row's speed, who is
    # within a few radii of it now, whom it touched first and whom it has come close to. They pass through a second projector per kind whose output is added to the
    # row's token; its last layer starts at zero, so adding relations to a trained module (init_from)
    # starts from that module's exact outputs. Such kinds need pool "none" (one token per row).
    relations: list[str] = field(default_factory=list)
    # Kinds of object-slot rows read by the slot binder (binder.py): learned role queries over the
    # question pick slots by their identity columns, and fixed role / pair read-outs of the picked
    # slots (closest approach, speed, whom it touched) become extra prefix tokens. Needs the prompt,
    # as the resampler does. Its projectors start at zero (init_from can add it to a trained module).
    binder: list[str] = field(default_factory=list)
    binder_roles: int = 3  # role queries (objects a question can name); pairs = roles choose 2
    binder_width: int = 64  # the binder's text encoder width (heads: 4)
    # What the binder reads of the prompt: "lm" the LM's (frozen) input embeddings, "own" its own
    # embedding table over the tokenizer's ids (binder.py says why).
    binder_text: str = "lm"
    # One more role-like token per binder kind: the slot role 0 touched first (binder.py), so "which
    # object does X hit first" has its answer's identity where a role's identity stands.
    binder_first: bool = False
    # LoRA (Hu et al. 2021) on the LM; projectors are separate, fully trained parameters.
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: list(DEFAULT_LORA_TARGETS))
    # Prompt formats (shared by training, scoring and generation so they always agree).
    prompt_template: str = "Question: {question}\nAnswer:"
    choices_template: str = "Question: {question}\nOptions: {choices}\nAnswer:"
    show_choices: bool = True  # put the options into the prompt when a question has them
    # Where the bus prefix sits: "start" ([BOS][bus][prompt][target], LLaVA's layout) or "answer"
    # ([BOS][prompt][bus][target]). With "answer" the causal LM reads the question before the bus
    # tokens, so their hidden states can depend on what is asked (the idea behind InstructBLIP's
    # instruction-aware Q-Former, done here by position alone; no new parameters).
    prefix_at: str = "start"
    # Question-conditioned resampler (resampler.py; InstructBLIP's instruction-aware Q-Former):
    # 0 = off (LLaVA's layout: every projected bus token goes to the LM). N > 0: N learned queries,
    # sharing self-attention with the question's tokens, cross-attend to the projected bus tokens;
    # only the N queries (plus the raw prefix if resampler_keep_prefix) enter the LM.
    resampler_queries: int = 0
    resampler_layers: int = 2
    resampler_heads: int = 4
    resampler_keep_prefix: bool = False
    caption_prompt: str = "Describe the clip.\nDescription:"
    max_prompt_tokens: int = 128
    max_target_tokens: int = 96
    # Copy the base LM's files into the saved folder (self-contained packs); off for big LMs.
    bundle_base: bool = True

    def validate(self) -> None:
        if self.prefix_at not in ("start", "answer"):
            raise ConfigError(f"language.prefix_at must be start|answer, got {self.prefix_at!r}")
        if self.pool not in ("none", "adaptive", "time_mean", "grid"):
            raise ConfigError(f"language.pool must be none|adaptive|time_mean|grid, got {self.pool!r}")
        for kind, pool in self.pool_per_kind.items():
            if pool not in ("none", "adaptive", "time_mean", "grid", "slot"):
                raise ConfigError(f"language.pool_per_kind.{kind} must be none|adaptive|time_mean|grid|slot, got {pool!r}")
        if self.slot_steps < 1:
            raise ConfigError(f"language.slot_steps must be >= 1, got {self.slot_steps}")
        for kind, dim in self.kind_dims.items():
            if not kind.isidentifier():
                raise ConfigError(f"language.kind_dims: bad kind name {kind!r}")
            if int(dim) < 0:
                raise ConfigError(f"language.kind_dims.{kind} must be >= 1 (or 0: from the features), got {dim}")
        if self.max_tokens < 1 or any(v < 1 for v in self.max_tokens_per_kind.values()):
            raise ConfigError("language.max_tokens (and max_tokens_per_kind) must be >= 1")
        for kind, on in self.input_norm_per_kind.items():
            if self.kind_dims and kind not in self.kind_dims:  # a misspelt kind would keep the norm silently
                raise ConfigError(f"language.input_norm_per_kind.{kind}: not a kind the module reads ({sorted(self.kind_dims)})")
            if not isinstance(on, bool):
                raise ConfigError(f"language.input_norm_per_kind.{kind} must be true or false, got {on!r}")
        for kind in self.relations:
            if self.kind_dims and kind not in self.kind_dims:
                raise ConfigError(f"language.relations: {kind!r} is not a kind the module reads ({sorted(self.kind_dims)})")
            if self.pool_per_kind.get(kind, self.pool) != "none":
                raise ConfigError(f"language.relations: {kind!r} needs pool_per_kind.{kind}=none (one token per slot row)")
        if len(set(self.relations)) != len(self.relations):
            raise ConfigError(f"language.relations has repeats: {self.relations}")
        for kind in self.binder:
            if self.kind_dims and kind not in self.kind_dims:
                raise ConfigError(f"language.binder: {kind!r} is not a kind the module reads ({sorted(self.kind_dims)})")
        if len(set(self.binder)) != len(self.binder):
            raise ConfigError(f"language.binder has repeats: {self.binder}")
        if self.binder_first and not self.binder:
            raise ConfigError("language.binder_first needs a slot binder (language.binder names its kinds)")
        if self.binder_text not in ("lm", "own"):
            raise ConfigError(f"language.binder_text must be lm or own, got {self.binder_text!r}")
        if self.binder_roles < 2:
            raise ConfigError(f"language.binder_roles must be >= 2 (pairs of roles are read), got {self.binder_roles}")
        if self.binder_width < 4 or self.binder_width % 4:
            raise ConfigError(f"language.binder_width must be a positive multiple of 4 (4 heads), got {self.binder_width}")
        if self.index_embed < 0:
            raise ConfigError(f"language.index_embed must be >= 0 (0 = off), got {self.index_embed}")
        if self.resampler_queries < 0:
            raise ConfigError(f"language.resampler_queries must be >= 0 (0 = off), got {self.resampler_queries}")
        for key in ("resampler_layers", "resampler_heads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"language.{key} must be >= 1, got {getattr(self, key)}")
        if self.lora_r < 1:
            raise ConfigError(f"language.lora_r must be >= 1, got {self.lora_r}")
        if "{question}" not in self.prompt_template:
            raise ConfigError("language.prompt_template must contain {question}")

    def norm_of(self, kind: str) -> bool:
        """Whether `kind`'s projector LayerNorms its input."""
        return bool(self.input_norm_per_kind.get(kind, self.input_norm))

    def proj_dim(self, kind: str) -> int:
        """Input width of `kind`'s projector: its message width, times slot_steps for "slot" kinds."""
        d = int(self.kind_dims[kind])
        return d * self.slot_steps if self.pool_per_kind.get(kind) == "slot" else d

    def cap(self, kind: str) -> int:
        return int(self.max_tokens_per_kind.get(kind, self.max_tokens))
