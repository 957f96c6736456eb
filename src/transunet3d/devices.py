"""The device a command or a trainer runs on: the one place where `--device` (or a library caller's device) is read,
defaulted and checked on this machine, and where a launcher's RANK, WORLD_SIZE and LOCAL_RANK are read."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch

from transunet3d.errors import UserError

_CHOICES = "give cpu, cuda, cuda:N or mps"


@dataclass(frozen=True)
class Launch:
    """Where a launcher (torchrun, or a job array that sets the same variables) put this process: RANK of
    WORLD_SIZE processes, LOCAL_RANK on its machine; one process (0 of 1) when none are set."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> Launch:
        """The launcher's variables, checked: whole numbers with 0 <= RANK < WORLD_SIZE.

        A RANK outside the world made `predict` skip cases or predict none with exit 0, and a torch process group
        wait for processes that never come.

        Raises:
            UserError: naming the variables and what is wrong with them.
        """
        given = {name: os.environ.get(name) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        for name, text in given.items():
            if text is not None and not re.fullmatch(r"[0-9]+", text):
                raise UserError(f"{name}={text!r}: not a whole number >= 0 (launchers such as torchrun set it; unset "
                                "it to run one process)")
        rank, world, local = (int(given[name] or default) for name, default in
                              (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")))
        if world < 1 or rank >= world:
            raise UserError(f"RANK={rank}, WORLD_SIZE={world}: a process's RANK must lie in 0 to WORLD_SIZE - 1")
        if world > 1 and given["RANK"] is None:
            raise UserError(f"WORLD_SIZE={world} without RANK: which of the processes this is is not set (torchrun "
                            "sets both)")
        return cls(rank, world, local)


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
        return torch.device(f"cuda:{Launch.from_environment().local_rank}" if torch.cuda.is_available() else "cpu")
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
    if device.type in ("cpu", "mps") and device.index not in (None, 0):  # torch would take any index and use 0
        return f"{device.type} has one device: {device.type} (or {device.type}:0)"
    if device.type != "cuda":
        return None
    if not torch.cuda.is_available():
        return "CUDA is not available on this machine (or torch was installed without it)"
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        return f"no such GPU; this machine has {count} (cuda:0 to cuda:{count - 1})"
    return None
