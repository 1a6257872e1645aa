"""Batch-invariant greedy decoding for the local backend: an answer does not depend on which
other requests share its batch.

Batching prompts of different lengths changes the numbers a request sees in two places, and in
bfloat16 a difference of one rounding step can flip a greedy token a few dozen tokens later:

- attention over a left-padded cache: the padded keys shift the real ones inside the vector
  lanes of the attention kernel, so the sums are taken in another order;
- the prompt's forward pass: a matrix multiply over 8 x L rows can take another kernel (another
  split of the inner dimension) than one over L rows.

So, measured on this CPU (bf16 weights, tests/test_invariant.py):

1. the prompt minus its last token is run alone (batch 1) for every request, exactly as an
   unbatched request runs it, and the caches are merged, left-padded, into one batch cache;
2. decoding then runs in batch, where the matrix multiplies see two to max_batch_size rows and
   give every row the same bits whatever the number of rows (one row alone takes another kernel:
   a request alone is decoded as two copies of itself), and attention runs per group of rows that
   share their padding, on the unpadded keys only (`rowwise_attention`, registered as
   "rung_rowwise").

Both the batched and the one-request path take these steps, so their greedy outputs are the same.
Models whose layers are not plain full-attention layers (sliding windows, hybrid caches) and
prompt-learning adapters (prefix tuning brings its own cache) keep transformers' plain path.
"""

from __future__ import annotations

import weakref
from typing import Any

ATTN_NAME = "rung_rowwise"
LONG = 512  # keys beyond which decode attention takes its scores in the model's dtype
_registered = False
# the padding plan of the last attention mask seen: every layer of one forward pass gets the same
# mask object, so the plan is computed once per decoding step
_last_plan: tuple[Any, list[tuple[int, list[int]]] | None] = (None, None)


def register() -> None:
    """Make "rung_rowwise" an attention implementation transformers knows (idempotent)."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTN_NAME, rowwise_attention)
    AttentionMaskInterface.register(ATTN_NAME, sdpa_mask)
    _registered = True


def padding_groups(mask: Any, batch: int) -> list[tuple[int, list[int]]] | None:
    """Rows grouped by where their valid keys start, from a (B, 1, Lq, Lk) boolean mask (None:
    no padding). None when some row's valid keys are not one contiguous run to the end (then the
    rows cannot be sliced, and plain attention is used)."""
    global _last_plan
    if mask is None:
        return [(0, list(range(batch)))]
    ref, last_plan = _last_plan
    if ref is not None and ref() is mask:
        return last_plan
    import torch

    last = mask[:, 0, -1, :]
    if last.dtype != torch.bool:
        last = last == 0  # an additive float mask: 0 where attended
    starts = last.int().argmax(-1).tolist()
    counts = last.sum(-1).tolist()
    width = last.shape[-1]
    groups: dict[int, list[int]] = {}
    plan: list[tuple[int, list[int]]] | None = None
    for row, (s, n) in enumerate(zip(starts, counts)):
        if n != width - s:
            break
        groups.setdefault(s, []).append(row)
    else:
        plan = sorted(groups.items())
    _last_plan = (weakref.ref(mask), plan)
    return plan


def rowwise_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                      dropout: float = 0.0, scaling: float | None = None, **kwargs: Any) -> tuple[Any, None]:
    """transformers attention function: one query token per row (decoding) attends to its row's
    unpadded keys only, rows with the same padding together; anything else (the prompt's forward
    pass, masks that are not left padding) goes to transformers' SDPA attention."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, _, q_len, _ = query.shape
    plan = padding_groups(attention_mask, batch) if q_len == 1 and dropout == 0.0 else None
    if plan is None or kwargs.get("position_bias") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    heads, kv_heads, dim = query.shape[1], key.shape[1], query.shape[-1]
    scale = scaling if scaling is not None else dim ** -0.5
    out = torch.empty_like(query)
    for start, rows in plan:
        # rows come sorted by prompt length, so a group is usually a run of rows: a slice
        contiguous = rows == list(range(rows[0], rows[-1] + 1))
        sl: Any = slice(rows[0], rows[-1] + 1) if contiguous else torch.tensor(rows)
        # attention on the unpadded keys, 2-8x faster than SDPA's CPU kernel for one query token;
        # the query heads that share a key/value head are the matmul's rows. Up to LONG keys in
        # float32 (one rounding at the end); beyond, the float32 copies of the keys and values
        # cost more than the attention, so the scores are taken in the model's dtype and only
        # the softmax in float32 (as transformers' eager attention does). A row takes the same
        # branch alone or in a batch: the branch depends on its own unpadded length.
        q = query[sl].reshape(len(rows), kv_heads, heads // kv_heads, dim)
        k, v = key[sl, :, start:], value[sl, :, start:]
        if k.shape[2] <= LONG:
            weights = torch.softmax(torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale, dim=-1)
            att = torch.matmul(weights, v.float()).to(query.dtype)
        else:
            scores = torch.matmul(q, k.transpose(-1, -2)).float() * scale
            att = torch.matmul(torch.softmax(scores, dim=-1).to(v.dtype), v)
        out[sl] = att.reshape(len(rows), heads, 1, dim)
    return out.transpose(1, 2).contiguous(), None


def supports(model: Any) -> bool:
    """Whether `model` (a transformers causal LM, no prompt-learning adapter active) can decode the
    invariant way: its attention implementation is pluggable and every layer attends fully."""
    config = getattr(model, "config", None)
    if config is None or not getattr(model, "_supports_attention_backend", False):
        return False
    types = getattr(config, "layer_types", None)
    if types and any(t != "full_attention" for t in types):
        return False
    return getattr(config, "sliding_window", None) in (None, 0) or not getattr(config, "use_sliding_window", True)


def cache_argument(model: Any) -> str:
    """The name under which `model`'s forward takes the KV cache ("cache" from transformers 5.25,
    "past_key_values" before)."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def prefill(model: Any, prompts: list[list[int]], device: str, cache_name: str) -> Any:
    """Each prompt but its last token run alone (identical prompts once); the caches merged into
    one left-padded DynamicCache for the batch (None when every prompt is a single token).
    `cache_name` is the base model's name for the cache argument (`cache_argument`)."""
    import torch
    from transformers import DynamicCache

    width = max(len(p) for p in prompts) - 1
    if width <= 0:
        return None
    done: dict[tuple[int, ...], list[tuple[Any, Any]]] = {}
    per_prompt: list[list[tuple[Any, Any]]] = []
    for p in prompts:
        key = tuple(p[:-1])
        if key not in done:
            if not key:
                done[key] = []
            else:
                cache = DynamicCache()
                model(input_ids=torch.tensor([key], device=device), use_cache=True, logits_to_keep=1,
                      **{cache_name: cache})
                done[key] = [(layer.keys, layer.values) for layer in cache.layers]
        per_prompt.append(done[key])
    template = next(kv for kv in per_prompt if kv)
    merged = DynamicCache()
    for li, (k0, v0) in enumerate(template):
        ks, vs = [], []
        for kv in per_prompt:
            k, v = kv[li] if kv else (k0[:, :, :0], v0[:, :, :0])
            pad = width - k.shape[2]
            if pad:
                k = torch.cat([k.new_zeros(k.shape[0], k.shape[1], pad, k.shape[3]), k], dim=2)
                v = torch.cat([v.new_zeros(v.shape[0], v.shape[1], pad, v.shape[3]), v], dim=2)
            ks.append(k)
            vs.append(v)
        merged.update(torch.cat(ks), torch.cat(vs), li)
    return merged
