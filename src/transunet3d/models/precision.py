"""Which floating-point precision a network runs in, and the autocast context for it."""

from __future__ import annotations

import contextlib

import torch


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic units (AVX512-BF16 or AMX), where bf16 autocast pays off.

    Elsewhere oneDNN emulates bf16 and it is slower than fp32. The probes are private torch helpers, so a torch
    without them counts as no.
    """
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


def resolve_precision(setting: str, device: torch.device) -> str:
    """"fp32", "bf16" or "fp16" for a config setting that may be "auto".

    auto: bf16 where the hardware computes it (CUDA, CPUs with AVX512-BF16 or AMX), fp32 elsewhere.
    """
    if setting == "auto":
        native = device.type == "cuda" or (device.type == "cpu" and cpu_computes_bf16())
        return "bf16" if native else "fp32"
    return setting


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed-precision autocast for "bf16"/"fp16"; no change for "fp32"."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
