"""Question-conditioned resampler of the language module (modules/language/resampler.py): the prefix
depends on the question, padding does not leak in, MC scores agree with a manual pass, the weights
round-trip with the projectors, it trains, and bad configs are one-line errors."""

from __future__ import annotations

import pytest
import torch

from cogarch.bus import LatentBus, Message
from cogarch.errors import ConfigError
from cogarch.modules.language.config import LanguageConfig
from cogarch.modules.language.model import LanguageModule, encode_pair, format_prompt
from cogarch.modules.language.resampler import QuestionResampler

TEXTS = [
    "Question: What color is the cube? Answer: red",
    "Question: What shape is the blue object? Answer: sphere",
    "The clip shows a red metal cube and a blue rubber sphere.",
] * 10


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory, write_tiny_lm):
    return write_tiny_lm(tmp_path_factory.mktemp("rs_lm"), TEXTS)


def make(lm_dir: str, **kw) -> LanguageModule:
    torch.manual_seed(1)
    cfg = LanguageConfig(base_lm=lm_dir, kind_dims={"percept": 8}, pool="none", max_tokens=8, lora_dropout=0.0,
                         resampler_queries=4, resampler_layers=2, resampler_heads=2, **kw)
    m = LanguageModule.build(cfg)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():  # non-trivial LoRA so the round trip means something
        for n, p in m.lm.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return m


def bus_of(seed: int) -> LatentBus:
    g = torch.Generator().manual_seed(seed)
    bus = LatentBus()
    bus.publish(Message("percept", "perception", torch.randn(1, 6, 8, generator=g), time=torch.arange(6).float()[None]))
    return bus


def ids(m: LanguageModule, question: str) -> list[int]:
    return encode_pair(m.tokenizer, format_prompt(m.config, question), None, m.config)[0]


def test_prefix_depends_on_the_question_and_has_query_shape(lm_dir):
    m = make(lm_dir)
    a, b = ids(m, "What color is the cube?"), ids(m, "What shape is the blue object?")
    with torch.no_grad():
        pa, ma = m.prefix(bus_of(0), 1, prompts=[a])
        pb, _ = m.prefix(bus_of(0), 1, prompts=[b])
        pa2, _ = m.prefix(bus_of(0), 1, prompts=[a])
        pboth, mboth = m.prefix(bus_of(0), 1, prompts=[a, b])  # one bus shared by two prompts
    assert pa.shape == (1, 4, 32) and ma.all()
    assert torch.equal(pa, pa2) and not torch.allclose(pa, pb)
    assert pboth.shape == (2, 4, 32) and torch.allclose(pboth[0], pa[0], atol=1e-6) and torch.allclose(pboth[1], pb[0], atol=1e-6)
    with torch.no_grad():  # a different clip gives a different prefix for the same question
        assert not torch.allclose(m.prefix(bus_of(1), 1, prompts=[a])[0], pa)
    with pytest.raises(ValueError, match="needs the prompts"):
        m.prefix(bus_of(0), 1)
    two = LatentBus()
    two.publish(Message("percept", "perception", torch.randn(2, 6, 8), time=torch.arange(6).float().expand(2, 6)))
    with pytest.raises(ValueError, match="bus batch 2 does not match 3 prompts"):
        m.prefix(two, 2, prompts=[a, b, a])
    blind, _ = m.prefix(bus_of(0), 1, blind=True, prompts=[a])  # blind: no bus, no queries
    assert blind.shape[1] == 0


def test_padding_of_bus_and_text_does_not_leak():
    torch.manual_seed(0)
    r = QuestionResampler(hidden=16, queries=3, layers=2, heads=2).eval()
    prefix, text = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    pmask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    tmask = torch.tensor([[1] * 4 + [0] * 3, [1] * 7], dtype=torch.bool)
    out, omask = r(prefix, pmask, text, tmask)
    prefix2, text2 = prefix.clone(), text.clone()
    prefix2[0, 3:] = 100.0  # padded bus tokens of row 0
    text2[0, 4:] = -100.0  # padded text tokens of row 0
    out2, _ = r(prefix2, pmask, text2, tmask)
    assert out.shape == (2, 3, 16) and omask.all()
    assert torch.allclose(out, out2, atol=1e-6)
    # A row with no bus token at all attends to the null key: finite output.
    empty, _ = r(prefix, torch.zeros(2, 5, dtype=torch.bool), text, tmask)
    assert torch.isfinite(empty).all()


def test_mc_scores_match_manual_pass_and_survive_save_load(lm_dir, tmp_path):
    m = make(lm_dir)
    with torch.no_grad():
        for p in m.adapter.resampler.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    bus, q, choices = bus_of(3), "What color is the cube?", ["red", "blue"]
    got = m.score_choices(bus, q, choices)
    prompt = format_prompt(m.config, q, choices)
    for choice, (s, n) in zip(choices, got):
        p, t = encode_pair(m.tokenizer, prompt, choice, m.config, eos=True)
        with torch.no_grad():
            prefix, pmask = m.prefix(bus, 1, prompts=[p])
            sp = m.splice(prefix, pmask, [(p, t)])
            logp = m.run_lm(sp).logits[0].log_softmax(-1)
        start = 1 + int(pmask.sum()) + len(p)
        want = sum(float(logp[start - 1 + j, tok]) for j, tok in enumerate(t))
        assert n == len(t) and abs(s - want) < 1e-4
    m.save_pretrained(tmp_path / "lang")
    back = LanguageModule.from_pretrained(tmp_path / "lang")
    assert back.adapter.resampler is not None
    again = back.score_choices(bus, q, choices)
    assert all(abs(a[0] - b[0]) < 1e-5 for a, b in zip(got, again))
    assert back.answer(bus, q) == m.answer(bus, q)


def test_keep_prefix_appends_queries(lm_dir):
    m = make(lm_dir, resampler_keep_prefix=True)
    with torch.no_grad():
        prefix, pmask = m.prefix(bus_of(0), 1, prompts=[ids(m, "What color is the cube?")])
    assert prefix.shape == (1, 6 + 4, 32) and pmask.all()


def test_resampler_trains_and_loss_goes_down(lm_dir):
    torch.manual_seed(1)  # LoRA at its zero init: the random 32-wide LM is nearly uniform (loss ~ln V)
    m = LanguageModule.build(LanguageConfig(base_lm=lm_dir, kind_dims={"percept": 8}, pool="none", lora_dropout=0.0,
                                            resampler_queries=4, resampler_heads=2))
    m.set_stage(2)
    prompts = [ids(m, "What color is the cube?"), ids(m, "What shape is the blue object?")]
    targets = [encode_pair(m.tokenizer, m.tokenizer.decode(p), t, m.config)[1] for p, t in zip(prompts, ["red", "sphere"])]
    P, T = max(map(len, prompts)), max(map(len, targets))
    g = torch.Generator().manual_seed(0)
    batch = {
        "bus": {"percept": {"tokens": torch.randn(2, 6, 8, generator=g), "time": torch.arange(6).float().expand(2, 6)}},
        "prompt_ids": torch.tensor([p + [0] * (P - len(p)) for p in prompts]),
        "prompt_len": torch.tensor([len(p) for p in prompts]),
        "target_ids": torch.tensor([t + [0] * (T - len(t)) for t in targets]),
        "target_len": torch.tensor([len(t) for t in targets]),
    }
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(30):
        loss, _ = m(batch)
        opt.zero_grad()
        loss.backward()
        assert m.adapter.resampler.queries.grad is not None and m.adapter.resampler.queries.grad.abs().sum() > 0
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.3, losses


@pytest.mark.parametrize(
    "kw, match",
    [({"resampler_queries": -1}, "resampler_queries"), ({"resampler_queries": 4, "resampler_layers": 0}, "resampler_layers")],
)
def test_bad_resampler_config_is_a_config_error(kw, match):
    with pytest.raises(ConfigError, match=match):
        LanguageConfig(base_lm="x", **kw).validate()


def test_heads_must_divide_hidden(lm_dir):
    cfg = LanguageConfig(base_lm=lm_dir, kind_dims={"percept": 8}, resampler_queries=4, resampler_heads=3)
    with pytest.raises(ConfigError, match="resampler_heads 3 must divide"):
        LanguageModule.build(cfg)
