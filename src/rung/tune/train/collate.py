"""Examples -> token ids and labels for causal-LM training.

The prompt is rendered exactly as rung.models.local.LocalModel.prompt_ids renders it when serving
(the tokenizer's chat template with the generation prompt, tokenized without special tokens), so
the adapter learns on the very tokens it will see. The target is what the chat template adds
after that prompt for the assistant turn, up to and including the end-of-turn token.

labels = -100 everywhere except the target tokens (the loss is on the assistant part only).
Too long: the prompt is cut from the left (its start, usually the system prompt and older turns,
goes first); a target longer than max_seq_len is cut at the end. Packing concatenates examples
into blocks of max_seq_len (fewer pad tokens; attention then crosses example boundaries, which
short-answer tasks tolerate; it is off by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rung.core import Message
from rung.errors import TrainingError
from rung.tune.example import Example

IGNORE = -100


@dataclass
class Features:
    input_ids: list[int]
    labels: list[int]

    @property
    def target_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


def with_system_prompt(messages: Sequence[Message], system_prompt: str) -> list[Message]:
    """The candidate's system prompt first, unless the example already has a system message
    (an example recorded from a served trace carries the exact prompt it was answered with)."""
    msgs = [dict(m) for m in messages]
    if system_prompt and not (msgs and msgs[0].get("role") == "system"):
        msgs.insert(0, {"role": "system", "content": system_prompt})
    return msgs


def render(tok: Any, prompt: Sequence[Message], target: str) -> tuple[str, str]:
    """(prompt text as served, target text) for a chat-templated tokenizer (or a plain format)."""
    msgs = [dict(m) for m in prompt]
    if not tok.chat_template:
        head = "".join(f"{m.get('role', 'user')}: {m.get('content', '')}\n" for m in msgs) + "assistant:"
        return head, " " + target + (tok.eos_token or "")
    head = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": target}], tokenize=False)
    if not full.startswith(head):
        raise TrainingError("the tokenizer's chat template renders the prompt differently with and without "
                        "the answer; rung cannot tell the target tokens apart")
    tail = full[len(head):]
    eos = tok.eos_token or ""
    if eos and eos in tail:  # keep the end-of-turn token, drop what the template adds after it
        tail = tail[:tail.rindex(eos) + len(eos)]
    return head, tail


def encode(tok: Any, example: Example, max_seq_len: int, system_prompt: str = "") -> Features:
    """One example's ids and labels (see the module docstring for truncation)."""
    if not example.target:
        raise TrainingError(f"example {example.id!r}: its last message is not an assistant answer to learn")
    head, tail = render(tok, with_system_prompt(example.prompt, system_prompt), example.target)
    add_special = not tok.chat_template
    p = list(tok(head, add_special_tokens=add_special)["input_ids"])
    t = list(tok(tail, add_special_tokens=False)["input_ids"])
    if len(t) >= max_seq_len:
        t = t[:max_seq_len - 1]
    p = p[-(max_seq_len - len(t)):]
    return Features(p + t, [IGNORE] * len(p) + t)


def encode_all(tok: Any, examples: Sequence[Example], max_seq_len: int, system_prompt: str = "",
               packing: bool = False) -> list[Features]:
    feats = [encode(tok, ex, max_seq_len, system_prompt) for ex in examples]
    return pack(feats, max_seq_len) if packing else feats


def pack(feats: Sequence[Features], max_seq_len: int) -> list[Features]:
    """Greedy concatenation, in order, into blocks of at most max_seq_len tokens (an example is
    never split across blocks)."""
    blocks: list[Features] = []
    ids: list[int] = []
    labels: list[int] = []
    for f in feats:
        if ids and len(ids) + len(f.input_ids) > max_seq_len:
            blocks.append(Features(ids, labels))
            ids, labels = [], []
        ids = ids + f.input_ids
        labels = labels + f.labels
    if ids:
        blocks.append(Features(ids, labels))
    return blocks


class Collator:
    """A batch of Features -> right-padded tensors (input_ids, attention_mask, labels)."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad = pad_token_id

    def __call__(self, batch: Sequence[Features]) -> dict[str, Any]:
        import torch

        width = max(len(f.input_ids) for f in batch)
        ids = torch.full((len(batch), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        for i, f in enumerate(batch):
            n = len(f.input_ids)
            ids[i, :n] = torch.tensor(f.input_ids)
            mask[i, :n] = 1
            labels[i, :n] = torch.tensor(f.labels)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
