"""map_cases: results in order, with one worker or several processes, and errors that cross process borders."""

import pytest

from transunet3d.errors import InputError
from transunet3d.parallel import map_cases


def _square_or_refuse(value: int) -> int:
    if value < 0:
        raise InputError(f"case{value}", "/data/case-seg.nii.gz", "labels must be in {0,1,2,3}, found 4")
    return value * value


@pytest.mark.parametrize("workers", [1, 2])
def test_results_keep_the_order_of_the_jobs(workers: int):
    assert list(map_cases(_square_or_refuse, [3, 1, 2], workers, "test", progress=False)) == [9, 1, 4]


def test_an_input_error_raised_in_a_worker_process_arrives_whole():
    with pytest.raises(InputError) as raised:
        list(map_cases(_square_or_refuse, [1, -1], workers=2, desc="test", progress=False))
    error = raised.value
    assert (error.case, error.file) == ("case-1", "case-seg.nii.gz")
    assert str(error) == "case-1: case-seg.nii.gz: labels must be in {0,1,2,3}, found 4"
