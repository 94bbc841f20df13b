"""Language module: splicing and label masking, pooling, blind mode, PEFT round trip, merge,
two LM families, feature shards. Tiny random LMs (Llama and Qwen2) with our own SentencePiece
tokenizer, built in a temp folder: nothing is downloaded."""

from __future__ import annotations

import pytest
import torch

from cogarch.bus import LatentBus, Message
from cogarch.modules.language.adapters import (BusAdapter, BusInputError, adaptive_pool, grid_pool, slot_pool, step_index,
                                               time_mean_pool)
from cogarch.errors import ConfigError
from cogarch.modules.language.config import LanguageConfig
from cogarch.modules.language.data import FeatureError, FeatureShard, write_shard
from cogarch.modules.language.model import LanguageModule, encode_pair
from cogarch.modules.language.pretrain import LMArchConfig, new_lm
from cogarch.modules.language.tokenizer import build_tokenizer

TEXTS = [
    "Question: What color is the ball? Answer: red",
    "Question: What color is the ball? Answer: blue",
    "The clip shows a table seen from above with 3 objects: a red metal cube, a blue rubber sphere.",
    "First, the red metal cube collides with the blue rubber sphere.",
] * 10
DIMS = {"percept": 8, "forecast": 8, "surprise": 1}


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    """{family: folder} of tiny random LMs sharing one SentencePiece tokenizer."""
    root = tmp_path_factory.mktemp("lms")
    tok = build_tokenizer(TEXTS, 300, root / "tok")
    out = {}
    for fam in ("llama", "qwen2"):
        torch.manual_seed(0)
        arch = LMArchConfig(family=fam, hidden=32, layers=2, heads=2, kv_heads=1, intermediate=64, max_positions=256)
        lm = new_lm(arch, len(tok))
        lm.save_pretrained(root / fam)
        tok.save_pretrained(root / fam)
        out[fam] = str(root / fam)
    return out


def make_module(path: str, **kw) -> LanguageModule:
    torch.manual_seed(1)
    cfg = LanguageConfig(base_lm=path, kind_dims=dict(DIMS), max_tokens=4, lora_dropout=0.0, **kw)
    return LanguageModule.build(cfg)


def randomize_lora(module: LanguageModule, seed: int = 2) -> None:
    """LoRA B starts at zero (identity adapter); make it non-trivial so round trips mean something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in module.lm.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def make_bus(seed: int = 0, B: int = 1) -> LatentBus:
    g = torch.Generator().manual_seed(seed)
    bus = LatentBus()
    t = torch.arange(12).div(4, rounding_mode="floor").float().expand(B, 12)  # 3 time steps x 4 patches
    bus.publish(Message("percept", "perception", torch.randn(B, 12, 8, generator=g), time=t))
    bus.publish(Message("forecast", "world_model", torch.randn(B, 6, 8, generator=g), time=(torch.arange(6) + 3).float().expand(B, 6)))
    bus.publish(Message("surprise", "world_model", torch.rand(B, 3, 1, generator=g), time=torch.arange(3).float().expand(B, 3)))
    return bus


def test_splice_positions_and_label_masking(lms):
    m = make_module(lms["llama"])
    bus = make_bus(B=2)
    # Sample 1 has 2 padded forecast tokens: they must not be spliced in.
    fmask = torch.ones(2, 6, dtype=torch.bool)
    fmask[1, 4:] = False
    f = bus.latest("forecast")
    bus.drop("forecast")
    bus.publish(Message("forecast", "world_model", f.tokens, time=f.time, mask=fmask))
    prefix, pmask = m.prefix(bus, batch_size=2)
    # percept: 12 tokens, 3 time steps -> 3 time means; forecast: 6 steps -> adaptive pool to 4; surprise 3.
    assert prefix.shape == (2, 3 + 4 + 3, 32) and pmask.sum(1).tolist() == [10, 9]
    seqs = [encode_pair(m.tokenizer, "Question: What color? Answer:", t, m.config) for t in ("red", "blue cube")]
    sp = m.splice(prefix, pmask, seqs)
    emb = m.lm.get_input_embeddings()
    for i, (p, t) in enumerate(seqs):
        P = int(pmask[i].sum())
        n = 1 + P + len(p) + len(t)
        assert int(sp.attention_mask[i].sum()) == n and int(sp.prefix_start[i]) == 1
        assert torch.equal(sp.embeds[i, 0], emb.weight[m.bos_id])
        assert torch.equal(sp.embeds[i, 1 : 1 + P], prefix[i][pmask[i]])
        ids = torch.tensor(p + t)
        assert torch.equal(sp.embeds[i, 1 + P : n], emb(ids))
        lab = sp.labels[i]
        assert (lab[: 1 + P + len(p)] == -100).all()  # BOS, every prefix token and the prompt
        assert lab[1 + P + len(p) : n].tolist() == t and t[-1] == m.tokenizer.eos_token_id
        assert (lab[n:] == -100).all() and (sp.attention_mask[i, n:] == 0).all()
    # Left padding (generation): the first real token gets position 0.
    spl = m.splice(prefix, pmask, [(p, []) for p, _ in seqs], pad_left=True)
    for i in range(2):
        first = int((spl.attention_mask[i] == 0).sum())
        assert int(spl.position_ids[i, first]) == 0 and int(spl.position_ids[i, -1]) == spl.attention_mask[i].sum() - 1


def test_splice_prefix_at_answer(lms):
    """prefix_at=answer: [BOS][prompt][bus][target]; labels only on the target; same tokens as "start"."""
    m = make_module(lms["llama"], prefix_at="answer")
    prefix, pmask = m.prefix(make_bus(B=2), batch_size=2)
    seqs = [encode_pair(m.tokenizer, "Question: What color? Answer:", t, m.config) for t in ("red", "blue cube")]
    sp = m.splice(prefix, pmask, seqs)
    emb = m.lm.get_input_embeddings()
    for i, (p, t) in enumerate(seqs):
        P = int(pmask[i].sum())
        n = 1 + len(p) + P + len(t)
        assert int(sp.attention_mask[i].sum()) == n and int(sp.prefix_start[i]) == 1 + len(p)
        assert torch.equal(sp.embeds[i, 1 : 1 + len(p)], emb(torch.tensor(p)))
        assert torch.equal(sp.embeds[i, 1 + len(p) : 1 + len(p) + P], prefix[i][pmask[i]])
        assert torch.equal(sp.embeds[i, 1 + len(p) + P : n], emb(torch.tensor(t)))
        assert (sp.labels[i, : 1 + len(p) + P] == -100).all() and sp.labels[i, 1 + len(p) + P : n].tolist() == t
    # Generation (left padding) ends on the last prefix token, right before the answer.
    spl = m.splice(prefix, pmask, [(p, []) for p, _ in seqs], pad_left=True)
    for i in range(2):
        assert torch.equal(spl.embeds[i, -1], prefix[i][pmask[i]][-1])
    with pytest.raises(ConfigError, match="prefix_at"):
        make_module(lms["llama"], prefix_at="middle")


def test_pooling_is_masked_mean():
    x = torch.arange(2 * 6 * 2, dtype=torch.float32).reshape(2, 6, 2)
    t = torch.tensor([[0, 0, 1, 1, 2, 2], [5, 5, 5, 7, 7, 7]]).float()
    m = torch.ones(2, 6, dtype=torch.bool)
    m[0, 1] = False
    px, pt, pm = time_mean_pool(x, t, m, n_buckets=16)
    assert px.shape == (2, 3, 2)
    assert torch.allclose(px[0, 0], x[0, 0]) and torch.allclose(px[0, 1], x[0, 2:4].mean(0))
    assert pt[1, :2].tolist() == [5.0, 7.0] and pm.tolist() == [[True] * 3, [True, True, False]]
    ax, at, am = adaptive_pool(x, t, m, cap=3)
    assert ax.shape == (2, 3, 2) and torch.allclose(ax[0, 0], x[0, 0]) and torch.allclose(ax[1, 2], x[1, 4:6].mean(0))
    assert am.all()
    # grid: 3 steps of a 4x4 patch grid -> 2x2 per step; cap 8 -> time pooled to 2 steps.
    gx = torch.randn(2, 3 * 16, 5)
    gt = torch.arange(3).repeat_interleave(16).float().expand(2, -1)
    hx, ht, _ = grid_pool(gx, gt, grid=2, cap=64)
    assert hx.shape == (2, 12, 5) and torch.allclose(hx[:, 4], gx.reshape(2, 3, 4, 4, 5)[:, 1, :2, :2].mean((1, 2)), atol=1e-6)
    hx, ht, _ = grid_pool(gx, gt, grid=2, cap=8)
    assert hx.shape == (2, 8, 5) and ht[0].tolist() == [0.5] * 4 + [1.5] * 4
    assert grid_pool(gx[:, :47], gt[:, :47], grid=2, cap=8) is None  # not square grids: caller falls back


def test_blind_mode_excludes_bus(lms):
    m = make_module(lms["llama"])
    randomize_lora(m)
    lens = []
    hook = m.lm.get_base_model().model.register_forward_pre_hook(
        lambda mod, args, kw: lens.append(kw["inputs_embeds"].shape[1]), with_kwargs=True
    )
    try:
        q, choices = "What color is the ball?", ["red", "blue"]
        a = m.score_choices(make_bus(0), q, choices)
        b = m.score_choices(make_bus(1), q, choices)
        ba = m.score_choices(make_bus(0), q, choices, blind=True)
        bb = m.score_choices(make_bus(1), q, choices, blind=True)
    finally:
        hook.remove()
    assert a != b  # the bus is read...
    assert ba == bb  # ...and ignored when blind
    assert lens[0] - lens[2] == 3 + 4 + 3  # exactly the prefix tokens are gone
    assert m.answer(make_bus(0), q, 4, blind=True) == m.answer(make_bus(1), q, 4, blind=True)


def test_width_mismatch_is_one_line_error(lms):
    m = make_module(lms["llama"])
    bus = LatentBus()
    bus.publish(Message("percept", "perception", torch.randn(1, 4, 5)))
    with pytest.raises(BusInputError, match="percept from perception has width 5, its projector expects 8"):
        m.score_choices(bus, "q", ["a"])


def test_peft_round_trip_with_stock_peft(lms, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    m = make_module(lms["qwen2"])
    randomize_lora(m)
    m.eval()
    m.save_pretrained(tmp_path / "lang")
    ids = torch.tensor([m.tokenizer("Question: What color is the ball? Answer: red")["input_ids"]])
    with torch.no_grad():
        want = m.lm(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(lms["qwen2"], local_files_only=True)
        stock = PeftModel.from_pretrained(base, str(tmp_path / "lang")).eval()
        got = stock(input_ids=ids).logits
    assert torch.equal(got, want)
    back = LanguageModule.from_pretrained(tmp_path / "lang")  # uses the bundled base/ copy
    bus = make_bus(3)
    assert back.score_choices(bus, "What color?", ["red", "blue"]) == m.score_choices(bus, "What color?", ["red", "blue"])


def test_index_embed_tells_slots_apart_and_binds_kinds(lms, tmp_path):
    """index_embed: a token's index within its time step (the slot k of time-major slot rows) gets
    a learned vector shared by all kinds. Without it, swapping two slots' rows only permutes the
    prefix; with it, the prefix itself changes, and slot k of objects and of forecast share the
    same vector. A module saved with it loads with it (same scores)."""
    t = torch.tensor([[0.0, 0, 0, 1, 1, 1, 2, 2, 2]])
    assert step_index(t).tolist() == [[0, 1, 2, 0, 1, 2, 0, 1, 2]]
    assert step_index(torch.zeros(1, 4)).tolist() == [[0, 1, 2, 3]]  # untimed: the position
    rows = torch.randn(1, 3, 2, 8)  # [B, T', K=2 slots, D]
    swapped = rows.flip(2)
    time = torch.arange(3).repeat_interleave(2).float()[None]

    def prefix(adapter, r):
        msg = Message("objects", "perception", r.reshape(1, 6, 8), time=time)
        with torch.no_grad():
            return adapter({"objects": msg})[0][0]  # [6, H]

    for index_embed in (0, 4):
        torch.manual_seed(0)
        cfg = LanguageConfig(kind_dims={"objects": 8, "forecast": 8}, pool="none", index_embed=index_embed)
        adapter = BusAdapter(cfg, 16)
        a, b = prefix(adapter, rows), prefix(adapter, swapped)
        same_set = torch.allclose(a.reshape(3, 2, 16).flip(1).reshape(6, 16), b, atol=1e-6)
        assert same_set == (index_embed == 0)
    both = {k: Message(k, "m", torch.zeros(1, 6, 8), time=time) for k in ("objects", "forecast")}
    with torch.no_grad():
        pre = adapter(both)[0][0]  # zero rows: only the embeddings differ
    obj, fc = pre[:6], pre[6:]  # same rows and steps: the kinds differ by their projector and kind vector only
    assert torch.allclose(obj[1::2] - obj[0::2], fc[1::2] - fc[0::2], atol=1e-6)  # slot 1 vs 0: one shared vector
    assert not torch.allclose(obj[1], obj[0])  # slots 0 and 1 of one step differ
    with pytest.raises(ConfigError, match="index_embed"):
        LanguageConfig(index_embed=-1).validate()
    m = make_module(lms["llama"], index_embed=4)
    m.save_pretrained(tmp_path / "idx")
    back = LanguageModule.from_pretrained(tmp_path / "idx")
    assert back.adapter.index_embed is not None and torch.equal(back.adapter.index_embed.weight, m.adapter.index_embed.weight)
    bus = make_bus(4)
    assert back.score_choices(bus, "What color?", ["red", "blue"]) == m.score_choices(bus, "What color?", ["red", "blue"])


def test_input_norm_per_kind_keeps_the_gate_of_object_rows(lms, tmp_path):
    """A LayerNorm is scale-invariant, so a gated object row (gate x row) reaches the LM the same at
    any gate: the LM cannot see which slots are empty. input_norm_per_kind: {objects: false} lets
    that kind's projector see the scale; other kinds keep the norm. Saved and loaded with the module."""
    torch.manual_seed(0)
    row = torch.randn(1, 1, 8)
    time = torch.zeros(1, 1)

    def out(adapter, kind, r):
        with torch.no_grad():
            return adapter({kind: Message(kind, "perception", r, time=time)})[0][0, 0]

    cfg = LanguageConfig(kind_dims={"objects": 8, "percept": 8}, pool="none", input_norm_per_kind={"objects": False})
    assert cfg.norm_of("objects") is False and cfg.norm_of("percept") is True
    adapter = BusAdapter(cfg, 16)
    assert torch.allclose(out(adapter, "percept", row), out(adapter, "percept", 0.2 * row), atol=1e-3)  # normed: gate lost
    assert not torch.allclose(out(adapter, "objects", row), out(adapter, "objects", 0.2 * row), atol=1e-2)  # gate kept
    with pytest.raises(ConfigError, match="input_norm_per_kind.objects"):
        LanguageConfig(input_norm_per_kind={"objects": "no"}).validate()
    with pytest.raises(ConfigError, match="input_norm_per_kind.objets"):  # a misspelt kind would keep the norm
        LanguageConfig(kind_dims={"objects": 8}, input_norm_per_kind={"objets": False}).validate()
    m = make_module(lms["llama"], input_norm_per_kind={"percept": False})
    m.save_pretrained(tmp_path / "nn")
    back = LanguageModule.from_pretrained(tmp_path / "nn")
    assert back.config.input_norm_per_kind == {"percept": False}
    assert isinstance(back.adapter.proj["percept"].norm, torch.nn.Identity)
    bus = make_bus(4)
    assert back.score_choices(bus, "What color?", ["red", "blue"]) == m.score_choices(bus, "What color?", ["red", "blue"])


def test_slot_pool_gives_one_token_per_object(lms, tmp_path):
    """pool_per_kind: slot turns time-major slot rows [T' x K] into K tokens, slot k's T' rows
    concatenated in time order and zero-padded to slot_steps; the projector reads D * slot_steps.
    A layout that is not time-major [T' x K], or longer than slot_steps, is a one-line error.
    Saved and loaded with the module (same scores)."""
    rows = torch.arange(2 * 3 * 2 * 4, dtype=torch.float32).reshape(2, 3, 2, 4)  # [B, T'=3, K=2, D=4]
    time = (torch.arange(3).repeat_interleave(2).float() + 5).expand(2, 6)
    x, t, m = slot_pool(rows.reshape(2, 6, 4), time, 4, "objects")
    assert x.shape == (2, 2, 16) and t.tolist() == [[5.0, 5.0]] * 2 and m.all()
    assert torch.equal(x[1, 1, :12], rows[1, :, 1].reshape(12))  # slot 1: its rows at steps 0, 1, 2
    assert torch.equal(x[..., 12:], torch.zeros(2, 2, 4))  # a fourth step never seen: zeros
    with pytest.raises(BusInputError, match="slot_steps=2"):
        slot_pool(rows.reshape(2, 6, 4), time, 2, "objects")
    with pytest.raises(BusInputError, match="time-major"):
        slot_pool(rows.reshape(2, 6, 4), torch.tensor([[0.0, 1, 0, 1, 2, 2]] * 2), 4, "objects")

    cfg = LanguageConfig(kind_dims={"objects": 4, "percept": 8}, pool="none", pool_per_kind={"objects": "slot"}, slot_steps=4)
    assert cfg.proj_dim("objects") == 16 and cfg.proj_dim("percept") == 8
    adapter = BusAdapter(cfg, 16)
    assert adapter.proj["objects"].fc1.in_features == 16
    with torch.no_grad():
        pre, mask = adapter({"objects": Message("objects", "perception", rows.reshape(2, 6, 4), time=time)})
    assert pre.shape == (2, 2, 16) and mask.all()
    with pytest.raises(BusInputError, match="per-step times"):
        adapter({"objects": Message("objects", "perception", rows.reshape(2, 6, 4))})
    with pytest.raises(ConfigError, match="pool_per_kind.objects"):
        LanguageConfig(pool_per_kind={"objects": "slots"}).validate()
    with pytest.raises(ConfigError, match="slot_steps"):
        LanguageConfig(slot_steps=0).validate()
    m = make_module(lms["llama"], pool_per_kind={"forecast": "slot"}, slot_steps=3)
    m.save_pretrained(tmp_path / "slot")
    back = LanguageModule.from_pretrained(tmp_path / "slot")
    assert back.config.pool_per_kind == {"forecast": "slot"} and back.adapter.proj["forecast"].fc1.in_features == 24
    bus = make_bus(4)  # forecast: 6 rows at 6 distinct steps = 6 steps x 1 slot > slot_steps 3
    with pytest.raises(BusInputError, match="slot_steps=3"):
        back.score_choices(bus, "What color?", ["red", "blue"])
    bus.drop("forecast")
    t = (torch.arange(3).repeat_interleave(2) + 3).float()[None]
    bus.publish(Message("forecast", "world_model", torch.randn(1, 6, 8, generator=torch.Generator().manual_seed(3)), time=t))
    assert back.score_choices(bus, "What color?", ["red", "blue"]) == m.score_choices(bus, "What color?", ["red", "blue"])


def test_merge_equals_unmerged(lms, tmp_path):
    from transformers import AutoModelForCausalLM

    from cogarch.modules.language.merge import merge

    m = make_module(lms["llama"])
    randomize_lora(m)
    m.eval()
    m.save_pretrained(tmp_path / "lang")
    merge(tmp_path / "lang", tmp_path / "merged")
    ids = torch.tensor([m.tokenizer("The red metal cube collides")["input_ids"]])
    with torch.no_grad():
        plain = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged"), local_files_only=True)
        assert not any("lora" in n for n, _ in plain.named_parameters())
        assert torch.allclose(plain(input_ids=ids).logits, m.lm(input_ids=ids).logits, atol=1e-5)
    merged = LanguageModule.from_pretrained(tmp_path / "merged")
    merged.save_pretrained(tmp_path / "resaved")  # a merged module saves as a merged folder again
    bus = make_bus(4)
    want = m.score_choices(bus, "q?", ["red", "blue cube"])
    for mod in (merged, LanguageModule.from_pretrained(tmp_path / "resaved")):
        for (a, na), (b, nb) in zip(mod.score_choices(bus, "q?", ["red", "blue cube"]), want):
            assert na == nb and abs(a - b) < 1e-4


def test_in_memory_merge_for_inference_keeps_scores_and_answers(lms, tmp_path):
    m = make_module(lms["llama"])
    randomize_lora(m)
    m.eval()
    m.save_pretrained(tmp_path / "lang")
    bus = make_bus(5)
    want_scores = m.score_choices(bus, "q?", ["red", "blue cube"])
    want_text = m.answer(bus, "What color?", max_new_tokens=6)
    fast = LanguageModule.from_pretrained(tmp_path / "lang").merge_lora_()
    assert not any("lora_" in n for n, _ in fast.lm.named_parameters())
    for (a, na), (b, nb) in zip(fast.score_choices(bus, "q?", ["red", "blue cube"]), want_scores):
        assert na == nb and abs(a - b) < 1e-4
    assert fast.answer(bus, "What color?", max_new_tokens=6) == want_text
    assert fast.merge_lora_() is fast  # idempotent on a plain LM


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_both_families_train_step_and_answer(lms, family):
    from cogarch.modules.language.train import collate

    m = make_module(lms[family])
    m.set_stage(2)
    bus = make_bus(5)
    feats = {k: {"tokens": msg.tokens[0], "time": msg.time[0]} for k in DIMS for msg in [bus.latest(k)]}
    p, t = encode_pair(m.tokenizer, "Question: What color? Answer:", "red", m.config)
    batch = collate([{"prompt": p, "target": t, "bus": feats}] * 2)
    loss, metrics = m(batch)
    loss.backward()
    assert torch.isfinite(loss) and metrics["target_tokens"] == 2 * len(t)
    lora_grads = [q.grad for n, q in m.lm.named_parameters() if "lora_B" in n]
    assert lora_grads and all(g is not None and g.abs().sum() > 0 for g in lora_grads)
    assert all(q.grad is not None for q in m.adapter.proj.parameters())
    assert all(not q.requires_grad for n, q in m.lm.named_parameters() if "lora_" not in n)  # base frozen
    m.set_stage(1)
    assert not any(q.requires_grad for q in m.lm.parameters()) and all(q.requires_grad for q in m.adapter.parameters())
    out = m.answer(bus, "What color is the ball?", max_new_tokens=3, temperature=0.8, top_p=0.9, seed=0)
    assert isinstance(out, str) and out == m.answer(bus, "What color is the ball?", 3, temperature=0.8, top_p=0.9, seed=0)


def test_mc_scores_equal_manual_loglik(lms):
    m = make_module(lms["llama"])
    randomize_lora(m)
    bus = make_bus(6)
    prompt = "Question: What color is the ball?\nOptions: red, blue\nAnswer:"
    got = m.score_choices(bus, "What color is the ball?", ["red", "blue"])
    for choice, (s, n) in zip(["red", "blue"], got):
        p, t = encode_pair(m.tokenizer, prompt, choice, m.config, eos=True)
        prefix, pmask = m.prefix(bus, 1)
        sp = m.splice(prefix, pmask, [(p, t)])
        with torch.no_grad():
            logp = m.run_lm(sp).logits[0].log_softmax(-1)
        start = 1 + int(pmask.sum()) + len(p)  # first target position
        want = sum(float(logp[start - 1 + j, tok]) for j, tok in enumerate(t))
        assert n == len(t) and abs(s - want) < 1e-4


def test_loss_weights_every_token_equally_across_accumulation(lms):
    """sum(NLL)/token_norm per micro-batch, averaged over 2 micro-batches with different lengths,
    gives the gradient of the full batch's per-token mean when token_norm = total tokens / 2."""
    from cogarch.modules.language.train import collate

    m = make_module(lms["llama"], lora_r=2)
    m.set_stage(2)
    enc = lambda tgt: encode_pair(m.tokenizer, "Question: What? Answer:", tgt, m.config)  # noqa: E731
    b1 = collate([dict(zip(("prompt", "target"), enc("red")))])
    b2 = collate([dict(zip(("prompt", "target"), enc("a blue rubber sphere collides")))])
    n_total = int(b1["target_len"].sum() + b2["target_len"].sum())
    params = [p for p in m.parameters() if p.requires_grad]
    m.token_norm = n_total / 2
    grads = None
    for b in (b1, b2):
        loss, _ = m(b)
        g = torch.autograd.grad(loss / 2, params, allow_unused=True)
        grads = g if grads is None else [x + y if x is not None else y for x, y in zip(grads, g)]
    m.token_norm = 0.0  # per-batch mean over ONE batch holding every token = the exact target
    full = collate([dict(zip(("prompt", "target"), enc(t))) for t in ("red", "a blue rubber sphere collides")])
    loss, _ = m(full)
    want = torch.autograd.grad(loss, params, allow_unused=True)
    for x, y in zip(grads, want):
        if y is not None:
            assert torch.allclose(x, y, atol=1e-6)


def test_feature_shard_round_trip_and_errors(tmp_path):
    ids = ["c0", "c1", "c2"]
    tok = torch.randn(3, 5, 8)
    tm = torch.arange(5).float().expand(3, 5)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[2, 3:] = False
    write_shard(tmp_path, "train", ids, {"percept": {"tokens": tok, "time": tm, "mask": mask}, "surprise": {"tokens": torch.rand(3, 4, 1)}},
                sources={"percept": "perception"})
    sh = FeatureShard(tmp_path, "train")
    assert sh.clip_ids == ids and sh.kinds["percept"] == {"dim": 8, "n_tokens": 5, "source": "perception"}
    row = sh.get(sh.row_of("c2"))
    assert torch.equal(row["percept"]["tokens"], tok[2]) and row["percept"]["mask"].tolist() == [True] * 3 + [False] * 2
    assert "time" not in row["surprise"]
    bus = sh.bus("c1")
    assert bus.latest("percept").source == "perception" and torch.equal(bus.latest("percept").tokens[0], tok[1])
    with pytest.raises(FeatureError, match="no feature shard for split 'test'"):
        FeatureShard(tmp_path, "test")
    with pytest.raises(FeatureError, match="clip 'zz' has no features"):
        sh.row_of("zz")
    got = sh.tokens("c1", ["surprise", "percept"])  # one clip's tokens by kind, for the probes and the binder's pretraining
    assert list(got) == ["surprise", "percept"] and torch.equal(got["percept"], tok[1])
    with pytest.raises(FeatureError, match="has no train features for zz .features of another suite"):
        sh.tokens("zz", ["percept"])
    with pytest.raises(FeatureError, match="has no 'objects' tokens .it has .'percept', 'surprise'"):
        sh.tokens("c1", ["percept", "objects"])


def test_scorer_protocol_over_feature_shards(lms, tmp_path):
    from cogarch.modules.language.scoring import LanguageScorer, ShardBus

    g = torch.Generator().manual_seed(0)
    surprise = torch.rand(2, 3, 1, generator=g)
    write_shard(tmp_path, "test", ["c0", "c1"], {"percept": {"tokens": torch.randn(2, 12, 8, generator=g)},
                                                  "surprise": {"tokens": surprise, "time": torch.arange(3).float().expand(2, 3)}})
    m = make_module(lms["llama"])
    scorer = LanguageScorer(m, ShardBus(tmp_path, "test"), max_new_tokens=3)
    ll = scorer.loglik("/data/videos/c1.mp4", "What color?", ["red", "blue"])  # clip id = file stem
    assert len(ll) == 2 and all(isinstance(s, float) and n >= 2 for s, n in ll)
    assert isinstance(scorer.generate("/data/videos/c0.mp4", "What color?"), str)
    assert scorer.surprise("/data/videos/c1.mp4") == pytest.approx(float(surprise[1].max()))
    blind = LanguageScorer(m, None, blind=True)
    assert blind.loglik(None, "What color?", ["red", "blue"]) == m.score_choices(None, "What color?", ["red", "blue"], blind=True)


def test_shard_bus_copy_last_forecast(tmp_path):
    """ShardBus(still=True): the forecast becomes the last observed step's objects rows at every
    forecast step, velocities zero; same times, slots and identities. One-line errors without the
    kinds, or with the forecast also dropped."""
    from cogarch.errors import UserError
    from cogarch.modules.language.relations import VEL
    from cogarch.modules.language.scoring import ShardBus

    g = torch.Generator().manual_seed(0)
    objects = torch.rand(2, 4 * 3, 18, generator=g)  # 4 observed steps x 3 slots
    forecast = torch.rand(2, 2 * 3, 18, generator=g)  # 2 forecast steps x 3 slots
    ft = torch.tensor([4.0, 4, 4, 5, 5, 5]).expand(2, 6)
    write_shard(tmp_path, "test", ["c0", "c1"], {"objects": {"tokens": objects, "time": torch.arange(4).repeat_interleave(3).float().expand(2, 12)},
                                                  "forecast": {"tokens": forecast, "time": ft}})
    still = ShardBus(tmp_path, "test", still=True)("/v/c1.mp4").latest("forecast")
    want = objects[1, -3:].repeat(2, 1)
    want[:, VEL:VEL + 2] = 0.0
    assert torch.equal(still.tokens[0], want) and torch.equal(still.time[0], ft[0]) and still.meta["control"] == "copy-last"
    assert torch.equal(ShardBus(tmp_path, "test")("/v/c1.mp4").latest("forecast").tokens[0], forecast[1])  # off by default
    with pytest.raises(UserError, match="do not also drop"):
        ShardBus(tmp_path, "test", drop=("forecast",), still=True)
    write_shard(tmp_path / "no_objects", "test", ["c0"], {"forecast": {"tokens": forecast[:1], "time": ft[:1]}})
    with pytest.raises(UserError, match="needs objects and forecast"):
        ShardBus(tmp_path / "no_objects", "test", still=True)
