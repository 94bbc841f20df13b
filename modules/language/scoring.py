"""Answering: generation (greedy / nucleus sampling) and multiple-choice scoring by log-likelihood.

Multiple choice follows the lm-evaluation-harness convention: each option is scored as the sum of
log-probabilities of its tokens given the context, and the caller picks argmax (acc) or argmax of
sum / length (acc_norm). Here the scored continuation is " <choice>" + EOS: the LM is trained to
end an answer with EOS, so "red" is not rewarded for being a prefix of "red cube".

`LanguageScorer` adapts a module to the eval runner's Scorer protocol
(`loglik(video, question, choices) -> [(sum_logprob, length)]`, `generate(video, question) -> str`)
given a function that turns a video path into a bus (live modules, or `ShardBus` over precomputed
feature shards).
"""

from __future__ import annotations

import functools
import inspect
import os
from pathlib import Path
from typing import Callable, Mapping

import torch

from cogarch.bus import LatentBus, Message
from cogarch.errors import NotBuiltError, UserError
from cogarch.modules.language.adapters import steps_slots
from cogarch.modules.language.data import FeatureShard
from cogarch.modules.language.model import LanguageModule, encode_pair, format_prompt
from cogarch.modules.language.relations import VEL


def _expand(prefix: torch.Tensor, mask: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    if prefix.shape[0] == n:
        return prefix, mask
    if prefix.shape[0] != 1:
        raise ValueError(f"bus batch {prefix.shape[0]} does not match {n} prompts")
    return prefix.expand(n, -1, -1), mask.expand(n, -1)


def _sample(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator | None) -> torch.Tensor:
    """logits [B, V] -> next ids [B]; greedy at temperature 0, else nucleus (Holtzman et al. 2020)."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, -1)
    if top_p < 1.0:
        sp, si = probs.sort(-1, descending=True)
        keep = sp.cumsum(-1) - sp < top_p  # smallest set whose mass reaches top_p
        sp = sp * keep
        probs = torch.zeros_like(probs).scatter_(-1, si, sp)
    return torch.multinomial(probs / probs.sum(-1, keepdim=True), 1, generator=gen)[:, 0]


def _cache_of(out):
    # transformers 5.x names the KV cache `cache`; 4.x named it `past_key_values`.
    c = getattr(out, "cache", None)
    return c if c is not None else getattr(out, "past_key_values", None)


@functools.lru_cache(maxsize=None)
def _forward_params(lm_class: type) -> frozenset[str]:
    # Read once per LM class: inspect.signature is too slow for every generate call.
    return frozenset(inspect.signature(lm_class.forward).parameters)


def _lm_params(module: LanguageModule) -> frozenset[str]:
    lm = module.lm.get_base_model() if hasattr(module.lm, "get_base_model") else module.lm
    return _forward_params(type(lm))


def _cache_kwarg(module: LanguageModule) -> str:
    # transformers 5.x names the KV-cache argument `cache`; 4.x named it `past_key_values`.
    return "cache" if "cache" in _lm_params(module) else "past_key_values"


def _last_logits_kw(module: LanguageModule) -> dict:
    # Prefill needs only the last position's logits; models that support `logits_to_keep` then skip
    # the LM head (a [L, V] matmul) on every other position.
    return {"logits_to_keep": 1} if "logits_to_keep" in _lm_params(module) else {}


class _EvalMode:
    """Eval mode inside the block, the previous mode after; free when the module is already in eval
    mode (walking every submodule twice per call cost ~10% of an eval run on the tiny LM)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module, self.was_training = module, module.training

    def __enter__(self) -> None:
        if self.was_training:
            self.module.eval()

    def __exit__(self, *exc) -> None:
        if self.was_training:
            self.module.train()


@torch.no_grad()
def generate_ids(
    module: LanguageModule,
    bus: LatentBus | Mapping[str, Message] | None,
    prompts: list[list[int]],
    max_new_tokens: int = 32,
    blind: bool = False,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
) -> list[list[int]]:
    """New token ids per prompt (EOS excluded); a bus of batch 1 is shared by all prompts."""
    with _EvalMode(module):
        return _generate_ids(module, bus, prompts, max_new_tokens, blind, temperature, top_p, seed)


def _generate_ids(module, bus, prompts, max_new_tokens, blind, temperature, top_p, seed) -> list[list[int]]:
    prefix, pmask = module.prefix(bus, batch_size=1 if not blind else len(prompts), blind=blind, prompts=prompts)
    prefix, pmask = _expand(prefix, pmask, len(prompts))
    sp = module.splice(prefix, pmask, [(p, []) for p in prompts], pad_left=True)
    gen = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
    eos = module.tokenizer.eos_token_id
    out = module.run_lm(sp, use_cache=True, **_last_logits_kw(module))
    past, attn = _cache_of(out), sp.attention_mask
    cache_kw = _cache_kwarg(module)
    pos = sp.position_ids[:, -1:]
    B = len(prompts)
    done = torch.zeros(B, dtype=torch.bool, device=attn.device)
    result: list[list[int]] = [[] for _ in range(B)]
    logits = out.logits[:, -1]
    for _ in range(max_new_tokens):
        nxt = _sample(logits.cpu() if gen is not None else logits, temperature, top_p, gen).to(attn.device)
        for i in range(B):
            if not done[i] and int(nxt[i]) != eos:
                result[i].append(int(nxt[i]))
        done |= nxt == eos
        if bool(done.all()):
            break
        attn = torch.cat([attn, torch.ones(B, 1, dtype=attn.dtype, device=attn.device)], 1)
        pos = pos + 1
        out = module.lm(input_ids=nxt[:, None], attention_mask=attn, position_ids=pos, use_cache=True, **{cache_kw: past})
        past, logits = _cache_of(out), out.logits[:, -1]
    return result


def generate_texts(module, bus, prompts: list[str], max_new_tokens=32, blind=False, temperature=0.0, top_p=1.0, seed=None) -> list[str]:
    ids = [encode_pair(module.tokenizer, p, None, module.config)[0] for p in prompts]
    new = generate_ids(module, bus, ids, max_new_tokens, blind, temperature, top_p, seed)
    return [module.tokenizer.decode(x, skip_special_tokens=True).strip() for x in new]


def answer_many(module, bus, questions: list[str], batch: int = 16, blind: bool = False, max_new_tokens: int = 32) -> list[str]:
    """Greedy answers to several questions about one clip, `batch` prompts per generate call (the
    eval runner batches a clip's open questions: ~3x the throughput of one at a time)."""
    out: list[str] = []
    for i in range(0, len(questions), batch):
        prompts = [format_prompt(module.config, q, None) for q in questions[i : i + batch]]
        out += generate_texts(module, bus, prompts, max_new_tokens, blind=blind)
    return out


@torch.no_grad()
def choice_logliks(
    module: LanguageModule, bus, prompt: str, choices: list[str], blind: bool = False
) -> list[tuple[float, int]]:
    """[(sum log p(" choice" + EOS | prefix, prompt), token count)] for each choice (one forward pass)."""
    if not choices:
        return []
    seqs = [encode_pair(module.tokenizer, prompt, c, module.config, eos=True) for c in choices]
    with _EvalMode(module):
        # Every choice shares the prompt, so the (question-conditioned) prefix is computed once.
        prefix, pmask = module.prefix(bus, batch_size=1 if not blind else len(choices), blind=blind, prompts=[seqs[0][0]])
        prefix, pmask = _expand(prefix, pmask, len(choices))
        sp = module.splice(prefix, pmask, seqs)
        logp = module.run_lm(sp).logits[:, :-1].float().log_softmax(-1)  # [C, L-1, V]
    labels = sp.labels[:, 1:]
    on = labels != -100
    tok_lp = logp.gather(-1, labels.clamp_min(0)[..., None])[..., 0] * on
    return [(float(s), int(n)) for s, n in zip(tok_lp.sum(1), on.sum(1))]


class ShardBus:
    """video path -> bus of that clip's precomputed messages (clip id = the video file's stem).

    Controls for "does the module read the clip?": swap=True gives every clip the bus of the next
    clip id of the split (sorted, cyclic: never its own); drop removes kinds (e.g. "forecast");
    still=True replaces the object forecast by copy-last: the last observed step's `objects` rows,
    velocities zeroed, at every forecast step. The kind stays, with the same slots and identities
    (the binder picks the same objects); only what the world model predicts is gone."""

    def __init__(self, features_dir: str | os.PathLike, split: str, swap: bool = False, drop: tuple[str, ...] = (),
                 still: bool = False) -> None:
        self.shard = FeatureShard(features_dir, split)
        if still and not {"objects", "forecast"} <= set(self.shard.kinds):
            raise UserError(f"a copy-last forecast needs objects and forecast features (have: {', '.join(sorted(self.shard.kinds))})")
        if still and "forecast" in drop:
            raise UserError("a copy-last forecast replaces the forecast: do not also drop it")
        self.still = still
        ids = sorted(self.shard.clip_ids)
        if swap and len(ids) < 2:
            raise UserError(f"swapping clips needs at least two clips in the {split!r} shard, found {len(ids)}")
        self.partner = {c: ids[(i + 1) % len(ids)] for i, c in enumerate(ids)} if swap else {}
        unknown = [k for k in drop if k not in self.shard.kinds]
        if unknown:
            raise UserError(f"--drop {' '.join(unknown)}: not a kind of these features (have: {', '.join(sorted(self.shard.kinds))})")
        self.drop = tuple(drop)

    def __call__(self, video: str) -> LatentBus:
        cid = Path(video).stem
        bus = self.shard.bus(self.partner.get(cid, cid))
        for kind in self.drop:
            bus.drop(kind)
        if self.still:
            f, o = bus.latest("forecast"), bus.latest("objects")
            T, K = steps_slots(f.time, "forecast", "copy-last")
            if o.dim != f.dim or steps_slots(o.time, "objects", "copy-last")[1] != K:
                raise UserError(f"copy-last: objects rows ({o.dim} wide) do not match the forecast's ({f.dim} wide, {K} slots)")
            rows = o.tokens[:, -K:].repeat(1, T, 1)  # [B, T' x K, D]: the last observed step, held
            rows[..., VEL:VEL + 2] = 0.0  # nothing moves
            bus.drop("forecast")
            bus.publish(Message("forecast", f.source, rows, time=f.time, meta={"control": "copy-last"}))
        return bus


class LanguageScorer:
    """The eval runner's Scorer protocol over a LanguageModule (blind=True: the text-only baseline)."""

    def __init__(self, module: LanguageModule, bus_for_video: Callable[[str], LatentBus] | None, blind: bool = False,
                 max_new_tokens: int = 32) -> None:
        if bus_for_video is None and not blind:
            raise ValueError("a non-blind scorer needs a bus_for_video function")
        self.module, self.bus_for_video, self.blind, self.max_new_tokens = module, bus_for_video, blind, max_new_tokens

    def _bus(self, video: str) -> LatentBus | None:
        return None if self.blind else self.bus_for_video(video)

    def loglik(self, video: str, question: str, choices: list[str]) -> list[tuple[float, int]]:
        return self.module.score_choices(self._bus(video), question, list(choices), blind=self.blind)

    def generate(self, video: str, question: str) -> str:
        return self.module.answer(self._bus(video), question, self.max_new_tokens, blind=self.blind)

    def generate_many(self, video: str, questions: list[str]) -> list[str]:
        return answer_many(self.module, self._bus(video), questions, blind=self.blind, max_new_tokens=self.max_new_tokens)

    def surprise(self, video: str) -> float:
        """Peak of the world model's surprise message (violation-of-expectation suites)."""
        msg = self.bus_for_video(video).latest("surprise") if self.bus_for_video is not None else None
        if msg is None:
            raise NotBuiltError("this model's bus has no 'surprise' message (no world model in the pack)")
        s = msg.tokens[..., 0]  # [B, T']
        if msg.mask is not None:
            s = s.masked_fill(~msg.mask.to(s.device), float("-inf"))
        return float(s.max())


def model_loader(spec: str) -> LanguageScorer:
    """For `cogarch.evals.runner.register_model_loader`: a pack folder, "blind" (the default pack's
    blind-trained language module `language_blind/` if present, else its language module with the
    bus ignored), or "blind:DIR" (a saved language folder, bus ignored)."""
    from cogarch.api import load as load_pack_api

    if spec.startswith("blind:"):
        return LanguageScorer(LanguageModule.from_pretrained(spec[len("blind:") :]), None, blind=True)
    if spec == "blind":
        from cogarch.assets import default_pack_path

        pack = default_pack_path()
        if pack is None:
            raise NotBuiltError("no default pack is shipped: use blind:DIR with a saved language folder")
        if (Path(pack) / "language_blind").is_dir():
            return LanguageScorer(LanguageModule.from_pretrained(Path(pack) / "language_blind"), None, blind=True)
        return LanguageScorer(load_pack_api(str(pack)).language, None, blind=True)
    model = load_pack_api(spec)
    return LanguageScorer(model.language, lambda video: model.observe(video).bus)


def mc_accuracy(scorer: LanguageScorer, rows, limit: int = 0) -> dict[str, float]:
    """Accuracy (argmax of summed log-likelihood) overall and per category over question rows
    (the questions schema: video, question, choices, answer_index, category); open-ended rows skipped."""
    hits: dict[str, list[int]] = {}
    for k, row in enumerate(rows):
        if limit and k >= limit:
            break
        if not row["choices"] or int(row["answer_index"]) < 0:
            continue
        scores = scorer.loglik(row["video"] or row["clip_id"], row["question"], list(row["choices"]))
        pred = max(range(len(scores)), key=lambda j: scores[j][0])
        ok = int(pred == int(row["answer_index"]))
        hits.setdefault(row["category"], []).append(ok)
        hits.setdefault("overall", []).append(ok)
    return {k: sum(v) / len(v) for k, v in hits.items()} | {"n": float(len(hits.get("overall", [])))}
