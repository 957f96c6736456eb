"""Lesion-wise Dice alone (`lesionwise_dice`) vs every score of a region (`score_region`), per region, one core.

On the four real label maps in ../shared/data/labelmaps, the prediction against the reference of each region: on
the crop the evaluator scores (everything either map labels) and on the whole volume; and the tuning case, where
the reference lesions are found once (`ReferenceLesions.of`) and only the prediction is matched per setting.

    python benchmarks/bench_lesionwise_dice.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np

from transunet3d.data.crop import mask_bounds, union_bounds
from transunet3d.evaluation import region_mask, score_region
from transunet3d.evaluation.lesionwise import ReferenceLesions, lesionwise_dice

LABELMAPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "labelmaps"
CASES = ["00132-000", "00217-000", "00630-001", "01325-000"]


def best_ms(function, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def bench_case(case: str, repeats: int) -> None:
    image = nib.load(LABELMAPS / "pred" / f"BraTS-MET-{case}.nii.gz")
    pred = np.asanyarray(image.dataobj)
    ref = np.asanyarray(nib.load(LABELMAPS / "ref" / f"BraTS-MET-{case}-seg.nii.gz").dataobj)
    spacing = tuple(float(z) for z in image.header.get_zooms()[:3])
    box = tuple(slice(lo, hi) for lo, hi in union_bounds(mask_bounds(pred), mask_bounds(ref)))
    for region in ("WT", "TC", "ET"):
        times = []
        for crop in (box, ()):
            p, g = region_mask(pred[crop], region), region_mask(ref[crop], region)
            assert lesionwise_dice(p, g, spacing) == score_region(p, g, spacing).lesionwise_dice
            times += [best_ms(partial(score_region, p, g, spacing), repeats),
                      best_ms(partial(lesionwise_dice, p, g, spacing), repeats)]
        p, g = region_mask(pred[box], region), region_mask(ref[box], region)
        reference = ReferenceLesions.of(g, spacing)
        times.append(best_ms(partial(reference.match, p), repeats))
        shape = "x".join(str(s.stop - s.start) for s in box)
        print(f"| {case} | {region} | {shape} | " + " | ".join(f"{t:.1f}" for t in times)
              + f" | {times[0] / times[1]:.0f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("| case | region | crop | score_region crop (ms) | lesionwise_dice crop | score_region whole volume "
          "| lesionwise_dice whole volume | match only, crop | speed-up on the crop |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in CASES:
        bench_case(case, args.repeats)


if __name__ == "__main__":
    main()
