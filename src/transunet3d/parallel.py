"""Run one function over many cases, in worker processes when asked, with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from tqdm import tqdm

from transunet3d.errors import describe_os_error

Job = TypeVar("Job")
Result = TypeVar("Result")


@dataclass(frozen=True)
class _NamingOSErrors(Generic[Job, Result]):
    """`function` for a worker process: an OSError comes back as `file: problem`, since pickling it to the parent
    drops its file name (`[Errno 2] No such file or directory` would not say which file)."""

    function: Callable[[Job], Result]

    def __call__(self, job: Job) -> Result:
        try:
            return self.function(job)
        except OSError as error:
            raise OSError(describe_os_error(error)) from None


def map_cases(
    function: Callable[[Job], Result], jobs: list[Job], workers: int, desc: str, progress: bool = True
) -> Iterator[Result]:
    """Results of `function` over `jobs` in order; `workers` > 1 uses that many processes."""
    bar = {"total": len(jobs), "desc": desc, "unit": "case", "disable": not progress}
    if workers <= 1 or len(jobs) <= 1:
        yield from tqdm(map(function, jobs), **bar)
        return
    with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
        yield from tqdm(pool.map(_NamingOSErrors(function), jobs), **bar)

