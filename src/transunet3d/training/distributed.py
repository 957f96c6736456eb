"""Multi-process training under `torchrun`: who this process is, and the few collective steps the trainer needs."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from transunet3d.devices import Launch
from transunet3d.errors import UserError
from transunet3d.files import exclusive_folder

# How long the processes wait for each other, at the start and at every collective step (torch's default).
PROCESS_GROUP_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Distributed:
    """This process's place among `world` training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls, use_cuda: bool, tell: Callable[[str], None] = lambda _: None) -> Distributed:
        """Join the process group that torchrun describes in the environment (NCCL on GPU, gloo on CPU).

        Args:
            tell: shown by the first process before it waits for the others, so that a wait for a process that
                never starts (a WORLD_SIZE left in the environment) is not silent.

        Raises:
            UserError: the rendezvous variables are missing or wrong, or not every process came in time.
        """
        launch = Launch.from_environment()
        if launch.world <= 1:
            return cls()
        _check_rendezvous(launch.world)
        if not dist.is_initialized():
            meeting = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
            if launch.rank == 0:
                tell(f"processes: waiting for the {launch.world} of WORLD_SIZE at {meeting} (at most "
                     f"{PROCESS_GROUP_TIMEOUT.total_seconds() / 60:g} min)")
            try:
                dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=PROCESS_GROUP_TIMEOUT)
            except dist.DistError as error:
                raise UserError(f"WORLD_SIZE={launch.world}: the processes did not all meet at {meeting} "
                                f"({str(error).strip().splitlines()[0]}); start every process, or unset WORLD_SIZE "
                                "to run one") from None
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

    @contextlib.contextmanager
    def main_holds(self, folder: Path, work: str) -> Iterator[None]:
        """The main process holds `folder` (`files.exclusive_folder`) while the block runs; when it cannot, every
        process stops (the others would wait for it at their next collective step)."""
        with contextlib.ExitStack() as stack:
            refusal = None
            if self.is_main:
                try:
                    stack.enter_context(exclusive_folder(folder, work))
                except UserError as error:
                    refusal = error
            if not self.all_true(refusal is None):
                raise refusal or UserError(f"{folder}: the first process could not hold it")
            yield

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
