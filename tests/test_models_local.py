"""The local backend on the real embedded model (SmolLM2-135M-Instruct): batching, decoding,
stop strings, token counts, and PEFT adapters (LoRA, prefix tuning) chosen per request.

Equality between batched and one-by-one greedy decoding is tested here in float32, and in
bfloat16 (where a plainly padded batch rounds differently) through the batch-invariant path in
tests/test_invariant.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rung.config import ModelConfig
from rung.errors import AdapterError, ModelNotFoundError
from rung.models.adapters import base_name_differs, read_adapter
from rung.models.base import GenerationParams, GenRequest, Model
from rung.models.device import choose_dtype
from rung.models.local import LocalModel, plan_batches

EMBEDDED = "embedded:smollm2-135m-instruct"
QUESTIONS = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "Name three colors.",
    "Explain in two sentences why the sky is blue, for a child who keeps asking questions.",
]


def ask(q: str, adapter: str | None = None, **params) -> GenRequest:
    params.setdefault("max_new_tokens", 12)
    return GenRequest.chat([{"role": "user", "content": q}], GenerationParams(**params), adapter)


# ---------------------------------------------------------------- fast: no model

def test_plan_batches_groups_sorts_and_cuts():
    greedy, sampled = GenerationParams(), GenerationParams(temperature=0.7)
    reqs = [GenRequest((), greedy, None), GenRequest((), greedy, "a"), GenRequest((), greedy, None),
            GenRequest((), sampled, None), GenRequest((), greedy, None), GenRequest((), greedy, "a")]
    lengths = [30, 5, 10, 7, 20, 50]
    batches = plan_batches(reqs, lengths, max_batch_size=2)
    assert batches == [[2, 4], [0], [1, 5], [3]]
    assert sorted(i for b in batches for i in b) == list(range(len(reqs)))
    for b in batches:
        assert len({(reqs[i].adapter, reqs[i].params) for i in b}) == 1


def test_explicit_dtype_is_kept():
    assert choose_dtype("float32", "cpu") == "float32"
    assert choose_dtype("bfloat16", "cpu") == "bfloat16"


def test_from_config_resolves_paths_against_root(tmp_path):
    (tmp_path / "models" / "m").mkdir(parents=True)
    (tmp_path / "models" / "m" / "config.json").write_text("{}")
    cfg = ModelConfig(path="models/m", adapters={"tone": "adapters/tone"}, max_batch_size=3)
    m = LocalModel.from_config(cfg, tmp_path)
    assert m.resolved.source == str((tmp_path / "models" / "m").resolve())
    assert m.adapters() == ["tone"] and m.max_batch_size == 3 and not m.loaded
    with pytest.raises(AdapterError, match=r"adapter 'tone': .*adapters/tone is not a PEFT adapter folder"):
        m.fingerprint("tone")
    with pytest.raises(AdapterError, match="adapter 'x': folder .*nowhere does not exist"):
        m.load_adapter("x", "nowhere")
    with pytest.raises(ModelNotFoundError, match="no/such/model.gguf does not exist"):
        LocalModel.from_config(ModelConfig(path="./no/such/model.gguf"), tmp_path)


def test_read_adapter_refuses_what_is_not_an_adapter(tmp_path):
    with pytest.raises(AdapterError, match="adapter 'x': folder .*missing does not exist"):
        read_adapter("x", tmp_path / "missing")
    d = tmp_path / "ad"
    d.mkdir()
    with pytest.raises(AdapterError, match="has no adapter_config.json"):
        read_adapter("x", d)
    (d / "adapter_config.json").write_text("{not json")
    with pytest.raises(AdapterError, match="adapter_config.json is not valid JSON"):
        read_adapter("x", d)
    (d / "adapter_config.json").write_text('{"peft_type": "IA3"}')
    with pytest.raises(AdapterError, match="peft_type 'IA3' .* is not supported"):
        read_adapter("x", d)
    (d / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    with pytest.raises(AdapterError, match="has no adapter_model.safetensors"):
        read_adapter("x", d)


def test_base_name_comparison_is_loose(tmp_path):
    from rung.models.adapters import AdapterInfo

    def info(base):
        return AdapterInfo("x", tmp_path, "LORA", base, tmp_path / "w", None)

    same = ("HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct.Q4_1.gguf", None,
            "/home/u/.cache/rung/models/smollm2-135m-instruct.q4_1-0123456789ab")
    for base in same:
        assert not base_name_differs(info(base), EMBEDDED), base
    assert base_name_differs(info("meta-llama/Llama-3.1-8B"), EMBEDDED)


# ---------------------------------------------------------------- the real model

@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """On a machine whose cores are shared (CI, several jobs), torch's worker threads wait on
    each other at every op and decoding gets ~15x slower; one thread keeps these tests quick."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> LocalModel:
    return LocalModel(EMBEDDED, dtype="float32", max_batch_size=4).load()


@pytest.fixture(scope="module")
def greedy(model) -> dict[str, object]:
    """Each question answered alone (greedy, 12 tokens): the reference for batched runs."""
    return {q: model.generate([ask(q)])[0] for q in QUESTIONS}


@pytest.mark.slow
def test_chat_answer_with_usage(model, greedy):
    assert isinstance(model, Model) and model.device == "cpu" and model.dtype == "float32"
    c = greedy[QUESTIONS[0]]
    assert "paris" in c.text.lower()
    assert c.tokens_in == len(model.prompt_ids([{"role": "user", "content": QUESTIONS[0]}])) > 5
    assert 0 < c.tokens_out <= 12 and c.finish_reason in ("stop", "length")
    assert 0 < c.ttft_s <= c.total_s and c.model_id == EMBEDDED and c.adapter is None
    long = greedy[QUESTIONS[3]]
    assert (long.tokens_out, long.finish_reason) == (12, "length")


@pytest.mark.slow
def test_batched_greedy_equals_one_by_one(model, greedy):
    seen = []
    reqs = [ask(q) for q in reversed(QUESTIONS)] * 2  # 8 requests, max_batch_size 4: two batches
    out = model.generate(reqs, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 8) for i in range(1, 9)]
    for r, c in zip(reqs, out):
        ref = greedy[r.messages[0]["content"]]
        assert (c.text, c.tokens_in, c.tokens_out, c.finish_reason) == \
            (ref.text, ref.tokens_in, ref.tokens_out, ref.finish_reason)
        assert c.extra["batch_size"] == 4
    # the prompts differ in length, so padding was used; it is not counted
    assert len({c.tokens_in for c in out}) > 1


@pytest.mark.slow
def test_seeded_sampling_is_reproducible(model):
    reqs = [ask(q, temperature=1.0, seed=7, max_new_tokens=8) for q in QUESTIONS[1:3]]
    first, second = model.generate(reqs), model.generate(reqs)
    assert [c.text for c in first] == [c.text for c in second]
    other = model.generate([ask(q, temperature=1.0, seed=8, max_new_tokens=8) for q in QUESTIONS[1:3]])
    assert [c.text for c in other] != [c.text for c in first]


@pytest.mark.slow
def test_stop_strings_cut_the_answer(model, greedy):
    ref = greedy[QUESTIONS[3]]
    words = ref.text.split()
    stop = " " + words[len(words) // 2]
    cut = ref.text.index(stop)
    c = model.generate([ask(QUESTIONS[3], stop=(stop, "never appears: §§"))])[0]
    assert c.text == ref.text[:cut] and c.finish_reason == "stop"
    assert 0 < c.tokens_out < ref.tokens_out


@pytest.mark.slow
def test_too_long_prompt_is_an_error_answer_not_a_crash(model):
    out = model.generate([ask(QUESTIONS[0], max_new_tokens=100_000), ask(QUESTIONS[0])])
    assert out[0].finish_reason == "error" and "exceeds the model's context" in out[0].error
    assert out[1].finish_reason != "error" and "paris" in out[1].text.lower()


@pytest.mark.slow
def test_unknown_adapter_in_a_request(model):
    with pytest.raises(AdapterError, match="adapter 'ghost' is not loaded"):
        model.generate([ask(QUESTIONS[0], adapter="ghost")])


@pytest.mark.slow
def test_default_dtype_answers():
    m = LocalModel(EMBEDDED).load()  # auto: bf16 weights where the CPU has bf16 instructions
    c = m.generate([ask(QUESTIONS[0])])[0]
    assert "paris" in c.text.lower() and c.extra["dtype"] == m.dtype
    fp32 = LocalModel(EMBEDDED, dtype="float32")
    assert (m.fingerprint() == fp32.fingerprint()) == (m.dtype == "float32")


# ---------------------------------------------------------------- adapters

def _base(model: LocalModel):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model.resolved.pretrained_path())


@pytest.fixture(scope="module")
def adapter_dirs(model, tmp_path_factory) -> dict[str, Path]:
    import torch
    from peft import LoraConfig, PrefixTuningConfig, TaskType, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("adapters")
    dirs = {}
    for name, seed in (("a", 1), ("b", 2)):  # random A and B (B non-zero), so outputs change
        torch.manual_seed(seed)
        cfg = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                         task_type=TaskType.CAUSAL_LM)
        get_peft_model(_base(model), cfg).save_pretrained(root / name)
        dirs[name] = root / name
    torch.manual_seed(3)
    get_peft_model(_base(model), PrefixTuningConfig(num_virtual_tokens=6, task_type=TaskType.CAUSAL_LM)
                   ).save_pretrained(root / "prefix")
    dirs["prefix"] = root / "prefix"
    tiny = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=4, vocab_size=256))
    get_peft_model(tiny, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(root / "other")
    dirs["other"] = root / "other"
    shutil.copytree(root / "a", root / "nomatch")
    cfg_file = root / "nomatch" / "adapter_config.json"
    data = json.loads(cfg_file.read_text())
    data["target_modules"] = ["not_a_module"]
    cfg_file.write_text(json.dumps(data))
    dirs["nomatch"] = root / "nomatch"
    return dirs


@pytest.fixture(scope="module")
def adapted(adapter_dirs, greedy) -> LocalModel:
    m = LocalModel(EMBEDDED, dtype="float32", max_batch_size=8, adapters={"a": adapter_dirs["a"]}).load()
    m.load_adapter("b", adapter_dirs["b"])  # at run time
    m.load_adapter("prefix", adapter_dirs["prefix"])
    return m


@pytest.mark.slow
def test_adapters_per_request_in_one_call(adapted, greedy):
    assert adapted.adapters() == ["a", "b", "prefix"]
    qs = QUESTIONS[:2]
    reqs = [ask(q, adapter) for adapter in (None, "a", "b", "prefix") for q in qs]
    out = adapted.generate(reqs)
    texts = {adapter: [c.text for c in out if c.adapter == adapter] for adapter in (None, "a", "b", "prefix")}
    assert texts[None] == [greedy[q].text for q in qs]  # base unchanged by resident adapters
    assert len({tuple(t) for t in texts.values()}) == 4  # every adapter answers differently
    assert [c.adapter for c in out] == [r.adapter for r in reqs]  # back in request order


def _first_logits(module, enc):
    import torch

    with torch.inference_mode():
        out = module.generate(**enc, max_new_tokens=1, do_sample=False, output_logits=True,
                              return_dict_in_generate=True, pad_token_id=0)
    return out.logits[0]


@pytest.mark.slow
def test_each_resident_adapter_is_applied_by_generate(adapted, adapter_dirs, model):
    """Proof, not greedy strings: the logits generate() computes with each resident adapter equal
    the logits of that adapter alone on a fresh base (PEFT's forward), and differ from the base.
    (transformers 5.25 + PEFT 0.21 dropped a prefix-tuned adapter's prefix in generate().)"""
    import torch
    from peft import PeftModel

    tok = adapted._tok
    prompts = [adapted.prompt_ids([{"role": "user", "content": q}]) for q in QUESTIONS[:3]]
    enc = tok.pad({"input_ids": prompts}, padding=True, return_tensors="pt")
    with adapted._stack.use(None) as base:
        base_logits = _first_logits(base, enc)
    for name in ("a", "b", "prefix"):
        with adapted._stack.use(name) as module:
            served = _first_logits(module, enc)
        alone = PeftModel.from_pretrained(_base(model), str(adapter_dirs[name])).eval()
        for row, ids in enumerate(prompts):  # one prompt at a time, no padding: the reference
            with torch.inference_mode():
                ref = alone(input_ids=torch.tensor([ids])).logits[0, -1]
            assert torch.allclose(served[row], ref, atol=1e-3), \
                f"adapter {name!r}: served logits differ from the adapter alone"
            assert (served[row] - base_logits[row]).abs().max() > 1e-2, f"adapter {name!r} answers like the base"


@pytest.mark.slow
def test_prefix_tuning_batched_equals_one_by_one(adapted):
    reqs = [ask(q, "prefix", max_new_tokens=6) for q in (QUESTIONS[0], QUESTIONS[3], QUESTIONS[2])]
    batched = adapted.generate(reqs)  # prompts of 3 lengths: left padding + the prefix's mask
    alone = [adapted.generate([r])[0] for r in reqs]
    assert [c.text for c in batched] == [c.text for c in alone]
    assert [c.tokens_out for c in batched] == [c.tokens_out for c in alone]
    assert batched[0].extra["batch_size"] == 3


@pytest.mark.slow
def test_fingerprints(adapted, model):
    fps = {adapted.fingerprint(a) for a in (None, "a", "b", "prefix")}
    assert len(fps) == 4 and all(len(f) == 64 for f in fps)
    assert adapted.fingerprint() == model.fingerprint()  # same weights, same dtype


@pytest.mark.slow
def test_adapter_for_another_base_is_refused(adapted, adapter_dirs):
    expected = r"adapter 'other': .*q_proj.lora_A is \[4, 64\].*made for another base"
    with pytest.raises(AdapterError, match=expected):
        adapted.load_adapter("other", adapter_dirs["other"])
    assert "other" not in adapted.adapters()


@pytest.mark.slow
def test_adapter_matching_no_module_is_refused(adapted, adapter_dirs):
    with pytest.raises(AdapterError, match=r"adapter 'nomatch': target_modules \['not_a_module'\] match no layer"):
        adapted.load_adapter("nomatch", adapter_dirs["nomatch"])
    with pytest.raises(AdapterError, match="adapter 'gone': folder .* does not exist"):
        adapted.load_adapter("gone", adapter_dirs["a"].parent / "gone")
    assert adapted.adapters() == ["a", "b", "prefix"]
    assert adapted.generate([ask(QUESTIONS[0], "a", max_new_tokens=4)])[0].adapter == "a"  # still works


@pytest.mark.slow
def test_adapter_named_for_another_base_loads_with_a_warning(adapted, adapter_dirs, tmp_path):
    shutil.copytree(adapter_dirs["a"], tmp_path / "renamed")
    cfg_file = tmp_path / "renamed" / "adapter_config.json"
    data = json.loads(cfg_file.read_text())
    data["base_model_name_or_path"] = "meta-llama/Llama-3.1-8B"
    cfg_file.write_text(json.dumps(data))
    assert adapted.warnings == []
    adapted.load_adapter("renamed", tmp_path / "renamed")
    assert "renamed" in adapted.adapters()
    assert len(adapted.warnings) == 1 and "trained on meta-llama/Llama-3.1-8B" in adapted.warnings[0]
