"""Batch-invariant decoding (rung.models.invariant): in bfloat16 on the CPU, an answer is the same
text whether its request runs alone or in a batch with others of other lengths.

The model test runs the real embedded model in the dtype "auto" picks (bfloat16 on CPUs with bf16
instructions, the case that needs the invariant path; float32 elsewhere)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rung.models import invariant
from rung.models.base import GenerationParams, GenRequest
from rung.models.local import LocalModel

EXAMPLE_CASES = Path(__file__).resolve().parents[1] / "examples" / "support-desk" / "cases" / "eval.jsonl"
QUESTIONS = [
    "What is the capital of France?",
    "Write a short paragraph about the sea.",
    "Explain photosynthesis to a ten-year-old.",
    "List five tips for sleeping well.",
    "Who wrote Hamlet, and what is it about?",
    "Describe how a bicycle works.",
]


def test_padding_groups_from_a_left_padded_mask():
    lengths = [5, 3, 5, 1]
    mask = torch.zeros(4, 1, 1, 5, dtype=torch.bool)
    for row, n in enumerate(lengths):
        mask[row, ..., 5 - n:] = True
    assert invariant.padding_groups(mask, 4) == [(0, [0, 2]), (2, [1]), (4, [3])]
    assert invariant.padding_groups(None, 3) == [(0, [0, 1, 2])]
    # a prefix of virtual tokens before the padding (prefix tuning): rows cannot be sliced
    gap = torch.ones(2, 1, 1, 6, dtype=torch.bool)
    gap[1, ..., 2:4] = False
    assert invariant.padding_groups(gap, 2) is None


@pytest.mark.parametrize("long", [512, 4])  # 4: rows beyond it take the model-dtype scores branch
def test_rowwise_attention_equals_masked_attention(long, monkeypatch):
    monkeypatch.setattr(invariant, "LONG", long)
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 4, 1, 8), torch.randn(3, 2, 7, 8), torch.randn(3, 2, 7, 8)
    mask = torch.ones(3, 1, 1, 7, dtype=torch.bool)
    mask[1, ..., :3] = False
    mask[2, ..., :6] = False

    class Attn(torch.nn.Module):
        num_key_value_groups = 2

    out, _ = invariant.rowwise_attention(Attn(), q, k, v, mask, scaling=0.3)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3, enable_gqa=True)
    assert out.shape == (3, 1, 4, 8)
    torch.testing.assert_close(out, ref.transpose(1, 2))


@pytest.mark.slow
def test_batched_answers_equal_answers_alone():
    model = LocalModel("embedded:smollm2-135m-instruct", dtype="auto", device="cpu", max_batch_size=8).load()
    cases = [json.loads(x) for x in EXAMPLE_CASES.read_text().splitlines() if x.strip()]
    texts = QUESTIONS + [c["input"] for c in cases if "input" in c][:9] + [QUESTIONS[0]]
    params = GenerationParams(max_new_tokens=40)
    reqs = [GenRequest.chat([{"role": "user", "content": t}], params) for t in texts]
    alone = [model.generate([r])[0] for r in reqs]
    together = model.generate(reqs)  # two batches (8 + 8) of mixed prompt lengths
    assert len({c.tokens_in for c in together}) > 4
    assert [c.text for c in together] == [c.text for c in alone]
    assert [c.tokens_out for c in together] == [c.tokens_out for c in alone]
    assert {c.extra["batch_size"] for c in together} == {8} and {c.extra["batch_size"] for c in alone} == {1}
