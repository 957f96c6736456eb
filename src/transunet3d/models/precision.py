"""Which floating-point precision a network runs in, and the autocast context for it."""

from __future__ import annotations

import contextlib

import torch


def resolve_precision(setting: str, device: torch.device) -> str:
    """"fp32", "bf16" or "fp16" for a config setting that may be "auto" (bf16 on CUDA, fp32 elsewhere)."""
    if setting == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return setting


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed-precision autocast for "bf16"/"fp16"; no change for "fp32"."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
