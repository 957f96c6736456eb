"""Run one function over many cases, in worker processes when asked, with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from tqdm import tqdm

Job = TypeVar("Job")
Result = TypeVar("Result")


def map_cases(
    function: Callable[[Job], Result], jobs: list[Job], workers: int, desc: str, progress: bool = True
) -> Iterator[Result]:
    """Results of `function` over `jobs` in order; `workers` > 1 uses that many processes."""
    bar = {"total": len(jobs), "desc": desc, "unit": "case", "disable": not progress}
    if workers <= 1 or len(jobs) <= 1:
        yield from tqdm(map(function, jobs), **bar)
        return
    with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
        yield from tqdm(pool.map(function, jobs), **bar)

