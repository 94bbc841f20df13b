"""Two ways to get more from trained language folders without training: guidance and weight soups.

Both run through evals/bench/lang_eval.py (same splits, same scoring, `--samples` for paired.py):

- `--guidance G`: classifier-free guidance against the module's own blind pass (Sanchez et al. 2023,
  "Stay on topic with Classifier-Free Guidance"; for images and LMs, Leng et al. 2023's visual
  contrastive decoding). Each next-token distribution, and each option's summed log-likelihood, is
  (1 + G) log p(. | bus, question) - G log p(. | question): G > 0 leans harder on what the bus adds,
  G < 0 mixes in the module's own text-only prior. G = 0 is the module as it answers (tested).
- `--model A+B` (and `--blind A+B`): a uniform weight soup (Wortsman et al. 2022, "Model soups") of
  language folders fine-tuned from one initial folder with the same binder: every weight, LoRA
  merged into the LM first, averaged. It costs nothing at answer time.

    python -m cogarch.evals.bench.decode_variants --guidance 0.3 --data runs/vf/physqa \
        --features runs/l7/features --split val --model cogarch/assets/default_pack/language
    python -m cogarch.evals.bench.decode_variants --data runs/vf/physqa --features runs/l7/features \
        --split val --model runs/l14/first/final+runs/l14/name/final --blind runs/l14/blind/final+runs/l14/name_blind/final

Results: docs/benchmarks.md, "What the object slots hold", part 10.
"""

from __future__ import annotations

import argparse
import sys

import torch

from cogarch.errors import UserError
from cogarch.evals.bench import cli, lang_eval


def soup(paths: list[str]):
    """LanguageModule with the mean of the folders' weights (LoRA merged), in eval mode."""
    from cogarch.modules.language.model import LanguageModule

    mods = [LanguageModule.from_pretrained(p).merge_lora_() for p in paths]
    states = [m.state_dict() for m in mods]
    for p, s in zip(paths[1:], states[1:]):
        if s.keys() != states[0].keys() or any(s[k].shape != v.shape for k, v in states[0].items()):
            raise UserError(f"{p}: not the same module shape as {paths[0]} (a soup needs one architecture)")
    avg = {k: (sum(s[k].float() for s in states) / len(states)).to(v.dtype) if v.is_floating_point() else v
           for k, v in states[0].items()}
    mods[0].load_state_dict(avg)
    return mods[0].eval()


def _state(module, bus, prompts: list[list[int]], blind: bool) -> list:
    """Prefill: [cache, attention mask, last position, next-token log-probs [B, V]]."""
    from cogarch.modules.language import scoring as S

    prefix, pmask = module.prefix(bus, batch_size=1 if not blind else len(prompts), blind=blind, prompts=prompts)
    prefix, pmask = S._expand(prefix, pmask, len(prompts))
    sp = module.splice(prefix, pmask, [(p, []) for p in prompts], pad_left=True)
    out = module.run_lm(sp, use_cache=True, **S._last_logits_kw(module))
    return [S._cache_of(out), sp.attention_mask, sp.position_ids[:, -1:], out.logits[:, -1].float().log_softmax(-1)]


def _step(module, st: list, nxt: torch.Tensor) -> list:
    from cogarch.modules.language import scoring as S

    past, attn, pos, _ = st
    attn = torch.cat([attn, torch.ones(attn.shape[0], 1, dtype=attn.dtype, device=attn.device)], 1)
    out = module.lm(input_ids=nxt[:, None], attention_mask=attn, position_ids=pos + 1, use_cache=True,
                    **{S._cache_kwarg(module): past})
    return [S._cache_of(out), attn, pos + 1, out.logits[:, -1].float().log_softmax(-1)]


@torch.no_grad()
def guided_ids(module, bus, prompts: list[list[int]], guidance: float, max_new_tokens: int = 32) -> list[list[int]]:
    """Greedy new ids per prompt (EOS excluded) under guidance: two KV caches, one with the bus, one blind."""
    cond, blind = _state(module, bus, prompts, False), _state(module, None, prompts, True)
    eos, B = module.tokenizer.eos_token_id, len(prompts)
    done, out = torch.zeros(B, dtype=torch.bool), [[] for _ in range(B)]
    for _ in range(max_new_tokens):
        nxt = ((1 + guidance) * cond[3] - guidance * blind[3]).argmax(-1)
        for i in range(B):
            if not done[i] and int(nxt[i]) != eos:
                out[i].append(int(nxt[i]))
        done |= nxt.cpu() == eos
        if bool(done.all()):
            break
        cond, blind = _step(module, cond, nxt), _step(module, blind, nxt)
    return out


class GuidedScorer:
    """The eval runner's Scorer protocol with guidance (see the file docstring)."""

    blind = False

    def __init__(self, module, bus_for_video, guidance: float, max_new_tokens: int = 32) -> None:
        self.module, self.bus_for_video, self.guidance, self.max_new_tokens = module, bus_for_video, guidance, max_new_tokens

    def loglik(self, video: str, question: str, choices: list[str]) -> list[tuple[float, int]]:
        g = self.guidance
        with_bus = self.module.score_choices(self.bus_for_video(video), question, list(choices))
        text_only = self.module.score_choices(None, question, list(choices), blind=True)
        return [((1 + g) * a - g * b, n) for (a, n), (b, _) in zip(with_bus, text_only)]

    def generate(self, video: str, question: str) -> str:
        return self.generate_many(video, [question])[0]

    def generate_many(self, video: str, questions: list[str]) -> list[str]:
        from cogarch.modules.language.model import encode_pair, format_prompt

        m, bus, out = self.module, self.bus_for_video(video), []
        for i in range(0, len(questions), 16):
            ids = [encode_pair(m.tokenizer, format_prompt(m.config, q, None), None, m.config)[0] for q in questions[i:i + 16]]
            out += [m.tokenizer.decode(x, skip_special_tokens=True).strip() for x in guided_ids(m, bus, ids, self.guidance, self.max_new_tokens)]
        return out


def make_scorer(guidance: float):
    """lang_eval.scorer's signature; folders joined by + are souped."""
    from cogarch.modules.language.scoring import LanguageScorer, ShardBus

    def scorer(language: str, features, split: str, swap: bool = False, drop=(), still: bool = False):
        module = soup(language.split("+"))
        if features is None:
            return LanguageScorer(module, None, blind=True)
        bus = ShardBus(features, split, swap=swap, drop=drop, still=still)
        return GuidedScorer(module, bus, guidance) if guidance else LanguageScorer(module, bus)

    return scorer


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], add_help=False)
    ap.add_argument("--guidance", type=float, default=0.0, help="G: (1 + G) log p(. | bus) - G log p(. | no bus); 0 = off")
    a, rest = ap.parse_known_args(argv)
    lang_eval.scorer = make_scorer(a.guidance)  # the rest of lang_eval is unchanged
    sys.argv = [sys.argv[0], *rest]
    lang_eval.main()


if __name__ == "__main__":
    cli(main)
