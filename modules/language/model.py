"""The language module: a local causal LM + PEFT LoRA + per-kind bus projectors (soft prefix).

Sequence layout (one sample), as LLaVA splices image tokens into the text embeddings:

    [BOS] [bus prefix: kind1 tokens | kind2 tokens | ...] [prompt "Question: ... Answer:"] [target ... EOS]
    labels: -100 on BOS, prefix and prompt; the target token ids on the target (incl. EOS).

With config.prefix_at = "answer" the prefix moves after the prompt: [BOS] [prompt] [bus] [target],
so the bus tokens are read in the light of the question (see config.py).

Only real prefix tokens are spliced in (padding from a message mask is dropped), so positions stay
contiguous. Training pads on the right; generation pads on the left with explicit position ids.
BLIND mode skips the bus entirely (the prefix has length 0): the text-only baseline.

On disk (`save_pretrained(dir)`, one folder):
    adapter_config.json + adapter_model.safetensors   standard PEFT LoRA (PeftModel.from_pretrained)
    projectors.safetensors                            the BusAdapter weights (trained fully, no LoRA)
    language_config.json                              {"module": "language", "config": {...}, ...}
    tokenizer files                                   the LM's tokenizer
    base/                                             a copy of the base LM (if config.bundle_base)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from cogarch.bus import LatentBus, Message
from cogarch.config import from_dict, to_dict
from cogarch.errors import CheckpointError, ConfigError
from cogarch.fsutil import atomic_dir
from cogarch.modules.language.adapters import BusAdapter, batch_messages, canonical_kinds, messages_of
from cogarch.modules.language.config import LanguageConfig

FORMAT_VERSION = 1
CONFIG_FILE = "language_config.json"
PROJECTORS_FILE = "projectors.safetensors"
BASE_DIR = "base"
# Files that make up a transformers LM folder (copied when bundling the base LM).
_LM_FILES = ("*.json", "*.safetensors", "*.model", "*.txt", "*.jinja")


def load_base_lm(path: str | os.PathLike):
    """(model, tokenizer) from a LOCAL transformers folder; never touches a hub."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(path)
    if not (p / "config.json").is_file():
        raise CheckpointError(f"base LM not found: {str(path)!r} is not a transformers model folder (no config.json)")
    try:
        lm = AutoModelForCausalLM.from_pretrained(str(p), local_files_only=True)
        tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot load the LM in {str(path)!r}: {str(e).splitlines()[0]}") from None
    if tok.pad_token_id is None:  # e.g. a Llama tokenizer without <pad>: pad with EOS (always masked)
        tok.pad_token = tok.eos_token
    return lm, tok


def lora_targets(lm: nn.Module, wanted: list[str]) -> list[str]:
    names = {n.rsplit(".", 1)[-1] for n, m in lm.named_modules() if isinstance(m, nn.Linear)}
    found = [t for t in wanted if t in names]
    if not found:
        raise ConfigError(f"language.lora_targets {wanted} match no Linear layer of this LM")
    return found


@contextmanager
def _peft_quiet():
    """PEFT probes transformers' deprecated `is_gradient_checkpointing` when it wraps a model, and
    transformers 5 answers with a FutureWarning on every load: nothing a user can act on, so it is
    silenced here (only that message; every other warning still shows)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)
        yield


def wrap_lora(lm: nn.Module, cfg: LanguageConfig):
    from peft import LoraConfig, get_peft_model

    lcfg = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=lora_targets(lm, cfg.lora_targets),
        task_type="CAUSAL_LM",
    )
    with _peft_quiet():
        return get_peft_model(lm, lcfg)


def encode_pair(tokenizer, prompt: str, target: str | None, cfg: LanguageConfig, eos: bool = True) -> tuple[list[int], list[int]]:
    """Token ids of (prompt, target) such that prompt+target tokenizes as the joint string.

    The target ids are the joint encoding minus the prompt's (lm-evaluation-harness' way of
    splitting a context from its continuation), so a SentencePiece word-boundary piece lands in the
    target. The prompt is truncated from the left (its end carries "Answer:"), the target on the right.
    """
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if target is None:
        return p[-cfg.max_prompt_tokens :], []
    full = tokenizer(prompt + " " + target, add_special_tokens=False)["input_ids"]
    t = full[len(p) :] if full[: len(p)] == p else tokenizer(" " + target, add_special_tokens=False)["input_ids"]
    t = t[: cfg.max_target_tokens]
    if eos and tokenizer.eos_token_id is not None:
        t = t + [tokenizer.eos_token_id]
    return p[-cfg.max_prompt_tokens :], t


def format_prompt(cfg: LanguageConfig, question: str, choices: list[str] | None = None) -> str:
    if choices and cfg.show_choices:
        return cfg.choices_template.format(question=question, choices=", ".join(choices))
    return cfg.prompt_template.format(question=question)


def per_prompt(prefix: torch.Tensor, pmask: torch.Tensor, n: int):
    """A prefix [1 or n, P, H] (mask [., P]) for n prompts: a bus of batch 1 is shared by all of them."""
    if prefix.shape[0] == 1 and n > 1:
        return prefix.expand(n, -1, -1), pmask.expand(n, -1)
    if prefix.shape[0] != n:
        raise ValueError(f"bus batch {prefix.shape[0]} does not match {n} prompts")
    return prefix, pmask


def padded(prompts: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt token ids, right-padded with 0 -> ids [n, L] and mask [n, L] (True = real), L >= 1."""
    L = max(1, max(len(p) for p in prompts))
    ids = torch.tensor([p + [0] * (L - len(p)) for p in prompts], dtype=torch.long, device=device)
    mask = torch.tensor([[1] * len(p) + [0] * (L - len(p)) for p in prompts], dtype=torch.bool, device=device)
    return ids, mask


@dataclass
class Spliced:
    embeds: torch.Tensor  # [B, L, H]
    attention_mask: torch.Tensor  # [B, L] long
    position_ids: torch.Tensor  # [B, L] long
    labels: torch.Tensor  # [B, L] long, -100 off target
    prefix_start: torch.Tensor  # [B] first prefix position
    prefix_len: torch.Tensor  # [B] real prefix tokens spliced


def splice(
    embed: nn.Module,
    prefix: torch.Tensor,
    prefix_mask: torch.Tensor,
    seqs: list[tuple[list[int], list[int]]],
    bos_id: int | None,
    pad_left: bool = False,
    prefix_at: str = "start",
) -> Spliced:
    """Build inputs_embeds/labels for [BOS][prefix][prompt][target] per sample
    ([BOS][prompt][prefix][target] when prefix_at == "answer").

    embed: the LM's input embedding; prefix: [B, P, H]; prefix_mask: [B, P] bool;
    seqs: B pairs (prompt ids, target ids). Left padding (for generation) gets position ids that
    start at 0 on the first real token.
    """
    B = len(seqs)
    device = prefix.device
    head = [bos_id] if bos_id is not None else []
    ids = [head + p + t for p, t in seqs]
    Lt = max(len(x) for x in ids)
    id_tensor = torch.tensor([x + [0] * (Lt - len(x)) for x in ids], dtype=torch.long, device=device)
    text = embed(id_tensor)  # [B, Lt, H]
    prefix = prefix.to(text.dtype)
    rows, labels, offsets = [], [], []
    nb = len(head)
    for i, (p, t) in enumerate(seqs):
        pre = prefix[i][prefix_mask[i]]  # [P_i, H] real prefix tokens only
        n_text = nb + len(p) + len(t)
        cut = nb if prefix_at == "start" else nb + len(p)  # text tokens before the prefix
        rows.append(torch.cat([text[i, :cut], pre, text[i, cut:n_text]], 0))
        lab = [-100] * (nb + pre.shape[0] + len(p)) + list(t)
        labels.append(lab)
        offsets.append(cut)
    L = max(r.shape[0] for r in rows)
    H = text.shape[-1]
    out = text.new_zeros(B, L, H)
    attn = torch.zeros(B, L, dtype=torch.long, device=device)
    lab_t = torch.full((B, L), -100, dtype=torch.long, device=device)
    starts = []
    for i, r in enumerate(rows):
        n = r.shape[0]
        s = L - n if pad_left else 0
        out[i, s : s + n] = r
        attn[i, s : s + n] = 1
        lab_t[i, s : s + n] = torch.tensor(labels[i], dtype=torch.long, device=device)
        starts.append(s + offsets[i])
    pos = (attn.cumsum(-1) - 1).clamp_min(0)
    plen = prefix_mask.sum(1).to(torch.long) if prefix_mask.numel() else torch.zeros(B, dtype=torch.long, device=device)
    return Spliced(out, attn, pos, lab_t, torch.tensor(starts, device=device), plen)


class LanguageModule(nn.Module):
    """Causal LM (+LoRA) that reads bus messages through per-kind projectors; see the file docstring."""

    name: ClassVar[str] = "language"
    writes: tuple[str, ...] = ()

    def __init__(self, config: LanguageConfig, lm: nn.Module, tokenizer: Any, base_path: str | None = None) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.lm = lm
        self.tokenizer = tokenizer
        self.base_path = base_path
        self.reads = tuple(canonical_kinds(config.kind_dims))
        hidden = lm.get_input_embeddings().weight.shape[1]
        self.adapter = BusAdapter(config, hidden, lm.get_input_embeddings().weight.shape[0])
        self.adapter.to(lm.get_input_embeddings().weight.dtype)
        # Loss denominator: expected non-pad target tokens per micro-batch (set by train.make_job).
        # 0 -> use this micro-batch's own count. See forward() and README "Loss normalisation".
        self.token_norm: float = 0.0
        self.last_answer: str | None = None

    # ---------------------------------------------------------------- building / loading / saving
    @classmethod
    def build(cls, config: LanguageConfig, base_lm: str | None = None) -> "LanguageModule":
        """Fresh module: base LM from a local folder, zero-initialised LoRA, random projectors."""
        path = base_lm or config.base_lm
        if not path:
            raise ConfigError("language.base_lm is empty: give the folder of a local transformers causal LM")
        lm, tok = load_base_lm(path)
        return cls(config, wrap_lora(lm, config), tok, base_path=str(Path(path).resolve()))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, base_lm: str | None = None, trainable: bool = False) -> "LanguageModule":
        """Load a folder written by save_pretrained (or by merge()). `base_lm` overrides the base LM folder."""
        folder = Path(path)
        meta = read_meta(folder)
        try:
            cfg = from_dict(LanguageConfig, meta["config"], origin=str(folder / CONFIG_FILE))
        except ConfigError as e:
            raise CheckpointError(str(e)) from None
        if meta.get("merged"):
            lm, tok = load_base_lm(folder)
            lm = wrap_lora(lm, cfg) if trainable else lm
            base = str(folder.resolve())
        else:
            from peft import PeftModel

            base = base_lm or (str(folder / BASE_DIR) if (folder / BASE_DIR).is_dir() else cfg.base_lm)
            if not base or not Path(base).is_dir():
                raise CheckpointError(f"{str(path)!r}: base LM {base!r} not found (pass base_lm=... / --base)")
            lm, _ = load_base_lm(base)
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
            with _peft_quiet():
                lm = PeftModel.from_pretrained(lm, str(folder), is_trainable=trainable)
        module = cls(cfg, lm, tok, base_path=str(Path(base).resolve()))
        pfile = folder / PROJECTORS_FILE
        if not pfile.is_file():
            raise CheckpointError(f"{str(path)!r} has no {PROJECTORS_FILE}")
        state = load_file(str(pfile))
        missing, unexpected = module.adapter.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{pfile}: projectors do not fit this config (missing {missing[:3]}, unexpected {unexpected[:3]})")
        module.token_norm = float(meta.get("token_norm", 0.0))
        return module

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write the folder described in the file docstring, atomically."""
        with atomic_dir(path) as tmp:
            self.lm.save_pretrained(str(tmp))  # PEFT: adapter_config.json + adapter_model.safetensors
            self.tokenizer.save_pretrained(str(tmp))
            save_file({k: v.detach().contiguous().cpu() for k, v in self.adapter.state_dict().items()}, str(tmp / PROJECTORS_FILE))
            cfg = to_dict(self.config)
            # A module loaded from a merged folder holds a plain LM: it was just saved whole.
            merged = not hasattr(self.lm, "peft_config")
            if self.config.bundle_base and self.base_path and not merged:
                copy_lm_files(self.base_path, tmp / BASE_DIR)
            cfg["base_lm"] = "." if merged else (self.base_path or self.config.base_lm)
            meta = {"module": "language", "format_version": FORMAT_VERSION, "config": cfg, "merged": merged, "token_norm": self.token_norm}
            (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

    def add_relations(self, kinds: list[str]) -> None:
        """Give `kinds` relation channels (config.relations) through new zero-initialised projectors:
        the module's outputs are unchanged until they train."""
        kinds = [k for k in kinds if k not in self.config.relations]
        if not kinds:
            return
        dataclasses.replace(self.config, relations=[*self.config.relations, *kinds]).validate()  # before any change
        self.config.relations = [*self.config.relations, *kinds]
        self.adapter.add_relations(kinds)

    def merge_lora_(self) -> "LanguageModule":
        """Fold the LoRA update into the base weights, in memory, for inference only.

        PEFT's merge_and_unload computes W + (alpha/r) B A once, so each forward runs plain Linear
        layers instead of base + two low-rank matmuls per projection: outputs equal up to float
        rounding (tests/test_language.py), ~1.6x faster answers for the tiny LM on the CPU, where
        per-layer Python overhead dominates. Not for training (no LoRA left to train); a module
        saved afterwards is written as a merged folder, which from_pretrained reads.
        """
        if hasattr(self.lm, "merge_and_unload"):
            self.lm = self.lm.merge_and_unload()
        return self

    def set_stage(self, stage: int) -> None:
        """1: projectors only (LoRA frozen); 2: projectors + LoRA; 0: everything frozen."""
        for n, p in self.lm.named_parameters():
            p.requires_grad = stage == 2 and "lora_" in n
        for p in self.adapter.parameters():
            p.requires_grad = stage in (1, 2)

    # ---------------------------------------------------------------------------- core pieces
    @property
    def device(self) -> torch.device:
        return self.adapter.kind_embed.weight.device

    @property
    def bos_id(self) -> int | None:
        return self.tokenizer.bos_token_id

    def prefix(self, bus: LatentBus | Mapping[str, Message] | None, batch_size: int, blind: bool = False,
               prompts: list[list[int]] | None = None):
        """Soft prefix [B, P, H] and mask [B, P] for a bus (P = 0 when blind or the bus is empty).

        `prompts` (token ids, one list per row) feed the question-conditioned resampler when the
        config has one; a bus of batch 1 is then shared by all prompts (B = len(prompts)).
        """
        msgs = {} if blind else messages_of(bus, list(self.config.kind_dims))
        prefix, pmask = self.adapter(msgs, batch_size=batch_size)
        prefix, pmask = self.condition(prefix, pmask, prompts)
        return self.bind(msgs, prefix, pmask, prompts)

    def condition(self, prefix: torch.Tensor, pmask: torch.Tensor, prompts: list[list[int]] | None):
        """Run the resampler (config.resampler_queries > 0) over a projected prefix, given the prompts."""
        resampler = self.adapter.resampler
        if resampler is None or prefix.shape[1] == 0:
            return prefix, pmask
        if prompts is None:
            raise ValueError("this language module has a question-conditioned resampler: prefix() needs the prompts")
        prefix, pmask = per_prompt(prefix, pmask, len(prompts))
        ids, tmask = padded(prompts, prefix.device)
        text = self.lm.get_input_embeddings()(ids)  # [B, L, H], the LM's frozen embeddings
        out, omask = resampler(prefix, pmask, text, tmask)
        if self.config.resampler_keep_prefix:
            return torch.cat([prefix, out], 1), torch.cat([pmask, omask], 1)
        return out, omask

    def bind(self, msgs: Mapping[str, Message], prefix: torch.Tensor, pmask: torch.Tensor, prompts: list[list[int]] | None):
        """The prefix [B, P, H] with the slot binder's tokens (config.binder) for these prompts appended;
        unchanged without a binder or any of its kinds on the bus (blind)."""
        if self.adapter.binder is None or not any(k in msgs for k in self.adapter.bind_proj):
            return prefix, pmask
        if prompts is None:
            raise ValueError("this language module has a slot binder: prefix() needs the prompts")
        prefix, pmask = per_prompt(prefix, pmask, len(prompts))
        out, _ = self._binder(msgs, prompts)  # [n, M, H]
        return torch.cat([prefix, out.to(prefix.dtype)], 1), torch.cat([pmask, torch.ones_like(out[..., 0], dtype=torch.bool)], 1)

    def _binder(self, msgs: Mapping[str, Message], prompts: list[list[int]]):
        """The binder's tokens [n, M, H] and slot weights [n, R, K] for these prompts (token ids)."""
        ids, tmask = padded(prompts, self.device)
        tmask[:, 0] = True  # an empty prompt still gives the attention one key
        text = ids if self.adapter.binder.word is not None else self.lm.get_input_embeddings()(ids)
        return self.adapter.binder_tokens(msgs, text, tmask)

    @torch.no_grad()
    def binder_picks(self, bus: LatentBus | Mapping[str, Message] | None, question: str, choices: list[str] | None = None) -> list[dict]:
        """Evidence: the slot each binder role weighs most for this question (prompt built as answering
        builds it): [{"role", "slot", "weight"}] (+ BusAdapter.first_picks); [] without a binder or its kinds."""
        msgs = messages_of(bus, list(self.config.kind_dims))
        if self.adapter.binder is None or not any(k in msgs for k in self.adapter.bind_proj):
            return []
        prompt = encode_pair(self.tokenizer, format_prompt(self.config, question, choices), None, self.config)[0]
        _, w = self._binder(msgs, [prompt])
        top = w[0].float().max(-1)
        return [{"role": r, "slot": int(k), "weight": round(float(v), 3)} for r, (v, k) in enumerate(zip(top.values, top.indices))
                ] + self.adapter.first_picks(msgs, w)

    def add_binder(self, kinds: list[str]) -> None:
        """A slot binder over `kinds` (config.binder), zero-initialised projectors; known kinds skipped."""
        kinds = [k for k in kinds if k not in self.config.binder]
        if not kinds:
            return
        dataclasses.replace(self.config, binder=[*self.config.binder, *kinds]).validate()  # before any change
        self.config.binder = [*self.config.binder, *kinds]
        self.adapter.add_binder(kinds)

    def splice(self, prefix: torch.Tensor, prefix_mask: torch.Tensor, seqs, pad_left: bool = False) -> Spliced:
        return splice(
            self.lm.get_input_embeddings(), prefix, prefix_mask, seqs, self.bos_id, pad_left=pad_left, prefix_at=self.config.prefix_at
        )

    def run_lm(self, sp: Spliced, **kw):
        return self.lm(inputs_embeds=sp.embeds, attention_mask=sp.attention_mask, position_ids=sp.position_ids, **kw)

    # -------------------------------------------------------------------------------- training
    def forward(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """batch (from train.collate): "bus" {kind: {"tokens","time"?,"mask"?}}, "prompt_ids"/"target_ids"
        [B, L] with "prompt_len"/"target_len" [B]; optional "blind" flag, optional "num_tokens".

        loss = (sum of target-token NLL in this micro-batch) / N, with N = the expected number of
        target tokens per micro-batch over the dataset (`token_norm`), so every token has the same
        weight across gradient accumulation (see README "Loss normalisation").
        """
        pl, tl = batch["prompt_len"].tolist(), batch["target_len"].tolist()
        seqs = [
            (batch["prompt_ids"][i, : pl[i]].tolist(), batch["target_ids"][i, : tl[i]].tolist()) for i in range(len(pl))
        ]
        blind = bool(batch.get("blind", False))
        msgs = {} if blind else batch_messages(batch.get("bus", {}))
        msgs = {k: Message(k, m.source, m.tokens.to(self.device), time=m.time, mask=m.mask) for k, m in msgs.items()}
        prefix, pmask = self.adapter(msgs, batch_size=len(seqs))
        prefix, pmask = self.condition(prefix, pmask, [p for p, _ in seqs])
        prefix, pmask = self.bind(msgs, prefix, pmask, [p for p, _ in seqs])
        sp = self.splice(prefix, pmask, seqs)
        logits = self.run_lm(sp).logits[:, :-1].float()  # [B, L-1, V]
        labels = sp.labels[:, 1:]
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum")
        n = (labels != -100).sum()
        if "num_tokens" in batch:
            denom = batch["num_tokens"].float().reshape(-1)[0]
        elif self.token_norm > 0:
            denom = torch.tensor(self.token_norm, device=nll.device)
        else:
            denom = n.clamp_min(1).float()
        loss = nll / denom
        tok = float(n)
        return loss, {"token_nll": float(nll.detach()) / max(tok, 1.0), "target_tokens": tok, "prefix_tokens": float(sp.prefix_len.float().mean())}

    # ------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def answer(
        self,
        bus: LatentBus | Mapping[str, Message] | None,
        question: str,
        max_new_tokens: int = 32,
        choices: list[str] | None = None,
        blind: bool = False,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> str:
        """Generate an answer (greedy when temperature == 0, else nucleus sampling)."""
        from cogarch.modules.language.scoring import generate_texts

        return generate_texts(self, bus, [format_prompt(self.config, question, choices)], max_new_tokens, blind, temperature, top_p, seed)[0]

    @torch.no_grad()
    def score_choices(
        self, bus: LatentBus | Mapping[str, Message] | None, question: str, choices: list[str], blind: bool = False
    ) -> list[tuple[float, int]]:
        """[(sum log p(choice tokens + EOS | bus, prompt), n tokens)] per choice, for acc / acc_norm."""
        from cogarch.modules.language.scoring import choice_logliks

        return choice_logliks(self, bus, format_prompt(self.config, question, choices), choices, blind)

    def step(self, bus: LatentBus, question: str | None = None, max_new_tokens: int = 32) -> str | None:
        """Architecture hook: answer `question` from what is on the bus (writes no bus kind)."""
        self.last_answer = None if question is None else self.answer(bus, question, max_new_tokens)
        return self.last_answer


def read_meta(folder: Path) -> dict:
    cfile = folder / CONFIG_FILE
    if not folder.is_dir():
        raise CheckpointError(f"language checkpoint not found: {str(folder)!r} is not a folder")
    if not cfile.is_file():
        raise CheckpointError(f"{str(folder)!r} has no {CONFIG_FILE}: not a saved language module")
    try:
        meta = json.loads(cfile.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{cfile}: corrupt JSON") from None
    if not isinstance(meta, dict) or meta.get("module") != "language" or "config" not in meta:
        raise CheckpointError(f"{cfile}: not a language module config")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{cfile}: written by a newer cogarch (format {meta.get('format_version')})")
    return meta


def copy_lm_files(src: str | os.PathLike, dst: Path) -> None:
    src = Path(src)
    dst.mkdir(parents=True, exist_ok=True)
    for pattern in _LM_FILES:
        for f in src.glob(pattern):
            if f.is_file():
                shutil.copy2(f, dst / f.name)
