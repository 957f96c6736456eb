"""Multi-process training under `torchrun`: who this process is, and the few collective steps the trainer needs."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from transunet3d.devices import Launch
from transunet3d.errors import UserError


@dataclass(frozen=True)
class Distributed:
    """This process's place among `world` training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls, use_cuda: bool) -> Distributed:
        """Join the process group that torchrun describes in the environment (NCCL on GPU, gloo on CPU)."""
        launch = Launch.from_environment()
        if launch.world <= 1:
            return cls()
        _check_rendezvous(launch.world)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        return cls(dist.get_rank(), launch.world, launch.local_rank)

    @property
    def is_main(self) -> bool:
        """Only the main process writes files."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def mean(self, value: float) -> float:
        """The mean of `value` over all processes."""
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor) / self.world

    def all_true(self, flag: bool) -> bool:
        """Whether `flag` holds in every process (so that all of them take the same branch)."""
        if self.world == 1:
            return flag
        tensor = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        return bool(tensor.item() > 0)

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


SINGLE_PROCESS = Distributed()


def _check_rendezvous(world: int) -> None:
    """Refuse a WORLD_SIZE without the address the processes meet at (MASTER_ADDR, MASTER_PORT, which torchrun
    sets): torch's process group failed with a traceback.

    Raises:
        UserError: naming the variables missing or wrong.
    """
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise UserError(f"WORLD_SIZE={world} without {' and '.join(missing)}: the processes have nowhere to meet "
                        "(torchrun sets them; unset WORLD_SIZE to run one process)")
    port = os.environ["MASTER_PORT"]
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UserError(f"MASTER_PORT={port!r}: not a port number (1 to 65535)")
