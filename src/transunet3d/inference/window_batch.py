"""How a sliding window feeds the network: the memory layout of its inputs and how many go through together.

Both are choices per device and network size, made from measurements (docs/benchmarks.md, "Prediction at paper
scale"), not constants:

- Layout. Channels-last: on CUDA it is what cuDNN's fastest 3D kernels read; on the CPU in fp32 oneDNN then
  convolves every layer without reordering its input and output, given norms and upsampling that keep the layout
  (models/norm.py, models/upsample.py): full U-Net, one 128^3 window, 4.4-5.5 s at 1.5 GB peak against 4.9-6.5 s
  at 2.2 GB contiguous; tiny variants at 64^3 in batches of 4, 15-25% faster. In bf16 on the CPU the norms use
  torch's kernel, which copies a channels-last input, and the two layouts ran alike, so contiguous stays.
- Batch. Batching pays while a batch is small: on the CPU it amortises per-call costs for small windows (tiny
  encoder at 64^3: 151 ms per window alone, 90 ms in pairs) and costs time for large ones (full U-Net at 128^3:
  5.1 s alone, 6.0 s per window in pairs), as the batch's full-resolution features outgrow the caches. And every
  window in flight holds its activations: the batch is never larger than the memory there is, or a budget, allows.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from transunet3d.models.spec import ArchitectureSpec

# Peak bytes of one window's forward pass in inference per byte of one full-resolution feature map (the first
# stage's channels x the window's voxels x the element size), measured on the CPU in fp32 with freed blocks kept
# in the heap (memory.py) and rounded up: U-Net and ViT-encoder 7.9 (batches of 1 and 2), the query decoder's
# variants 17-21 (its masks are full-resolution, one per query).
ACTIVATION_FACTOR = {False: 9.0, True: 22.0}  # by whether the network has the query decoder
CPU_BATCH_FEATURES = 256 * 2**20  # on the CPU, batching pays while a batch's full-resolution features stay under this
# Beyond 4 windows a batch no longer paid on the CPU (tiny encoder at 64^3: 90 ms per window in batches of 2 and
# 4, 97 in 8; full U-Net at 64^3: 570 and 564 ms in 4 and 8) and held more memory; a GPU gets no more until measured.
MOST_WINDOWS = 4
AVAILABLE_SHARE = 0.8  # of the memory available, what the windows in flight may take by default


@dataclass(frozen=True)
class WindowBatch:
    """The batch chosen for one network and device, and why."""

    size: int
    window_bytes: int  # estimated peak activation memory of one window
    budget_bytes: int  # memory the windows in flight may take
    over_budget: bool  # even one window needs more than the budget (it runs anyway)


def network_layout(device: torch.device, precision: str) -> torch.memory_format:
    """The memory format for the network's inputs and weights on `device` in `precision` ("fp32", "bf16", ...;
    see the module docstring)."""
    if device.type == "cpu" and precision != "fp32":
        return torch.contiguous_format
    return torch.channels_last_3d


def window_bytes(spec: ArchitectureSpec, patch: tuple[int, int, int], element_bytes: int) -> int:
    """Estimated peak activation memory (bytes) of one window's forward pass in inference."""
    feature_map = spec.features[0] * math.prod(patch) * element_bytes
    return int(ACTIVATION_FACTOR[spec.use_query_decoder] * feature_map)


def choose_window_batch(spec: ArchitectureSpec, patch: tuple[int, int, int], element_bytes: int,
                        device: torch.device, max_memory_bytes: int | None = None) -> WindowBatch:
    """How many (window, view) inputs of `patch` to run together on `device` (a volume with fewer runs them all).

    Args:
        element_bytes: bytes per activation in the network's precision (4 for fp32, 2 for bf16 or fp16).
        max_memory_bytes: what the windows in flight may take; by default a share of the memory available.
    """
    one = window_bytes(spec, patch, element_bytes)
    budget = max_memory_bytes if max_memory_bytes is not None else int(AVAILABLE_SHARE * available_memory(device))
    by_memory = budget // one
    by_device = MOST_WINDOWS
    if device.type != "cuda":
        by_device = min(by_device, CPU_BATCH_FEATURES // (spec.features[0] * math.prod(patch) * element_bytes))
    size = max(1, min(by_memory, by_device))
    return WindowBatch(int(size), one, int(budget), by_memory < 1)


def available_memory(device: torch.device) -> int:
    """Bytes that can be allocated now: free memory of a CUDA device; on the CPU the system's available memory
    (Linux's MemAvailable, else the free physical pages)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
