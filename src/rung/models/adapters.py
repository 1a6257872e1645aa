"""PEFT adapters over one base model: read, check against the base, keep several resident.

LoRA adapters share one PeftModel (PEFT injects their layers into the base and switches between
them with set_adapter). Prompt-learning adapters (prefix tuning, prompt tuning, p-tuning) leave
the base untouched and live in one PeftModel per type over the same base; while one runs, the
LoRA layers are disabled. PEFT refuses to mix adapter types in one PeftModel, hence the split.

The checks run before PEFT touches the model, so a wrong adapter fails with one clear line
instead of loading as a silent no-op: target_modules that match nothing, weights whose shapes
do not fit the base (an adapter made for another base), weights missing for modules the
adapter's config selects.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rung.errors import AdapterError
from rung.models.embedded import hash_files

LORA_TYPES = frozenset({"LORA"})
PROMPT_TYPES = frozenset({"PREFIX_TUNING", "PROMPT_TUNING", "P_TUNING"})
_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
_LORA_KEY = re.compile(
    r"^(?:base_model\.model\.)?(?P<module>.+?)\."
    r"(?P<part>lora_A|lora_B|lora_embedding_A|lora_embedding_B|lora_magnitude_vector)(?:\.weight)?$")


@dataclass(frozen=True)
class AdapterInfo:
    """What adapter_config.json says about an adapter folder."""

    name: str
    path: Path
    peft_type: str
    base_model: str | None
    weights: Path
    config: Any  # the peft PeftConfig subclass

    @property
    def is_prompt_learning(self) -> bool:
        return self.peft_type in PROMPT_TYPES

    def fingerprint(self) -> str:
        """sha256 over adapter_config.json and the weights file."""
        return hash_files([self.path / "adapter_config.json", self.weights])


def read_adapter(name: str, path: Path) -> AdapterInfo:
    """Read an adapter folder (adapter_config.json + weights); AdapterError when it is not one."""
    if not path.is_dir():
        raise AdapterError(f"adapter {name!r}: folder {path} does not exist")
    cfg_file = path / "adapter_config.json"
    if not cfg_file.is_file():
        raise AdapterError(f"adapter {name!r}: {path} has no adapter_config.json (not a PEFT adapter folder)")
    try:
        raw = json.loads(cfg_file.read_text(encoding="utf-8"))
    except ValueError as e:
        raise AdapterError(f"adapter {name!r}: {cfg_file} is not valid JSON: {e}") from None
    peft_type = str(raw.get("peft_type", "")).upper()
    if peft_type not in LORA_TYPES | PROMPT_TYPES:
        raise AdapterError(f"adapter {name!r}: peft_type {raw.get('peft_type')!r} in {cfg_file} is not "
                           f"supported (rung loads LORA, PREFIX_TUNING, PROMPT_TUNING, P_TUNING)")
    weights = next((path / f for f in _WEIGHT_FILES if (path / f).is_file()), None)
    if weights is None:
        raise AdapterError(f"adapter {name!r}: {path} has no adapter_model.safetensors (or .bin)")
    from peft import PeftConfig

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = PeftConfig.from_pretrained(str(path))
    except (ValueError, TypeError, KeyError) as e:
        raise AdapterError(f"adapter {name!r}: {cfg_file} is not a valid PEFT config: {e}") from None
    return AdapterInfo(name, path, peft_type, raw.get("base_model_name_or_path"), weights, config)


def adapter_fingerprint(name: str, path: Path) -> str:
    """sha256 over an adapter folder's config and weights, without reading them with PEFT."""
    weights = next((path / f for f in _WEIGHT_FILES if (path / f).is_file()), None)
    if weights is None or not (path / "adapter_config.json").is_file():
        raise AdapterError(f"adapter {name!r}: {path} is not a PEFT adapter folder "
                           f"(needs adapter_config.json and adapter_model.safetensors)")
    return hash_files([path / "adapter_config.json", weights])


def weight_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of an adapter weights file (safetensors: read without loading)."""
    if weights.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    import torch

    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    return {k: tuple(v.shape) for k, v in state.items()}


# ---------------------------------------------------------------- checks against the base

@dataclass(frozen=True)
class _Layer:
    kind: str  # "linear" | "embedding"
    n_in: int
    n_out: int


def base_layers(model: Any) -> dict[str, _Layer]:
    """Module name -> (kind, in, out) for the base's modules LoRA can adapt."""
    import torch

    layers: dict[str, _Layer] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            layers[name] = _Layer("linear", mod.in_features, mod.out_features)
        elif isinstance(mod, torch.nn.Embedding):
            layers[name] = _Layer("embedding", mod.num_embeddings, mod.embedding_dim)
        elif type(mod).__name__ == "Conv1D" and getattr(mod, "weight", None) is not None:
            n_in, n_out = mod.weight.shape  # transformers' Conv1D stores (in, out)
            layers[name] = _Layer("linear", int(n_in), int(n_out))
    return layers


def check_lora(info: AdapterInfo, layers: dict[str, _Layer], param_shapes: dict[str, tuple[int, ...]],
               base_id: str) -> None:
    """Raise AdapterError when the LoRA adapter does not fit the base (see module docstring)."""
    cfg = info.config
    shapes = weight_shapes(info.weights)
    in_file: set[str] = set()
    for key, shape in shapes.items():
        m = _LORA_KEY.match(key)
        if m is None:  # e.g. modules_to_save: a full copy of a base parameter
            pname = key.removeprefix("base_model.model.")
            if pname in param_shapes and tuple(param_shapes[pname]) != shape:
                raise AdapterError(f"adapter {info.name!r}: {pname} is {list(shape)} but the base "
                                   f"{base_id} has {list(param_shapes[pname])}: made for another base")
            continue
        module, part = m.group("module"), m.group("part")
        in_file.add(module)
        layer = layers.get(module)
        if layer is None:
            raise AdapterError(f"adapter {info.name!r}: has weights for {module}, which the base "
                               f"{base_id} does not have: made for another base")
        expected = {"lora_A": (None, layer.n_in), "lora_B": (layer.n_out, None),
                    "lora_embedding_A": (None, layer.n_in), "lora_embedding_B": (layer.n_out, None),
                    "lora_magnitude_vector": (layer.n_out,)}[part]
        if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected, shape)):
            raise AdapterError(
                f"adapter {info.name!r}: {module}.{part} is {list(shape)} but the base {base_id}'s "
                f"{module} is {layer.n_in}->{layer.n_out}: made for another base (sizes differ)")
    targets = cfg.target_modules
    if targets is None or targets == "all-linear":
        if not in_file and not getattr(cfg, "target_parameters", None):
            raise AdapterError(f"adapter {info.name!r}: {info.weights.name} holds no LoRA weights")
        return
    from peft.tuners.tuners_utils import check_target_module_exists

    selected = {n for n in layers if check_target_module_exists(cfg, n)}
    if not selected:
        some = sorted({n.rsplit(".", 1)[-1] for n, layer in layers.items() if layer.kind == "linear"})[:8]
        shown = sorted(targets) if isinstance(targets, (set, list, tuple)) else targets
        raise AdapterError(f"adapter {info.name!r}: target_modules {shown} match no layer of the base "
                           f"{base_id} (its linear layers include {', '.join(some)})")
    missing = sorted(selected - in_file)
    if missing:
        raise AdapterError(f"adapter {info.name!r}: no weights for {len(missing)} of the {len(selected)} "
                           f"modules its target_modules select in {base_id} (e.g. {missing[0]}): "
                           f"made for another base")


def check_prompt(info: AdapterInfo, base_config: Any, base_id: str) -> None:
    """Raise AdapterError when a prompt-learning adapter's sizes do not fit the base."""
    try:
        from peft.utils.other import _prepare_prompt_learning_config
    except ImportError:  # the sizes are then checked by PEFT while loading
        return
    expected = copy.deepcopy(info.config)
    expected.num_layers = expected.token_dim = expected.num_attention_heads = None
    try:
        expected = _prepare_prompt_learning_config(expected, base_config)
    except ValueError:
        return
    for field in ("num_layers", "token_dim", "num_attention_heads"):
        got, want = getattr(info.config, field, None), getattr(expected, field, None)
        if got is not None and want is not None and got != want:
            raise AdapterError(f"adapter {info.name!r}: {field} is {got} but the base {base_id} needs "
                               f"{want}: made for another base")


def base_name_differs(info: AdapterInfo, base_id: str) -> bool:
    """A loose name comparison (a warning-level signal only; the shape checks are the real ones)."""
    def norm(s: str) -> str:
        s = s.strip().lower().rstrip("/").replace("\\", "/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        s = re.sub(r"\.gguf$", "", s)
        s = re.sub(r"-[0-9a-f]{12}$", "", s)
        return re.sub(r"\.(q\d\w*|f16|f32|bf16)$", "", s)

    if not info.base_model:
        return False
    a, b = norm(info.base_model), norm(base_id)
    return bool(a and b and a not in b and b not in a)


# ---------------------------------------------------------------- resident adapters

class AdapterStack:
    """Several adapters resident over one base model, chosen by name for each generate call."""

    def __init__(self, base: Any, base_id: str, device: str) -> None:
        self.base = base
        self.base_id = base_id
        self.device = device
        self._layers = base_layers(base)  # before any injection: names are the base's own
        self._params = {n: tuple(p.shape) for n, p in base.named_parameters()}
        self._lora: Any = None  # PeftModel with every LoRA adapter
        self._prompt: dict[str, Any] = {}  # peft_type -> PeftModel
        self._internal: dict[str, str] = {}  # user name -> name inside PEFT
        self.infos: dict[str, AdapterInfo] = {}
        self.warnings: list[str] = []

    def names(self) -> list[str]:
        return list(self.infos)

    def add(self, name: str, path: Path) -> AdapterInfo:
        """Check and load an adapter; AdapterError (one line) when it cannot apply to the base."""
        if name in self.infos:
            raise AdapterError(f"adapter {name!r}: already loaded (from {self.infos[name].path})")
        info = read_adapter(name, path)
        if info.is_prompt_learning:
            check_prompt(info, self.base.config, self.base_id)
        else:
            check_lora(info, self._layers, self._params, self.base_id)
        if base_name_differs(info, self.base_id):
            self.warnings.append(f"adapter {name!r} was trained on {info.base_model}, not {self.base_id} "
                                 f"(its shapes fit, so it is loaded)")
        # PEFT matches adapter names as substrings of its own prefixes ("lora_"), so use safe ones
        internal = f"rung{len(self._internal)}"
        from peft import PeftModel

        holder = self._lora if not info.is_prompt_learning else self._prompt.get(info.peft_type)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if holder is None:
                    holder = PeftModel.from_pretrained(self.base, str(path), adapter_name=internal,
                                                       is_trainable=False, torch_device=self.device)
                    holder.eval()
                else:
                    holder.load_adapter(str(path), adapter_name=internal, is_trainable=False,
                                        torch_device=self.device)
        except (RuntimeError, ValueError, KeyError, OSError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise AdapterError(f"adapter {name!r} ({path}): PEFT could not load it: {first}") from None
        if info.is_prompt_learning:
            bridge_cache_name(holder)
            self._prompt[info.peft_type] = holder
        else:
            self._lora = holder
        self._internal[name] = internal
        self.infos[name] = info
        return info

    @contextlib.contextmanager
    def use(self, name: str | None) -> Iterator[Any]:
        """The module whose generate() answers with adapter `name` (None: the base, adapters off)."""
        if name is not None and name not in self.infos:
            raise AdapterError(f"adapter {name!r} is not loaded; loaded: {', '.join(self.infos) or '(none)'}")
        lora_off = self._lora.disable_adapter() if self._lora is not None else contextlib.nullcontext()
        if name is None:
            with lora_off:
                yield self.base
            return
        info = self.infos[name]
        if not info.is_prompt_learning:
            self._lora.set_adapter(self._internal[name])
            yield self._lora
            return
        holder = self._prompt[info.peft_type]
        holder.set_adapter(self._internal[name])
        with lora_off:
            yield holder


def bridge_cache_name(holder: Any) -> None:
    """Make PEFT's prompt-learning generation work where transformers renamed the generation cache.

    transformers 5.25 passes the KV cache to prepare_inputs_for_generation / forward as `cache`
    (`past_key_values` is deprecated); PEFT 0.21 still reads and writes `past_key_values`. So PEFT
    never sees the cache, puts the prefix's keys and values under the old name, and the model,
    given both, keeps the empty `cache` and drops the prefix: every prefix-tuned adapter silently
    answers exactly like the base model. This renames the cache to the old name for PEFT's logic and
    back to the new one for the model. A no-op where the base model does not take `cache`."""
    import functools
    import inspect

    base_prepare = getattr(holder, "base_model_prepare_inputs_for_generation", None)
    peft_prepare = getattr(holder, "prepare_inputs_for_generation", None)
    if base_prepare is None or peft_prepare is None or getattr(peft_prepare, "_rung_bridged", False):
        return
    try:
        takes_cache = "cache" in inspect.signature(base_prepare).parameters
    except (TypeError, ValueError):
        return
    if not takes_cache:
        return

    @functools.wraps(base_prepare)
    def base_side(*args: Any, **kwargs: Any) -> Any:
        if "past_key_values" in kwargs and "cache" not in kwargs:
            kwargs["cache"] = kwargs.pop("past_key_values")
        out = base_prepare(*args, **kwargs)
        if "cache" in out and "past_key_values" not in out:
            out["past_key_values"] = out.pop("cache")
        return out

    @functools.wraps(peft_prepare)
    def peft_side(*args: Any, **kwargs: Any) -> Any:
        if "cache" in kwargs and "past_key_values" not in kwargs:
            kwargs["past_key_values"] = kwargs.pop("cache")
        out = peft_prepare(*args, **kwargs)
        if "past_key_values" in out and "cache" not in out:
            out["cache"] = out.pop("past_key_values")
        return out

    peft_side._rung_bridged = True  # type: ignore[attr-defined]
    holder.base_model_prepare_inputs_for_generation = base_side
    holder.prepare_inputs_for_generation = peft_side
