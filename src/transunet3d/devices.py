"""The device a command or a trainer runs on: the one place where `--device` (or a library caller's device) is read,
defaulted and checked on this machine."""

from __future__ import annotations

import os

import torch

from transunet3d.errors import UserError

_CHOICES = "give cpu, cuda, cuda:N or mps"


def parse_device(name: str | torch.device | None) -> torch.device:
    """The device that `--device NAME` names, checked against this machine.

    Commands call it before they write anything, so that a typo or a GPU the machine lacks is one error line
    rather than a torch traceback after a half-made run folder.

    Args:
        name: a torch device or its string ("cpu", "cuda", "cuda:1", "mps"), or None for the default: this
            process's GPU (LOCAL_RANK under torchrun) when CUDA is available, else the CPU.

    Raises:
        UserError: "--device NAME: problem" for a string torch does not read, or a device this machine lacks.
    """
    if name is None:
        return torch.device(f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)  # a device passes through
    except RuntimeError:
        raise UserError(f"--device {name}: not a device; {_CHOICES}") from None
    problem = _device_problem(device)
    if problem is not None:
        raise UserError(f"--device {name}: {problem}")
    return device


def _device_problem(device: torch.device) -> str | None:
    """Why the commands cannot run on `device` on this machine, or None."""
    if device.type not in ("cpu", "cuda", "mps"):
        return f"not a device the commands run on; {_CHOICES}"
    if device.type == "mps" and not torch.backends.mps.is_available():
        return "MPS is not available on this machine"
    if device.type != "cuda":
        return None
    if not torch.cuda.is_available():
        return "CUDA is not available on this machine (or torch was installed without it)"
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        return f"no such GPU; this machine has {count} (cuda:0 to cuda:{count - 1})"
    return None
