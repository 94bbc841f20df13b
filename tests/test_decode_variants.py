"""evals/bench/decode_variants.py: guidance against the module's own blind pass, and weight soups."""

import pytest
import torch

from cogarch.evals.bench.decode_variants import GuidedScorer, soup
from cogarch.modules.language.config import LanguageConfig
from cogarch.modules.language.model import LanguageModule
from cogarch.modules.language.pretrain import LMArchConfig, new_lm
from cogarch.modules.language.scoring import LanguageScorer
from cogarch.modules.language.tokenizer import build_tokenizer
from cogarch.bus import LatentBus, Message

TEXTS = ["Question: What color is the ball? Answer: red", "Question: What color is the cube? Answer: blue",
         "First, the red metal cube collides with the blue rubber sphere."] * 10


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two saved language folders on one tiny LM, different (random) LoRA and projector weights."""
    root = tmp_path_factory.mktemp("soup")
    tok = build_tokenizer(TEXTS, 300, root / "tok")
    torch.manual_seed(0)
    lm = new_lm(LMArchConfig(hidden=32, layers=2, heads=2, kv_heads=1, intermediate=64, max_positions=256), len(tok))
    lm.save_pretrained(root / "lm")
    tok.save_pretrained(root / "lm")
    out = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        m = LanguageModule.build(LanguageConfig(base_lm=str(root / "lm"), kind_dims={"percept": 8}, max_tokens=4, lora_dropout=0.0))
        with torch.no_grad():
            for n, p in m.named_parameters():
                if "lora_" in n or "adapter" in n:
                    p.add_(torch.randn(p.shape) * 0.3)
        m.save_pretrained(root / f"m{seed}")
        out.append(str(root / f"m{seed}"))
    return out


def bus() -> LatentBus:
    g = torch.Generator().manual_seed(0)
    b = LatentBus()
    b.publish(Message("percept", "perception", torch.randn(1, 8, 8, generator=g) * 3, time=torch.arange(8).float()[None] // 4))
    return b


def test_soup_is_the_mean_of_the_weights(folders):
    a, b = (LanguageModule.from_pretrained(p).merge_lora_().state_dict() for p in folders)
    s = soup(folders).state_dict()
    assert all(torch.allclose(s[k], (a[k] + b[k]) / 2, atol=1e-6) for k in a if a[k].is_floating_point())
    assert not all(torch.equal(a[k], b[k]) for k in a)  # the two folders do differ
    one = LanguageModule.from_pretrained(folders[0]).merge_lora_().eval()
    same = soup([folders[0], folders[0]])  # a folder souped with itself answers as the folder
    q, choices = "What color is the ball?", ["red", "blue"]
    got, want = same.score_choices(bus(), q, choices), one.score_choices(bus(), q, choices)
    assert [s for s, _ in got] == pytest.approx([s for s, _ in want], abs=1e-4) and [n for _, n in got] == [n for _, n in want]


def test_guidance_zero_is_the_module_and_g_weighs_the_blind_pass(folders):
    m = soup([folders[1]])
    plain, guided = LanguageScorer(m, lambda v: bus()), GuidedScorer(m, lambda v: bus(), 0.0, max_new_tokens=6)
    qs = ["What color is the ball?", "What color is the cube?"]
    assert guided.generate_many("clip.mp4", qs) == LanguageScorer(m, lambda v: bus(), max_new_tokens=6).generate_many("clip.mp4", qs)
    choices = ["red", "blue", "green cube"]
    assert [s for s, _ in guided.loglik("v", qs[0], choices)] == pytest.approx([s for s, _ in plain.loglik("v", qs[0], choices)], abs=1e-4)
    with_bus = m.score_choices(bus(), qs[0], choices)
    text_only = m.score_choices(None, qs[0], choices, blind=True)
    got = GuidedScorer(m, lambda v: bus(), 1.5).loglik("v", qs[0], choices)
    assert [s for s, _ in got] == pytest.approx([2.5 * a - 1.5 * b for (a, _), (b, _) in zip(with_bus, text_only)], abs=1e-4)
    assert [n for _, n in got] == [n for _, n in with_bus]
    # a strong guidance changes what is generated (the blind pass is subtracted at every step)
    far = GuidedScorer(m, lambda v: bus(), 8.0, max_new_tokens=6).generate_many("clip.mp4", qs)
    assert far != guided.generate_many("clip.mp4", qs) and len(far) == 2
