"""Phantom generation and preprocessing time per full-size (240x240x155, 1 mm) case, on one core.

Reference, measured in the same run: reading the case's five NIfTI files with nibabel (the I/O that any
preprocessing must do), so "x reference" says how much work preprocessing adds on top of reading.

    python benchmarks/bench_data.py [--cases 4]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from transunet3d.data.layout import discover_cases
from transunet3d.data.phantom import PhantomSpec, generate_phantom, write_phantom
from transunet3d.data.phantom.anatomy import anatomy_on_grid
from transunet3d.data.preprocess import preprocess_case


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=4)
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    spec = PhantomSpec()
    with tempfile.TemporaryDirectory() as tmp:
        raw, pre = Path(tmp) / "raw", Path(tmp) / "pre"
        first_anatomy = timed(lambda: anatomy_on_grid(spec.shape, spec.resolved_spacing()))
        generate, write = [], []
        for index in range(1, args.cases + 1):
            start = time.perf_counter()
            phantom = generate_phantom(spec, seed=0, index=index)
            generate.append(time.perf_counter() - start)
            write.append(timed(lambda p=phantom: write_phantom(p, raw)))
        cases = discover_cases(raw)
        read = [timed(lambda c=c: [np.asarray(nib.load(p).dataobj) for p in [*c.image_paths(), c.seg]])
                for c in cases]
        prep = [timed(lambda c=c: preprocess_case(c, pre, spec.resolved_spacing(), 10000)) for c in cases]
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    print(f"{args.cases} cases of 240x240x155 at 1 mm, one core")
    print("| step | seconds per case |")
    print("| --- | --- |")
    print(f"| MNI anatomy on the grid (once per process) | {first_anatomy:.2f} |")
    print(f"| phantom: generate | {mean(generate):.2f} |")
    print(f"| phantom: write five .nii.gz | {mean(write):.2f} |")
    print(f"| phantom: total, first case of a process | {first_anatomy + generate[0] + write[0]:.2f} |")
    print(f"| reference: read five .nii.gz with nibabel | {mean(read):.2f} |")
    print(f"| preprocess (read, validate, crop, z-score, write) | {mean(prep):.2f} "
          f"({mean(prep) / mean(read):.2f}x reference) |")


if __name__ == "__main__":
    main()
