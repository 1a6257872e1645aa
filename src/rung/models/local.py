"""The `local` backend: a transformers causal LM on this machine (CPU, or a CUDA GPU when present),
with PEFT adapters resident and chosen per request.

Requests are answered in true batches: grouped by adapter and decoding parameters, sorted by
prompt length (less padding), left-padded, and cut into batches of at most max_batch_size; the
answers come back in the original order. Token counts exclude padding and stop at the end of
sequence; ttft_s is the time to the batch's first token, total_s the batch's wall time.

dtype "auto": bfloat16 weights on a GPU that supports them (float16 otherwise) and on CPUs with
native bf16 instructions (AVX512-BF16 / AMX), where they are faster than float32; float32 on
other CPUs. (Measured on a 2-core AVX512-BF16 CPU, benchmarks/generation.py: bf16 weights ran
1.6-1.7x float32's tokens/s one request at a time and 2.6-3.6x at batch 8; bf16 autocast over
float32 weights ran 0.5-0.6x float32 one at a time and ~1.2x at batch 8, so it is not used.)

Batch-invariant decoding (CPU, the default; rung.models.invariant): every prompt is run alone
and decoding runs in batch on the merged caches, so an answer is the same whether its request
ran alone or with seven others. Measured (benchmarks/generation.py, 2-core AVX512-BF16, bf16,
8 prompts x 64 tokens): 101-102 tok/s batched with 8/8 answers equal to the sequential ones;
the plain batched generate (batch_invariant: false) ran 101-141 tok/s with 2/8 equal.

Seeded sampling is reproducible for the same list of requests: the seed is set before each
batch, so a sampled answer depends on which requests share its batch.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rung.config import EMBEDDED_LLM, ModelConfig
from rung.core import Message
from rung.errors import AdapterError, ModelError, ModelNotFoundError
from rung.models import invariant
from rung.models.base import Completion, GenRequest, ProgressCallback
from rung.models.device import choose_device, choose_dtype, env_threads
from rung.models.embedded import ResolvedModel, quiet_loading, resolve_llm


def plan_batches(requests: Sequence[GenRequest], lengths: Sequence[int], max_batch_size: int) -> list[list[int]]:
    """Indices of `requests` cut into batches: one adapter and one set of decoding parameters
    per batch, prompts of similar length together (sorted by length), at most max_batch_size."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault((r.adapter, r.params), []).append(i)
    batches = []
    for idx in groups.values():
        idx.sort(key=lambda i: (lengths[i], i))
        batches += [idx[k:k + max_batch_size] for k in range(0, len(idx), max_batch_size)]
    return batches


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _prepare_tokenizer(tok: Any, model_id: str) -> None:
    """Left padding for batched generation; the eos token pads when there is no pad token."""
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        if tok.eos_token is None:
            raise ModelError(f"model {model_id}: its tokenizer has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token


class LocalModel:
    """A transformers model (HF folder, GGUF file, hub id or embedded model) with adapters.

    Nothing heavy happens until the first generate() or an explicit load()."""

    def __init__(self, path: str = EMBEDDED_LLM, *, root: Path | None = None, gguf_file: str | None = None,
                 dtype: str = "auto", device: str = "auto", max_batch_size: int = 8,
                 adapters: dict[str, str | Path] | None = None, threads: int | None = None,
                 batch_invariant: bool = True) -> None:
        # CPU threads: set it when the machine is shared (oversubscribed torch threads spin and
        # can be 10x slower); None keeps torch's default (one per core)
        self.threads = threads or env_threads()
        self.resolved: ResolvedModel = resolve_llm(path, root, gguf_file)
        self.max_batch_size = max_batch_size
        self._dtype_cfg = dtype
        self._device_cfg = device
        self._root = root
        self._adapter_paths: dict[str, Path] = {}
        for name, p in (adapters or {}).items():
            self._adapter_paths[name] = self._adapter_path(p)
        # on CPU, answers independent of batch composition (rung.models.invariant); where the
        # model's layers allow it
        self.batch_invariant = batch_invariant
        self._invariant = False
        self._cache_name = "past_key_values"  # the base model's name for the KV cache argument
        self._model: Any = None
        self._tok: Any = None
        self._stack: Any = None
        self._base_hash: str | None = None
        self.device: str | None = None
        self.dtype: str | None = None
        # one load and one generation at a time: a model is shared by every pipeline on it
        # (rung.models.pool), possibly from several threads, and the adapter in use is its state
        self._lock = threading.RLock()

    @classmethod
    def from_config(cls, cfg: ModelConfig, root: Path) -> LocalModel:
        """From a rung.yaml model entry; relative paths (model, adapters) are taken from root."""
        if cfg.backend != "local":
            raise ModelError(f"model backend is {cfg.backend!r}, not 'local'")
        return cls(cfg.path, root=root, gguf_file=cfg.gguf_file, dtype=cfg.dtype, device=cfg.device,
                   max_batch_size=cfg.max_batch_size, adapters=dict(cfg.adapters), threads=cfg.threads,
                   batch_invariant=cfg.batch_invariant)

    @classmethod
    def from_loaded(cls, module: Any, tokenizer: Any, path: str, *, root: Path | None = None,
                    gguf_file: str | None = None, max_batch_size: int = 8) -> LocalModel:
        """A LocalModel that answers with an already loaded module (for instance a model being
        trained, PEFT wrapper included) through the same generation code; `path` names its base.
        It has no adapters of its own (requests must use adapter None)."""
        obj = cls(path, root=root, gguf_file=gguf_file, max_batch_size=max_batch_size)
        _prepare_tokenizer(tokenizer, obj.model_id)
        param = next(module.parameters())
        obj._model, obj._tok, obj._stack = module, tokenizer, _FixedModule(module)
        obj.device = str(param.device)
        obj.dtype = str(param.dtype).removeprefix("torch.")
        return obj

    def _adapter_path(self, p: str | Path) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() or self._root is None else self._root / path

    # ------------------------------------------------------------ protocol

    @property
    def model_id(self) -> str:
        return self.resolved.model_id

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def warnings(self) -> list[str]:
        """Warning-level notes (e.g. an adapter trained on a base with another name)."""
        return list(self._stack.warnings) if self._stack is not None else []

    def adapters(self) -> list[str]:
        return list(self._adapter_paths)

    def fingerprint(self, adapter: str | None = None) -> str:
        """sha256 over the weight files, the compute dtype/device and the adapter's weights."""
        if self._base_hash is None:
            self._base_hash = self.resolved.fingerprint()
        device = self.device or choose_device(self._device_cfg)
        dtype = self.dtype or choose_dtype(self._dtype_cfg, device)
        parts = [self._base_hash, f"{device.split(':')[0]}/{dtype}"]
        if self.batch_invariant and device == "cpu":
            parts.append("batch-invariant")  # its greedy answers differ from the plain path's
        if adapter is not None:
            if adapter not in self._adapter_paths:
                raise AdapterError(f"adapter {adapter!r} is not configured for {self.model_id}; "
                                   f"adapters: {', '.join(self._adapter_paths) or '(none)'}")
            from rung.models.adapters import adapter_fingerprint

            parts.append(adapter_fingerprint(adapter, self._adapter_paths[adapter]))
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

    def load(self) -> LocalModel:
        """Load the weights (converting a GGUF file once) and every configured adapter."""
        if self._model is not None:
            return self
        with self._lock:
            if self._model is None:
                self._load()
        return self

    def _load(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rung.models.adapters import AdapterStack

        device = choose_device(self._device_cfg)
        dtype = choose_dtype(self._dtype_cfg, device)
        source = self.resolved.pretrained_path()
        try:
            import torch

            if self.threads and device == "cpu":
                torch.set_num_threads(self.threads)
            with quiet_loading():
                tok = AutoTokenizer.from_pretrained(source)
                model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype))
        except OSError as e:
            raise ModelNotFoundError(f"model {self.model_id}: could not be loaded: {_first_line(e)}") from e
        except (ValueError, KeyError, RuntimeError) as e:
            raise ModelError(f"model {self.model_id}: could not be loaded: {_first_line(e)}") from e
        model.to(device).eval()
        if self.batch_invariant and device == "cpu" and invariant.supports(model):
            invariant.register()
            model.set_attn_implementation(invariant.ATTN_NAME)
            self._invariant = True
            self._cache_name = invariant.cache_argument(model)
        _prepare_tokenizer(tok, self.model_id)
        stack = AdapterStack(model, self.model_id, device)
        for name, path in self._adapter_paths.items():
            stack.add(name, path)
        self._model, self._tok, self._stack = model, tok, stack
        self.device, self.dtype = device, dtype

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Make adapter `name` (a PEFT folder) available to requests; checked and loaded now if
        the model is loaded, else at load()."""
        if name in self._adapter_paths:
            raise AdapterError(f"adapter {name!r}: already configured (from {self._adapter_paths[name]})")
        p = self._adapter_path(path)
        if self._stack is not None:
            self._stack.add(name, p)
        elif not p.is_dir():
            raise AdapterError(f"adapter {name!r}: folder {p} does not exist")
        self._adapter_paths[name] = p

    def adapter_paths(self) -> dict[str, Path]:
        """The folder of every adapter configured on this model, by name."""
        return dict(self._adapter_paths)

    def adapter_conflicts(self, adapters: Mapping[str, str | Path]) -> list[str]:
        """The names in `adapters` already configured on this model with another folder."""
        return [name for name, path in adapters.items()
                if name in self._adapter_paths and self._adapter_paths[name] != self._adapter_path(path)]

    def add_adapters(self, adapters: Mapping[str, str | Path]) -> None:
        """Make more adapters resident (a base shared by pipelines that name different adapters):
        loaded now when the model is loaded, else at load() like the configured ones. A name
        already configured with the same folder is kept; with another folder, AdapterError."""
        with self._lock:
            taken = self.adapter_conflicts(adapters)
            if taken:
                raise AdapterError(f"adapter {taken[0]!r}: already configured on {self.model_id} "
                                   f"from {self._adapter_paths[taken[0]]}, not {adapters[taken[0]]}")
            for name, path in adapters.items():
                p = self._adapter_path(path)
                if name in self._adapter_paths:
                    continue
                if self._stack is not None:
                    self._stack.add(name, p)
                self._adapter_paths[name] = p

    # ------------------------------------------------------------ generation

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """Token ids of the chat-templated prompt, ending with the assistant's turn."""
        self.load()
        tok = self._tok
        msgs = [dict(m) for m in messages]
        if tok.chat_template:
            from jinja2 import TemplateError

            try:
                text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            except (TemplateError, ValueError) as e:
                raise ModelError(f"model {self.model_id}: its chat template rejected the messages: "
                                 f"{_first_line(e)}") from e
            return list(tok(text, add_special_tokens=False)["input_ids"])
        text = "".join(f"{m.get('role', 'user')}: {m.get('content', '')}\n" for m in msgs) + "assistant:"
        return list(tok(text)["input_ids"])

    def generate(self, requests: list[GenRequest], progress: ProgressCallback | None = None) -> list[Completion]:
        """Answer every request, in order (see the module docstring for how batches are made)."""
        if not requests:
            return []
        with self._lock:
            return self._generate(requests, progress)

    def _generate(self, requests: list[GenRequest], progress: ProgressCallback | None) -> list[Completion]:
        self.load()
        for r in requests:
            if r.adapter is not None and r.adapter not in self._stack.infos:
                raise AdapterError(f"adapter {r.adapter!r} is not loaded on {self.model_id}; "
                                   f"adapters: {', '.join(self._stack.infos) or '(none)'}")
        prompts = [self.prompt_ids(r.messages) for r in requests]
        limit = getattr(self._model.config, "max_position_embeddings", None)
        results: list[Completion | None] = [None] * len(requests)
        done = 0
        for batch in plan_batches(requests, [len(p) for p in prompts], self.max_batch_size):
            first = requests[batch[0]]
            fits = [i for i in batch if limit is None or len(prompts[i]) + first.params.max_new_tokens <= limit]
            for i in batch:
                if i not in fits:
                    msg = (f"prompt of {len(prompts[i])} tokens + max_new_tokens "
                           f"{first.params.max_new_tokens} exceeds the model's context of {limit}")
                    results[i] = self._error(requests[i], len(prompts[i]), msg)
            if fits:
                for i, c in zip(fits, self._run_batch([prompts[i] for i in fits], first)):
                    results[i] = c
            for _ in batch:
                done += 1
                if progress is not None:
                    progress(done, len(requests))
        return [c for c in results if c is not None]

    def _error(self, r: GenRequest, tokens_in: int, message: str) -> Completion:
        return Completion("", tokens_in, 0, 0.0, 0.0, self.model_id, r.adapter,
                          finish_reason="error", error=message)

    def _run_batch(self, prompts: list[list[int]], req: GenRequest) -> list[Completion]:
        import torch

        tok, params = self._tok, req.params
        start = time.perf_counter()
        invariant_path = self._invariant and not (
            req.adapter is not None and self._stack.infos[req.adapter].is_prompt_learning)
        # one request alone is decoded as two copies of itself: a one-row matrix multiply takes
        # another CPU kernel than two to eight rows, and rounds differently (rung.models.invariant)
        rows = prompts * 2 if invariant_path and len(prompts) == 1 else prompts
        enc = tok.pad({"input_ids": rows}, padding=True, return_tensors="pt").to(self.device)
        width = enc["input_ids"].shape[1]
        eos = self._eos_ids()
        clock = _first_token_clock()
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "pad_token_id": tok.pad_token_id,
                                  "eos_token_id": sorted(eos), "streamer": clock, "do_sample": not params.greedy}
        if not params.greedy:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=tok)
        if params.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = params.repetition_penalty
        if params.json_schema is not None:  # constrained decoding (one schema per batch)
            import json

            from transformers import LogitsProcessorList

            from rung.models.constrained import JsonGrammar

            grammar = JsonGrammar.from_schema(json.loads(params.json_schema))
            kwargs["logits_processor"] = LogitsProcessorList(
                [grammar.logits_processor(tok, params.max_new_tokens)])
        try:
            torch.manual_seed(params.seed)
            with self._stack.use(req.adapter) as module, torch.inference_mode(), quiet_loading():
                if invariant_path:
                    cache = invariant.prefill(module, rows, str(self.device), self._cache_name)
                    if cache is not None:
                        kwargs[self._cache_name] = cache
                out = module.generate(**enc, **kwargs)
        except RuntimeError as e:
            msg = f"generation failed: {_first_line(e)}"
            return [self._error(req, len(p), msg) for p in prompts]
        total = time.perf_counter() - start
        ttft = (clock.first - start) if clock.first is not None else total
        return [self._completion(req, len(p), out[row, width:].tolist(), eos, ttft, total, len(prompts))
                for row, p in enumerate(prompts)]

    def _eos_ids(self) -> set[int]:
        eos = self._model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self._tok.eos_token_id is not None:
            ids.add(self._tok.eos_token_id)
        return ids

    def _completion(self, req: GenRequest, tokens_in: int, gen: list[int], eos: set[int], ttft: float,
                    total: float, batch_size: int) -> Completion:
        ends = eos | {self._tok.pad_token_id}
        k = next((j for j, t in enumerate(gen) if t in ends), len(gen))
        text = self._tok.decode(gen[:k], skip_special_tokens=True)
        cut = min((text.find(s) for s in req.params.stop if s and s in text), default=-1)
        if cut >= 0:
            text, tokens_out, reason = text[:cut], k, "stop"  # what follows is padding
        elif k < len(gen):
            tokens_out, reason = k + (1 if gen[k] in eos else 0), "stop"  # count the eos token
        else:
            tokens_out, reason = len(gen), "length"
        return Completion(text, tokens_in, tokens_out, ttft, total, self.model_id, req.adapter,
                          finish_reason=reason,
                          extra={"batch_size": batch_size, "device": self.device, "dtype": self.dtype})


class _FixedModule:
    """The adapter stack of LocalModel.from_loaded: always the one module it was given."""

    def __init__(self, module: Any) -> None:
        from rung.models.adapters import bridge_cache_name

        config = getattr(module, "active_peft_config", None)
        if getattr(config, "is_prompt_learning", False):
            bridge_cache_name(module)  # a prefix-tuned module being trained, evaluated as it is
        self.module = module
        self.infos: dict[str, Any] = {}
        self.warnings: list[str] = []

    def use(self, name: str | None) -> Any:
        import contextlib

        if name is not None:
            raise AdapterError(f"adapter {name!r}: this model answers with one fixed module only")
        return contextlib.nullcontext(self.module)


def _first_token_clock() -> Any:
    """A generate() streamer that only notes when the first generated tokens arrive."""
    from transformers.generation.streamers import BaseStreamer

    class _Clock(BaseStreamer):
        def __init__(self) -> None:
            self.calls = 0
            self.first: float | None = None

        def put(self, value: Any) -> None:
            self.calls += 1
            if self.calls == 2:  # the first call carries the prompt
                self.first = time.perf_counter()

        def end(self) -> None:
            pass

    return _Clock()

