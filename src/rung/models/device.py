"""Where a local model runs: the device, the weights' dtype and the CPU threads."""

from __future__ import annotations

import os

from rung.errors import ModelError

_DTYPES = ("float32", "bfloat16", "float16")


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bfloat16 instructions (Linux: from /proc/cpuinfo flags)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def choose_device(device: str) -> str:
    """"auto" -> "cuda" when torch sees a GPU, else "cpu"; an explicit device is checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r}: torch {torch.__version__} sees no CUDA GPU; use device: cpu or auto")
    return device


def choose_dtype(dtype: str, device: str) -> str:
    """The weights' dtype name for a config dtype ("auto" or a name) on `device`."""
    if dtype != "auto":
        if dtype not in _DTYPES:
            raise ModelError(f"dtype {dtype!r}: expected auto, {', '.join(_DTYPES)}")
        return dtype
    if device.startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device == "cpu" and cpu_has_bf16():
        return "bfloat16"
    return "float32"


def env_threads() -> int | None:
    """RUNG_THREADS as a positive int (the torch CPU threads to use), else None."""
    value = os.environ.get("RUNG_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None
